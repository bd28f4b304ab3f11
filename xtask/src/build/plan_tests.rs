//! Golden tests of the plan: the whole bake command line for every recipe, from recorded
//! `bake --print all` outputs of both buildx shapes (0.13.1's CSV strings, 0.29.1's objects), on
//! a builder that can do everything and on the docker driver with the classic image store.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::build::request::{Options, Recipe, Request};
use crate::build::syntax::FrontendSource;
use crate::images::bases::Choice;
use crate::images::standin::BASES;

/// `bake --print all` by buildx 0.29.1 with CA_BUNDLE set, without and with REGISTRY.
const ALL_0_29: &str = include_str!("../../testdata/bake-print-all-buildx-0.29.1.json");
const ALL_REGISTRY_0_29: &str = include_str!("../../testdata/bake-print-all-registry-buildx-0.29.1.json");
/// `bake --print all` by buildx 0.13.1, the floor, without CA_BUNDLE or REGISTRY.
const ALL_0_13: &str = include_str!("../../testdata/bake-print-all-buildx-0.13.1.json");

const REGISTRY: &str = "127.0.0.1:5000";

/// What buildx resolves for `names`: their targets, groups expanded, out of the whole graph.
fn resolved(all: &str, names: &[String]) -> Definition {
    let all = Definition::parse(all).unwrap();
    let mut todo: Vec<String> = names.to_vec();
    let (mut seen, mut targets) = (BTreeSet::new(), BTreeMap::new());
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        // buildx records what was asked (`all`) as the `default` group too: not an edge of the file.
        if name == "all" && seen.len() > 1 {
            continue;
        }
        match (all.group.get(&name), all.target.get(&name)) {
            (Some(g), _) => todo.extend(g.targets.iter().cloned()),
            (None, Some(t)) => drop(targets.insert(name, t.clone())),
            (None, None) => panic!("no {name} in the recorded graph"),
        }
    }
    Definition { group: BTreeMap::new(), target: targets }
}

/// The official base images as the bake file names them.
fn officials() -> Vec<String> {
    crate::images::bake::Defaults::read(&crate::util::paths::project_root()).unwrap().base_images().unwrap()
}

/// The source URL the bake file states.
fn source_url_default() -> String {
    crate::images::bake::Defaults::read(&crate::util::paths::project_root()).unwrap().require("SOURCE_URL").unwrap()
}

fn current() -> Facts {
    Facts {
        driver: "docker".to_string(),
        containerd_store: true,
        buildx_version: Some(semver::Version::new(0, 29, 1)),
        buildkit_version: Some(semver::Version::new(0, 25, 2)),
        platforms: vec!["linux/amd64".to_string(), "linux/arm64".to_string()],
        ..Facts::default()
    }
}

fn classic() -> Facts {
    Facts {
        containerd_store: false,
        buildx_version: Some(semver::Version::new(0, 13, 1)),
        buildkit_version: Some(semver::Version::new(0, 13, 2)),
        platforms: vec!["linux/amd64".to_string()],
        ..current()
    }
}

fn inputs(all: &str, names: &[String], facts: Facts) -> Inputs {
    Inputs {
        root: "/src/cc".into(),
        xtask_dir: "/src/cc/target/xtask".into(),
        metadata_file: "/src/cc/target/xtask/metadata-1.json".into(),
        metadata: Metadata {
            version: semver::Version::new(1, 2, 3),
            version_source: "--release-version".to_string(),
            git_commit: "0123abc".to_string(),
            build_date: "2026-01-01T00:00:00Z".to_string(),
        },
        ca_bundle: Some("/etc/ssl/certs/ca-certificates.crt".to_string()),
        build_args: vec![("BUILDKIT_INLINE_CACHE".to_string(), "0".to_string())],
        progress: None,
        engine: Engine::default(),
        facts: Ok(facts),
        bases: Choice {
            vars: BASES.iter().zip(officials()).map(|(b, o)| (b.var.to_string(), o)).collect(),
            ..Choice::default()
        },
        frontend: FrontendSource::Registry,
        definition: resolved(all, names),
        dockerfiles: BTreeMap::new(),
        platforms: crate::build::inputs::platforms_of(&Definition::parse(all).unwrap()),
        cache_export: crate::cache::policy::decide(false, false, false),
        cache_note: None,
        origin: Some("https://github.com/contextcleanse/contextcleanse.git".to_string()),
        inline_cache: false,
        source_url: source_url_default(),
        sbom_generator: crate::images::sbom::generator::reference(&crate::util::paths::project_root()).unwrap(),
        vars: Vec::new(),
    }
}

