//! The comparison itself: each step that ran, placed in its Dockerfile, and the first input of
//! it found changed; what it cannot tell apart it calls unknown.

use std::collections::BTreeMap;

use super::dockerfile::{self, is_step, squeeze, Stage};
use super::{Cause, Previous, StepCause, TargetInputs, NAMED_PATHS};
use crate::report::model::{is_instruction, Step};
use crate::util::pathmatch::source_takes;

/// The causes of the steps that ran (not from cache), in the order of `steps`. FROM steps and
/// BuildKit's own bookkeeping are not instructions of the Dockerfile and get none.
pub(crate) fn explain(previous: Previous, current: &TargetInputs, steps: &[Step]) -> Vec<StepCause> {
    let ran = steps.iter().filter(|s| !s.cached && is_instruction(&s.name));
    let whole = |cause: Cause| -> Vec<StepCause> {
        ran.clone().map(|s| StepCause { step: s.name.clone(), text: cause.text(), cause: cause.clone() }).collect()
    };
    if current.no_cache {
        return whole(Cause::NoCache);
    }
    let prev = match previous {
        Previous::None => return whole(Cause::FirstBuild),
        Previous::Unreadable => {
            return whole(Cause::Unknown { why: "the inputs of the last build on this engine were not kept".into() })
        }
        Previous::Foreign(r) => {
            let why = format!("the registry cache {r} it read was written by a build this history does not hold");
            return whole(Cause::Unknown { why });
        }
        Previous::Found(p) => p,
    };
    let ctx = Context::new(prev, current, steps);
    ran.map(|s| {
        let (cause, _) = match ctx.place(&s.name) {
            Some(at) => ctx.cause(at, 0),
            None => (Cause::Unknown { why: "the step is not in the Dockerfile as read".into() }, s.name.clone()),
        };
        StepCause { step: s.name.clone(), text: cause.text(), cause }
    })
    .collect()
}

/// The build argument BuildKit reads for the times it gives what a build creates.
const EPOCH: &str = "SOURCE_DATE_EPOCH";

/// A step's place: its stage and its instruction in that stage.
type At = (usize, usize);

struct Context<'a> {
    stages: Vec<Stage>,
    before: Vec<Stage>,
    prev: &'a TargetInputs,
    cur: &'a TargetInputs,
    /// Every step of the build placed in the Dockerfile, ran or cached.
    placed: BTreeMap<At, &'a Step>,
    /// Paths that differ between the two manifests (none when one was not read).
    changed_files: Option<Vec<String>>,
    changed_args: Vec<String>,
    /// Global `ARG` defaults, for the names a `FROM` uses.
    globals: BTreeMap<String, String>,
}

