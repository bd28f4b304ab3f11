//! A Dockerfile read as far as the causes need it: its stages, each with its base and its
//! instructions (continuations joined as BuildKit names its steps), and what each instruction
//! reads: context paths, other stages, build arguments.

/// One instruction: its keyword (upper case), its whole text with runs of spaces made one, and
/// its first line in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Instruction {
    pub(crate) keyword: String,
    pub(crate) text: String,
    pub(crate) line: usize,
}

/// One `FROM` and the instructions after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Stage {
    /// Its `AS` name, or `stage-N` as BuildKit calls an unnamed stage.
    pub(crate) name: String,
    /// What it starts from, as written (an image, a build argument, or another stage's name).
    pub(crate) base: String,
    pub(crate) from: Instruction,
    pub(crate) instructions: Vec<Instruction>,
}

/// Runs of white space made one, as the comparisons of instructions need.
pub(crate) fn squeeze(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A Dockerfile's instructions as BuildKit reads them, each with the number of its first line:
/// a line ending in `\` goes on (the backslash and the line break go, the next line's indentation
/// stays), and comment lines, parser directives and blank lines are skipped, inside a continuation
/// too.
pub(crate) fn instructions(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut first = 0;
    for (n, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        if current.is_empty() {
            first = n + 1;
        }
        match raw.trim_end().strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(raw);
                out.push((first, std::mem::take(&mut current)));
            }
        }
    }
    if !current.trim().is_empty() {
        out.push((first, current));
    }
    out
}

/// The stages of a Dockerfile, from its instructions.
pub(crate) fn parse(text: &str) -> Vec<Stage> {
    let mut stages: Vec<Stage> = Vec::new();
    for (first, text) in instructions(text) {
        add(&mut stages, &squeeze(&text), first);
    }
    stages
}

fn add(stages: &mut Vec<Stage>, text: &str, line: usize) {
    let keyword = text.split(' ').next().unwrap_or("").to_ascii_uppercase();
    let ins = Instruction { keyword: keyword.clone(), text: text.to_string(), line };
    if keyword == "FROM" {
        let words: Vec<&str> = text.split(' ').skip(1).filter(|w| !w.starts_with("--")).collect();
        let base = words.first().map_or(String::new(), |w| w.to_string());
        let name = match words.as_slice() {
            [_, as_, name, ..] if as_.eq_ignore_ascii_case("as") => name.to_string(),
            _ => format!("stage-{}", stages.len()),
        };
        stages.push(Stage { name, base, from: ins, instructions: Vec::new() });
    } else if let Some(stage) = stages.last_mut() {
        stage.instructions.push(ins);
    }
}

/// Instructions that BuildKit runs as a step of their own; the others (ENV, LABEL, USER, ARG...)
/// change only the image's settings, which the next step's key carries.
pub(crate) fn is_step(keyword: &str) -> bool {
    matches!(keyword, "RUN" | "COPY" | "ADD" | "WORKDIR")
}

/// What one instruction reads besides the step before it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Reads {
    /// Context paths (`COPY` sources, bind-mount sources; "." for the whole context).
    pub(crate) context: Vec<String>,
    /// Other stages (`COPY --from`, `--mount=...,from=`).
    pub(crate) stages: Vec<String>,
}

/// The context paths and stages an instruction reads. A bind mount without `source` mounts the
/// whole context; `--from` of an image rather than a stage is an input this model does not keep.
pub(crate) fn reads(ins: &Instruction) -> Reads {
    let mut out = Reads::default();
    let words: Vec<&str> = ins.text.split(' ').skip(1).collect();
    for w in words.iter().filter(|w| w.starts_with("--mount=")) {
        let fields: Vec<(&str, &str)> =
            w["--mount=".len()..].split(',').filter_map(|f| f.split_once('=').or(Some((f, "")))).collect();
        let get = |k: &str| fields.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
        if get("type").unwrap_or("bind") != "bind" {
            continue;
        }
        match get("from") {
            Some(stage) => out.stages.push(stage.to_string()),
            None => out.context.push(get("source").or(get("src")).unwrap_or(".").to_string()),
        }
    }
    if matches!(ins.keyword.as_str(), "COPY" | "ADD") {
        let from = words.iter().find_map(|w| w.strip_prefix("--from="));
        let plain: Vec<&str> = words.iter().copied().filter(|w| !w.starts_with("--")).collect();
        let sources = plain.len().saturating_sub(1);
        match from {
            Some(stage) => out.stages.push(stage.to_string()),
            None => out.context.extend(plain[..sources].iter().map(|s| s.to_string())),
        }
    }
    out
}

