//! `cargo xtask doctor`: the onboarding check. One line per thing a build needs, each failure with
//! its fix; exit 0 only when `cargo xtask build` can work here.

use anyhow::{bail, Result};

use crate::build::fit;
use crate::engine::{self, Engine};
use crate::images::meta;
use crate::settings::{Scope, Settings};
use crate::util::paths;
use crate::util::runner::{self, Cmd};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Warn,
    Fail,
}

struct Report {
    failures: usize,
}

impl Report {
    fn line(&mut self, level: Level, what: &str, text: impl AsRef<str>) {
        let tag = match level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => {
                self.failures += 1;
                "FAIL"
            }
        };
        println!("{tag} {what:<12} {}", text.as_ref());
    }
}

/// The engine line: the engine that answers, or why none does and what to do.
fn connected(r: &mut Report, settings: &Settings) -> Option<Engine> {
    match engine::connect(settings, false) {
        Ok(e) => {
            r.line(Level::Ok, "engine", format!("{} answers", e.describe()));
            Some(e)
        }
        Err(_) => {
            let socket = engine::Engine::default().socket();
            let denied = socket.as_deref().filter(|s| engine::access::probe(s) == engine::access::Access::Denied);
            if let Some(socket) = denied {
                r.line(Level::Fail, "engine", engine::access::denied_line(socket));
            } else if engine::check_host().is_ok() {
                r.line(
                    Level::Warn,
                    "engine",
                    "none answers; `cargo xtask build` will start the private one (or run `cargo xtask engine up`)",
                );
            } else {
                r.line(
                    Level::Fail,
                    "engine",
                    "none answers: start Docker Engine 26+ (or, as root on Debian/Ubuntu, `cargo xtask engine up`)",
                );
            }
            None
        }
    }
}

fn version_of(program: &str, args: &[&str]) -> Option<String> {
    which::which(program).ok()?;
    runner::read(&Cmd::new(program).args(args.iter().copied())).ok().map(|s| s.lines().next().unwrap_or("").to_string())
}

pub fn run() -> Result<()> {
    let mut r = Report { failures: 0 };
    tool_lines(&mut r);
    let settings = match Settings::load() {
        Ok(s) => {
            r.line(Level::Ok, ".env", format!("{} parses", paths::dotenv_file().display()));
            s
        }
        Err(e) => {
            r.line(Level::Fail, ".env", format!("{e:#}"));
            Settings::default()
        }
    };
    let engine = connected(&mut r, &settings);
    if let Some(engine) = &engine {
        engine_lines(&mut r, engine, &settings);
    }
    shell_line(&mut r, engine.as_ref());
    settings_lines(&mut r, &settings, engine.as_ref());
    npm_lines(&mut r, engine.as_ref());
    local_tool_lines(&mut r);
    // Resolved as an exporting build would be: where `--cache-export`, CI or a registry put it.
    let exporting = [("CACHE_EXPORT".to_string(), "1".to_string())];
    let def = engine.as_ref().and_then(|e| crate::images::bake::print(&e.docker(), &exporting, &[]).ok());
    let cache = crate::cache::gc::doctor_line(def.as_ref(), &paths::project_root());
    r.line(Level::Ok, "cache", format!("{cache}; exported only with --cache-export or REGISTRY, in CI only to REGISTRY (a local build uses the engine's own cache)"));
    match crate::images::signing::doctor_line() {
        Ok(line) => r.line(Level::Ok, "signing", line),
        Err(line) => r.line(Level::Warn, "signing", line),
    }
    disk_line(&mut r);
    if r.failures > 0 {
        bail!("{} check(s) failed; fix the FAIL lines above", r.failures);
    }
    Ok(())
}

/// The tools every build needs on the host.
fn tool_lines(r: &mut Report) {
    match version_of("cargo", &["--version"]) {
        Some(v) => r.line(Level::Ok, "cargo", v),
        None => r.line(Level::Fail, "cargo", "not found: install Rust with rustup"),
    }
    match version_of("git", &["--version"]) {
        Some(v) => r.line(Level::Ok, "git", v),
        None => r.line(Level::Fail, "git", "not found: install git (the build reads the commit from it)"),
    }
    match version_of("docker", &["--version"]) {
        Some(v) => r.line(Level::Ok, "docker cli", v),
        None => r.line(
            Level::Fail,
            "docker cli",
            "not found: install the docker CLI (Debian: apt-get install docker.io or docker-ce-cli)",
        ),
    }
}

