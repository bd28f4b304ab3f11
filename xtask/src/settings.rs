//! The project's settings: `.env` read with a maintained parser, the process environment on top,
//! each setting sent to the place where it takes effect, and what that place is, in words.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::util::paths;

/// Where a setting from `.env` takes effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Read by the Dockerfile frontend: passed as a build argument.
    BuildArg,
    /// Read by the BuildKit daemon: only the daemon's own environment changes it.
    Daemon,
    /// Everything else: the project's own settings (registry, mirrors, paths), read by the xtask,
    /// the bake file or compose.
    Project,
    /// Settings other tools know that change nothing in this project's commands: buildx bake
    /// always builds with BuildKit (DOCKER_BUILDKIT), and compose v2 always builds through buildx
    /// (COMPOSE_DOCKER_CLI_BUILD was compose v1's switch).
    NoEffect,
}

pub(crate) fn classify(key: &str) -> Scope {
    match key {
        "DOCKER_BUILDKIT" | "COMPOSE_DOCKER_CLI_BUILD" => Scope::NoEffect,
        "BUILDKIT_INLINE_CACHE" | "BUILDKIT_CACHE_MOUNT_NS" => Scope::BuildArg,
        "BUILDKIT_STEP_LOG_MAX_SIZE" | "BUILDKIT_STEP_LOG_MAX_SPEED" => Scope::Daemon,
        _ => Scope::Project,
    }
}

/// Where a known setting acts, in a few words (doctor's lines; `.env` says the same); None for a
/// setting the xtask does not know.
pub(crate) fn acts(key: &str) -> Option<&'static str> {
    Some(match key {
        "BUILDKIT_CACHE_MOUNT_NS" => "build argument: the namespace of the cache mounts",
        "BUILDKIT_INLINE_CACHE" => "build argument: 1 writes inline cache, dated, into the image config",
        "BUILDKIT_STEP_LOG_MAX_SIZE" | "BUILDKIT_STEP_LOG_MAX_SPEED" => "the private engine's dockerd environment",
        "BUILDKIT_PROGRESS" => "the xtask's display: the default of --progress (buildx always streams rawjson to it)",
        "COMPOSE_PROJECT_NAME" => "docker compose: the stack's project name (up, down, logs, ps)",
        "REGISTRY" => "the xtask and the bake file: where --push goes and the build cache is shared",
        "SOURCE_URL" => "the bake file: the images' source label and their provenance",
        "BASE_MIRROR" => "the xtask: the registry mirror base images come from",
        "CA_BUNDLE" => "the bake file: a build secret for the steps that download",
        "PUSHGATEWAY" => "the xtask: where each build's metrics are pushed",
        "COSIGN_KEY_FILE" => "the xtask: the private key --sign uses",
        "DOCKER_BUILDKIT" => "nothing: buildx bake always builds with BuildKit",
        "COMPOSE_DOCKER_CLI_BUILD" => "nothing: compose v2 always builds through buildx",
        _ => return None,
    })
}

/// The progress displays the xtask offers (`--progress` and `BUILDKIT_PROGRESS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum ProgressMode {
    /// `tty` on a terminal, else `plain`.
    #[default]
    Auto,
    Plain,
    Tty,
    /// buildx's own JSON stream, passed through.
    Rawjson,
}

impl ProgressMode {
    pub(crate) const ALL: [ProgressMode; 4] =
        [ProgressMode::Auto, ProgressMode::Plain, ProgressMode::Tty, ProgressMode::Rawjson];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ProgressMode::Auto => "auto",
            ProgressMode::Plain => "plain",
            ProgressMode::Tty => "tty",
            ProgressMode::Rawjson => "rawjson",
        }
    }
}

impl std::str::FromStr for ProgressMode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<ProgressMode, String> {
        ProgressMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("use one of {}", ProgressMode::ALL.map(ProgressMode::as_str).join(", ")))
    }
}

