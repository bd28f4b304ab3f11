//! Same inputs, same image: the exporter settings, buildx environment and notes that make a build
//! of one commit give one image, and the properties an engine cannot give, each with its reason.
//! A pure function of the build date, the output, the builder's capabilities and the settings.
//!
//! The commit time reaches BuildKit twice. As the `SOURCE_DATE_EPOCH` build argument, the
//! Dockerfile frontend dates the config and every history entry with it (the exporter's own
//! `source-date-epoch` only clamps later times down, so steps cached before the commit kept their
//! older dates: measured with BuildKit 0.25). That argument also dates each `WORKDIR` step, so the
//! steps after one re-run for each new commit: both Dockerfiles put WORKDIR after their expensive
//! steps. As the exporter's `source-date-epoch` with `rewrite-timestamp`, it clamps the file
//! times inside the layers. buildx would forward SOURCE_DATE_EPOCH from its environment too; the
//! plan passes it explicitly and keeps the environment's out.

use anyhow::{bail, Result};

use crate::engine::{Capabilities, Facts};
use crate::images::meta::Metadata;

/// Where the images go, as far as reproducibility is concerned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Exporter {
    /// Loaded into the engine: the engine unpacks the image, and BuildKit refuses
    /// `rewrite-timestamp` together with unpacking, so files keep the times they were made.
    Load,
    /// Pushed, and not kept in the engine's store (which would unpack it).
    Push,
    Oci,
    /// No image (`--call check`).
    #[default]
    None,
}

impl Exporter {
    /// From the building flags: `--call check`, `--push`, `--oci`, else a load.
    pub(crate) fn of(check: bool, push: bool, oci: bool) -> Exporter {
        match (check, push, oci) {
            (true, _, _) => Exporter::None,
            (_, true, _) => Exporter::Push,
            (_, _, true) => Exporter::Oci,
            _ => Exporter::Load,
        }
    }
}

pub(crate) struct Asked<'a> {
    /// The commit time, RFC 3339 (the metadata's BUILD_DATE).
    pub(crate) build_date: &'a str,
    /// False when the checkout has no git: then the date is the wall clock's.
    pub(crate) from_commit: bool,
    pub(crate) exporter: Exporter,
    pub(crate) caps: &'a Capabilities,
    /// BUILDKIT_INLINE_CACHE is on.
    pub(crate) inline_cache: bool,
    /// SOURCE_URL from the settings: None leaves the bake file's default.
    pub(crate) source_url: Option<&'a str>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Repro {
    pub(crate) exporter: Exporter,
    /// `--set` overrides (the SOURCE_DATE_EPOCH build argument).
    pub(crate) sets: Vec<String>,
    /// Appended to each target's output (`,source-date-epoch=N,rewrite-timestamp=true`).
    pub(crate) attrs: String,
    /// For the bake command's environment.
    pub(crate) env: Vec<(String, String)>,
    /// Bake variables.
    pub(crate) vars: Vec<(String, String)>,
    pub(crate) notes: Vec<String>,
}

/// The buildx environment every build gets. Provenance is asked for by the bake file's
/// `production` targets only, so a local build carries no attestation (buildx would add one by
/// default, dated and with a fresh invocation id, making every build a new image).
pub(crate) const BUILDX_ENV: [(&str, &str); 1] = [("BUILDX_NO_DEFAULT_ATTESTATIONS", "1")];

/// Whether buildx may record git information in the provenance. buildx records the checkout's
/// `origin` remote as the source, which is a folder or an internal host of the builder's machine
/// unless it is the public URL; buildx runs git with an environment of its own, so the remote
/// cannot be rewritten for it. So: on when the remote is SOURCE_URL (or there is no remote: then
/// only the revision is recorded), off otherwise; the source label always carries SOURCE_URL.
pub(crate) fn git_info(source_url: Option<&str>, origin: Option<&str>) -> (String, String) {
    let plain = |u: &str| u.trim_end_matches('/').trim_end_matches(".git").to_string();
    let on = match origin.filter(|o| !o.is_empty()) {
        None => true,
        Some(o) => source_url.filter(|u| !u.is_empty()).is_some_and(|u| plain(u) == plain(o)),
    };
    ("BUILDX_GIT_INFO".to_string(), if on { "1" } else { "0" }.to_string())
}

/// Gathers the plan's inputs: the build date, the builder's capabilities (all of them in a dry
/// run without an engine) and the settings (SOURCE_URL set but empty records no source).
pub(crate) fn for_plan(
    exporter: Exporter,
    meta: &Metadata,
    facts: Option<&Facts>,
    inline_cache: bool,
    source_url: &str,
    origin: Option<&str>,
) -> Result<Repro> {
    let full =
        Capabilities { source_epoch: true, rewrite_timestamp: true, push_unstored: true, ..Capabilities::default() };
    let caps = facts.map(Facts::capabilities).unwrap_or(full);
    let mut r = plan(&Asked {
        build_date: &meta.build_date,
        from_commit: meta.git_commit != "unknown",
        exporter,
        caps: &caps,
        inline_cache,
        source_url: Some(source_url),
    })?;
    r.env.push(git_info(Some(source_url), origin));
    Ok(r)
}