/// The tools only local work on the services and their tests need.
fn local_tool_lines(r: &mut Report) {
    match version_of("node", &["--version"]) {
        Some(v) if v.starts_with("v22") => r.line(Level::Ok, "node", format!("{v} (the images use Node.js 22)")),
        Some(v) => r.line(Level::Warn, "node", format!("{v}: the images use Node.js 22; local `next dev` may differ")),
        None => r.line(Level::Warn, "node", "not found: only needed for local frontend work and the frontend tests"),
    }
    match version_of("python3", &["--version"]) {
        Some(v) if v.contains(" 3.11") => r.line(Level::Ok, "python", v),
        Some(v) => r.line(Level::Warn, "python", format!("{v}: the backend image uses Python 3.11")),
        None => r.line(Level::Warn, "python", "python3 not found: only needed for local backend work and its tests"),
    }
}

fn engine_lines(r: &mut Report, engine: &Engine, settings: &Settings) {
    let facts = match engine::facts(engine, None) {
        Ok(f) => f,
        Err(e) => return r.line(Level::Fail, "engine", format!("{e:#}")),
    };
    r.line(Level::Ok, "docker", format!("engine {}", facts.engine_version));
    match &facts.buildx_version {
        Some(v) if *v >= engine::BUILDX_FLOOR => r.line(Level::Ok, "buildx", v.to_string()),
        Some(v) => r.line(
            Level::Fail,
            "buildx",
            format!("{v} is below {}: upgrade the docker-buildx plug-in", engine::BUILDX_FLOOR),
        ),
        None => {
            r.line(Level::Fail, "buildx", "missing: install the docker-buildx plug-in (or use `cargo xtask engine up`)")
        }
    }
    match &facts.buildkit_version {
        Some(v) if *v >= engine::BUILDKIT_FLOOR => r.line(Level::Ok, "buildkit", format!("{v}{}", facts.buildkit_note)),
        Some(v) => r.line(
            Level::Fail,
            "buildkit",
            format!("{v} is below {}: upgrade Docker Engine to 26+", engine::BUILDKIT_FLOOR),
        ),
        None => r.line(Level::Warn, "buildkit", "version unknown"),
    }
    match version_of_docker(engine, &["compose", "version", "--short"]) {
        Some(v) if v.trim_start_matches('v').starts_with('2') => r.line(Level::Ok, "compose", format!("v2 ({v})")),
        Some(v) => r.line(Level::Fail, "compose", format!("{v}: compose v2 is needed (the docker-compose-plugin)")),
        None => r.line(Level::Fail, "compose", "missing: install the docker compose v2 plug-in"),
    }
    let caps = facts.capabilities();
    let builder = facts.builder_line();
    if caps.cache_export {
        r.line(Level::Ok, "builder", builder.clone());
    } else {
        // The build still works: it leaves out what this builder cannot do, and says so.
        r.line(Level::Ok, "builder", format!("{builder}: builds load single-platform images; cache export and attestations are left out (the containerd image store has both)"));
    }
    match crate::images::sbom::generator::doctor_line(engine, caps.attestations, &builder) {
        Ok(line) => r.line(Level::Ok, "sbom", line),
        Err(line) => r.line(Level::Warn, "sbom", line),
    }
    let inline =
        settings.build_args().iter().any(|(k, v)| k == "BUILDKIT_INLINE_CACHE" && matches!(v.as_str(), "1" | "true"));
    let lost = crate::build::reproducible::lost(&caps, inline, true, true);
    for line in &lost {
        r.line(Level::Warn, "reproducible", line.clone());
    }
    if lost.is_empty() {
        r.line(Level::Ok, "reproducible", "a warm rebuild keeps the image ids; two cold builds of one commit give the same digests (pushed and OCI images)");
    }
    r.line(Level::Ok, "reproducible", crate::build::reproducible::LOAD_NOTE);
    let multi = crate::images::bake::print(&engine.docker(), &[], &["multiplatform".to_string()]);
    let platforms = multi.map(|d| crate::build::inputs::platforms_of(&d)).unwrap_or_default();
    match fit::check_multiplatform(&facts, &platforms) {
        Ok(()) => {
            r.line(Level::Ok, "multiplatform", format!("{} ({})", platforms.join(" + "), facts.platforms.join(", ")))
        }
        Err(e) => r.line(Level::Warn, "multiplatform", format!("{e:#}")),
    }
    r.line(Level::Ok, "binfmt", engine::binfmt_status());
}

/// Compose as a plain shell reaches it: the `docker` on PATH with its own plug-ins and
/// DOCKER_HOST, without the private engine's exports the xtask adds to its own commands.
fn shell_line(r: &mut Report, engine: Option<&Engine>) {
    let plain = Engine::default();
    let compose = version_of_docker(&plain, &["compose", "version", "--short"]);
    let answers = plain.answers();
    let fix = "run `eval \"$(cargo xtask engine env)\"` in that shell (or use `cargo xtask up`, `ps`, `logs`, `down`)";
    match (compose, answers, engine) {
        (Some(v), true, _) => r.line(
            Level::Ok,
            "shell",
            format!("a plain shell reaches compose {v} and the engine at {}", plain.describe()),
        ),
        (_, _, Some(e)) if e.is_private() => r.line(
            Level::Warn,
            "shell",
            format!(
                "a plain shell reaches {} the private engine: {fix}",
                if answers { "compose not on" } else { "neither compose nor" }
            ),
        ),
        (None, _, _) => r.line(
            Level::Warn,
            "shell",
            "`docker compose` is not a command in a plain shell: install the compose v2 plug-in",
        ),
        (Some(_), false, _) => r.line(
            Level::Warn,
            "shell",
            format!("a plain shell's docker reaches no engine at {}: start it, or set DOCKER_HOST", plain.describe()),
        ),
    }
}

