//! Signatures: signing a pushed image by digest with cosign and the user's key (or keyless, see
//! `keyless.rs`), and checking a signature (and the attestations) of an image in the registry.
//!
//! The key never passes through the repository, an image, a log or a report: it is named by a path
//! (`--key` or `COSIGN_KEY_FILE`) or held in the `COSIGN_PRIVATE_KEY` environment variable, which
//! cosign reads itself (`env://`); the password reaches cosign only as `COSIGN_PASSWORD`, inherited
//! from the user's environment, never set by the xtask nor printed by it.

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::util::runner::{self, Cmd};

/// The variable holding a private key's PEM text, read by cosign as `env://COSIGN_PRIVATE_KEY`.
pub(crate) const KEY_VAR: &str = "COSIGN_PRIVATE_KEY";
/// The `.env` setting (or variable) naming a key file.
pub(crate) const KEY_FILE_SETTING: &str = "COSIGN_KEY_FILE";

/// Where cosign finds the key: a reference it resolves itself, so the key's text never enters an
/// argument vector or the xtask's memory; or no key at all (`--keyless`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KeyRef {
    File(String),
    Env,
    Keyless,
}

impl KeyRef {
    /// The value of cosign's `--key`, None when signing keyless.
    pub(crate) fn arg(&self) -> Option<String> {
        match self {
            KeyRef::File(p) => Some(p.clone()),
            KeyRef::Env => Some(format!("env://{KEY_VAR}")),
            KeyRef::Keyless => None,
        }
    }
}

/// Resolves the signing key from the flag, the setting and the environment, before any build: a
/// missing key or a key file that is not there is one line with the fix.
pub(crate) fn signing_key(push: bool, flag: Option<&str>, setting: Option<&str>, env_has_key: bool) -> Result<KeyRef> {
    if !push {
        bail!("--sign signs what is pushed: add --push (and a registry)");
    }
    if let Some(path) = flag.or(setting).filter(|p| !p.is_empty()) {
        if !Path::new(path).is_file() {
            bail!("--sign: no key file at {path}: make one with `cosign generate-key-pair` or fix --key / {KEY_FILE_SETTING}");
        }
        return Ok(KeyRef::File(path.to_string()));
    }
    if env_has_key {
        return Ok(KeyRef::Env);
    }
    bail!("--sign needs a key: pass --key FILE, set {KEY_FILE_SETTING} in .env, or put the key's text in {KEY_VAR} (password in COSIGN_PASSWORD)")
}

/// The same, read from the world: the flags, `.env` and the process environment.
pub(crate) fn key_for_build(push: bool, flag: Option<&str>, keyless: bool) -> Result<KeyRef> {
    if keyless {
        if !push {
            bail!("--sign signs what is pushed: add --push (and a registry)");
        }
        crate::images::keyless::check(flag, crate::images::keyless::token_available(|k| std::env::var(k).ok()))?;
        return Ok(KeyRef::Keyless);
    }
    let settings = crate::settings::Settings::load()?;
    let setting = settings.get(KEY_FILE_SETTING).map(str::to_string).or_else(|| std::env::var(KEY_FILE_SETTING).ok());
    let env_has_key = std::env::var(KEY_VAR).is_ok_and(|v| !v.trim().is_empty());
    signing_key(push, flag, setting.as_deref(), env_has_key)
}

/// Whether a registry is plain HTTP on this machine (the private engine's 127.0.0.1:5000).
fn local(reference: &str) -> bool {
    let host = reference.split('/').next().unwrap_or_default();
    host.starts_with("127.0.0.1") || host.starts_with("localhost")
}

/// The program: the private engine's own (`engine up` unpacks the pinned package into its prefix),
/// else one on PATH.
fn cosign() -> Cmd {
    // A prefix someone besides root could have changed is passed over (see engine/integrity.rs).
    let private = crate::engine::Spec::ALL
        .iter()
        .map(|s| crate::engine::Layout::new(*s))
        .find(|l| l.bin("cosign").is_file() && l.root_only())
        .map(|l| l.bin("cosign"));
    Cmd::new(private.map_or("cosign".to_string(), |p| p.display().to_string()))
}

