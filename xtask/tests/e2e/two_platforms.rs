//! Both platforms: the multi-platform images built, arm64's run under emulation, a service's name
//! standing for its multi-platform target, the classic store's refusal in one line, and the
//! stand-ins of each platform laid out like the official images. The module's name puts these
//! near the end, after the other tests that build for arm64 (reproducible, sbom, signing): `cargo
//! xtask test` has arm64's root file system for the stand-ins made while the tests before those
//! run, and the first of them makes arm64's stand-ins.

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

/// `docker run --rm [--platform P] --entrypoint PROGRAM IMAGE ARGS…`: one of the image's own
/// programs, no shell in between.
fn run_in(image: &str, platform: Option<&str>, program: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new("docker");
    cmd.args(["run", "--rm"]);
    if let Some(p) = platform {
        cmd.args(["--platform", p]);
    }
    cmd.args(["--entrypoint", program, image]).args(args);
    cmd.output().expect("running docker")
}

fn run_ok(image: &str, platform: Option<&str>, program: &str, args: &[&str]) -> String {
    let out = run_in(image, platform, program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} in {image} ({platform:?}) failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn standins_are_laid_out_like_the_official_images_on_each_platform() {
    // A build makes the stand-ins when the official bases cannot be had (and takes seconds when
    // everything is cached); `print` then names what this engine's builds use.
    must(&["build"], &[]);
    let ci = xtask::settings::in_ci();
    // `build` makes them for this machine's platform; a command that builds for both (here
    // `check`, which builds no image) adds the other one wherever the engine can hold both (not
    // on the classic store).
    let platforms: &[Option<&str>] = if classic_store() {
        &[None]
    } else {
        must(&["check", "backend-multiplatform", "frontend-multiplatform"], &[]);
        &[Some("linux/amd64"), Some("linux/arm64")]
    };
    for (var, image) in resolved_bases() {
        if !image.starts_with("localhost/standin-") {
            // The official image (or a mirror's copy) is used here: there is no stand-in to check.
            // CI must check them, so there this fails rather than skips.
            assert!(!ci, "CI=true: {var} is {image}, not a stand-in, so the stand-ins' layout went untested");
            eprintln!("skipped: {var} is {image}, not a stand-in");
            continue;
        }
        for &platform in platforms {
            let run = |program: &str, args: &[&str]| run_ok(&image, platform, program, args);
            if var == "NODE_IMAGE" {
                // As on Alpine: /bin/sh and the everyday commands are busybox, and there is no bash.
                let commands = ["sh", "ls", "cat", "cp", "env", "id", "grep", "sed", "head", "readlink", "chown"];
                let found = run("which", &commands);
                let paths: Vec<&str> = found.lines().collect();
                assert_eq!(
                    paths.len(),
                    commands.len(),
                    "{image} {platform:?}: all of {commands:?} on the PATH: {found}"
                );
                // busybox's readlink takes one file; its realpath takes several.
                let targets = run("realpath", &paths);
                assert!(
                    targets.lines().count() == commands.len() && targets.lines().all(|t| t == "/bin/busybox"),
                    "{image} {platform:?}: {paths:?} are not all busybox: {targets}"
                );
                assert!(
                    !run_in(&image, platform, "which", &["bash"]).status.success(),
                    "{image} {platform:?}: bash on the PATH"
                );
                assert!(
                    !run_in(&image, platform, "ls", &["/bin/bash"]).status.success(),
                    "{image} {platform:?}: /bin/bash"
                );
                let version = run("node", &["--version"]);
                assert!(version.starts_with("v22."), "{image} {platform:?}: node {version}");
            } else {
                // As in python:3.11-slim: python, python3, pip and pip3 in /usr/local/bin, found
                // first on the PATH, and pip's own files under /usr/local.
                let found = run("which", &["python", "python3", "pip", "pip3"]);
                assert_eq!(
                    found.lines().collect::<Vec<_>>(),
                    ["/usr/local/bin/python", "/usr/local/bin/python3", "/usr/local/bin/pip", "/usr/local/bin/pip3"],
                    "{image} {platform:?}"
                );
                let version = run("python", &["--version"]);
                assert!(version.starts_with("Python 3.11."), "{image} {platform:?}: {version}");
                let pip = run("pip", &["--version"]);
                assert!(
                    pip.contains(" from /usr/local/lib/python3.11/site-packages/pip "),
                    "{image} {platform:?}: {pip}"
                );
            }
        }
        if var == "PYTHON_IMAGE" {
            // `pip install` as a Dockerfile runs it: into the image's own site-packages under
            // /usr/local, with no PEP 668 refusal. The host's CA bundle lets pip through a
            // TLS-intercepting proxy, as the builds' `cacert` secret does.
            let ca = "/etc/ssl/certs/ca-certificates.crt";
            let mount = format!("{ca}:/tmp/host-ca.crt:ro");
            let mut args = vec!["--entrypoint", "sleep"];
            if Path::new(ca).is_file() {
                args.extend(["-v", mount.as_str(), "-e", "PIP_CERT=/tmp/host-ca.crt"]);
            }
            args.extend([image.as_str(), "300"]);
            let c = Container::run("e2e-standin-pip", &args);
            let quiet = ["--no-cache-dir", "--disable-pip-version-check", "--root-user-action=ignore"];
            c.exec(&[&["pip", "install"][..], &quiet, &["six==1.17.0"]].concat());
            let place = c.exec(&["python", "-c", "import six; print(six.__file__)"]);
            assert_eq!(place, "/usr/local/lib/python3.11/site-packages/six.py", "{image}: pip installed into {place}");
        }
    }
}
