//! The causes on constructed builds: each kind of change, found where it is and named once.

use std::collections::BTreeMap;

use super::*;
use crate::report::model::Step;

const DOCKERFILE: &str = "\
ARG BASE=py:3
FROM ${BASE} AS deps
COPY requirements.txt .
RUN pip install -r requirements.txt

FROM ${BASE} AS source
RUN --mount=type=bind,source=app,target=/ctx/app \\
    cp -R /ctx/app /src

FROM deps AS app
ARG VERSION
RUN echo setup
COPY --from=source /src /app
LABEL version=$VERSION
";

fn step(name: &str, cached: bool) -> Step {
    Step { name: name.into(), cached, ..Default::default() }
}

const FROM: &str = "[t deps 1/3] FROM py:3@sha256:aa";
const REQS: &str = "[t deps 2/3] COPY requirements.txt .";
const PIP: &str = "[t deps 3/3] RUN pip install -r requirements.txt";
const SRC: &str = "[t source 2/2] RUN --mount=type=bind,source=app,target=/ctx/app     cp -R /ctx/app /src";
const SETUP: &str = "[t app 1/2] RUN echo setup";
const COPY: &str = "[t app 2/2] COPY --from=source /src /app";

/// The build's steps, with those named in `ran` not from cache.
fn steps(ran: &[&str]) -> Vec<Step> {
    [FROM, REQS, PIP, SRC, SETUP, COPY].iter().map(|n| step(n, !ran.contains(n))).collect()
}

fn inputs(files: &[(&str, &str)]) -> TargetInputs {
    TargetInputs {
        files: Some(files.iter().map(|(p, h)| (p.to_string(), h.to_string())).collect()),
        args: BTreeMap::from([("BASE".into(), "py:3".into()), ("VERSION".into(), "1.0".into())]),
        dockerfile: DOCKERFILE.into(),
        bases: BTreeMap::from([("py:3".into(), "py:3@sha256:aa".into())]),
        no_cache: false,
        platforms: Vec::new(),
    }
}

const FILES: &[(&str, &str)] =
    &[("requirements.txt", "1"), ("app/main.py", "2"), ("app/util.py", "3"), ("README.md", "4")];

fn kinds(causes: &[StepCause]) -> Vec<(&str, &Cause)> {
    causes.iter().map(|c| (c.step.as_str(), &c.cause)).collect()
}

#[test]
fn a_changed_source_file_is_named_and_the_step_after_it_points_back_to_it() {
    let old = inputs(FILES);
    let mut new = inputs(FILES);
    new.files.as_mut().unwrap().insert("app/main.py".into(), "9".into());
    let causes = explain(Previous::Found(&old), &new, &steps(&[SRC, COPY]));
    let changed = Cause::Files { paths: vec!["app/main.py".into()], count: 1 };
    assert_eq!(causes[0].cause, changed);
    assert_eq!(causes[0].text, "context file changed: app/main.py");
    let Cause::Upstream { step, cause } = &causes[1].cause else { panic!("{causes:?}") };
    assert!(step.starts_with("[t source 2/2] RUN"), "{step}");
    assert_eq!(**cause, changed);
    assert_eq!(top_cause(&causes).unwrap(), "2 steps ran: context file changed: app/main.py");
}

#[test]
fn a_dependency_manifest_change_is_named_down_the_whole_chain() {
    let old = inputs(FILES);
    let mut new = inputs(FILES);
    new.files.as_mut().unwrap().insert("requirements.txt".into(), "8".into());
    // Also a file the steps do not read: it must not be named.
    new.files.as_mut().unwrap().insert("README.md".into(), "7".into());
    let causes = explain(Previous::Found(&old), &new, &steps(&[REQS, PIP, SETUP, COPY]));
    let changed = Cause::Files { paths: vec!["requirements.txt".into()], count: 1 };
    assert_eq!(causes[0].cause, changed);
    for c in &causes[1..] {
        assert_eq!(c.cause.root(), &changed, "{}", c.text);
    }
    // COPY --from=source builds on `app 1/2`, which ran; its root is still the requirements.
    assert!(matches!(&causes[3].cause, Cause::Upstream { step, .. } if step.starts_with("[t deps 2/3]")));
}