pub(crate) fn plan(asked: &Asked) -> Result<Repro> {
    let mut r = Repro {
        exporter: asked.exporter,
        env: BUILDX_ENV.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Repro::default()
    };
    if let Some(url) = asked.source_url {
        check_source_url(url)?;
        r.vars.push(("SOURCE_URL".to_string(), url.to_string()));
    }
    if asked.exporter == Exporter::None {
        return Ok(r);
    }
    let epoch = chrono::DateTime::parse_from_rfc3339(asked.build_date).map(|d| d.timestamp()).ok();
    if asked.caps.source_epoch {
        // One media type for every output, so that a loaded, a pushed and an OCI image of the same
        // build have the same manifest digest (attestations make BuildKit use OCI's anyway).
        r.attrs.push_str(",oci-mediatypes=true");
        if let Some(epoch) = epoch.filter(|_| asked.from_commit) {
            r.attrs.push_str(&format!(",source-date-epoch={epoch}"));
            r.sets.push(format!("*.args.SOURCE_DATE_EPOCH={epoch}"));
        }
        let push = asked.exporter == Exporter::Push;
        if asked.caps.rewrite_timestamp && (asked.exporter == Exporter::Oci || push && asked.caps.push_unstored) {
            r.attrs.push_str(",rewrite-timestamp=true");
        }
        if push && asked.caps.rewrite_timestamp && asked.caps.push_unstored {
            // The docker driver would also keep a pushed image in the engine's store, unpacked,
            // and BuildKit refuses rewrite-timestamp with unpacking: push only.
            r.attrs.push_str(",store=false");
        } else if push && asked.caps.rewrite_timestamp {
            r.notes.push("same digest from two cold pushes lost: this buildx pushes through the engine's store, which rewrite-timestamp cannot be combined with (buildx 0.29 pushes without it)".to_string());
        }
    }
    r.notes.extend(lost(asked.caps, asked.inline_cache, asked.from_commit, asked.exporter != Exporter::Load));
    Ok(r)
}

/// The properties this engine and these settings lose, one line each with the reason; `doctor`
/// shows them too. `cold` asks about two cold builds as well (pushed and OCI images).
pub(crate) fn lost(caps: &Capabilities, inline_cache: bool, from_commit: bool, cold: bool) -> Vec<String> {
    let mut out = Vec::new();
    if !from_commit {
        out.push("same image on a rebuild lost: no git here, so the build date is the wall clock's".to_string());
    }
    if !caps.source_epoch {
        out.push("same image on a rebuild lost: this image store's exporter takes no source-date-epoch, so each image is dated when it is built (use the containerd image store)".to_string());
    } else if cold && !caps.rewrite_timestamp {
        out.push("same digest from two cold builds lost: this BuildKit cannot rewrite file times in layers (rewrite-timestamp needs BuildKit 0.13+)".to_string());
    }
    if inline_cache && cold {
        out.push("same digest from two cold builds lost: BUILDKIT_INLINE_CACHE=1 writes when each layer was made into the image config (set it to 0; `--cache-export` keeps a fuller cache)".to_string());
    }
    out
}

/// The one line on images loaded into the engine, for `doctor` and `print`.
pub(crate) const LOAD_NOTE: &str = "images loaded into the engine keep the file times of the build that made them (the engine unpacks them, which BuildKit's rewrite-timestamp cannot be combined with): a warm rebuild keeps their ids, but only pushed and OCI images have the same digest from two cold builds";

/// The output of each target when the exporter gets attributes: `--load` and `--push` cannot
/// carry them.
pub(crate) fn output_sets(exporter: Exporter, targets: &[String], attrs: &str) -> Option<Vec<String>> {
    let kind = match exporter {
        _ if attrs.is_empty() => return None,
        Exporter::Load => "type=docker",
        Exporter::Push => "type=registry",
        Exporter::Oci | Exporter::None => return None,
    };
    Some(targets.iter().map(|t| format!("{t}.output={kind}{attrs}")).collect())
}

