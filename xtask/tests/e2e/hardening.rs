//! The services under abuse, on running containers: the backend refuses an oversized body with 413
//! before reading it, never echoes input in a validation error and serves its API docs only in
//! the development image; the frontend's page carries its security headers; compose limits memory.

use super::*;

/// One request written as given on a loopback port; the status, the head and the body of the
/// answer. The write may stop early: the server may answer (and close) before taking it all.
pub(super) fn exchange(port: u16, request: &[u8]) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connecting to a published port");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = s.write_all(request);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = String::from_utf8_lossy(raw.get(split + 4..).unwrap_or_default()).to_string();
    (code, head, body)
}

fn post(path: &str, declared: usize, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// The backend on `port` as the production image runs it.
pub(super) fn backend_holds_up(port: u16) {
    // 30 MB declared: refused from the header alone, with a short answer, before the body is sent.
    let started = Instant::now();
    let (code, _, body) = exchange(port, &post("/api/v1/classify", 30_000_000, b"{\"subject\": \""));
    assert_eq!(code, 413, "{body}");
    assert!(body.len() < 200 && started.elapsed() < Duration::from_secs(5), "{body}");
    let secret = format!("{{\"subject\": \"{}\", \"body\": 42}}", "SECRET-INPUT-".repeat(1000));
    let (code, _, body) = exchange(port, &post("/api/v1/classify", secret.len(), secret.as_bytes()));
    assert_eq!(code, 422, "{body}");
    assert!(!body.contains("SECRET-INPUT") && body.len() < 1000, "a validation error echoes no input: {body}");
    for path in ["/docs", "/redoc", "/openapi.json"] {
        assert_eq!(http_get(port, path).0, 404, "{path} is off in the production image");
    }
}

/// The frontend's page on `port`: its security headers.
pub(super) fn page_headers_hold(port: u16) {
    let (code, head, _) = exchange(port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    assert_eq!(code, 200, "{head}");
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| panic!("GET / has no {name}:\n{head}"))
    };
    let csp = header("content-security-policy");
    assert!(csp.contains("script-src 'self' 'nonce-") && !csp.contains("unsafe"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("object-src 'none'"), "{csp}");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert_eq!(header("x-frame-options"), "DENY");
}

/// Compose's memory limit of a running container, in bytes (0: none).
pub(super) fn memory_limit(container: &str) -> u64 {
    docker(&["inspect", "--format", "{{.HostConfig.Memory}}", container]).parse().unwrap_or(0)
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn the_development_image_serves_the_api_docs_and_the_production_one_does_not() {
    let image = "contextcleanse-backend:e2e-development";
    must(&["build", "backend-development", "--set", &format!("backend-development.tags={image}")], &[]);
    let c = Container::run("e2e-backend-development", &["-p", "127.0.0.1::8000", image]);
    c.wait_healthy(Duration::from_secs(90));
    let shown = docker(&["port", &c.0, "8000/tcp"]);
    let port: u16 = shown.lines().next().and_then(|l| l.rsplit(':').next()).and_then(|p| p.parse().ok()).unwrap();
    for path in ["/docs", "/redoc", "/openapi.json"] {
        assert_eq!(http_get(port, path).0, 200, "{path} in development");
    }
    assert_eq!(label(image, "org.opencontainers.image.title"), "contextcleanse-backend");
    drop(c);
    let _ = Command::new("docker").args(["image", "rm", image]).output();
}