#[test]
fn many_changed_files_are_counted_after_the_first_few() {
    let old = inputs(FILES);
    let mut new = inputs(FILES);
    for n in 0..5 {
        new.files.as_mut().unwrap().insert(format!("app/new{n}.py"), "x".into());
    }
    new.files.as_mut().unwrap().remove("app/util.py");
    let causes = explain(Previous::Found(&old), &new, &steps(&[SRC]));
    let Cause::Files { paths, count } = &causes[0].cause else { panic!() };
    assert_eq!((paths.len(), *count), (NAMED_PATHS, 6));
    assert!(causes[0].text.ends_with("and 3 more"), "{}", causes[0].text);
}

#[test]
fn a_build_argument_reaches_a_run_in_its_scope_and_a_secret_stays_hidden() {
    let old = inputs(FILES);
    let mut new = inputs(FILES);
    new.args.insert("VERSION".into(), "2.0".into());
    let causes = explain(Previous::Found(&old), &new, &steps(&[SETUP, COPY]));
    assert_eq!(causes[0].text, "build argument VERSION changed: \"1.0\" -> \"2.0\"");
    assert!(matches!(&causes[1].cause, Cause::Upstream { .. }));
    let mut old = inputs(FILES);
    let mut new = inputs(FILES);
    old.args.insert("API_TOKEN".into(), "abc".into());
    new.args.insert("API_TOKEN".into(), "def".into());
    old.dockerfile = DOCKERFILE.replace("ARG VERSION", "ARG VERSION\nARG API_TOKEN");
    new.dockerfile = old.dockerfile.clone();
    let causes = explain(Previous::Found(&old), &new, &steps(&[SETUP]));
    assert_eq!(causes[0].text, "build argument API_TOKEN changed: (hidden) -> (hidden)");
    assert!(!causes[0].text.contains("abc") && secret_like("db_password") && !secret_like("VERSION"));
}

#[test]
fn a_new_base_digest_is_named_old_to_new() {
    let old = inputs(FILES);
    let mut new = inputs(FILES);
    new.bases.insert("py:3".into(), "py:3@sha256:bb".into());
    let causes = explain(Previous::Found(&old), &new, &steps(&[REQS, PIP, SRC]));
    let base = Cause::Base { old: "py:3@sha256:aa".into(), new: "py:3@sha256:bb".into() };
    assert_eq!(kinds(&causes)[0], (REQS, &base));
    assert_eq!(causes[1].cause.root(), &base);
    assert_eq!(causes[2].cause, base, "the source stage starts from the same image");
    assert_eq!(causes[0].text, "base image changed: py:3@sha256:aa -> py:3@sha256:bb");
}

#[test]
fn a_changed_instruction_shows_its_line_before_and_after() {
    let old = inputs(FILES);
    let mut new = inputs(FILES);
    new.dockerfile = DOCKERFILE.replace("RUN echo setup", "ENV X=1\nRUN echo setup");
    let causes = explain(Previous::Found(&old), &new, &steps(&[SETUP, COPY]));
    assert_eq!(causes[0].cause, Cause::Instruction { line: 12, before: None, after: Some("ENV X=1".into()) });
    assert_eq!(causes[0].text, "Dockerfile line 12 changed: `(none)` -> `ENV X=1`");
    new.dockerfile = DOCKERFILE.replace("RUN echo setup", "RUN echo set up");
    let causes = explain(Previous::Found(&old), &new, &steps(&[]));
    assert!(causes.is_empty());
    let ran = [step("[t app 1/2] RUN echo set up", false)];
    assert_eq!(
        explain(Previous::Found(&old), &new, &ran)[0].text,
        "Dockerfile line 12 changed: `RUN echo setup` -> `RUN echo set up`"
    );
    new.dockerfile = DOCKERFILE.replace("ARG VERSION\n", "");
    let causes = explain(Previous::Found(&old), &new, &steps(&[SETUP]));
    assert_eq!(causes[0].text, "Dockerfile line 11 changed: `ARG VERSION` -> `(none)`");
}

