//! Keyless signing (`--sign --keyless`): cosign signs with a short-lived certificate for the
//! identity of an OIDC token (a GitHub Actions workflow's, in CI), so no private key exists to
//! keep or leak; the consumer checks the signature against that identity instead of a public key.

use anyhow::{bail, Context, Result};

/// The issuer of GitHub Actions' OIDC tokens, which a consumer names when verifying.
pub(crate) const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";

/// Whether cosign can get an identity token without a person at a browser: GitHub Actions hands
/// one to a job with `permissions: id-token: write` (cosign asks for it through
/// `ACTIONS_ID_TOKEN_REQUEST_URL`), or one is given in `SIGSTORE_ID_TOKEN`.
pub(crate) fn token_available(env: impl Fn(&str) -> Option<String>) -> bool {
    ["ACTIONS_ID_TOKEN_REQUEST_URL", "SIGSTORE_ID_TOKEN"].iter().any(|v| env(v).is_some_and(|s| !s.is_empty()))
}

/// The refusal made before anything is built when keyless signing cannot work here.
pub(crate) fn check(key_flag: Option<&str>, token: bool) -> Result<()> {
    if key_flag.is_some() {
        bail!("--keyless signs without a key: drop --key, or drop --keyless to sign with the key");
    }
    if !token {
        bail!("--keyless needs an OIDC identity: run in GitHub Actions with `permissions: id-token: write`, or put a token in SIGSTORE_ID_TOKEN");
    }
    Ok(())
}

/// The certificate identity a workflow run signs with: the workflow file at the ref it ran for
/// (`https://github.com/OWNER/REPO/.github/workflows/ci.yml@refs/tags/v1.2.3`), from the variables
/// GitHub Actions sets; None outside it.
pub(crate) fn workflow_identity(env: impl Fn(&str) -> Option<String>) -> Option<String> {
    let server = env("GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".to_string());
    env("GITHUB_WORKFLOW_REF").filter(|r| !r.is_empty()).map(|r| format!("{server}/{r}"))
}

/// The command a consumer runs to check a keyless signature: the identity and its issuer must
/// both match, so a signature made by any other workflow or repository fails.
pub(crate) fn verify_line(image_by_digest: &str, identity: &str) -> String {
    format!(
        "cosign verify --certificate-identity '{identity}' --certificate-oidc-issuer {GITHUB_ISSUER} {image_by_digest}"
    )
}

/// The job summary's section on what was signed: each image by digest, and the commands that
/// check its signature and rebuild it.
pub(crate) fn summary(images: &[String], identity: &str) -> String {
    let mut md = String::from("## Signed images\n\n| image | digest |\n|---|---|\n");
    for image in images {
        let (repo, digest) = image.split_once('@').unwrap_or((image, ""));
        md.push_str(&format!("| `{repo}` | `{digest}` |\n"));
    }
    md.push_str("\nCheck a signature (keyless, by this workflow's identity), then rebuild and compare:\n\n```sh\n");
    for image in images {
        md.push_str(&verify_line(image, identity));
        md.push('\n');
        // The cosign line above checks the keyless signature; `verify` has no key to check it
        // with, so it is told that, and rebuilds and compares.
        md.push_str(&format!("cargo xtask verify {image} --accept-unchecked-signature\n"));
    }
    md.push_str("```\n");
    md
}

/// Says how to check what was just signed, and in GitHub Actions also appends it to the job
/// summary (the file `GITHUB_STEP_SUMMARY` names), where a release's consumers find it.
pub(crate) fn write_summary(images: &[String]) -> Result<()> {
    let env = |k: &str| std::env::var(k).ok();
    let Some(identity) = workflow_identity(env) else {
        eprintln!("xtask: signed keyless; check with `cosign verify --certificate-identity IDENTITY --certificate-oidc-issuer ISSUER IMAGE@DIGEST` for the token's identity");
        return Ok(());
    };
    for image in images {
        eprintln!("xtask: check with: {}", verify_line(image, &identity));
    }
    if let Some(path) = env("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .with_context(|| format!("opening the job summary {path}"))?;
        file.write_all(summary(images, &identity).as_bytes())
            .with_context(|| format!("writing the job summary {path}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn keyless_needs_a_token_and_no_key() {
        assert!(token_available(env_of(&[("ACTIONS_ID_TOKEN_REQUEST_URL", "https://t")])));
        assert!(token_available(env_of(&[("SIGSTORE_ID_TOKEN", "eyJ")])));
        assert!(!token_available(env_of(&[("SIGSTORE_ID_TOKEN", "")])));
        let e = check(None, false).unwrap_err().to_string();
        assert!(e.contains("id-token: write") && !e.contains('\n'), "{e}");
        let e = check(Some("/k"), true).unwrap_err().to_string();
        assert!(e.contains("drop --key"), "{e}");
        assert!(check(None, true).is_ok());
    }

    #[test]
    fn the_identity_is_the_workflow_at_its_ref() {
        let env = env_of(&[("GITHUB_WORKFLOW_REF", "acme/cc/.github/workflows/ci.yml@refs/tags/v1.2.3")]);
        let id = workflow_identity(env).unwrap();
        assert_eq!(id, "https://github.com/acme/cc/.github/workflows/ci.yml@refs/tags/v1.2.3");
        assert_eq!(workflow_identity(env_of(&[])), None);
        let image = "ghcr.io/acme/contextcleanse-backend@sha256:ab";
        assert_eq!(
            verify_line(image, &id),
            "cosign verify --certificate-identity 'https://github.com/acme/cc/.github/workflows/ci.yml@refs/tags/v1.2.3' \
             --certificate-oidc-issuer https://token.actions.githubusercontent.com ghcr.io/acme/contextcleanse-backend@sha256:ab"
        );
        let md = summary(&[image.to_string()], &id);
        assert!(md.contains("| `ghcr.io/acme/contextcleanse-backend` | `sha256:ab` |"), "{md}");
        assert!(
            md.contains(
                "cargo xtask verify ghcr.io/acme/contextcleanse-backend@sha256:ab --accept-unchecked-signature\n"
            ),
            "{md}"
        );
    }
}
