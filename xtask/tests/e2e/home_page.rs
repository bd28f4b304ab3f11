//! The home page in a real browser: both images built by the xtask, run on a network of their
//! own with ephemeral ports on 127.0.0.1, and the page loaded in headless Chromium, which must show
//! each service's version, revision and build date as the services report them. Screenshots (a
//! desktop window and a phone) are kept under `target/xtask/e2e/` for CI to keep as artifacts.

use super::*;

/// A user network removed when the test ends (after its containers, which are dropped first).
struct Network(String);

impl Network {
    fn create(name: &str) -> Network {
        let _ = Command::new("docker").args(["network", "rm", name]).output();
        docker(&["network", "create", name]);
        Network(name.to_string())
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["network", "rm", &self.0]).output();
    }
}

/// The host port the engine chose for a container's port, after checking it is on loopback.
fn published_port(container: &Container, inner: &str) -> u16 {
    let shown = docker(&["port", &container.0, inner]);
    assert!(shown.lines().all(|l| l.starts_with("127.0.0.1:")), "{} published on loopback only: {shown}", container.0);
    shown.lines().next().and_then(|l| l.rsplit(':').next()).and_then(|p| p.parse().ok()).expect("a published port")
}

fn chromium() -> String {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|n| Command::new(n).arg("--version").output().is_ok_and(|o| o.status.success()))
        .expect("headless Chromium on PATH: `cargo xtask test` installs it (Debian: apt-get install chromium)")
        .to_string()
}

/// Runs headless Chromium on `url` with `extra` flags; its standard output. The page's console
/// goes to Chromium's log on standard error, where a Content-Security-Policy violation would show.
pub(super) fn browse(url: &str, extra: &[&str]) -> String {
    let (out, log) = browse_logged(url, extra);
    let refused: Vec<&str> = log.lines().filter(|l| l.contains("Content Security Policy")).collect();
    assert!(refused.is_empty(), "the page breaks its own Content-Security-Policy:\n{}", refused.join("\n"));
    out
}

/// As [`browse`], with Chromium's log (the page's console included) as well.
fn browse_logged(url: &str, extra: &[&str]) -> (String, String) {
    let profile = std::env::temp_dir().join(format!("xtask-e2e-chromium-{}", std::process::id()));
    let profile_flag = format!("--user-data-dir={}", profile.display());
    let mut args = vec![
        "--headless",
        // The test runs as root in CI, where Chromium's sandbox cannot start; the page is our own,
        // on loopback.
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-sync",
        "--metrics-recording-only",
        "--enable-logging=stderr",
        "--v=0",
        // Time for the page's scripts to run (and for the policy to refuse any) before the dump.
        "--virtual-time-budget=3000",
        profile_flag.as_str(),
    ];
    args.extend_from_slice(extra);
    args.push(url);
    let out = Command::new(chromium()).args(&args).output().expect("running chromium");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(out.status.success(), "chromium {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    (String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
}

/// The text of some HTML: tags dropped, the few entities React writes decoded.
pub(super) fn text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#x27;", "'").replace("&amp;", "&")
}

/// The inner HTML of the element marked `data-field="NAME"`.
fn field<'a>(dom: &'a str, name: &str) -> &'a str {
    let marker = format!("data-field=\"{name}\"");
    let at = dom.find(&marker).unwrap_or_else(|| panic!("the page has no {name} row:\n{dom}"));
    let open_end = at + dom[at..].find('>').unwrap() + 1;
    let close = open_end + dom[open_end..].find("</dd>").unwrap();
    &dom[open_end..close]
}

#[test]
#[ignore = "needs the engine and Chromium: run through `cargo xtask test`"]
fn shows_both_services_version_revision_and_build_date() {
    // Tags of this test's own, so that another build of `:dev` on the same engine cannot swap
    // the images under it.
    let [backend_image, frontend_image] = ["backend", "frontend"].map(|n| format!("contextcleanse-{n}:e2e-home-page"));
    must(
        &[
            "build",
            "--set",
            &format!("backend.tags={backend_image}"),
            "--set",
            &format!("frontend.tags={frontend_image}"),
        ],
        &[],
    );
    let network = Network::create("e2e-home-page");
    let backend = Container::run(
        "e2e-home-backend",
        &["--network", &network.0, "--network-alias", "backend", "-p", "127.0.0.1::8000", &backend_image],
    );
    let frontend = Container::run(
        "e2e-home-frontend",
        &["--network", &network.0, "-e", "BACKEND_URL=http://backend:8000", "-p", "127.0.0.1::3000", &frontend_image],
    );
    backend.wait_healthy(Duration::from_secs(90));
    frontend.wait_healthy(Duration::from_secs(90));
    let head = git_head();
    let reported = [
        ("backend", health(published_port(&backend, "8000/tcp"), "/health")),
        ("frontend", health(published_port(&frontend, "3000/tcp"), "/api/health")),
    ];
    let url = format!("http://127.0.0.1:{}/", published_port(&frontend, "3000/tcp"));

    let dom = browse(&url, &["--dump-dom"]);
    assert_eq!(text(field(&dom, "backend-status")), "ok", "the frontend reaches the backend over the network");
    for (service, health) in &reported {
        assert!(health["revision"].as_str().unwrap().starts_with(&head), "{service} reports commit {head}: {health}");
        assert!(health["built"].as_str().unwrap().ends_with('Z'), "{service} reports a UTC build date: {health}");
        for key in ["version", "revision", "built"] {
            let shown = field(&dom, &format!("{service}-{key}"));
            assert_eq!(text(shown), health[key].as_str().unwrap(), "the page shows the {service}'s {key}");
        }
        // A date may wrap between its parts (and between date and time), never inside a number.
        let built = field(&dom, &format!("{service}-built"));
        assert!(built.contains("T<wbr>") || built.contains("T</span><span><wbr>"), "{service}-built: {built}");
        // A revision has no place to break inside its hash.
        let revision = field(&dom, &format!("{service}-revision"));
        assert!(text(revision.split("<wbr>").next().unwrap()).starts_with(&head), "{service}-revision: {revision}");
    }

    super::hardening::page_headers_hold(published_port(&frontend, "3000/tcp"));

    let shots = root().join("target/xtask/e2e");
    std::fs::create_dir_all(&shots).unwrap();
    for (file, size) in [("home.png", "1024,700"), ("home-phone.png", "390,844")] {
        let path = shots.join(file);
        let _ = std::fs::remove_file(&path);
        browse(&url, &[&format!("--window-size={size}"), &format!("--screenshot={}", path.display())]);
        let png = std::fs::read(&path).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", path.display()));
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{} is a real screenshot", path.display());
    }
    // The other health state, under the same policy: the backend gone, the page says so.
    docker(&["stop", &backend.0]);
    let dom = browse(&url, &["--dump-dom"]);
    assert_eq!(text(field(&dom, "backend-status")), "unreachable", "the page shows the backend down");
    assert_eq!(text(field(&dom, "frontend-status")), "ok");
}
