//! Secrets and the cache: planted tokens reach no layer, no local cache blob and no registry
//! cache blob, and the local cache drops the blob of a deleted file.

use super::*;

/// A token no earlier run can have left anywhere: random per process and per call.
fn random_token(what: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(what.as_bytes());
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    let mut h2 = std::collections::hash_map::RandomState::new().build_hasher();
    h2.write_u64(h.finish());
    format!("planted-{:016x}{:016x}", h.finish(), h2.finish())
}

/// The blobs of a local cache folder (an OCI layout) whose bytes, gunzipped when they are gzip,
/// contain `needle`.
fn cache_blobs_holding(cache: &Path, needles: &[String]) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(cache.join("blobs/sha256")) else { return found };
    for blob in entries.flatten() {
        let raw = std::fs::read(blob.path()).unwrap();
        // The bake file exports zstd; gzip blobs come from older exports or layers shared with an image.
        let data = if raw.starts_with(&[0x1f, 0x8b]) {
            Command::new("gzip").args(["-dc", blob.path().to_str().unwrap()]).output().unwrap().stdout
        } else if raw.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            let out =
                Command::new("zstd").args(["-dcq", blob.path().to_str().unwrap()]).output().expect("the zstd CLI");
            assert!(out.status.success(), "zstd -dc {}", blob.path().display());
            out.stdout
        } else {
            raw
        };
        found.extend(tokens_in(&data, needles).into_iter().map(|hit| (blob.path(), hit)));
    }
    found
}

/// The `needles` that occur in `data`. grep searches hundreds of megabytes for every needle at
/// once; a byte-by-byte search in this unoptimised test binary took minutes.
fn tokens_in(data: &[u8], needles: &[String]) -> std::collections::BTreeSet<String> {
    let scratch = std::env::temp_dir().join(format!("xtask-e2e-blob-{}", std::process::id()));
    std::fs::write(&scratch, data).unwrap();
    let patterns = scratch.with_extension("tokens");
    std::fs::write(&patterns, needles.join("\n")).unwrap();
    let grep = Command::new("grep").args(["-a", "-o", "-F", "-f"]).arg(&patterns).arg(&scratch).output().expect("grep");
    let _ = std::fs::remove_file(&scratch);
    let _ = std::fs::remove_file(&patterns);
    assert!(grep.status.code().is_some_and(|c| c <= 1), "grep failed: {}", String::from_utf8_lossy(&grep.stderr));
    String::from_utf8_lossy(&grep.stdout).lines().map(str::to_string).collect()
}