impl std::fmt::Display for ProgressMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The rule each known setting's value must follow, as one message naming what is allowed; the
/// flags that carry the same values (`--progress`, `--registry`) use the same rules.
pub(crate) fn check_value(key: &str, value: &str) -> std::result::Result<(), String> {
    plain(value)?;
    let boolean = || matches!(value, "0" | "1" | "true" | "false");
    let ok = match key {
        "" => true,
        _ if value.is_empty() => true,
        "BUILDKIT_PROGRESS" => value.parse::<ProgressMode>().is_ok(),
        "DOCKER_BUILDKIT" | "COMPOSE_DOCKER_CLI_BUILD" | "BUILDKIT_INLINE_CACHE" => boolean(),
        "BUILDKIT_STEP_LOG_MAX_SIZE" | "BUILDKIT_STEP_LOG_MAX_SPEED" => value == "-1" || value.parse::<u64>().is_ok(),
        "REGISTRY" | "BASE_MIRROR" => registry_like(value),
        "CA_BUNDLE" | "COSIGN_KEY_FILE" => Path::new(value).is_file(),
        "PUSHGATEWAY" => parse_gateway(value).is_ok(),
        "COMPOSE_PROJECT_NAME" | "BUILDKIT_CACHE_MOUNT_NS" => {
            value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        }
        _ => true,
    };
    if ok {
        return Ok(());
    }
    Err(match key {
        "BUILDKIT_PROGRESS" => value.parse::<ProgressMode>().unwrap_err(),
        "BUILDKIT_STEP_LOG_MAX_SIZE" | "BUILDKIT_STEP_LOG_MAX_SPEED" => {
            "use a number of bytes, or -1 for no limit".to_string()
        }
        "REGISTRY" | "BASE_MIRROR" => "use HOST:PORT or HOST[:PORT]/PATH, e.g. 127.0.0.1:5000".to_string(),
        "CA_BUNDLE" => {
            "no such file: point it at a CA bundle (Debian: /etc/ssl/certs/ca-certificates.crt) or leave it empty"
                .to_string()
        }
        "COSIGN_KEY_FILE" => {
            "no such file: point it at the key `cosign generate-key-pair` made, or leave it empty".to_string()
        }
        "PUSHGATEWAY" => "use http://HOST:PORT, e.g. http://127.0.0.1:9091, or leave it empty".to_string(),
        "COMPOSE_PROJECT_NAME" | "BUILDKIT_CACHE_MOUNT_NS" => "use lowercase letters, digits, - and _".to_string(),
        _ => "use 1 or 0 (true or false)".to_string(),
    })
}

/// A value without control characters: a line break or a carriage return in a setting would end a
/// header of the HTTP request it goes into, or a line of a file it is written to.
pub(crate) fn plain(value: &str) -> std::result::Result<(), String> {
    match value.char_indices().find(|(_, c)| c.is_control()) {
        Some((at, c)) => {
            Err(format!("holds a control character ({} at byte {}): remove it", c.escape_default(), at + 1))
        }
        None => Ok(()),
    }
}

/// An environment variable the xtask reads as a setting, refused in one line when it holds a
/// control character; None when unset.
pub(crate) fn from_env(key: &str) -> Result<Option<String>> {
    match std::env::var(key) {
        Ok(value) => match plain(&value) {
            Ok(()) => Ok(Some(value)),
            Err(rule) => bail!("environment variable {key}=`{}`: {rule}", value.escape_debug()),
        },
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => bail!("environment variable {key} is not UTF-8: set it to text"),
    }
}

/// `host:port`, `host`, or either followed by `/path`: no scheme, no spaces.
fn registry_like(value: &str) -> bool {
    let host_port = value.split('/').next().unwrap_or_default();
    let (host, port) = host_port.split_once(':').map_or((host_port, None), |(h, p)| (h, Some(p)));
    !host.is_empty()
        && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && port.is_none_or(|p| p.parse::<u16>().is_ok())
        && !value.contains("://")
        && !value.contains(char::is_whitespace)
}

#[derive(Clone, Debug, Default)]
pub struct Settings {
    vars: BTreeMap<String, String>,
}

impl Settings {
    /// `.env` at the project root, with any variable of the same name in the process environment
    /// taking precedence (as docker compose does).
    pub fn load() -> Result<Settings> {
        let path = paths::dotenv_file();
        let mut settings = Settings::parse_file(&path)?;
        for (key, value) in settings.vars.iter_mut() {
            if let Ok(from_env) = std::env::var(key) {
                if let Err(rule) = check_value(key, &from_env) {
                    bail!("environment variable {key}=`{}`: {rule}", from_env.escape_debug());
                }
                *value = from_env;
            }
        }
        Ok(settings)
    }

