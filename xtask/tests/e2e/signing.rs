//! Signatures for real: cosign signs a production push in the engine's registry, `verify` checks
//! it, and an unsigned copy or another key fails in one line; the key and its password are
//! found in nothing the xtask writes.

use super::*;

/// The cosign `engine up` unpacked into the private engine's prefix, else one on PATH.
fn cosign() -> String {
    let base = std::env::var("XTASK_ENGINE_DIR").map(PathBuf::from).unwrap_or_else(|_| root().join("target/engine"));
    ["current", "floor", "current-classic", "floor-classic"]
        .iter()
        .map(|n| base.join(n).join("prefix/usr/bin/cosign"))
        .find(|p| p.is_file())
        .map_or("cosign".to_string(), |p| p.display().to_string())
}

/// A key pair made by cosign itself in `dir`, with `password`.
fn key_pair(dir: &Path, password: &str) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new(cosign())
        .arg("generate-key-pair")
        .current_dir(dir)
        .env("COSIGN_PASSWORD", password)
        .output()
        .expect("running cosign generate-key-pair (cargo xtask engine up installs cosign)");
    assert!(out.status.success(), "cosign generate-key-pair: {}", String::from_utf8_lossy(&out.stderr));
    (dir.join("cosign.key"), dir.join("cosign.pub"))
}

