//! The multi-platform images: both platforms built, arm64's run under emulation, a service's name
//! standing for its multi-platform target, and the classic store's refusal in one line. Its module
//! name puts it after the quicker tests: `cargo xtask test` has arm64's root file system for the
//! stand-ins made while they run.

use super::*;

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn arm64_images_run_under_emulation_and_a_named_service_builds_both_platforms() {
    if classic_store() {
        // The docker driver on the classic store cannot hold two platforms: refused before
        // anything is built, in one line, as `doctor` says too.
        for args in [&["multiplatform"][..], &["multiplatform", "--oci"]] {
            one_line_error(&xtask(args, &[]), "multiplatform needs a builder that can build several platforms");
        }
        let doctor = must(&["doctor"], &[]);
        let text = String::from_utf8_lossy(&doctor.stdout);
        assert_eq!(text.lines().filter(|l| l.contains("multiplatform needs a builder")).count(), 1, "{text}");
        return;
    }
    // A service's name stands for its multi-platform target, and a dry run plans on a fresh
    // checkout (no `target/` yet) without making the OCI folder.
    let fresh = scratch_copy(&format!("multiplatform-dry-run-{}", std::process::id()));
    assert!(!fresh.join("target").exists(), "the scratch copy starts without target/");
    let dry =
        must(&["multiplatform", "--oci", "--dry-run", "backend"], &[("XTASK_PROJECT_ROOT", fresh.to_str().unwrap())]);
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(text.contains("# targets: backend-multiplatform (backend-multiplatform)"), "{text}");
    assert!(text.contains("platforms linux/amd64,linux/arm64"), "{text}");
    assert!(!fresh.join("target/xtask/oci").exists(), "a dry run writes nothing");
    std::fs::remove_dir_all(fresh).unwrap();
    must(&["multiplatform", "--release-version", "1.2.3"], &[]);
    let arch = docker(&[
        "run",
        "--rm",
        "--platform",
        "linux/arm64",
        "--entrypoint",
        "uname",
        "contextcleanse-backend:1.2.3",
        "-m",
    ]);
    assert_eq!(arch, "aarch64");
    for (name, port, inner, path) in
        [("backend", free_port(), 8000u16, "/health"), ("frontend", free_port(), 3000, "/api/health")]
    {
        let publish = format!("127.0.0.1:{port}:{inner}");
        let image = format!("contextcleanse-{name}:1.2.3");
        let c = Container::run(&format!("e2e-arm64-{name}"), &["--platform", "linux/arm64", "-p", &publish, &image]);
        assert_eq!(c.exec(&["uname", "-m"]), "aarch64");
        c.wait_healthy(Duration::from_secs(240));
        assert_eq!(health(port, path)["version"], "1.2.3");
    }
    must(&["multiplatform", "--release-version", "1.2.3", "--oci"], &[]);
    let report = last_report(&root());
    for name in ["backend", "frontend"] {
        let sizes = &target(&report, &format!("{name}-multiplatform"))["platform_sizes"];
        for platform in ["linux/amd64", "linux/arm64"] {
            assert!(sizes[platform].as_u64().unwrap_or(0) > 10_000_000, "{name} {platform}: {sizes}");
        }
        let archive = root().join(format!("target/xtask/oci/{name}-multiplatform.tar"));
        assert!(std::fs::metadata(&archive).is_ok_and(|m| m.len() > 1_000_000), "{} exists", archive.display());
    }
    // Named, one service is still built for both platforms (warm: nothing runs again).
    must(&["multiplatform", "--release-version", "1.2.3", "--oci", "backend"], &[]);
    let report = last_report(&root());
    assert_eq!(report["names"], serde_json::json!(["backend-multiplatform"]), "{report}");
    let sizes = &target(&report, "backend-multiplatform")["platform_sizes"];
    assert!(sizes["linux/amd64"].is_u64() && sizes["linux/arm64"].is_u64(), "{sizes}");
}