impl<'a> Context<'a> {
    fn new(prev: &'a TargetInputs, cur: &'a TargetInputs, steps: &'a [Step]) -> Context<'a> {
        let stages = dockerfile::parse(&cur.dockerfile);
        let changed_files = match (&prev.files, &cur.files) {
            (Some(a), Some(b)) => {
                let mut paths: Vec<String> =
                    a.keys().chain(b.keys()).filter(|p| a.get(*p) != b.get(*p)).cloned().collect();
                paths.sort();
                paths.dedup();
                Some(paths)
            }
            _ => None,
        };
        let changed_args = prev
            .args
            .keys()
            .chain(cur.args.keys())
            .filter(|k| prev.args.get(*k) != cur.args.get(*k))
            .cloned()
            .collect();
        let mut ctx = Context {
            before: dockerfile::parse(&prev.dockerfile),
            globals: globals(&cur.dockerfile),
            stages,
            prev,
            cur,
            placed: BTreeMap::new(),
            changed_files,
            changed_args,
        };
        for s in steps.iter().filter(|s| is_instruction(&s.name)) {
            if let Some(at) = ctx.place(&s.name) {
                ctx.placed.entry(at).or_insert(s);
            }
        }
        ctx
    }

    /// Where a step's name (`[target stage n/m] TEXT`) is in the Dockerfile. BuildKit shortens
    /// long names, so a long text that matches no instruction whole may match one's start.
    fn place(&self, name: &str) -> Option<At> {
        let (inside, text) = name.strip_prefix('[')?.split_once("] ")?;
        let words: Vec<&str> = inside.split(' ').collect();
        let stage = words.len().checked_sub(2).map(|i| words[i])?;
        // BuildKit's names drop the escapes of the Dockerfile's text (`-exec rmdir {} \;` shows as
        // `{} ;`): both sides are compared without backslashes.
        let bare = |t: &str| t.replace('\\', "");
        let text = bare(&squeeze(text));
        let s = self.stages.iter().position(|st| st.name == stage)?;
        let list = &self.stages[s].instructions;
        let i = list.iter().position(|i| bare(&i.text) == text).or_else(|| {
            (text.len() >= 100).then(|| list.iter().position(|i| bare(&i.text).starts_with(&text))).flatten()
        })?;
        Some((s, i))
    }

    /// The cause of the step at `at`, and the step it was found at (itself, or one upstream).
    fn cause(&self, at: At, depth: usize) -> (Cause, String) {
        let here = self.placed.get(&at).map_or(String::new(), |s| s.name.clone());
        if depth > 64 {
            return (Cause::Unknown { why: "the steps' chain is too deep to follow".into() }, here);
        }
        let mut unknown: Option<String> = None;
        if self.prev.platforms != self.cur.platforms {
            let (old, new) = (self.prev.platforms.clone(), self.cur.platforms.clone());
            return (Cause::Platforms { old, new }, here);
        }
        let own = self
            .instruction_changed(at)
            .or_else(|| self.files_changed(at, &mut unknown))
            .or_else(|| self.arg_changed(at, &mut unknown))
            .or_else(|| self.base_changed(at, &mut unknown));
        if let Some(c) = own {
            return (c, here);
        }
        for dep in self.upstream(at, &mut unknown) {
            if let Some(step) = self.placed.get(&dep).filter(|s| !s.cached) {
                let (cause, at_step) = self.cause(dep, depth + 1);
                let found = if at_step.is_empty() { step.name.clone() } else { at_step };
                return match cause {
                    Cause::Upstream { .. } => (cause, found),
                    c => (Cause::Upstream { step: short(&found), cause: Box::new(c) }, found),
                };
            }
        }
        match unknown {
            Some(why) => (Cause::Unknown { why }, here),
            None => (Cause::CacheDropped, here),
        }
    }

    /// The first instruction of the stage, up to this one, that is not as it was (the `FROM`
    /// line included): a new line there changes the key of every step after it.
    fn instruction_changed(&self, (s, i): At) -> Option<Cause> {
        let stage = &self.stages[s];
        let now: Vec<&dockerfile::Instruction> =
            std::iter::once(&stage.from).chain(&stage.instructions[..=i]).collect();
        let old: Vec<&dockerfile::Instruction> = match self.before.iter().find(|b| b.name == stage.name) {
            Some(b) => std::iter::once(&b.from).chain(&b.instructions).collect(),
            None => Vec::new(),
        };
        let k = (0..now.len()).find(|&k| old.get(k).map(|o| &o.text) != Some(&now[k].text))?;
        let text = |i: Option<&&dockerfile::Instruction>| i.map(|x| x.text.clone());
        // A line added shows as none before, a line removed as none after.
        let added = old.get(k).is_some_and(|o| stage.instructions.get(k).is_some_and(|n| n.text == o.text));
        let removed = old.get(k + 1).is_some_and(|o| o.text == now[k].text);
        Some(Cause::Instruction {
            line: now[k].line,
            before: if added { None } else { text(old.get(k)) },
            after: if removed { None } else { text(now.get(k)) },
        })
    }

    fn files_changed(&self, (s, i): At, unknown: &mut Option<String>) -> Option<Cause> {
        let ins = &self.stages[s].instructions[i];
        let reads = dockerfile::reads(ins);
        if reads.context.is_empty() {
            return None;
        }
        let Some(changed) = &self.changed_files else {
            *unknown = Some("the context of one of the two builds was not read".into());
            return None;
        };
        if ins.keyword == "ADD" && reads.context.iter().any(|c| c.contains("://")) {
            *unknown = Some("it adds a URL, whose content is not kept".into());
        }
        let hits: Vec<&String> = changed
            .iter()
            .filter(|p| reads.context.iter().any(|src| src.contains('$') || source_takes(src, p)))
            .collect();
        (!hits.is_empty()).then(|| Cause::Files {
            paths: hits.iter().take(NAMED_PATHS).map(|p| p.to_string()).collect(),
            count: hits.len(),
        })
    }

    /// A changed argument the stage declares before the step, which a RUN sees in its
    /// environment and any other instruction only where it names it; and `SOURCE_DATE_EPOCH`,
    /// which BuildKit dates the folder a WORKDIR makes with, declared or not.
    fn arg_changed(&self, (s, i): At, unknown: &mut Option<String>) -> Option<Cause> {
        let stage = &self.stages[s];
        let ins = &stage.instructions[i];
        let declared = dockerfile::declared_args(stage, i);
        let epoch_changed = self.changed_args.iter().any(|a| a == EPOCH);
        if epoch_changed && matches!(ins.keyword.as_str(), "COPY" | "ADD") {
            *unknown = Some(format!("{EPOCH} changed, which BuildKit may date what this step creates with"));
        }
        let name = self.changed_args.iter().find(|a| {
            (declared.contains(a) && (ins.keyword == "RUN" || dockerfile::mentions(&ins.text, a)))
                || (a.as_str() == EPOCH && ins.keyword == "WORKDIR")
        })?;
        Some(Cause::Arg {
            name: name.clone(),
            old: self.prev.args.get(name).cloned(),
            new: self.cur.args.get(name).cloned(),
        })
    }

    /// The base's digest, for the first step of a stage that starts from an image.
    fn base_changed(&self, (s, i): At, unknown: &mut Option<String>) -> Option<Cause> {
        let stage = &self.stages[s];
        if self.stage_index(&stage.base).is_some() || stage.instructions[..i].iter().any(|x| is_step(&x.keyword)) {
            return None;
        }
        let image = resolve(&stage.base, &self.cur.args, &self.globals);
        let image = image.split('@').next().unwrap_or("").to_string();
        if image == "scratch" {
            return None;
        }
        // The operand may name a variable the bake file sets for the build (a stand-in for the
        // official image) rather than an argument: with one base on each side, those are the two.
        let single = |b: &'a BTreeMap<String, String>| (b.len() == 1).then(|| b.values().next()).flatten();
        let found = match (self.prev.bases.get(&image), self.cur.bases.get(&image)) {
            (Some(a), Some(b)) => (Some(a), Some(b)),
            _ => (single(&self.prev.bases), single(&self.cur.bases)),
        };
        match found {
            (Some(a), Some(b)) if a != b => Some(Cause::Base { old: a.clone(), new: b.clone() }),
            (Some(_), Some(_)) => None,
            _ => {
                *unknown = Some(format!("the digest of {image} was not seen in both builds"));
                None
            }
        }
    }

    /// The steps this one builds on: the step before it in its stage (or the last step of the
    /// stage it starts from), and the last step of each stage it copies or mounts from.
    fn upstream(&self, (s, i): At, unknown: &mut Option<String>) -> Vec<At> {
        let stage = &self.stages[s];
        let mut out = Vec::new();
        match stage.instructions[..i].iter().rposition(|x| is_step(&x.keyword)) {
            Some(j) => out.push((s, j)),
            None => out.extend(self.stage_index(&stage.base).and_then(|b| self.last_step(b))),
        }
        for name in dockerfile::reads(&stage.instructions[i]).stages {
            match self.stage_index(&name) {
                Some(b) => out.extend(self.last_step(b)),
                None => *unknown = Some(format!("it reads {name}, which this comparison does not keep")),
            }
        }
        out
    }

    fn stage_index(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|st| st.name == name)
    }