/// Every file under `dir` (the xtask's reports, history and logs) that holds `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return found };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            found.extend(files_holding(&p, needle));
        } else if e.metadata().is_ok_and(|m| m.len() < 64 << 20) {
            if let Ok(bytes) = std::fs::read(&p) {
                if String::from_utf8_lossy(&bytes).contains(needle) {
                    found.push(p);
                }
            }
        }
    }
    found
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn a_signed_push_verifies_and_an_unsigned_copy_or_another_key_fails() {
    let t0 = std::time::Instant::now();
    let registry = registry();
    let tmp = std::env::temp_dir().join(format!("xtask-e2e-sign-{}", std::process::id()));
    let password = format!("pw-{}-not-in-any-log", std::process::id());
    let (key, public) = key_pair(&tmp.join("ours"), &password);
    let (_, other_public) = key_pair(&tmp.join("theirs"), "another-password");
    let key_s = key.display().to_string();
    let no_key = [("COSIGN_KEY_FILE", ""), ("COSIGN_PRIVATE_KEY", "")];

    // Refused before anything is built, in one line each.
    let out = xtask(&["production", "--sign", "--key", &key_s], &no_key);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("add --push"), "{}", tail(&out, 5));
    let out = xtask(&["production", "--push", "--sign", "--registry", &registry], &no_key);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("--sign needs a key") && said.trim().lines().count() == 1, "{said}");

    let version = format!("{}-e2e-sign.{}", product_version(), std::process::id());
    let out = must(
        &["production", "--push", "--sign", "--key", &key_s, "--registry", &registry, "--release-version", &version],
        &[("COSIGN_PASSWORD", &password)],
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("signed: "), "{said}");
    let image = format!("{registry}/contextcleanse-backend:{version}");
    let public_s = public.display().to_string();
    let ok = must(&["verify", "--no-rebuild", &image, "--key", &public_s], &[]);
    let shown = String::from_utf8_lossy(&ok.stdout);
    assert!(
        shown.contains("signature: ok") && shown.contains("attestations: provenance") == !classic_store(),
        "{shown}"
    );

    // Another key: refused, saying so.
    let out = xtask(&["verify", "--no-rebuild", &image, "--key", &other_public.display().to_string()], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("signature check failed"), "{}", tail(&out, 5));

    // The same index copied to another repository carries no signature there.
    let report = last_report(&root());
    let digest = target(&report, "backend-production")["digest"].as_str().unwrap().to_string();
    let copy = format!("{registry}/e2e-sign-copy-{}:x", std::process::id());
    docker(&["buildx", "imagetools", "create", "--tag", &copy, &format!("{registry}/contextcleanse-backend@{digest}")]);
    let out = xtask(&["verify", "--no-rebuild", &copy, "--key", &public_s], &[]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("signature check failed") && said.trim().lines().count() == 1, "{said}");

    // A wrong password: one line naming it, non-zero exit, the images pushed but unsigned.
    let wrong = format!("{}-e2e-sign-wrong.{}", product_version(), std::process::id());
    let out = xtask(
        &["production", "--push", "--sign", "--key", &key_s, "--registry", &registry, "--release-version", &wrong],
        &[("COSIGN_PASSWORD", "not-the-password")],
    );
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    let line = said.lines().find(|l| l.starts_with("error:")).unwrap_or_default();
    assert!(line.contains("pushed but unsigned") && line.contains("wrong key password"), "{said}");
    let unsigned = format!("{registry}/contextcleanse-backend:{wrong}");
    docker(&["buildx", "imagetools", "inspect", &unsigned]);
    assert!(!xtask(&["verify", "--no-rebuild", &unsigned, "--key", &public_s], &[]).status.success());

    // `multiplatform --push --sign`, with the key's text in COSIGN_PRIVATE_KEY instead of a file:
    // the index of both platforms is what is signed (the earlier multiplatform test warmed the
    // cache, so only the metadata steps run again).
    let from_env = format!("{}-e2e-sign-env.{}", product_version(), std::process::id());
    let key_text = std::fs::read_to_string(&key).unwrap();
    must(
        &["multiplatform", "--push", "--sign", "--registry", &registry, "--release-version", &from_env],
        &[("COSIGN_PASSWORD", &password), ("COSIGN_PRIVATE_KEY", &key_text), ("COSIGN_KEY_FILE", "")],
    );
    let image = format!("{registry}/contextcleanse-frontend:{from_env}");
    let index = docker(&["buildx", "imagetools", "inspect", &image]);
    assert!(index.contains("linux/amd64") && index.contains("linux/arm64"), "{index}");
    let ok = must(&["verify", "--no-rebuild", &image, "--key", &public_s], &[]);
    let shown = String::from_utf8_lossy(&ok.stdout);
    assert!(shown.contains("signature: ok") && shown.contains("attestations: provenance"), "{shown}");

    // Neither the password nor the key's text is in anything the xtask wrote.
    let key_body = key_text.lines().nth(1).unwrap_or_default().to_string();
    for needle in [password.as_str(), key_body.as_str()] {
        assert!(files_holding(&root().join("target/xtask"), needle).is_empty(), "a secret leaked into target/xtask");
    }
    let _ = std::fs::remove_dir_all(&tmp);
    eprintln!("signing e2e took {:.1}s", t0.elapsed().as_secs_f64());
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn b_two_signed_releases_at_once_each_sign_their_own_digests() {
    let registry = registry();
    let pid = std::process::id();
    let tmp = std::env::temp_dir().join(format!("xtask-e2e-sign-both-{pid}"));
    let password = format!("pw-both-{pid}");
    let (key, public) = key_pair(&tmp.join("key"), &password);
    let (key_s, public_s) = (key.display().to_string(), public.display().to_string());
    // Two checkouts of different commits: the second's backend source differs, so its image does.
    let releases: Vec<(PathBuf, String)> = ["one", "two"]
        .iter()
        .map(|n| (scratch_copy(&format!("sign-both-{n}-{pid}")), format!("{}-e2e-both-{n}.{pid}", product_version())))
        .collect();
    // One history for both, as in one checkout: a release that read "the newest build" from it
    // could sign the other's images.
    std::fs::create_dir_all(releases[0].0.join("target")).unwrap();
    xtask::util::os::symlink(releases[0].0.join("target"), releases[1].0.join("target")).unwrap();
    let main_py = releases[1].0.join("backend/app/main.py");
    let text = std::fs::read_to_string(&main_py).unwrap();
    std::fs::write(&main_py, format!("{text}\n# the second release {pid}\n")).unwrap();
    let children: Vec<std::process::Child> = releases
        .iter()
        .enumerate()
        .map(|(i, (dir, version))| {
            Command::new(env!("CARGO_BIN_EXE_xtask"))
                .args(["production", "--push", "--sign", "--key", &key_s, "--registry", &registry])
                .args(["--release-version", version])
                .current_dir(root())
                .env_remove("CI")
                .env("XTASK_PROJECT_ROOT", dir)
                .env("XTASK_SOURCE_COMMIT", format!("{:040x}", i + 1))
                .env("SOURCE_DATE_EPOCH", "1700000000")
                .env("COSIGN_PASSWORD", &password)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let mut digests = Vec::new();
    for out in &outputs {
        assert!(out.status.success(), "{}", tail(out, 20));
        let said = String::from_utf8_lossy(&out.stderr).to_string();
        let report = said.lines().find_map(|l| l.strip_prefix("report: ")).expect("each release names its report");
        let report: Value =
            serde_json::from_str(&std::fs::read_to_string(Path::new(report).with_extension("json")).unwrap()).unwrap();
        let digest = target(&report, "backend-production")["digest"].as_str().unwrap().to_string();
        assert!(said.contains(&format!("signed: {registry}/contextcleanse-backend@{digest}")), "{said}");
        digests.push((digest, said));
    }
    assert_ne!(digests[0].0, digests[1].0, "the two releases build different backend images");
    for (i, (digest, said)) in digests.iter().enumerate() {
        let other = &digests[1 - i].0;
        assert!(!said.contains(other.as_str()), "release {i} signed the other release's image:\n{said}");
        let image = format!("{registry}/contextcleanse-backend@{digest}");
        let ok = must(&["verify", "--no-rebuild", &image, "--key", &public_s], &[]);
        assert!(String::from_utf8_lossy(&ok.stdout).contains("signature: ok"), "{}", tail(&ok, 5));
    }
    for (dir, _) in &releases {
        let _ = std::fs::remove_dir_all(dir);
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
