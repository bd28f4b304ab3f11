//! `cargo xtask up | down | logs | ps`: the compose stack on the engine the xtask builds with.
//! `up` refuses a taken port before anything starts, builds what is stale through the xtask's own
//! build (so the images carry the version, commit and date), then has compose start the services
//! and wait for the images' own health checks.

use std::collections::BTreeSet;

use anyhow::{bail, Context, Result};

use crate::build::{self, Options, Recipe};
use crate::commands::ports::{self, Published};
use crate::engine::{self, Engine};
use crate::images::meta;
use crate::settings::Settings;
use crate::util::paths;
use crate::util::runner::{self, Cmd};

/// A service of the compose file, as `docker compose config` resolves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Service {
    pub(crate) name: String,
    pub(crate) ports: Vec<Published>,
    pub(crate) depends_on: Vec<String>,
}

/// The services of `docker compose config --format json`, in name order.
pub(crate) fn parse_config(json: &str) -> Result<Vec<Service>> {
    let config: serde_json::Value = serde_json::from_str(json).context("reading `docker compose config`'s JSON")?;
    let services = config["services"].as_object().context("`docker compose config` lists no services")?;
    Ok(services
        .iter()
        .map(|(name, s)| {
            let ports = s["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    // compose 2.26 gives `published` as a string, newer ones may give a number.
                    let published = match &p["published"] {
                        serde_json::Value::String(s) => s.parse().ok()?,
                        v => u16::try_from(v.as_u64()?).ok()?,
                    };
                    let host_ip = p["host_ip"].as_str().unwrap_or("0.0.0.0").to_string();
                    Some(Published { service: name.clone(), host_ip, port: published })
                })
                .collect();
            let depends_on = s["depends_on"].as_object().map(|d| d.keys().cloned().collect()).unwrap_or_default();
            Service { name: name.clone(), ports, depends_on }
        })
        .collect())
}

/// The services `up NAME...` starts: the named ones (all without names) and what they depend on.
pub(crate) fn closure(services: &[Service], names: &[String]) -> Result<Vec<String>> {
    let known: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    check_services(&known, names)?;
    let mut wanted: Vec<String> =
        if names.is_empty() { known.iter().map(|s| s.to_string()).collect() } else { names.to_vec() };
    let mut all = BTreeSet::new();
    while let Some(name) = wanted.pop() {
        if let Some(s) = services.iter().find(|s| s.name == name) {
            if all.insert(name) {
                wanted.extend(s.depends_on.iter().cloned());
            }
        }
    }
    Ok(all.into_iter().collect())
}

/// Refuses a name that is not a service of the compose file, before any command carries it.
pub(crate) fn check_services(known: &[&str], names: &[String]) -> Result<()> {
    match names.iter().find(|n| !known.contains(&n.as_str())) {
        Some(name) => bail!("`{name}` is not a service of docker-compose.yml; its services are {}", known.join(", ")),
        None => Ok(()),
    }
}

/// `docker compose` in the project's folder (where it reads `.env` itself), on the engine, with the
/// build metadata the bake file gets (the compose file passes VERSION, GIT_COMMIT and BUILD_DATE).
fn compose(engine: &Engine, vars: &[(String, String)]) -> Cmd {
    engine.docker().envs(vars).dir(paths::project_root()).arg("compose")
}

/// The arguments of `docker compose up` for these services: detached, no build of its own (the
/// xtask built them), waiting for health.
pub(crate) fn up_args(services: &[String]) -> Vec<String> {
    let mut args: Vec<String> = ["up", "--detach", "--wait", "--wait-timeout", "180", "--no-build", "--remove-orphans"]
        .map(String::from)
        .to_vec();
    args.extend(after_dashes(services));
    args
}

/// Services after `--`, so none is read as one of compose's flags.
fn after_dashes(services: &[String]) -> Vec<String> {
    let dashes = (!services.is_empty()).then(|| "--".to_string());
    dashes.into_iter().chain(services.iter().cloned()).collect()
}

/// The lines `up` ends with: each published port as a URL.
pub(crate) fn url_lines(services: &[Service], started: &[String]) -> Vec<String> {
    services
        .iter()
        .filter(|s| started.contains(&s.name))
        .flat_map(|s| s.ports.iter().map(move |p| format!("{:<10} http://{}:{}/", s.name, p.host_ip, p.port)))
        .collect()
}