#[test]
fn nothing_changed_means_the_engine_dropped_the_cache() {
    let same = inputs(FILES);
    let causes = explain(Previous::Found(&same), &same, &steps(&[REQS, PIP]));
    assert_eq!(causes[0].cause, Cause::CacheDropped);
    assert!(causes[0]
        .text
        .contains("the engine no longer held this step's cache (pruned, evicted, or another engine)"));
    assert_eq!(causes[1].cause.root(), &Cause::CacheDropped);
}

#[test]
fn first_build_no_cache_and_what_cannot_be_told_apart() {
    let cur = inputs(FILES);
    let ran = steps(&[PIP]);
    assert_eq!(kinds(&explain(Previous::None, &cur, &ran)), [(PIP, &Cause::FirstBuild)]);
    let mut forced = inputs(FILES);
    forced.no_cache = true;
    assert_eq!(explain(Previous::Found(&cur), &forced, &ran)[0].text, "--no-cache");
    let unknown = explain(Previous::Unreadable, &cur, &ran);
    assert!(unknown[0].text.starts_with("cause unknown ("), "{}", unknown[0].text);
    // A manifest missing on one side: a step that reads the context is not called dropped.
    let mut blind = inputs(FILES);
    blind.files = None;
    let c = explain(Previous::Found(&blind), &cur, &steps(&[REQS]));
    assert!(matches!(c[0].cause, Cause::Unknown { .. }), "{c:?}");
    // A step the Dockerfile does not hold.
    let c = explain(Previous::Found(&cur), &cur, &[step("[t deps 9/9] RUN gone", false)]);
    assert!(c[0].text.starts_with("cause unknown"));
    // Cached steps, FROM and bookkeeping get no cause.
    let c = explain(Previous::Found(&cur), &cur, &[step(FROM, false), step("[t internal] load build context", false)]);
    assert!(c.is_empty());
}

#[test]
fn bases_are_read_from_the_from_steps() {
    let b = bases(&[step(FROM, true), step("[t app 1/2] FROM --platform=linux/amd64 x:1@sha256:cc", true)]);
    assert_eq!(b["py:3"], "py:3@sha256:aa");
    assert_eq!(b["x:1"], "x:1@sha256:cc");
}

#[test]
fn causes_read_and_write_as_tagged_json() {
    let c = Cause::Upstream { step: "s".into(), cause: Box::new(Cause::Files { paths: vec!["a".into()], count: 1 }) };
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(v["kind"], "upstream");
    assert_eq!(v["cause"]["kind"], "files");
    assert_eq!(serde_json::from_value::<Cause>(v).unwrap(), c);
}

#[test]
fn a_report_with_every_kind_of_cause_matches_the_schema() {
    let kinds = [
        Cause::Files { paths: vec!["a".into()], count: 4 },
        Cause::Arg { name: "X".into(), old: None, new: Some("1".into()) },
        Cause::Base { old: "a@sha256:1".into(), new: "a@sha256:2".into() },
        Cause::Platforms { old: vec![], new: vec!["linux/arm64".into()] },
        Cause::Instruction { line: 3, before: None, after: Some("RUN x".into()) },
        Cause::Upstream { step: "s".into(), cause: Box::new(Cause::CacheDropped) },
        Cause::CacheDropped,
        Cause::FirstBuild,
        Cause::NoCache,
        Cause::Unknown { why: "w".into() },
    ];
    let mut report = crate::report::summarize(&["t".to_string()], &Default::default(), "s".into(), true);
    report.targets[0].causes =
        kinds.iter().map(|c| StepCause { step: "s".into(), text: c.text(), cause: c.clone() }).collect();
    let doc = serde_json::to_value(&report).unwrap();
    assert_eq!(crate::report::schema::check(&doc, "build"), Ok(()));
    let mut bad = doc.clone();
    bad["targets"][0]["causes"][0]["cause"]["kind"] = "guess".into();
    assert!(crate::report::schema::check(&bad, "build").is_err());
}