fn version_of_docker(engine: &Engine, args: &[&str]) -> Option<String> {
    runner::read(&engine.docker().args(args.iter().copied())).ok()
}

fn settings_lines(r: &mut Report, settings: &Settings, engine: Option<&Engine>) {
    let private = engine.is_some_and(Engine::is_private);
    for (key, value, scope) in settings.iter() {
        match scope {
            Scope::BuildArg if key == "BUILDKIT_INLINE_CACHE" => r.line(
                Level::Ok,
                "buildkit env",
                format!("{key}={value}: build argument; 1 writes min-mode inline cache, with the time each layer was made, into the image config (two cold builds then differ); `--cache-export` keeps the fuller mode=max cache"),
            ),
            Scope::BuildArg => r.line(Level::Ok, "buildkit env", format!("{key}={value}: passed as a build argument")),
            Scope::Daemon if private => r.line(Level::Ok, "buildkit env", format!("{key}={value}: in the private dockerd's environment")),
            Scope::Daemon => r.line(
                Level::Warn,
                "buildkit env",
                format!("{key}={value}: a daemon-side setting this builder does not take from here; set it in the engine's environment"),
            ),
            Scope::NoEffect => r.line(
                Level::Warn,
                "setting",
                format!("{key}={value} acts on {}: remove it from .env", crate::settings::acts(key).unwrap_or("nothing")),
            ),
            Scope::Project => match crate::settings::acts(key) {
                Some(place) if !value.is_empty() => r.line(Level::Ok, "setting", format!("{key}={value}: {place}")),
                _ => {}
            },
        }
    }
}

fn npm_lines(r: &mut Report, engine: Option<&Engine>) {
    let pin = match meta::npm_pin() {
        Ok(p) => p,
        Err(e) => return r.line(Level::Fail, "npm pin", format!("{e:#}")),
    };
    if let Some(engine) = engine {
        let def = crate::images::bake::print(&engine.docker(), &[], &["frontend".to_string()]);
        match def.ok().and_then(|d| d.target.get("frontend").and_then(|t| t.args.get("NPM_VERSION").cloned())) {
            Some(v) if v == pin => {
                r.line(Level::Ok, "npm pin", format!("npm@{pin} in package.json and the bake default"))
            }
            Some(v) => r.line(
                Level::Fail,
                "npm pin",
                format!("package.json pins npm@{pin} but docker-bake.hcl defaults to {v}: make them agree"),
            ),
            None => r.line(Level::Warn, "npm pin", "could not read NPM_VERSION from the bake file"),
        }
    }
    match version_of("npm", &["--version"]) {
        Some(v) if v == pin => r.line(Level::Ok, "npm", format!("{v} matches the pin")),
        Some(v) => r.line(Level::Warn, "npm", format!("local npm {v} differs from the pin {pin}: `npm install -g npm@{pin}` before changing package-lock.json")),
        None => r.line(Level::Warn, "npm", "not found: needed to change package-lock.json and to make the node stand-in"),
    }
}

fn disk_line(r: &mut Report) {
    let target = paths::project_root();
    let out = runner::read(&Cmd::new("df").args(["-Pk", &target.display().to_string()])).unwrap_or_default();
    let free_kb: Option<u64> =
        out.lines().nth(1).and_then(|l| l.split_whitespace().nth(3)).and_then(|v| v.parse().ok());
    // A first build on a fresh machine (the private engine, its stand-in bases and both images)
    // took 3.6 GB; later builds add their changed layers only.
    let gb = |kb: u64| kb as f64 / 1048576.0;
    match free_kb {
        Some(kb) if kb >= 8 * 1024 * 1024 => r.line(Level::Ok, "disk", format!("{:.0} GB free", gb(kb))),
        Some(kb) if kb >= 2 * 1024 * 1024 => r.line(
            Level::Warn,
            "disk",
            format!("{:.1} GB free: a first build takes about 4 GB and the engine's cache grows; `cargo xtask clean` frees it", gb(kb)),
        ),
        Some(kb) => r.line(
            Level::Fail,
            "disk",
            format!("{:.1} GB free: builds need at least 2 GB; free some space (`cargo xtask clean` frees the engine's cache)", gb(kb)),
        ),
        None => r.line(Level::Warn, "disk", "could not read free space"),
    }
}
