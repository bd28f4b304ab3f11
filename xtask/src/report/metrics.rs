//! Build metrics for a team to watch: a build's report in the Prometheus text exposition format,
//! pushed to the Pushgateway named by the `PUSHGATEWAY` setting.
//!
//! The push is a plain HTTP/1.1 PUT over a socket: the gateway is on the team's own network (or
//! 127.0.0.1), speaks plain HTTP, and an HTTP client crate would cost every contributor compile time
//! for one request. A gateway that does not answer costs one warning, never the build.

use std::fmt::Write as _;
use std::net::ToSocketAddrs;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::report::BuildReport;
use crate::settings::{parse_gateway, Gateway};
use crate::util::http::{exchange, Bounds};

/// The Pushgateway job every build's metrics are grouped under.
pub(crate) const JOB: &str = "xtask_build";

/// A label value as the text format wants it: backslash, double quote and newline escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    format!("{{{}}}", inner.join(","))
}

/// The labels that say which build: the recipe (the group or names built), the engine and its channel.
fn build_labels(report: &BuildReport) -> Vec<(&'static str, String)> {
    let engine = report.engine.as_ref();
    vec![
        ("recipe", report.names.join(",")),
        ("engine", engine.map_or("unknown".to_string(), |e| format!("docker-{}-{}", e.docker, e.store))),
        ("channel", engine.and_then(|e| e.private.clone()).unwrap_or_else(|| "user".to_string())),
    ]
}