#[test]
fn the_why_listing_names_each_step_that_ran_with_its_cause() {
    let mut report =
        crate::report::summarize(&["t".to_string(), "u".to_string()], &Default::default(), "s".into(), true);
    report.id = "b1".into();
    report.targets[0].steps = 3;
    report.targets[0].steps_detail = steps(&[SRC]);
    let cause = Cause::Files { paths: vec!["app/main.py".into()], count: 1 };
    report.targets[0].causes = vec![StepCause { step: SRC.into(), text: cause.text(), cause }];
    report.targets[1].steps_detail = vec![step("[u a 2/2] RUN x", false)];
    let text = listing(&report, None).unwrap();
    assert!(text.contains("t: 1 of 3 steps ran\n  [t source 2/2] RUN"), "{text}");
    assert!(text.contains("      context file changed: app/main.py\n"), "{text}");
    assert!(text.contains("u: 1 of 0 steps ran") && text.contains("cause not recorded"), "{text}");
    assert!(!listing(&report, Some("t")).unwrap().contains("u: "));
    assert_eq!(listing(&report, Some("zz")).unwrap_err(), "build b1 has no target `zz`: it built t, u");
}

#[test]
fn a_base_named_by_arguments_is_resolved_longest_name_first() {
    let old = inputs(FILES);
    let mut new = inputs(FILES);
    let text = "ARG BASE=py\nARG BASE_TAG=3\nFROM $BASE:${BASE_TAG} AS deps\nCOPY requirements.txt .\n";
    new.dockerfile = text.into();
    let mut old = TargetInputs { dockerfile: text.into(), ..old };
    old.args.remove("BASE");
    new.args.remove("BASE");
    new.bases.insert("py:3".into(), "py:3@sha256:bb".into());
    let causes = explain(Previous::Found(&old), &new, &[step("[t deps 2/2] COPY requirements.txt .", false)]);
    assert_eq!(causes[0].cause, Cause::Base { old: "py:3@sha256:aa".into(), new: "py:3@sha256:bb".into() });
}

#[test]
fn a_new_commit_time_reruns_a_workdir_and_leaves_a_copy_unknown() {
    let text = "FROM scratch AS a\nCOPY x /x\nWORKDIR /app\n";
    let mut old = TargetInputs { dockerfile: text.into(), files: Some(BTreeMap::new()), ..Default::default() };
    old.args.insert("SOURCE_DATE_EPOCH".into(), "1".into());
    let mut new = old.clone();
    new.args.insert("SOURCE_DATE_EPOCH".into(), "2".into());
    let ran = [step("[t a 1/2] COPY x /x", false), step("[t a 2/2] WORKDIR /app", false)];
    let causes = explain(Previous::Found(&old), &new, &ran);
    assert!(causes[0].text.starts_with("cause unknown (SOURCE_DATE_EPOCH changed"), "{}", causes[0].text);
    assert_eq!(
        causes[1].cause,
        Cause::Arg { name: "SOURCE_DATE_EPOCH".into(), old: Some("1".into()), new: Some("2".into()) }
    );
    // The same WORKDIR alone, nothing changed: the engine dropped it.
    let causes = explain(Previous::Found(&old), &old, &ran[1..]);
    assert_eq!(causes[0].cause, Cause::CacheDropped);
}

#[test]
fn new_platforms_rerun_everything_and_escapes_do_not_hide_a_step() {
    let old = inputs(FILES);
    let mut new = inputs(FILES);
    new.platforms = vec!["linux/amd64".into()];
    let causes = explain(Previous::Found(&old), &new, &steps(&[REQS, PIP]));
    assert_eq!(causes[1].cause, Cause::Platforms { old: vec![], new: vec!["linux/amd64".into()] });
    assert_eq!(causes[0].text, "the target's platforms changed: the engine's own -> linux/amd64");
    // `\;` in the Dockerfile is `;` in the step's name.
    let mut old = inputs(FILES);
    old.dockerfile = DOCKERFILE.replace("RUN echo setup", "RUN find / -exec true {} \\;");
    let ran = [step("[t app 1/2] RUN find / -exec true {} ;", false)];
    assert_eq!(explain(Previous::Found(&old), &old, &ran)[0].cause, Cause::CacheDropped);
    // A stand-in named by a bake variable rather than the argument: the one base on each side.
    let mut new = old.clone();
    new.bases = BTreeMap::from([("standin:1-f".into(), "standin:1-f@sha256:cc".into())]);
    let causes = explain(Previous::Found(&old), &new, &steps(&[REQS]));
    assert_eq!(causes[0].cause, Cause::Base { old: "py:3@sha256:aa".into(), new: "standin:1-f@sha256:cc".into() });
}