/// The plan of one recipe; `registry` as if given by `--registry` or REGISTRY.
fn plan_of(recipe: Recipe, names: &[&str], opts: Options, registry: Option<&str>, facts: Facts) -> Result<Plan> {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let names = if names.is_empty() { vec![crate::build::request::default_group(recipe).to_string()] } else { names };
    let all = match (registry, facts.containerd_store) {
        (_, false) => ALL_0_13,
        (Some(_), true) => ALL_REGISTRY_0_29,
        (None, true) => ALL_0_29,
    };
    let mut inputs = inputs(all, &names, facts);
    // As `Inputs::gather` decides it, with CI unset.
    inputs.cache_export = crate::cache::policy::decide(opts.cache_export, false, registry.is_some());
    inputs.vars = crate::build::inputs::bake_vars(&inputs.metadata, "11.5.2", registry, inputs.ca_bundle.as_deref());
    inputs.vars.extend(crate::cache::policy::bake_var(inputs.cache_export));
    let request = Request { names: names.clone(), opts, registry: registry.map(str::to_string), version: None };
    plan(&request, &inputs)
}

fn line(recipe: Recipe, names: &[&str], opts: Options, registry: Option<&str>, facts: Facts) -> String {
    plan_of(recipe, names, opts, registry, facts).unwrap().bake().command_line()
}

const HEAD: &str =
    "docker buildx bake --file docker-bake.hcl --progress rawjson --metadata-file /src/cc/target/xtask/metadata-1.json";
const CA: &str = "--allow=fs.read=/etc/ssl/certs/ca-certificates.crt --set '*.args.BUILDKIT_INLINE_CACHE=0'";
/// The commit time (BUILD_DATE 2026-01-01) as the build argument every step sees.
const EPOCH: &str = "--set '*.args.SOURCE_DATE_EPOCH=1767225600'";

/// Each target's output with the exporter's attributes (`--load` and `--push` cannot carry them).
fn out(kind: &str, attrs: &str, targets: &[&str]) -> String {
    let attrs = format!("oci-mediatypes=true,source-date-epoch=1767225600{attrs}");
    targets.iter().map(|t| format!("--set {t}.output=type={kind},{attrs}")).collect::<Vec<_>>().join(" ")
}

fn load(targets: &[&str]) -> String {
    out("docker", "", targets)
}

fn pushed(targets: &[&str]) -> String {
    out("registry", PUSH_ATTRS, targets)
}

/// What `--push` and `--oci` add: file times rewritten to the epoch; a pushed image is not kept
/// in the engine's store (BuildKit cannot unpack and rewrite at once).
const PUSH_ATTRS: &str = ",rewrite-timestamp=true,store=false";
const OCI_ATTRS: &str = "oci-mediatypes=true,source-date-epoch=1767225600,rewrite-timestamp=true";

