//! SBOMs for real: a production push carries one per image (and per platform for
//! `multiplatform`), made during the build by the project's own generator, and `cargo xtask sbom`
//! reads them back: Debian packages from dpkg, the Python packages at the versions the backend's
//! lock pins, the npm packages with the version and integrity the frontend's lock file records,
//! the frontend's operating system packages; and spdx-tools validates every document.

use super::*;

/// The version `backend/requirements.txt` pins for a package (`name==X`).
fn pinned(name: &str) -> String {
    let text = std::fs::read_to_string(root().join("backend/requirements.txt")).unwrap();
    let prefix = format!("{name}==");
    let line = text.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| panic!("{name} is not pinned"));
    line.split_whitespace().next().unwrap().to_string()
}

/// The version and integrity `frontend/package-lock.json` records for a package.
fn locked(name: &str) -> (String, String) {
    let text = std::fs::read_to_string(root().join("frontend/package-lock.json")).unwrap();
    let lock: Value = serde_json::from_str(&text).unwrap();
    let entry = &lock["packages"][format!("node_modules/{name}")];
    (entry["version"].as_str().unwrap().to_string(), entry["integrity"].as_str().unwrap().to_string())
}

/// The table's row for a package, split into its columns.
fn row(table: &str, name: &str) -> Vec<String> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|cols| cols.first().map(String::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no row for {name} in:\n{table}"))
}