/// The build arguments a stage declares (`ARG NAME[=default]`) before its instruction `upto`.
pub(crate) fn declared_args(stage: &Stage, upto: usize) -> Vec<String> {
    stage.instructions[..upto]
        .iter()
        .filter(|i| i.keyword == "ARG")
        .flat_map(|i| {
            i.text.split(' ').skip(1).map(|w| w.split('=').next().unwrap_or("").to_string()).collect::<Vec<_>>()
        })
        .collect()
}

/// Whether the text uses the variable (`$NAME` or `${NAME...}`).
pub(crate) fn mentions(text: &str, name: &str) -> bool {
    let plain = format!("${name}");
    let braced = format!("${{{name}");
    text.match_indices(&plain).any(|(i, _)| {
        let next = text[i + plain.len()..].chars().next();
        !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    }) || text.match_indices(&braced).any(|(i, _)| {
        let next = text[i + braced.len()..].chars().next();
        matches!(next, Some('}') | Some(':') | Some('%') | Some('#') | Some('/'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_dockerfile_reads_as_its_stages_with_what_each_step_reads() {
        let text = std::fs::read_to_string(crate::util::paths::project_root().join("backend/Dockerfile")).unwrap();
        let stages = parse(&text);
        let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names[..4], ["requirements", "deps", "source", "app"]);
        assert_eq!(stages[0].base, "${PYTHON_IMAGE}");
        let req = &stages[0].instructions[0];
        assert_eq!(reads(req), Reads { context: vec!["requirements.txt".into()], stages: vec![] });
        assert!(req
            .text
            .starts_with("RUN --mount=type=bind,source=requirements.txt,target=/tmp/requirements.txt mkdir"));
        let pip = stages[1].instructions.iter().find(|i| i.text.contains("pip install")).unwrap();
        assert_eq!(reads(pip).stages, ["requirements"]);
        assert!(reads(pip).context.is_empty(), "cache and secret mounts read no context");
        let pip_at = stages[1].instructions.iter().position(|i| i == pip).unwrap();
        assert_eq!(declared_args(&stages[1], pip_at), ["APT_PACKAGES", "TARGETARCH"]);
        assert_eq!(reads(&stages[2].instructions[0]).context, ["app"]);
        let copies: Vec<Reads> = stages[3].instructions.iter().filter(|i| i.keyword == "COPY").map(reads).collect();
        assert_eq!(copies[0].stages, ["deps"]);
        assert_eq!(copies[1].stages, ["source"]);
    }

    #[test]
    fn unnamed_stages_copies_and_variables() {
        let s =
            parse("FROM x\nCOPY a.txt  b/ ./dest/\n\n# note\nFROM stage-0\nRUN --mount=type=bind echo \\\n\n  hi\n");
        assert_eq!((s[0].name.as_str(), s[1].name.as_str(), s[1].base.as_str()), ("stage-0", "stage-1", "stage-0"));
        assert_eq!(reads(&s[0].instructions[0]).context, ["a.txt", "b/"]);
        assert_eq!(
            s[1].instructions[0],
            Instruction { keyword: "RUN".into(), text: "RUN --mount=type=bind echo hi".into(), line: 6 }
        );
        assert_eq!(reads(&s[1].instructions[0]).context, ["."]);
        assert!(mentions("echo $VERSION", "VERSION") && mentions("v=${VERSION:-x}", "VERSION"));
        assert!(!mentions("echo $VERSIONS", "VERSION") && !mentions("${VERSION_TAGS}", "VERSION"));
    }
}