/// The source an image and its provenance record: a public https URL, or nothing.
pub(crate) fn check_source_url(url: &str) -> Result<()> {
    let host = url.strip_prefix("https://").map(|rest| rest.split(['/', ':']).next().unwrap_or_default());
    match host {
        _ if url.is_empty() => Ok(()),
        Some(h) if !h.is_empty() && h.contains('.') && !h.starts_with("127.") && h != "localhost" => Ok(()),
        _ => bail!("SOURCE_URL `{url}`: use the repository's public https URL (e.g. https://github.com/OWNER/REPO), or leave it empty to record no source"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(source_epoch: bool, rewrite_timestamp: bool) -> Capabilities {
        Capabilities { source_epoch, rewrite_timestamp, push_unstored: rewrite_timestamp, ..Capabilities::default() }
    }

    fn asked<'a>(exporter: Exporter, caps: &'a Capabilities) -> Asked<'a> {
        Asked {
            build_date: "2026-11-28T06:38:41Z",
            from_commit: true,
            exporter,
            caps,
            inline_cache: false,
            source_url: None,
        }
    }

    #[test]
    fn the_commit_time_goes_to_the_exporter_and_rewrites_files_where_nothing_unpacks() {
        let full = caps(true, true);
        let load = plan(&asked(Exporter::Load, &full)).unwrap();
        assert_eq!(load.attrs, ",oci-mediatypes=true,source-date-epoch=1795847921");
        assert_eq!(load.sets, ["*.args.SOURCE_DATE_EPOCH=1795847921"]);
        assert!(load.notes.is_empty(), "{:?}", load.notes);
        let push = plan(&asked(Exporter::Push, &full)).unwrap();
        assert_eq!(push.attrs, ",oci-mediatypes=true,source-date-epoch=1795847921,rewrite-timestamp=true,store=false");
        assert_eq!(
            output_sets(Exporter::Push, &["backend".to_string()], &push.attrs).unwrap(),
            ["backend.output=type=registry,oci-mediatypes=true,source-date-epoch=1795847921,rewrite-timestamp=true,store=false"]
        );
        assert_eq!(output_sets(Exporter::Load, &["b".to_string()], ""), None);
        assert!(load.env.contains(&("BUILDX_NO_DEFAULT_ATTESTATIONS".to_string(), "1".to_string())));
        assert!(plan(&asked(Exporter::None, &full)).unwrap().attrs.is_empty());
    }

    #[test]
    fn an_older_buildx_pushes_through_the_store_so_its_pushes_keep_their_file_times() {
        let floor = Capabilities { push_unstored: false, ..caps(true, true) };
        let push = plan(&asked(Exporter::Push, &floor)).unwrap();
        assert_eq!(push.attrs, ",oci-mediatypes=true,source-date-epoch=1795847921");
        assert!(push.notes[0].starts_with("same digest from two cold pushes lost"), "{:?}", push.notes);
        let oci = plan(&asked(Exporter::Oci, &floor)).unwrap();
        assert!(oci.attrs.ends_with(",rewrite-timestamp=true"), "{}", oci.attrs);
    }

    #[test]
    fn each_lost_property_is_named_with_its_reason() {
        let classic = caps(false, false);
        let r = plan(&asked(Exporter::Load, &classic)).unwrap();
        assert!(r.attrs.is_empty());
        assert_eq!(r.notes.len(), 1);
        assert!(r.notes[0].starts_with("same image on a rebuild lost: this image store"), "{:?}", r.notes);
        let old = caps(true, false);
        let r = plan(&Asked { inline_cache: true, ..asked(Exporter::Oci, &old) }).unwrap();
        assert_eq!(r.attrs, ",oci-mediatypes=true,source-date-epoch=1795847921");
        assert!(r.notes[0].contains("rewrite-timestamp needs BuildKit 0.13+"), "{:?}", r.notes);
        assert!(r.notes[1].contains("BUILDKIT_INLINE_CACHE=1"), "{:?}", r.notes);
        let r = plan(&Asked { from_commit: false, ..asked(Exporter::Load, &caps(true, true)) }).unwrap();
        assert!(r.notes[0].contains("no git here"));
    }

    #[test]
    fn git_information_only_when_the_remote_is_the_public_url() {
        let url = Some("https://github.com/o/r");
        assert_eq!(git_info(url, Some("/work/main")).1, "0");
        assert_eq!(git_info(url, Some("git@intranet:o/r.git")).1, "0");
        assert_eq!(git_info(url, Some("https://github.com/o/r.git")).1, "1");
        assert_eq!(git_info(url, None).1, "1");
        assert_eq!(git_info(Some(""), Some("https://github.com/o/r")).1, "0");
    }

    #[test]
    fn the_source_is_a_public_url_or_nothing() {
        assert!(check_source_url("https://github.com/contextcleanse/contextcleanse").is_ok());
        assert!(check_source_url("").is_ok());
        for bad in [
            "/work/main",
            "file:///work/main",
            "git@host:repo",
            "https://localhost/x",
            "https://127.0.0.1:3000/r",
            "https://intranet/r",
        ] {
            let err = check_source_url(bad).unwrap_err().to_string();
            assert!(err.starts_with(&format!("SOURCE_URL `{bad}`: use the repository's public https URL")), "{err}");
        }
        let full = caps(true, true);
        let r = plan(&Asked { source_url: Some(""), ..asked(Exporter::Load, &full) }).unwrap();
        assert_eq!(r.vars, [("SOURCE_URL".to_string(), String::new())]);
    }
}