/// The SBOM attestation the plan adds to each target the bake file attests.
fn sbom(targets: &[&str]) -> String {
    targets
        .iter()
        .map(|t| {
            let image = format!("contextcleanse-{}", t.split('-').next().unwrap());
            format!("--set {t}.attest=type=sbom,generator=localhost/contextcleanse-sbom:dev,image={image},build_date=2026-01-01T00:00:00Z")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn push() -> Options {
    Options { push: true, ..Options::default() }
}

#[test]
fn local_recipes_load_into_the_engine_and_grant_the_ca_bundle() {
    let local = |names: &[&str]| line(Recipe::Local, names, Options::default(), None, current());
    let both = load(&["backend", "frontend"]);
    assert_eq!(local(&[]), format!("{HEAD} {CA} {EPOCH} {both} -- default"));
    assert_eq!(local(&["backend"]), format!("{HEAD} {CA} {EPOCH} {} -- backend", load(&["backend"])));
    assert_eq!(local(&["frontend"]), format!("{HEAD} {CA} {EPOCH} {} -- frontend", load(&["frontend"])));
    let dev = load(&["backend", "frontend-development"]);
    assert_eq!(local(&["development"]), format!("{HEAD} {CA} {EPOCH} {dev} -- development"));
    let with_registry = line(Recipe::Local, &[], Options::default(), Some(REGISTRY), current());
    assert_eq!(with_registry, format!("{HEAD} {CA} {EPOCH} {both} -- default"));
}

#[test]
fn production_loads_or_pushes_its_group_with_an_sbom_of_each_image() {
    let both = ["backend-production", "frontend-production"];
    assert_eq!(
        line(Recipe::Production, &[], Options::default(), None, current()),
        format!("{HEAD} {CA} {EPOCH} {} {} -- production", load(&both), sbom(&both))
    );
    let p = plan_of(Recipe::Production, &[], push(), Some(REGISTRY), current()).unwrap();
    assert_eq!(p.bake().command_line(), format!("{HEAD} {CA} {EPOCH} {} {} -- production", pushed(&both), sbom(&both)));
    assert_eq!(p.sbom_generator.as_deref(), Some("localhost/contextcleanse-sbom:dev"), "provision builds it first");
    assert!(p.notes.iter().any(|n| n.starts_with("SBOM attestation made by localhost/contextcleanse-sbom:dev")));
    let check = plan_of(Recipe::Production, &[], Options { check: true, ..Options::default() }, None, current());
    let check = check.unwrap();
    assert!(check.sbom_generator.is_none() && !check.bake().command_line().contains("type=sbom"));
    let local = plan_of(Recipe::Local, &[], Options::default(), None, current()).unwrap();
    assert!(local.sbom_generator.is_none(), "only the targets the bake file attests get an SBOM");
}

#[test]
fn multiplatform_loads_pushes_or_writes_an_archive_per_target() {
    let both = ["backend-multiplatform", "frontend-multiplatform"];
    assert_eq!(
        line(Recipe::Multiplatform, &[], Options::default(), None, current()),
        format!("{HEAD} {CA} {EPOCH} {} {} -- multiplatform", load(&both), sbom(&both))
    );
    assert_eq!(
        line(Recipe::Multiplatform, &[], push(), Some(REGISTRY), current()),
        format!("{HEAD} {CA} {EPOCH} {} {} -- multiplatform", pushed(&both), sbom(&both))
    );
    let oci = Options { oci: true, ..Options::default() };
    let dest = |t: &str| format!("--set {t}.output=type=oci,dest=/src/cc/target/xtask/oci/{t}.tar,{OCI_ATTRS}");
    assert_eq!(
        line(Recipe::Multiplatform, &[], oci, None, current()),
        format!(
            "{HEAD} {CA} {EPOCH} {} {} {} -- multiplatform",
            dest("backend-multiplatform"),
            dest("frontend-multiplatform"),
            sbom(&both)
        )
    );
}

#[test]
fn bake_flags_and_sets_keep_their_order() {
    let opts = Options {
        no_cache: true,
        pull: true,
        builder: Some("b1".to_string()),
        set: vec!["backend.args.X=1".to_string()],
        check: true,
        ..Options::default()
    };
    assert_eq!(
        line(Recipe::Local, &[], opts, None, current()),
        format!("{HEAD} --builder b1 --no-cache --pull --call check {CA} --set backend.args.X=1 -- default")
    );
}

#[test]
fn classic_store_leaves_out_cache_export_and_attestations_and_refuses_several_platforms() {
    let p = plan_of(Recipe::Local, &[], Options::default(), None, classic()).unwrap();
    let drop_cache = "--set backend.cache-to= --set frontend.cache-to=";
    assert_eq!(
        p.bake().command_line(),
        format!("{HEAD} --load --set '*.args.BUILDKIT_INLINE_CACHE=0' {drop_cache} -- default")
    );
    assert!(p.local_caches.is_empty(), "nothing exported, nothing to clean");
    assert!(p.notes.iter().any(|n| n.starts_with("cache export left out")), "{:?}", p.notes);
    assert!(p.notes.iter().any(|n| n.starts_with("same image on a rebuild lost")), "{:?}", p.notes);
    let p = plan_of(Recipe::Production, &[], Options::default(), None, classic()).unwrap();
    assert_eq!(
        p.bake().command_line(),
        format!(
            "{HEAD} --load --set '*.args.BUILDKIT_INLINE_CACHE=0' --set backend-production.cache-to= \
             --set frontend-production.cache-to= --set backend-production.attest=type=provenance,disabled=true \
             --set frontend-production.attest=type=provenance,disabled=true -- production"
        )
    );
    assert!(p.sbom_generator.is_none(), "no SBOM where no attestation can be attached: no generator is built");
    let left_out = "provenance attestation left out, and the SBOM with it";
    assert!(p.notes.iter().any(|n| n.starts_with(left_out)), "{:?}", p.notes);
    let err = plan_of(Recipe::Multiplatform, &[], Options::default(), None, classic()).unwrap_err().to_string();
    assert!(err.starts_with("multiplatform needs a builder"), "{err}");
}

#[test]
fn local_caches_are_cleaned_only_where_the_build_exports_to_them() {
    let p = plan_of(Recipe::Local, &[], Options::default(), None, current()).unwrap();
    assert!(p.local_caches.is_empty(), "a local build exports no cache (see cachepolicy)");
    let export = Options { cache_export: true, ..Options::default() };
    let p = plan_of(Recipe::Local, &[], export, None, current()).unwrap();
    assert_eq!(
        p.local_caches,
        [PathBuf::from("/src/cc/target/buildx-cache/backend"), "/src/cc/target/buildx-cache/frontend".into()]
    );
    let p = plan_of(Recipe::Local, &[], Options::default(), Some(REGISTRY), current()).unwrap();
    assert!(p.local_caches.is_empty(), "a registry cache is the registry's to keep");
}

#[test]
fn environment_carries_metadata_pins_registry_and_bases() {
    let p = plan_of(Recipe::Production, &[], push(), Some(REGISTRY), current()).unwrap();
    let vars: Vec<String> = p.vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(
        vars,
        [
            "VERSION=1.2.3",
            "VERSION_TAGS=1.2.3,1.2,1,latest",
            "GIT_COMMIT=0123abc",
            "BUILD_DATE=2026-01-01T00:00:00Z",
            "NPM_VERSION=11.5.2",
            "REGISTRY=127.0.0.1:5000",
            "CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt",
            // A registry is set: its cache is exported for other engines (see cachepolicy).
            "CACHE_EXPORT=1",
            &format!("PYTHON_IMAGE={}", officials()[0]),
            &format!("NODE_IMAGE={}", officials()[1]),
            // Always said, the bake file's default included: provenance records it.
            &format!("SOURCE_URL={}", source_url_default()),
            // No attestation unless the bake file asks (production does), and git information
            // only because `origin` is the public URL.
            "BUILDX_NO_DEFAULT_ATTESTATIONS=1",
            "BUILDX_GIT_INFO=1",
        ]
    );
    assert_eq!(p.bake().unset, ["SOURCE_DATE_EPOCH"]);
}

#[test]
fn release_tags_reach_bake_only_where_a_target_is_tagged_from_them() {
    let has_tags = |p: &Plan| p.vars.iter().any(|(k, _)| k == "VERSION_TAGS");
    let dev = plan_of(Recipe::Local, &[], Options::default(), None, current()).unwrap();
    assert!(!has_tags(&dev), "a dev build tags :dev only: {:?}", dev.vars);
    assert!(has_tags(&plan_of(Recipe::Production, &[], Options::default(), None, current()).unwrap()));
    // The production group built by `build production` is tagged from them too.
    assert!(has_tags(&plan_of(Recipe::Local, &["production"], Options::default(), None, current()).unwrap()));
}

#[test]
fn a_dry_run_without_engine_or_stand_ins_notes_what_it_cannot_know() {
    let names = vec!["default".to_string()];
    let mut i = inputs(ALL_0_29, &names, current());
    i.facts = Err("no Docker engine answers".to_string());
    i.bases.missing = vec![officials()[0].clone()];
    let request = |dry_run| Request {
        names: names.clone(),
        opts: Options { dry_run, ..Options::default() },
        registry: None,
        version: None,
    };
    let p = plan(&request(true), &i).unwrap();
    assert!(p.notes.iter().any(|n| n.starts_with("base images: base images python")), "{:?}", p.notes);
    assert!(!p.vars.iter().any(|(k, _)| k == "PYTHON_IMAGE"));
    let err = plan(&request(false), &i).unwrap_err().to_string();
    assert!(err.starts_with("asking the engine and buildx for their versions"), "{err}");
}

#[test]
fn an_unreachable_frontend_builds_from_copies_without_the_syntax_line() {
    let names = vec!["backend".to_string()];
    let mut i = inputs(ALL_0_29, &names, classic());
    i.frontend = FrontendSource::Unreachable;
    i.dockerfiles.insert("backend/Dockerfile".into(), "# syntax=docker/dockerfile:1.7\nFROM x\n".to_string());
    let request = Request { names, opts: Options::default(), registry: None, version: None };
    let p = plan(&request, &i).unwrap();
    let copy = PathBuf::from("/src/cc/target/xtask/dockerfiles/backend/Dockerfile");
    assert_eq!(p.files, [(copy.clone(), "\nFROM x\n".to_string())]);
    assert!(p.sets.contains(&format!("backend.dockerfile={}", copy.display())), "{:?}", p.sets);
}
#[test]
fn set_for_a_target_outside_the_build_is_refused_with_the_valid_ones() {
    let targets = vec!["backend".to_string(), "frontend".to_string()];
    let err = check_set_targets(&["nosuchtarget.args.X=1".to_string()], &targets).unwrap_err().to_string();
    assert_eq!(err, "--set `nosuchtarget.args.X=1`: `nosuchtarget` is not a target of this build; its targets are backend, frontend");
    assert!(check_set_targets(&["*.args.X=1".to_string(), "backend.args.Y=2".to_string()], &targets).is_ok());
}

#[test]
fn floors_refuse_old_tools_with_a_fix() {
    let mut f = Facts { buildx_version: Some(semver::Version::new(0, 12, 1)), ..Facts::default() };
    assert!(check_floors(&f).unwrap_err().to_string().contains("upgrade the docker-buildx plug-in"));
    f.buildx_version = Some(semver::Version::new(0, 13, 1));
    f.buildkit_version = Some(semver::Version::new(0, 12, 5));
    assert!(check_floors(&f).unwrap_err().to_string().contains("BuildKit 0.12.5 is below"));
    f.buildkit_version = Some(semver::Version::new(0, 13, 0));
    assert!(check_floors(&f).is_ok());
}

#[test]
fn platforms_in_a_set_must_be_ones_the_bake_file_builds_for() {
    let set = |s: &str| Options { set: vec![s.to_string()], ..Options::default() };
    let err = plan_of(Recipe::Local, &[], set("*.platform=linux/amd64,linux/s390x"), None, current()).unwrap_err();
    assert_eq!(err.to_string(), "unknown platform `linux/s390x`: this project builds for linux/amd64 and linux/arm64");
    assert!(plan_of(Recipe::Local, &[], set("*.platform=linux/arm64"), None, current()).is_ok());
}

#[test]
fn a_path_outside_that_the_xtask_does_not_name_is_refused_unless_granted_and_the_grant_is_shown() {
    let names = vec!["default".to_string()];
    // The recorded definition mounts /etc/ssl/certs/ca-certificates.crt; here no CA bundle setting names it.
    let mut bare = inputs(ALL_0_29, &names, current());
    bare.ca_bundle = None;
    let request = |allow: &[&str]| Request {
        names: names.clone(),
        opts: Options { allow: allow.iter().map(|a| a.to_string()).collect(), ..Options::default() },
        registry: None,
        version: None,
    };
    let e = plan(&request(&[]), &bare).unwrap_err().to_string();
    assert_eq!(
        e,
        "`backend` reads /etc/ssl/certs/ca-certificates.crt outside the checkout: pass `--allow fs.read=/etc/ssl/certs/ca-certificates.crt` to grant it"
    );
    let granted = plan(&request(&["fs.read=/etc/ssl/certs"]), &bare).unwrap().bake().command_line();
    assert!(granted.contains(" --allow=fs.read=/etc/ssl/certs --set"), "print shows the grant as given: {granted}");
    assert!(!granted.contains("ca-certificates.crt"), "{granted}");
}

#[test]
fn the_release_is_one_push_per_image_of_both_platforms_with_provenance_and_sbom() {
    // What the release job runs: `multiplatform --push --sign --keyless` (signing follows the build).
    let opts = Options { sign: true, keyless: true, ..push() };
    let p = plan_of(Recipe::Multiplatform, &[], opts, Some(REGISTRY), current()).unwrap();
    let line = p.bake().command_line();
    assert!(line.ends_with(" multiplatform"), "one bake run of the group: {line}");
    for t in ["backend-multiplatform", "frontend-multiplatform"] {
        assert_eq!(line.matches(&format!("--set {t}.output=type=registry,")).count(), 1, "one push of {t}: {line}");
        assert!(line.contains(&format!("--set {t}.attest=type=sbom,")), "{t} gets an SBOM: {line}");
        let target = &p.definition.target[t];
        assert_eq!(target.platforms, ["linux/amd64", "linux/arm64"], "{t}: one index of both platforms");
        let provenance = target.attest.iter().any(|a| a.get("type").is_some_and(|v| v == "provenance"));
        assert!(provenance, "{t} carries a provenance: {:?}", target.attest);
    }
    let tags = p.vars.iter().find(|(k, _)| k == "VERSION_TAGS").map(|(_, v)| v.as_str());
    assert_eq!(tags, Some("1.2.3,1.2,1,latest"), "each image is tagged once with every release tag");
}