    fn last_step(&self, s: usize) -> Option<At> {
        let j = self.stages[s].instructions.iter().rposition(|x| is_step(&x.keyword))?;
        Some((s, j))
    }
}

/// A step's name cut to its place and the start of its instruction.
fn short(name: &str) -> String {
    match name.char_indices().nth(72) {
        Some((i, _)) => format!("{}...", &name[..i]),
        None => name.to_string(),
    }
}

/// The `ARG` lines before the first `FROM`, with their defaults.
fn globals(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.to_ascii_uppercase().starts_with("FROM ") {
            break;
        }
        if let Some(rest) = line.strip_prefix("ARG ") {
            let (k, v) = rest.trim().split_once('=').unwrap_or((rest.trim(), ""));
            out.insert(k.to_string(), v.trim_matches('"').to_string());
        }
    }
    out
}

/// A `FROM` operand with its `$NAME` and `${NAME}` filled in from the build arguments, else
/// the global defaults. Longer names go first, so `$BASE` does not eat the start of `$BASE_TAG`.
fn resolve(base: &str, args: &BTreeMap<String, String>, globals: &BTreeMap<String, String>) -> String {
    let mut names: Vec<&String> = globals.keys().chain(args.keys()).collect();
    names.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    names.dedup();
    let mut out = base.to_string();
    for k in names {
        let value = args.get(k).or_else(|| globals.get(k)).map_or("", String::as_str);
        out = out.replace(&format!("${{{k}}}"), value).replace(&format!("${k}"), value);
    }
    out
}

/// The bases a build's FROM steps resolved (`[t stage 1/n] FROM image@digest`): image → the name
/// with its digest.
pub(crate) fn bases(steps: &[Step]) -> BTreeMap<String, String> {
    steps
        .iter()
        .filter_map(|s| s.name.split_once("] FROM ").map(|(_, r)| r.split(' ').next_back().unwrap_or(r).to_string()))
        .map(|full| (full.split('@').next().unwrap_or("").to_string(), full))
        .collect()
}