/// How many blobs a local cache folder holds.
fn cache_blob_count(cache: &Path) -> usize {
    std::fs::read_dir(cache.join("blobs/sha256")).map(|d| d.count()).unwrap_or(0)
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn k_planted_secrets_reach_no_layer_and_no_cache() {
    let dir = scratch_copy("planted-secrets");
    // The secrets a careless checkout holds, at the top of each context and deep inside the
    // folders the images do copy.
    let plant = [
        "backend/.env.local",
        "backend/app/.env.local",
        "backend/app/routes/deeper/.env.production.local",
        "backend/app/.npmrc",
        "backend/secrets.txt",
        "backend/app/secrets.txt",
        "backend/app/certs/server.pem",
        "backend/app/certs/server.key",
        "backend/app/.git/config",
        "frontend/.env.local",
        "frontend/app/.env.local",
        "frontend/app/api/health/.env.production.local",
        "frontend/.npmrc",
        "frontend/lib/.npmrc",
        "frontend/secrets.txt",
        "frontend/app/secrets.txt",
        "frontend/public/tls/server.pem",
        "frontend/lib/keys/signing.key",
        "frontend/app/.git/config",
    ];
    let mut tokens = Vec::new();
    for file in plant {
        let token = random_token(file);
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("TOKEN={token}\n")).unwrap();
        tokens.push(token);
    }
    let tag = |name: &str| format!("contextcleanse-{name}:e2e-secrets");
    let sets = [format!("backend.tags={}", tag("backend")), format!("frontend.tags={}", tag("frontend"))];
    // A local build exports no cache unless asked: ask, so the exported cache can be searched.
    must(
        &["build", "--cache-export", "--set", &sets[0], "--set", &sets[1]],
        &[("XTASK_PROJECT_ROOT", dir.to_str().unwrap())],
    );
    for (name, user) in [("backend", "1000:1000"), ("frontend", "1001:1001")] {
        let image = tag(name);
        // Every file's path and bytes, searched at once.
        let (mut files, mut all) = (0, Vec::new());
        let layers = layer_files(&image, |path, body| {
            files += 1;
            all.extend_from_slice(format!("\n{path}\n").as_bytes());
            all.extend_from_slice(body);
        });
        assert!(layers >= 3 && files > 100, "walked {files} files in {layers} layers of {image}");
        let leaks = tokens_in(&all, &tokens);
        assert!(leaks.is_empty(), "{image} holds planted secrets: {leaks:?}");
        // A folder whose every file was left out is not in the image either.
        let emptied: &[&str] = if name == "backend" {
            &["/app/app/certs", "/app/app/routes", "/app/app/.git"]
        } else {
            &["/app/public/tls"]
        };
        for path in emptied {
            let ls = ["run", "--rm", "--network", "none", "--entrypoint", "ls", image.as_str(), path];
            assert!(!docker_ok(&ls), "{image} keeps the folder {path}, whose files were all left out");
        }
        assert_eq!(docker(&["image", "inspect", "--format", "{{.Config.User}}", &image]), user, "{image} runs as ids");
        let uid = docker(&["run", "--rm", "--network", "none", "--entrypoint", "id", &image, "-u"]);
        assert_eq!(uid, user.split(':').next().unwrap(), "{image}");
        let cache = dir.join("target/buildx-cache").join(name);
        assert!(cache_blob_count(&cache) > 3, "the build exported its cache to {}", cache.display());
        let leaks = cache_blobs_holding(&cache, &tokens);
        assert!(leaks.is_empty(), "planted secrets in the exported cache: {leaks:?}");
        let _ = Command::new("docker").args(["image", "rm", &image]).output();
    }
    // The same build with its mode=max cache exported to the engine's registry: no blob the
    // registry holds for it may carry a token either.
    let registry = registry();
    let repo = |name: &str| format!("e2e-secrets-{name}-{}", std::process::id());
    let mut args = vec!["build".to_string()];
    for name in ["backend", "frontend"] {
        args.extend(["--set".to_string(), format!("{name}.tags={}", tag(name))]);
        args.extend([
            "--set".to_string(),
            format!("{name}.cache-to=type=registry,ref={registry}/{}:buildcache,mode=max", repo(name)),
        ]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    must(&args, &[("XTASK_PROJECT_ROOT", dir.to_str().unwrap())]);
    for name in ["backend", "frontend"] {
        let copy = dir.join("target/registry-cache").join(name);
        let blobs = registry_blobs(&registry, &repo(name), "buildcache", &copy);
        assert!(blobs > 3, "the registry holds the cache of {name} ({blobs} blobs)");
        let leaks = cache_blobs_holding(&copy, &tokens);
        assert!(leaks.is_empty(), "planted secrets in the registry cache of {name}: {leaks:?}");
        let _ = Command::new("docker").args(["image", "rm", &tag(name)]).output();
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// Copies every blob the manifest `repo:reference` reaches into `dir/blobs/sha256/` (the local
/// cache's layout) and returns how many there are.
fn registry_blobs(addr: &str, repo: &str, reference: &str, dir: &Path) -> usize {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let mut todo: Vec<Value> =
        vec![serde_json::from_slice(&registry_get(addr, &format!("/v2/{repo}/manifests/{reference}"))).unwrap()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(doc) = todo.pop() {
        let mut digests = Vec::new();
        collect_digests(&doc, &mut digests);
        for d in digests {
            if !seen.insert(d.clone()) {
                continue;
            }
            let body = registry_get(addr, &format!("/v2/{repo}/blobs/{d}"));
            std::fs::write(dir.join("blobs/sha256").join(d.trim_start_matches("sha256:")), &body).unwrap();
            if let Ok(inner) = serde_json::from_slice::<Value>(&body) {
                todo.push(inner);
            }
        }
    }
    seen.len()
}

/// The digests of every descriptor (an object with a media type, a digest and a size) in `v`; a
/// cache config's records carry digests of cache keys too, which are not blobs.
fn collect_digests(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            let descriptor = m.contains_key("size") && m.contains_key("mediaType");
            if let (true, Some(d)) = (descriptor, m.get("digest").and_then(Value::as_str)) {
                out.push(d.to_string());
            }
            m.values().for_each(|x| collect_digests(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_digests(x, out)),
        _ => {}
    }
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn l_local_cache_drops_the_blob_of_a_deleted_file() {
    let dir = scratch_copy("cache-gc");
    let env = [("XTASK_PROJECT_ROOT", dir.to_str().unwrap())];
    let set = "backend.tags=contextcleanse-backend:e2e-cache-gc";
    let token = random_token("cache-gc");
    let planted = dir.join("backend/app/planted_for_the_test.py");
    std::fs::write(&planted, format!("PLANTED = \"{token}\"\n")).unwrap();
    must(&["backend", "--cache-export", "--set", set], &env);
    let cache = dir.join("target/buildx-cache/backend");
    let holding: Vec<PathBuf> =
        cache_blobs_holding(&cache, std::slice::from_ref(&token)).into_iter().map(|(p, _)| p).collect();
    assert!(!holding.is_empty(), "the planted file's layer is in the exported cache {}", cache.display());
    std::fs::remove_file(&planted).unwrap();
    let out = must(&["backend", "--cache-export", "--set", set], &env);
    for blob in &holding {
        assert!(!blob.exists(), "{} still holds the deleted file", blob.display());
    }
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("xtask: local cache: removed "), "the clean-up says what it freed:\n{said}");
    // What is left is whole: the index still reaches a cache the next build can use.
    assert!(cache_blob_count(&cache) > 3);
    let doctor = must(&["doctor"], &env);
    let line =
        String::from_utf8_lossy(&doctor.stdout).lines().find(|l| l.starts_with("ok   cache ")).map(str::to_string);
    let line = line.expect("doctor has a cache line");
    assert!(line.contains("target/buildx-cache/backend") && !line.contains("unreferenced"), "{line}");
    let _ = Command::new("docker").args(["image", "rm", "contextcleanse-backend:e2e-cache-gc"]).output();
    std::fs::remove_dir_all(dir).unwrap();
}

/// Every blob `index.json` reaches (every descriptor, as [`collect_digests`] finds them) that the
/// cache folder lacks: what a build importing the cache would miss.
fn missing_blobs(cache: &Path) -> Vec<String> {
    let mut todo: Vec<Value> = vec![serde_json::from_slice(&std::fs::read(cache.join("index.json")).unwrap()).unwrap()];
    let (mut seen, mut missing) = (std::collections::BTreeSet::new(), Vec::new());
    while let Some(doc) = todo.pop() {
        let mut digests = Vec::new();
        collect_digests(&doc, &mut digests);
        for d in digests.into_iter().filter(|d| seen.insert(d.clone())) {
            match std::fs::read(cache.join("blobs/sha256").join(d.trim_start_matches("sha256:"))) {
                Err(_) => missing.push(d),
                Ok(body) => todo.extend(serde_json::from_slice::<Value>(&body).ok()),
            }
        }
    }
    missing
}

#[test]
#[ignore = "needs the engine: run through `cargo xtask test`"]
fn m_two_exporting_builds_at_once_leave_a_cache_the_next_build_imports_whole() {
    let dir = scratch_copy("cache-race");
    let env = [("XTASK_PROJECT_ROOT", dir.to_str().unwrap())];
    let tag = "backend.tags=contextcleanse-backend:e2e-cache-race";
    must(&["backend", "--cache-export", "--set", tag], &env);
    // Both re-run the app stage, so each writes layers of its own into the one cache folder: the
    // second waits for the first's export (BuildKit's local exporter cannot share a folder with
    // another export), and neither's clean-up removes what the other may be using.
    let rerun = ["backend", "--cache-export", "--set", tag, "--set", "backend.no-cache-filter=app"];
    let outs = std::thread::scope(|s| {
        let a = s.spawn(|| must(&rerun, &env));
        let b = s.spawn(|| must(&rerun, &env));
        [a.join().unwrap(), b.join().unwrap()]
    });
    let said: String = outs.iter().map(|o| String::from_utf8_lossy(&o.stderr).to_string()).collect();
    let cache = dir.join("target/buildx-cache/backend");
    assert_eq!(missing_blobs(&cache), Vec::<String>::new(), "the cache lost blobs its index names:\n{said}");
    assert!(
        said.contains("local cache clean-up left for a later build") || said.contains("xtask: local cache: removed "),
        "one build cleaned up, or said why it left it:\n{said}"
    );
    // The next build imports it, says nothing of a missing blob, and its own clean-up runs alone.
    let out = must(&["backend", "--cache-export", "--set", tag], &env);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let complaints: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("not found") || l.starts_with("xtask: warning") || l.contains("ERROR"))
        .collect();
    assert_eq!(complaints, Vec::<&str>::new(), "{text}");
    assert_eq!(missing_blobs(&cache), Vec::<String>::new());
    let _ = Command::new("docker").args(["image", "rm", "contextcleanse-backend:e2e-cache-race"]).output();
    std::fs::remove_dir_all(dir).unwrap();
}