/// `cosign sign` of an image by digest (`REPO@sha256:...`). With a key, no transparency log: the
/// key is the trust root, and no public log is reachable from a machine of this kind. Keyless,
/// cosign's defaults: a certificate for the OIDC token's identity and an entry in the public log,
/// which is what lets a consumer trust a key that existed for one signing only.
pub(crate) fn sign_cmd(key: &KeyRef, image_by_digest: &str) -> Cmd {
    // The one command that gets the key's text and its password from the xtask's environment.
    let mut cmd = cosign().pass_secrets().args(["sign", "--yes"]);
    if let Some(key) = key.arg() {
        cmd = cmd.arg("--key").arg(key).args(["--use-signing-config=false", "--tlog-upload=false"]);
    }
    if local(image_by_digest) {
        cmd = cmd.args(["--allow-insecure-registry", "--allow-http-registry"]);
    }
    cmd.names(&[image_by_digest])
}

/// `cosign verify` against a public key, trusting no log (the signature was made without one).
pub(crate) fn verify_cmd(public_key: &str, image: &str) -> Cmd {
    let mut cmd = cosign().args(["verify", "--key", public_key, "--insecure-ignore-tlog=true"]);
    if local(image) {
        cmd = cmd.args(["--allow-insecure-registry", "--allow-http-registry"]);
    }
    cmd.args(["--output", "json"]).names(&[image])
}

/// One kind of attestation BuildKit attached to an image (`Provenance` or `SBOM`), as JSON.
pub(crate) fn attestation_cmd(image: &str, kind: &str) -> Cmd {
    let format = format!("{{{{json .{kind}}}}}");
    Cmd::new("docker").args(["buildx", "imagetools", "inspect", "--format", &format]).names(&[image])
}

/// Whether `imagetools inspect`'s JSON for one kind holds anything.
fn present(json: &str) -> bool {
    match serde_json::from_str::<serde_json::Value>(json.trim()) {
        Ok(serde_json::Value::Object(m)) => !m.is_empty(),
        Ok(serde_json::Value::Array(a)) => !a.is_empty(),
        _ => false,
    }
}

/// Signs each pushed image by digest. A failure (a wrong password, a registry refusing the
/// signature) is one line naming the image: it stays pushed and is reported unsigned.
pub(crate) fn sign_all(key: &KeyRef, images: &[String]) -> Result<()> {
    let mut failed = Vec::new();
    for image in images {
        match runner::read(&sign_cmd(key, image)) {
            Ok(_) => eprintln!("signed: {image}"),
            Err(e) => failed.push(format!("{image}: {}", first_line(&format!("{e:#}")))),
        }
    }
    if !failed.is_empty() {
        bail!("signing failed (the images are pushed but unsigned): {}", failed.join("; "));
    }
    Ok(())
}

/// An image pushed by the build as `REPO@DIGEST`: its first name with the tag dropped.
pub(crate) fn by_digest(image: &str, digest: &str) -> String {
    format!("{}@{digest}", crate::images::meta::repository(image))
}

/// Signs what this build pushed: each target's image by the digest its own report records; returns
/// the images signed, by digest.
pub(crate) fn sign_built(key: &KeyRef, report: &crate::report::BuildReport) -> Result<Vec<String>> {
    let images = pushed(report)?;
    sign_all(key, &images)?;
    Ok(images)
}

/// The images a build's report says it pushed, each by digest: what `--sign` signs.
pub(crate) fn pushed(report: &crate::report::BuildReport) -> Result<Vec<String>> {
    let images: Vec<String> =
        report.targets.iter().filter_map(|t| Some(by_digest(t.image.as_deref()?, t.digest.as_deref()?))).collect();
    if images.is_empty() {
        bail!("--sign: the build's report names no pushed image with a digest; nothing was signed");
    }
    Ok(images)
}

fn first_line(text: &str) -> &str {
    let wrong_password = text.contains("decrypt") || text.contains("password");
    if wrong_password {
        return "wrong key password (COSIGN_PASSWORD)";
    }
    text.lines().rev().find(|l| l.contains("Error")).unwrap_or_else(|| text.lines().next().unwrap_or_default())
}

/// What `verify` found: the signature checked, and the attestations present.
#[derive(Debug)]
pub(crate) struct Verified {
    pub(crate) image: String,
    /// The kinds present: `provenance`, `sbom`.
    pub(crate) attestations: Vec<&'static str>,
}