/// The port this project's own running containers already publish (a second `up` reuses them).
fn own_ports(compose: &Cmd) -> BTreeSet<u16> {
    let out = runner::read(&compose.clone().args(["ps", "--format", "json"])).unwrap_or_default();
    // compose 2.26 prints one JSON array, newer ones one object per line.
    let values: Vec<serde_json::Value> = match serde_json::from_str::<serde_json::Value>(&out) {
        Ok(serde_json::Value::Array(a)) => a,
        _ => out.lines().filter_map(|l| serde_json::from_str(l).ok()).collect(),
    };
    values
        .iter()
        .flat_map(|c| c["Publishers"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["PublishedPort"].as_u64().and_then(|p| u16::try_from(p).ok()))
        .collect()
}

/// Refuses the first taken port in one line.
fn check_ports(engine: &Engine, compose: &Cmd, wanted: &[&Published]) -> Result<()> {
    let own = own_ports(compose);
    for p in wanted.iter().filter(|p| !own.contains(&p.port)) {
        if ports::free(&p.host_ip, p.port) {
            continue;
        }
        let filter = format!("publish={}", p.port);
        let container = runner::read(&engine.docker().args(["ps", "--filter", &filter, "--format", "{{.Names}}"]))
            .ok()
            .and_then(|names| names.lines().next().map(str::to_string));
        bail!("{}", ports::taken_line(p, &crate::util::net::holders(p.port), container.as_deref()));
    }
    Ok(())
}

pub fn up(names: &[String], opts: &Options) -> Result<()> {
    crate::build::request::check_options(opts)?;
    let settings = Settings::load()?;
    let engine = engine::connect(&settings, true)?;
    let version = opts.version.as_deref().map(|v| meta::parse_version(v, "--release-version")).transpose()?;
    let vars = meta::collect(version.as_ref())?.bake_vars();
    let compose = compose(&engine, &vars);
    let config = runner::read(&compose.clone().args(["config", "--format", "json"]))?;
    let services = parse_config(&config)?;
    let started = closure(&services, names)?;
    let published: Vec<&Published> =
        services.iter().filter(|s| started.contains(&s.name)).flat_map(|s| &s.ports).collect();
    check_ports(&engine, &compose, &published)?;
    // The compose services are the bake targets of the same names.
    build::run(Recipe::Local, &started, opts).context("building the stack's images")?;
    runner::run(&compose.clone().args(up_args(&started)))
        .context("starting the stack (`cargo xtask logs` shows why; `cargo xtask down` stops what started)")?;
    println!("the stack is up and healthy on {}:", engine.describe());
    for line in url_lines(&services, &started) {
        println!("  {line}");
    }
    println!("`cargo xtask logs` shows its output, `cargo xtask down` stops it");
    Ok(())
}

/// The engine the stack runs on; none answering means there is nothing to stop or show.
fn running_engine(settings: &Settings) -> Result<Engine> {
    engine::connect(settings, false).context("no engine answers, so no stack runs")
}

/// `down`: compose's containers and network go; images, volumes and the build cache stay.
pub fn down() -> Result<()> {
    let settings = Settings::load()?;
    let engine = running_engine(&settings)?;
    runner::run(&compose(&engine, &[]).args(["down", "--remove-orphans"]))
}

/// `docker compose logs`'s arguments for `logs [--follow] [--tail N] [SERVICE...]`.
pub(crate) fn logs_args(follow: bool, tail: Option<&str>, services: &[String]) -> Vec<String> {
    let mut args = vec!["logs".to_string()];
    args.extend(follow.then(|| "--follow".to_string()));
    args.extend(tail.iter().flat_map(|n| ["--tail".to_string(), n.to_string()]));
    args.extend(after_dashes(services));
    args
}

/// `logs`: compose's own, on the engine the xtask uses, for services the compose file has.
pub fn logs(follow: bool, tail: Option<&str>, services: &[String]) -> Result<()> {
    let settings = Settings::load()?;
    let engine = running_engine(&settings)?;
    let compose = compose(&engine, &[]);
    if !services.is_empty() {
        let known = runner::read(&compose.clone().args(["config", "--services"]))?;
        check_services(&known.lines().map(str::trim).collect::<Vec<_>>(), services)?;
    }
    runner::run(&compose.args(logs_args(follow, tail, services)))
}

/// `ps`: compose's own, on the engine the xtask uses.
pub fn ps() -> Result<()> {
    let settings = Settings::load()?;
    let engine = running_engine(&settings)?;
    runner::run(&compose(&engine, &[]).arg("ps"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The shape `docker compose config --format json` gives (compose 2.26; 2.40 alike).
    const CONFIG: &str = r#"{"name":"contextcleanse","services":{
        "backend":{"ports":[{"mode":"ingress","host_ip":"127.0.0.1","target":8000,"published":"8000","protocol":"tcp"}]},
        "frontend":{"depends_on":{"backend":{"condition":"service_healthy","required":true}},
                    "ports":[{"host_ip":"127.0.0.1","target":3000,"published":3000}]}}}"#;

    #[test]
    fn config_gives_services_ports_and_dependencies() {
        let s = parse_config(CONFIG).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].ports, vec![Published { service: "backend".into(), host_ip: "127.0.0.1".into(), port: 8000 }]);
        assert_eq!(s[1].ports[0].port, 3000, "a numeric `published` reads too");
        assert_eq!(s[1].depends_on, vec!["backend".to_string()]);
    }

    #[test]
    fn a_service_brings_what_it_depends_on_and_a_typo_is_refused() {
        let s = parse_config(CONFIG).unwrap();
        assert_eq!(closure(&s, &[]).unwrap(), ["backend", "frontend"]);
        assert_eq!(closure(&s, &["frontend".to_string()]).unwrap(), ["backend", "frontend"]);
        assert_eq!(closure(&s, &["backend".to_string()]).unwrap(), ["backend"]);
        let err = closure(&s, &["db".to_string()]).unwrap_err().to_string();
        assert_eq!(err, "`db` is not a service of docker-compose.yml; its services are backend, frontend");
    }

    #[test]
    fn logs_pass_their_flags_to_compose() {
        assert_eq!(logs_args(false, None, &[]), ["logs"]);
        assert_eq!(
            logs_args(true, Some("20"), &["backend".to_string()]),
            ["logs", "--follow", "--tail", "20", "--", "backend"]
        );
        let known = ["backend", "frontend"];
        assert!(check_services(&known, &["frontend".to_string()]).is_ok());
        let err = check_services(&known, &["-f".to_string()]).unwrap_err().to_string();
        assert_eq!(err, "`-f` is not a service of docker-compose.yml; its services are backend, frontend");
    }

    #[test]
    fn up_builds_nothing_itself_and_waits_for_health() {
        let args = up_args(&["backend".to_string()]);
        assert_eq!(args.join(" "), "up --detach --wait --wait-timeout 180 --no-build --remove-orphans -- backend");
        let s = parse_config(CONFIG).unwrap();
        assert_eq!(url_lines(&s, &["backend".to_string()]), ["backend    http://127.0.0.1:8000/"]);
    }
}