    /// Reads `.env`. Every error names the file, the line and the key: dotenvy reports a value it
    /// cannot parse (`REGISTRY=not a host`) with the value alone, so each item is placed on its
    /// line by walking the file's lines alongside the parser.
    pub(crate) fn parse_file(path: &Path) -> Result<Settings> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading {} (copy it from git: `git checkout -- .env`)", path.display()))?;
        let lines: Vec<&str> = text.lines().collect();
        let mut cursor = 0;
        let mut vars = BTreeMap::new();
        for item in dotenvy::from_read_iter(text.as_bytes()) {
            match item {
                Ok((k, v)) => {
                    cursor = locate(&lines, cursor, |l| key_of(l) == Some(k.as_str()));
                    if let Err(rule) = check_value(&k, &v) {
                        bail!("{}:{}: {k}=`{}`: {rule}", path.display(), cursor, v.escape_debug());
                    }
                    vars.insert(k, v);
                }
                Err(dotenvy::Error::LineParse(part, _)) => {
                    let first = part.lines().next().unwrap_or_default();
                    let number = locate(&lines, cursor, |l| l.contains(first));
                    let line = lines.get(number.wrapping_sub(1)).copied().unwrap_or(first).trim();
                    let key = key_of(line).filter(|k| !k.is_empty());
                    let named = key.map_or("no KEY= before a value".to_string(), |k| format!("the value of {k}"));
                    // A control character would reach the terminal as it is: only then is the line escaped.
                    let shown = if line.contains(char::is_control) {
                        line.escape_debug().to_string()
                    } else {
                        line.to_string()
                    };
                    bail!(
                        "{}:{number}: cannot parse `{}` ({named}): write it as KEY=value (quote values with spaces: KEY=\"a b\")",
                        path.display(),
                        shown
                    )
                }
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            }
        }
        Ok(Settings { vars })
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str, Scope)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str(), classify(k)))
    }

    fn scoped(&self, scope: Scope) -> Vec<(String, String)> {
        self.iter().filter(|(_, _, s)| *s == scope).map(|(k, v, _)| (k.to_string(), v.to_string())).collect()
    }

    /// Build arguments that BuildKit's Dockerfile frontend reads.
    pub(crate) fn build_args(&self) -> Vec<(String, String)> {
        self.scoped(Scope::BuildArg)
    }

    /// Variables for the BuildKit daemon's own environment.
    pub(crate) fn daemon_env(&self) -> Vec<(String, String)> {
        self.scoped(Scope::Daemon)
    }
}

/// The 1-based number of the first line from `from` (0-based) on that `matches`, else of the line
/// after the last one matched: the parser yields items in the file's order.
fn locate(lines: &[&str], from: usize, matches: impl Fn(&str) -> bool) -> usize {
    lines.iter().skip(from).position(|l| matches(l)).map_or(from + 1, |i| from + i + 1)
}

/// The key a `.env` line sets (`KEY=value`, `export KEY=value`), if it has an `=`.
fn key_of(line: &str) -> Option<&str> {
    let line = line.trim_start();
    let line = line.strip_prefix("export ").unwrap_or(line);
    line.split_once('=').map(|(k, _)| k.trim())
}

/// The project's cache-mount namespace (`BUILDKIT_CACHE_MOUNT_NS`, else the project's name): the
/// mark its cache mounts carry.
pub(crate) fn own_namespace(settings: &Settings) -> String {
    settings.get("BUILDKIT_CACHE_MOUNT_NS").unwrap_or("contextcleanse").to_string()
}

/// A fresh namespace for one run (a bench's cold build, `verify`'s rebuild) inside the project's:
/// `NS--what`, so that `du` and `clean` know its cache mounts by that mark, and no other
/// project's (`contextcleanse-other`) is taken for it.
pub(crate) fn run_namespace(settings: &Settings, what: &str) -> String {
    format!("{}--{what}", own_namespace(settings))
}

/// Where a Prometheus Pushgateway (`PUSHGATEWAY`) lives: `http://host:port` with an optional path prefix.
#[derive(Debug, PartialEq, Eq)]
pub struct Gateway {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) prefix: String,
}

pub(crate) fn parse_gateway(url: &str) -> Result<Gateway> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("PUSHGATEWAY `{url}`: use http://HOST:PORT, e.g. http://127.0.0.1:9091 (https is not supported)")
    };
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let (host, port) = authority.rsplit_once(':').map_or((authority, "9091"), |(h, p)| (h, p));
    let port: u16 =
        port.parse().map_err(|_| anyhow::anyhow!("PUSHGATEWAY `{url}`: the port `{port}` is not a number"))?;
    if host.is_empty() {
        bail!("PUSHGATEWAY `{url}`: no host, e.g. http://127.0.0.1:9091");
    }
    // The host and the path go into the request's first lines: nothing may end a line there.
    if let Some(c) = rest.chars().find(|c| c.is_control() || c.is_whitespace()) {
        bail!("PUSHGATEWAY `{}`: `{}` has no place in a URL: remove it", url.escape_debug(), c.escape_default());
    }
    Ok(Gateway { host: host.to_string(), port, prefix: path.trim_end_matches('/').to_string() })
}

/// Whether this runs in CI (`CI=true` or `CI=1`, as CI services set it): there a test that needs
/// the engine fails rather than skips, and builds export their cache.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

#[cfg(test)]
#[path = "settings_tests.rs"]
mod tests;