/// One metric family: its HELP and TYPE lines, then one sample per label set.
fn family(out: &mut String, name: &str, help: &str, samples: &[(Vec<(&str, String)>, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (pairs, value) in samples {
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let _ = writeln!(out, "{name}{} {value}", labels(&pairs));
    }
}

/// The report as Prometheus text: whole-build gauges labelled by recipe, engine and channel, and
/// per-target gauges with a `target` label as well. Every value is a gauge: each push replaces the
/// last build's values, and Prometheus keeps the series over time.
pub(crate) fn exposition(report: &BuildReport) -> String {
    let base = build_labels(report);
    let with =
        |extra: Vec<(&'static str, String)>| -> Vec<(&str, String)> { base.iter().cloned().chain(extra).collect() };
    let mut out = String::new();
    family(
        &mut out,
        "xtask_build_wall_seconds",
        "Wall time of the whole build command.",
        &[(with(vec![]), report.wall_secs)],
    );
    let ok = if report.status == crate::report::Status::Ok { 1.0 } else { 0.0 };
    family(&mut out, "xtask_build_success", "1 if the build succeeded, else 0.", &[(with(vec![]), ok)]);
    family(
        &mut out,
        "xtask_build_status",
        "1 for the build's status (ok, failed or interrupted).",
        &[(with(vec![("status", report.status.to_string())]), 1.0)],
    );
    let per_target = |f: &dyn Fn(&crate::report::TargetReport) -> Option<f64>| -> Vec<(Vec<(&str, String)>, f64)> {
        report.targets.iter().filter_map(|t| f(t).map(|v| (with(vec![("target", t.name.clone())]), v))).collect()
    };
    family(&mut out, "xtask_target_wall_seconds", "Wall time of one target.", &per_target(&|t| Some(t.wall_secs)));
    family(&mut out, "xtask_target_steps", "Build steps of one target.", &per_target(&|t| Some(t.steps as f64)));
    family(
        &mut out,
        "xtask_target_cached_steps",
        "Steps served from the cache.",
        &per_target(&|t| Some(t.cached as f64)),
    );
    family(
        &mut out,
        "xtask_target_cache_hit_ratio",
        "Cached steps over steps, 0 to 1.",
        &per_target(&|t| Some(t.cache_hit_ratio)),
    );
    family(
        &mut out,
        "xtask_target_success",
        "1 if the target was built, else 0.",
        &per_target(&|t| Some(if t.outcome == crate::report::Outcome::Ok { 1.0 } else { 0.0 })),
    );
    family(
        &mut out,
        "xtask_target_image_bytes",
        "Size of the target's image.",
        &per_target(&|t| t.size_bytes.map(|b| b as f64)),
    );
    out
}

/// The request that replaces this build's group on the gateway, as bytes: one group per recipe
/// and channel, so a production build does not wipe the local build's series.
pub fn request(gw: &Gateway, report: &BuildReport, body: &str) -> String {
    let labels = build_labels(report);
    let mut path = if gw.prefix.is_empty() { String::new() } else { format!("/{}", gw.prefix) };
    let _ = write!(path, "/metrics/job/{JOB}");
    for (k, v) in labels.iter().filter(|(k, _)| *k != "engine") {
        // Label values go in the path; the gateway's base64 form takes any value, `/` and `,` included.
        let _ = write!(path, "/{k}@base64/{}", base64_url(v.as_bytes()));
    }
    format!(
        "PUT {path} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        gw.host,
        gw.port,
        body.len()
    )
}

/// URL-safe base64 (RFC 4648 §5), as the Pushgateway reads `label@base64` path parts; an empty
/// value is `=`, which the gateway documents for that case.
fn base64_url(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "=".to_string();
    }
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE, bytes)
}

/// The whole push (connect, send, answer) ends within this, so a gateway that hangs costs a build
/// ten seconds at most.
pub(crate) const PUSH_DEADLINE: Duration = Duration::from_secs(10);

/// The most of the gateway's answer that is read: its status line is all that is needed.
const ANSWER_CAP: usize = 64 * 1024;

/// Sends the report's metrics; the answer must be a 2xx. A stop signal (Ctrl-C) ends the wait.
pub(crate) fn push(url: &str, report: &BuildReport) -> Result<()> {
    let stopped = || crate::util::stop::stopped().is_some();
    push_within(url, report, &Bounds { deadline: PUSH_DEADLINE, cap: ANSWER_CAP, stopped: &stopped })
}

fn push_within(url: &str, report: &BuildReport, bounds: &Bounds) -> Result<()> {
    let gw = parse_gateway(url)?;
    let req = request(&gw, report, &exposition(report));
    let addr = (gw.host.as_str(), gw.port)
        .to_socket_addrs()
        .with_context(|| format!("resolving {}", gw.host))?
        .next()
        .with_context(|| format!("no address for {}", gw.host))?;
    let answer = exchange(addr, req.as_bytes(), bounds).with_context(|| format!("pushing to {url}"))?;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.lines().next().unwrap_or_default();
    if !status.split_whitespace().nth(1).is_some_and(|c| c.starts_with('2')) {
        bail!("{url} answered `{}`", status.escape_debug());
    }
    Ok(())
}

/// `cargo xtask metrics [ID]`: the last (or the named) build's metrics in the text format.
pub fn command(id: Option<&str>) -> Result<()> {
    let history = crate::report::history();
    let h = crate::report::pick(&history, id.unwrap_or("last"))?;
    let path = crate::util::paths::reports_dir().join(format!("{}.json", h.id));
    let report = crate::report::read_report(&path).map_err(|u| anyhow::anyhow!("{u}"))?;
    print!("{}", exposition(&report));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::TargetReport;

    fn sample() -> BuildReport {
        let mut r = BuildReport {
            status: crate::report::Status::Ok,
            names: vec!["production".into()],
            wall_secs: 12.5,
            ..Default::default()
        };
        r.targets.push(TargetReport {
            name: "backend".into(),
            outcome: crate::report::Outcome::Ok,
            wall_secs: 7.25,
            steps: 10,
            cached: 8,
            cache_hit_ratio: 0.8,
            size_bytes: Some(1234),
            ..Default::default()
        });
        r
    }

    #[test]
    fn exposition_has_help_type_and_labelled_samples() {
        let text = exposition(&sample());
        assert!(text.contains("# TYPE xtask_build_wall_seconds gauge\n"));
        assert!(
            text.contains("xtask_build_wall_seconds{recipe=\"production\",engine=\"unknown\",channel=\"user\"} 12.5\n")
        );
        assert!(text.contains(
            "xtask_target_cached_steps{recipe=\"production\",engine=\"unknown\",channel=\"user\",target=\"backend\"} 8\n"
        ));
        assert!(text.contains("xtask_target_image_bytes{recipe=\"production\",engine=\"unknown\",channel=\"user\",target=\"backend\"} 1234\n"));
        assert!(text.contains("status=\"ok\"} 1\n"));
        // Every sample line is NAME{...} VALUE, and every family is declared before its samples.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, rest) = line.split_once('{').expect(line);
            assert!(text.contains(&format!("# TYPE {name} gauge")), "{line}");
            let value = rest.rsplit_once("} ").expect(line).1;
            value.parse::<f64>().expect(line);
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(labels(&[("a", "x\"y\\z\nw")]), "{a=\"x\\\"y\\\\z\\nw\"}");
    }

    #[test]
    fn gateway_urls_are_parsed_and_bad_ones_named() {
        assert_eq!(
            parse_gateway("http://127.0.0.1:9091").unwrap(),
            Gateway { host: "127.0.0.1".into(), port: 9091, prefix: String::new() }
        );
        assert_eq!(parse_gateway("http://gw/prom/").unwrap().prefix, "prom");
        assert!(format!("{:#}", parse_gateway("https://gw").unwrap_err()).contains("use http://HOST:PORT"));
        assert!(parse_gateway("http://gw:x").is_err());
    }

    #[test]
    fn request_puts_the_group_with_base64_labels() {
        let gw = parse_gateway("http://127.0.0.1:9091").unwrap();
        let req = request(&gw, &sample(), "x 1\n");
        assert!(
            req.starts_with(
                "PUT /metrics/job/xtask_build/recipe@base64/cHJvZHVjdGlvbg==/channel@base64/dXNlcg== HTTP/1.1\r\n"
            ),
            "{req}"
        );
        assert!(req.ends_with("Content-Length: 4\r\nConnection: close\r\n\r\nx 1\n"));
        assert_eq!(base64_url(b""), "=");
        assert_eq!(base64_url(b"a,b/c"), "YSxiL2M=");
    }

    #[test]
    fn a_gateway_that_accepts_and_never_answers_costs_the_deadline_at_most() {
        assert_eq!(PUSH_DEADLINE, Duration::from_secs(10));
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let never = || false;
        let t = std::time::Instant::now();
        let e = push_within(&url, &sample(), &Bounds { deadline: Duration::from_secs(1), cap: 1024, stopped: &never })
            .unwrap_err();
        // The kernel completes the connection from its backlog; nobody reads or answers.
        assert!(t.elapsed() < Duration::from_millis(1600), "{:?}", t.elapsed());
        assert_eq!(format!("{e:#}"), format!("pushing to {url}: no answer within 1 s while reading the answer"));
        drop(l);
    }

    #[test]
    fn a_gateway_that_is_down_is_an_error_not_a_panic() {
        // Port 9 (discard) is closed on a machine of this kind: the push fails with the URL named.
        let e = push("http://127.0.0.1:9", &sample()).unwrap_err();
        assert!(format!("{e:#}").contains("127.0.0.1:9"));
    }
}