/// The build date the xtask gives a build of HEAD (its commit time), as SPDX writes times.
fn build_date() -> String {
    let out = Command::new("git").args(["log", "-1", "--format=%ct"]).current_dir(root()).output().unwrap();
    let epoch: i64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    chrono::DateTime::from_timestamp(epoch, 0).unwrap().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Validates an image's SPDX document for one platform with spdx-tools' `pyspdxtools` (in the
/// virtualenv `cargo xtask test` prepares), then checks what it says of the image; returns its
/// namespace.
fn validate(image: &str, platform: &str) -> String {
    let out = must(&["sbom", image, "--platform", platform, "--json"], &[]);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("--json prints one JSON document");
    let file = std::env::temp_dir().join(format!("xtask-e2e-sbom-{}.spdx.json", std::process::id()));
    std::fs::write(&file, &out.stdout).unwrap();
    let tool = root().join("target/xtask/venv/bin/pyspdxtools");
    let checked =
        Command::new(&tool).arg("-i").arg(&file).output().unwrap_or_else(|e| panic!("{}: {e}", tool.display()));
    let _ = std::fs::remove_file(&file);
    let said = format!("{}{}", String::from_utf8_lossy(&checked.stdout), String::from_utf8_lossy(&checked.stderr));
    assert!(checked.status.success() && !said.contains("invalid"), "{image} {platform}: pyspdxtools says:\n{said}");
    let described = xtask::images::sbom::read::described(&doc);
    assert_eq!(described.len(), 1, "{image} {platform}: the document describes the image");
    let namespace = doc["documentNamespace"].as_str().unwrap().to_string();
    assert!(namespace.contains(&format!("/{platform}/sha256-")), "{image} {platform}: {namespace}");
    // BuildKit 0.16 and later pass the xtask's parameters: the image's name and the build date.
    let root_package = doc["packages"].as_array().unwrap().iter().find(|p| &&p["SPDXID"] == described.first().unwrap());
    let name = root_package.and_then(|p| p["name"].as_str()).unwrap_or_default();
    let wanted = image.rsplit('/').next().unwrap().split(':').next().unwrap();
    let passed = name == wanted;
    if std::env::var("XTASK_TEST_ENGINE").as_deref() == Ok("current") {
        assert!(passed, "{image} {platform}: the root package is `{name}`");
    }
    if passed {
        assert_eq!(
            doc["creationInfo"]["created"],
            build_date().as_str(),
            "{image} {platform}: created is the build date"
        );
    }
    namespace
}

/// Reads the pushed images' SBOMs for one platform and checks what each lists.
fn check_platform(registry: &str, version: &str, platform: &str) {
    let backend = format!("{registry}/contextcleanse-backend:{version}");
    let out = must(&["sbom", &backend, "--platform", platform], &[]);
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(row(&table, "libc6")[2], "deb", "{platform}: libc6 comes from dpkg");
    assert_eq!(row(&table, "fastapi")[1..3], [pinned("fastapi"), "pypi".to_string()], "{platform}");
    assert_eq!(row(&table, "uvicorn")[1], pinned("uvicorn"), "{platform}");

    let frontend = format!("{registry}/contextcleanse-frontend:{version}");
    let out = must(&["sbom", &frontend, "--platform", platform], &[]);
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    // The operating system's packages: the stand-in's dpkg database or the official image's apk one.
    let os_packages = table.lines().filter(|l| matches!(l.split_whitespace().nth(2), Some("deb" | "apk"))).count();
    assert!(os_packages >= 3, "{platform}: the frontend lists its operating system's packages:\n{table}");
    let (next_version, integrity) = locked("next");
    assert_eq!(row(&table, "next")[1..], [next_version.clone(), "npm".to_string(), integrity], "{platform}");

    let out = must(&["sbom", &frontend, "--platform", platform, "--json"], &[]);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("--json prints one JSON document");
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    assert_eq!(doc["SPDXID"], "SPDXRef-DOCUMENT");
    let next = doc["packages"].as_array().unwrap().iter().find(|p| p["name"] == "next").expect("next is listed");
    assert_eq!(next["versionInfo"], next_version.as_str());
    assert_eq!(next["checksums"][0]["algorithm"], "SHA512");
    assert_eq!(next["externalRefs"][0]["referenceLocator"], format!("pkg:npm/next@{next_version}").as_str());
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn a_pushed_production_image_carries_an_sbom_per_platform() {
    let t0 = Instant::now();
    let registry = registry();
    let version = format!("0.4.0-e2e-sbom.{}", std::process::id());
    let push = |recipe: &str| must(&[recipe, "--push", "--registry", &registry, "--release-version", &version], &[]);
    let backend = format!("{registry}/contextcleanse-backend:{version}");
    if classic_store() {
        // No attestation can be attached: the SBOM is left out with the provenance, in one note,
        // and `sbom` says the image carries none.
        let said = String::from_utf8_lossy(&push("production").stderr).to_string();
        assert!(said.contains("provenance attestation left out, and the SBOM with it"), "{said}");
        one_line_error(&xtask(&["sbom", &backend], &[]), "carries no attestation");
        return;
    }
    let said = String::from_utf8_lossy(&push("production").stderr).to_string();
    assert!(said.contains("SBOM attestation made by localhost/contextcleanse-sbom:dev"), "{said}");
    let native = format!("linux/{}", if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" });
    check_platform(&registry, &version, &native);
    for image in ["backend", "frontend"] {
        validate(&format!("{registry}/contextcleanse-{image}:{version}"), &native);
    }
    eprintln!("production push and its SBOMs read: {:.1} s", t0.elapsed().as_secs_f64());

    // Bad input, one line each.
    one_line_error(&xtask(&["sbom", &backend, "--platform", "linux/s390x"], &[]), "has no such platform");
    one_line_error(&xtask(&["sbom", &format!("{registry}/contextcleanse-none:{version}")], &[]), "in no registry");
    let stand_in = xtask::images::standin::BASES[0].standin().replacen("localhost", &registry, 1);
    let inspect =
        Command::new("docker").args(["buildx", "imagetools", "inspect", "--raw", &stand_in]).output().unwrap();
    if let (true, Ok(raw)) = (inspect.status.success(), serde_json::from_slice::<Value>(&inspect.stdout)) {
        // A stand-in made for one platform is pushed as a single image, one made for both as an
        // index without attestations: either way the command says there is no SBOM, in one line.
        let expected = if raw["manifests"].is_array() { "has no SBOM for" } else { "carries no attestation" };
        one_line_error(&xtask(&["sbom", &stand_in], &[]), expected);
    }

    // Both platforms: the same tags, now an index of two images, each with its own SBOM.
    push("multiplatform");
    let mut namespaces = std::collections::BTreeSet::new();
    for platform in ["linux/amd64", "linux/arm64"] {
        check_platform(&registry, &version, platform);
        for image in ["backend", "frontend"] {
            namespaces.insert(validate(&format!("{registry}/contextcleanse-{image}:{version}"), platform));
        }
    }
    assert_eq!(namespaces.len(), 4, "a namespace of its own per image and platform: {namespaces:?}");
    let out = must(&["sbom", &backend], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().filter(|l| l.starts_with("# ")).count(), 2, "a table per platform:\n{text}");
    one_line_error(&xtask(&["sbom", &backend, "--json"], &[]), "--json prints one SPDX document");
    eprintln!("sbom test: {:.1} s", t0.elapsed().as_secs_f64());
}
