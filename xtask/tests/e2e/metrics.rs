//! Build metrics for real: Debian's Prometheus Pushgateway on 127.0.0.1 receives a build's
//! metrics, read back by scraping it and through Debian's Prometheus (with the repository's
//! `monitoring/` config and alert rules) and its query API; with the gateway gone a build still
//! passes, with a warning.

use super::*;

/// A Debian 12 package's program, unpacked (not installed: no service is started) under
/// `target/xtask/tools/` with the private engine's apt lists, as the engine's own packages are.
fn debian_tool(package: &str, program: &str) -> PathBuf {
    let tools = root().join("target/xtask/tools").join(package);
    let bin = tools.join("usr/bin").join(program);
    if bin.is_file() {
        return bin;
    }
    if let Some(p) = which(program) {
        return p;
    }
    let base = std::env::var("XTASK_ENGINE_DIR").map(PathBuf::from).unwrap_or_else(|_| root().join("target/engine"));
    let apt = base.join("apt");
    let debs = tools.with_extension("debs");
    std::fs::create_dir_all(&debs).unwrap();
    let opt = |k: &str, v: &Path| format!("{k}={}", v.display());
    let out = Command::new("apt-get")
        .args(["-q", "-o", &opt("Dir::Etc::SourceList", &apt.join("sources.list"))])
        .args(["-o", "Dir::Etc::SourceParts=/dev/null", "-o", &opt("Dir::State::Lists", &apt.join("lists"))])
        .args([
            "-o",
            &opt("Dir::Cache", &apt.join("cache")),
            "-o",
            "Debug::NoLocking=1",
            "-o",
            "APT::Sandbox::User=root",
        ])
        .args(["download", &format!("{package}/bookworm")])
        .current_dir(&debs)
        .output()
        .expect("running apt-get (the private engine's apt lists are needed: cargo xtask engine up)");
    assert!(out.status.success(), "apt-get download {package}: {}", String::from_utf8_lossy(&out.stderr));
    let deb = std::fs::read_dir(&debs)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"));
    let deb = deb.expect("apt-get left a .deb");
    let ok = Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tools).status().unwrap().success();
    assert!(ok && bin.is_file(), "unpacking {}", deb.display());
    bin
}

/// Starts a server on `addr` (loopback) and waits until it listens.
fn serve(bin: &Path, args: &[String], addr: &str) -> Server {
    let child = Command::new(bin)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{} did not listen on {addr}", bin.display());
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

/// Kills a server the test started when the test ends, passing or not.
struct Server(std::process::Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn a_build_reaches_prometheus_through_the_gateway_and_a_down_gateway_costs_a_warning() {
    let t0 = Instant::now();
    let addr = format!("127.0.0.1:{}", free_port());
    let gateway = serve(
        &debian_tool("prometheus-pushgateway", "prometheus-pushgateway"),
        &[format!("--web.listen-address={addr}")],
        &addr,
    );
    // Prometheus with the repository's scrape config and alert rules, pointed at this gateway.
    let tmp = std::env::temp_dir().join(format!("xtask-e2e-prom-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let config = std::fs::read_to_string(root().join("monitoring/prometheus.yml")).unwrap();
    let config = config
        .replace("127.0.0.1:9091", &addr)
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("  - alerts.yml", &format!("  - {}", root().join("monitoring/alerts.yml").display()));
    std::fs::write(tmp.join("prometheus.yml"), config).unwrap();
    let prom_addr = format!("127.0.0.1:{}", free_port());
    let _prometheus = serve(
        &debian_tool("prometheus", "prometheus"),
        &[
            format!("--config.file={}", tmp.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", tmp.join("data").display()),
            format!("--web.listen-address={prom_addr}"),
        ],
        &prom_addr,
    );
    let url = format!("http://{addr}");
    let out = must(&["backend"], &[("PUSHGATEWAY", &url)]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains(&format!("metrics: pushed to {url}")), "{said}");

    let scraped = String::from_utf8(registry_get(&addr, "/metrics")).unwrap();
    let line = |name: &str| {
        scraped
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{")) && l.contains("target=\"backend\""))
            .unwrap_or_else(|| panic!("no {name} for backend in the gateway's metrics:\n{scraped}"))
            .to_string()
    };
    let steps = line("xtask_target_steps");
    assert!(steps.contains("job=\"xtask_build\"") && steps.contains("recipe=\"backend\""), "{steps}");
    let value = |l: &str| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap();
    assert!(value(&steps) > 0.0, "{steps}");
    let ratio = value(&line("xtask_target_cache_hit_ratio"));
    assert!((0.0..=1.0).contains(&ratio));
    // The values agree with what `cargo xtask metrics` prints for the same build.
    let printed = String::from_utf8(must(&["metrics"], &[]).stdout).unwrap();
    let printed_steps =
        printed.lines().find(|l| l.starts_with("xtask_target_steps{") && l.contains("\"backend\"")).unwrap();
    assert_eq!(value(printed_steps), value(&steps));
    assert!(scraped
        .lines()
        .any(|l| l.starts_with("xtask_build_success{") && l.contains("recipe=\"backend\"") && l.ends_with(" 1")));

    // Prometheus scraped the same value, read through its query API.
    let query = "/api/v1/query?query=xtask_target_steps%7Btarget%3D%22backend%22%2Crecipe%3D%22backend%22%7D";
    let deadline = Instant::now() + Duration::from_secs(60);
    let answer = loop {
        let body: Value = serde_json::from_slice(&registry_get(&prom_addr, query)).unwrap();
        if body["data"]["result"].as_array().is_some_and(|r| !r.is_empty()) {
            break body;
        }
        assert!(Instant::now() < deadline, "Prometheus never had xtask_target_steps: {body}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let got: f64 = answer["data"]["result"][0]["value"][1].as_str().unwrap().parse().unwrap();
    assert_eq!(got, value(&steps), "{answer}");
    drop(_prometheus);
    let _ = std::fs::remove_dir_all(&tmp);

    // The gateway gone: the build passes, with one warning.
    drop(gateway);
    let out = must(&["backend"], &[("PUSHGATEWAY", &url)]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(said.lines().filter(|l| l.starts_with("warning: metrics not pushed")).count(), 1, "{said}");
    eprintln!("metrics e2e took {:.1}s", t0.elapsed().as_secs_f64());
}