/// Checks an image's signature with a public key, then lists its attestations. An unsigned image,
/// or one signed by another key, fails with one line saying which.
pub(crate) fn verify(image: &str, public_key: &str) -> Result<Verified> {
    if !Path::new(public_key).is_file() {
        bail!("no public key at {public_key}: pass the .pub file `cosign generate-key-pair` made");
    }
    if let Err(e) = runner::read(&verify_cmd(public_key, image)) {
        let text = format!("{e:#}");
        let why = if text.contains("no signatures found")
            || text.contains("no matching signatures: ") && !text.contains("invalid")
        {
            "it has no signature"
        } else if text.contains("invalid signature")
            || text.contains("failed to verify signature")
            || text.contains("no matching signatures")
        {
            "its signature was not made with this key (or the image was changed)"
        } else {
            first_line(&text)
        };
        bail!("{image}: signature check failed: {why}");
    }
    let mut attestations = Vec::new();
    for (kind, name) in [("Provenance", "provenance"), ("SBOM", "sbom")] {
        let json = runner::read(&attestation_cmd(image, kind)).with_context(|| format!("reading {image}'s {name}"))?;
        if present(&json) {
            attestations.push(name);
        }
    }
    Ok(Verified { image: image.to_string(), attestations })
}

/// `cargo xtask verify IMAGE --key FILE.pub`.
pub fn command(image: &str, key: Option<&str>) -> Result<()> {
    let Some(key) = key.map(str::to_string).or_else(|| std::env::var("COSIGN_PUBLIC_KEY").ok()) else {
        bail!("verify needs the public key: pass --key FILE.pub or set COSIGN_PUBLIC_KEY");
    };
    let v = verify(image, &key)?;
    println!("signature: ok ({})", v.image);
    println!(
        "attestations: {}",
        if v.attestations.is_empty() { "none".to_string() } else { v.attestations.join(", ") }
    );
    Ok(())
}

/// `doctor`'s line: whether cosign is on PATH, and its version.
pub(crate) fn doctor_line() -> Result<String, String> {
    match runner::read(&cosign().arg("version")) {
        Ok(out) => {
            let v = out
                .lines()
                .find(|l| l.starts_with("GitVersion"))
                .map_or("", |l| l.trim_start_matches("GitVersion:").trim());
            Ok(format!("cosign {v}: --sign and verify work"))
        }
        Err(_) => Err("no cosign: `cargo xtask engine up` installs it; needed by --sign and verify only".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{BuildReport, TargetReport};

    #[test]
    fn a_builds_outcome_is_what_gets_signed() {
        let target = |name: &str, image: Option<&str>, digest: Option<&str>| TargetReport {
            name: name.into(),
            image: image.map(String::from),
            digest: digest.map(String::from),
            ..TargetReport::default()
        };
        let outcome = BuildReport {
            targets: vec![
                target("backend-production", Some("127.0.0.1:5000/contextcleanse-backend:0.4.0"), Some("sha256:aa")),
                target("frontend-production", Some("127.0.0.1:5000/contextcleanse-frontend:0.4.0"), Some("sha256:bb")),
                target("sbom-only", None, Some("sha256:cc")),
            ],
            ..BuildReport::default()
        };
        let images = pushed(&outcome).unwrap();
        assert_eq!(
            images,
            ["127.0.0.1:5000/contextcleanse-backend@sha256:aa", "127.0.0.1:5000/contextcleanse-frontend@sha256:bb"]
        );
        let line = sign_cmd(&KeyRef::File("/k".into()), &images[0]).command_line();
        assert!(line.ends_with(" 127.0.0.1:5000/contextcleanse-backend@sha256:aa"), "{line}");
        let nothing = BuildReport {
            targets: vec![target("backend", Some("contextcleanse-backend:dev"), None)],
            ..BuildReport::default()
        };
        assert!(pushed(&nothing).unwrap_err().to_string().contains("nothing was signed"));
    }

    #[test]
    fn sign_without_push_or_key_is_refused_in_one_line() {
        let e = signing_key(false, Some("/k"), None, true).unwrap_err().to_string();
        assert!(e.contains("add --push"), "{e}");
        let e = signing_key(true, None, None, false).unwrap_err().to_string();
        assert!(e.contains("needs a key") && !e.contains('\n'), "{e}");
        let e = signing_key(true, Some("/no/such/key"), None, false).unwrap_err().to_string();
        assert!(e.contains("no key file at /no/such/key"), "{e}");
        assert_eq!(signing_key(true, None, None, true).unwrap(), KeyRef::Env);
        assert_eq!(signing_key(true, None, Some(""), true).unwrap(), KeyRef::Env);
    }

    #[test]
    fn the_flag_wins_over_the_setting() {
        let dir = std::env::temp_dir().join(format!("xtask-sign-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("cosign.key");
        std::fs::write(&key, "x").unwrap();
        let k = key.to_str().unwrap();
        assert_eq!(signing_key(true, Some(k), Some("/elsewhere"), true).unwrap(), KeyRef::File(k.to_string()));
        assert_eq!(signing_key(true, None, Some(k), true).unwrap(), KeyRef::File(k.to_string()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The arguments, without the program (the private engine's cosign when it has one, else PATH's).
    fn after_program(cmd: &Cmd) -> String {
        cmd.command_line().split_once(' ').map(|(_, rest)| rest.to_string()).unwrap_or_default()
    }

    #[test]
    fn sign_argv_is_by_digest_without_a_log_and_never_holds_the_key_text() {
        let img = "127.0.0.1:5000/contextcleanse-backend@sha256:abc";
        let cmd = sign_cmd(&KeyRef::Env, img);
        assert_eq!(
            after_program(&cmd),
            "sign --yes --key env://COSIGN_PRIVATE_KEY --use-signing-config=false --tlog-upload=false \
             --allow-insecure-registry --allow-http-registry -- 127.0.0.1:5000/contextcleanse-backend@sha256:abc"
        );
        let remote = sign_cmd(&KeyRef::File("/k/cosign.key".into()), "ghcr.io/x/y@sha256:abc").command_line();
        assert!(!remote.contains("insecure") && remote.contains("--key /k/cosign.key"), "{remote}");
        assert!(!cmd.command_line().contains("PASSWORD"));
    }

    #[test]
    fn keyless_sign_argv_names_no_key_and_keeps_the_log() {
        let cmd = sign_cmd(&KeyRef::Keyless, "ghcr.io/acme/contextcleanse-backend@sha256:abc");
        assert_eq!(after_program(&cmd), "sign --yes -- ghcr.io/acme/contextcleanse-backend@sha256:abc");
        let local = sign_cmd(&KeyRef::Keyless, "127.0.0.1:5000/contextcleanse-backend@sha256:abc");
        assert_eq!(
            after_program(&local),
            "sign --yes --allow-insecure-registry --allow-http-registry -- 127.0.0.1:5000/contextcleanse-backend@sha256:abc"
        );
    }

    #[test]
    fn verify_argv_ignores_the_log_and_reads_json() {
        let cmd = verify_cmd("/k/cosign.pub", "127.0.0.1:5000/x:1.0.0");
        assert_eq!(
            after_program(&cmd),
            "verify --key /k/cosign.pub --insecure-ignore-tlog=true --allow-insecure-registry \
             --allow-http-registry --output json -- 127.0.0.1:5000/x:1.0.0"
        );
    }

    #[test]
    fn images_are_signed_by_digest_with_the_tag_dropped() {
        assert_eq!(by_digest("127.0.0.1:5000/cc-backend:1.0.0", "sha256:ab"), "127.0.0.1:5000/cc-backend@sha256:ab");
        assert_eq!(by_digest("ghcr.io/o/cc", "sha256:ab"), "ghcr.io/o/cc@sha256:ab");
    }

    #[test]
    fn attestations_are_present_only_when_the_json_holds_something() {
        assert_eq!(
            attestation_cmd("r/i:1", "SBOM").command_line(),
            "docker buildx imagetools inspect --format '{{json .SBOM}}' -- r/i:1"
        );
        assert!(present("{\"linux/amd64\": {\"SLSA\": {}}}"));
        assert!(!present("null") && !present("{}") && !present(""));
    }

    #[test]
    fn a_wrong_password_is_named() {
        assert_eq!(first_line("Error: decrypt: encrypted: decryption failed"), "wrong key password (COSIGN_PASSWORD)");
    }
}
