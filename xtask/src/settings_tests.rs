//! Unit tests of the settings (`settings.rs`).

use super::*;

fn parse(text: &str) -> Result<Settings> {
    // Tests run on several threads: each call gets a file of its own.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("xtask-env-{}-{n}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    let parsed = Settings::parse_file(&path);
    std::fs::remove_file(&path).unwrap();
    parsed
}

#[test]
fn each_buildkit_setting_goes_where_it_takes_effect() {
    let s = parse(
        "DOCKER_BUILDKIT=1\nBUILDKIT_PROGRESS=plain\nBUILDKIT_INLINE_CACHE=1\n\
         BUILDKIT_CACHE_MOUNT_NS=cc\nBUILDKIT_STEP_LOG_MAX_SIZE=10485760\nREGISTRY=\n",
    )
    .unwrap();
    let keys = |v: Vec<(String, String)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(classify("DOCKER_BUILDKIT"), Scope::NoEffect);
    assert_eq!(classify("BUILDKIT_PROGRESS"), Scope::Project, "the xtask's own display reads it");
    assert_eq!(keys(s.build_args()), ["BUILDKIT_CACHE_MOUNT_NS", "BUILDKIT_INLINE_CACHE"]);
    assert_eq!(keys(s.daemon_env()), ["BUILDKIT_STEP_LOG_MAX_SIZE"]);
    assert_eq!(s.get("REGISTRY"), None, "an empty value counts as unset");
}

#[test]
fn malformed_line_is_reported_with_its_number() {
    let err = parse("# comment\nA=1\nthis is not a setting\n").unwrap_err().to_string();
    assert!(err.contains(":3: cannot parse `this is not a setting` (no KEY= before a value)"), "{err}");
}

#[test]
fn a_value_the_parser_refuses_is_named_with_its_line_and_key() {
    let err = parse("# registry\nA=1\n\nREGISTRY=not a host\n").unwrap_err().to_string();
    assert!(err.contains(".env-") || err.contains("xtask-env-"), "{err}");
    assert!(err.contains(":4: cannot parse `REGISTRY=not a host` (the value of REGISTRY)"), "{err}");
    // The same value under a key that also appears earlier, well formed, is found on its own line.
    let err = parse("A=x\nB=1\nexport A=x y\n").unwrap_err().to_string();
    assert!(err.contains(":3: cannot parse `export A=x y` (the value of A)"), "{err}");
    let err = parse("A='unterminated\nB=1\n").unwrap_err().to_string();
    assert!(err.contains(":1: cannot parse `A='unterminated` (the value of A)"), "{err}");
    let err = parse("A=1\nB=\"x\\q\"\n").unwrap_err().to_string();
    assert!(err.contains(":2: cannot parse `B=\"x\\q\"` (the value of B)"), "{err}");
    // A value that parses but breaks its rule is named on its own line, not an earlier one.
    let err = parse("BUILDKIT_PROGRESS=plain\n# again\nBUILDKIT_PROGRESS=fancy\n").unwrap_err().to_string();
    assert!(err.contains(":3: BUILDKIT_PROGRESS=`fancy`"), "{err}");
}

#[test]
fn values_are_checked_with_the_flags_rules_and_named_with_their_line() {
    let err = parse("DOCKER_BUILDKIT=1\nBUILDKIT_PROGRESS=fancy\n").unwrap_err().to_string();
    assert!(err.ends_with(":2: BUILDKIT_PROGRESS=`fancy`: use one of auto, plain, tty, rawjson"), "{err}");
    let err = parse("BUILDKIT_INLINE_CACHE=yes\n").unwrap_err().to_string();
    assert!(err.contains(":1: BUILDKIT_INLINE_CACHE=`yes`: use 1 or 0"), "{err}");
    assert!(parse("BUILDKIT_STEP_LOG_MAX_SIZE=10MB\n").unwrap_err().to_string().contains("number of bytes"));
    assert!(parse("REGISTRY=http://localhost:5000\n").unwrap_err().to_string().contains("HOST:PORT"));
    assert!(parse("CA_BUNDLE=/no/such/bundle.pem\n").unwrap_err().to_string().contains("no such file"));
    assert!(parse("COMPOSE_PROJECT_NAME=My Project\n").is_err());
    assert!(parse(
        "REGISTRY=127.0.0.1:5000\nBASE_MIRROR=mirror.example/hub\nBUILDKIT_STEP_LOG_MAX_SPEED=-1\nOTHER='x y'\n"
    )
    .is_ok());
}

#[test]
fn a_control_character_in_a_setting_is_refused_in_one_line_with_its_key_and_line() {
    // dotenvy reads `\n` in double quotes as a line break.
    let err = parse("A=1\nPUSHGATEWAY=\"http://127.0.0.1:9091/x\\nX-Injected: 1\"\n").unwrap_err().to_string();
    assert!(
        err.ends_with(
            ":2: PUSHGATEWAY=`http://127.0.0.1:9091/x\\nX-Injected: 1`: holds a control character (\\n at byte 24): remove it"
        ),
        "{err}"
    );
    assert!(!err.contains('\n') && !err.contains('\r'), "{err}");
    let err = parse("OTHER=\"a\tb\"\n").unwrap_err().to_string();
    assert!(err.contains(":1: OTHER=`a\\tb`: holds a control character (\\t at byte 2)"), "{err}");
    assert!(parse("OTHER=\"a b é\"\n").is_ok(), "spaces and letters are text");
    // The environment is held to the same rule (a variable only this test uses).
    std::env::set_var("XTASK_TEST_CONTROL_SETTING", "x\r\ny");
    let err = from_env("XTASK_TEST_CONTROL_SETTING").unwrap_err().to_string();
    std::env::remove_var("XTASK_TEST_CONTROL_SETTING");
    assert_eq!(err, "environment variable XTASK_TEST_CONTROL_SETTING=`x\\r\\ny`: holds a control character (\\r at byte 2): remove it");
    assert_eq!(from_env("XTASK_TEST_NO_SUCH_SETTING").unwrap(), None);
    let err = parse_gateway("http://127.0.0.1:9091/x\r\nX-Injected: 1").unwrap_err().to_string();
    assert!(err.contains("has no place in a URL") && !err.contains('\n'), "{err}");
}

#[test]
fn quoted_values_and_comments_are_understood() {
    let s = parse("# c\nA=\"x y\" # trailing\nB='z'\n").unwrap();
    assert_eq!(s.get("A"), Some("x y"));
    assert_eq!(s.get("B"), Some("z"));
}

#[test]
fn the_process_environment_wins_over_the_file() {
    // Only this test reads or writes this variable.
    std::env::set_var("BUILDKIT_STEP_LOG_MAX_SPEED", "12345");
    let s = Settings::load().unwrap();
    std::env::remove_var("BUILDKIT_STEP_LOG_MAX_SPEED");
    assert_eq!(s.get("BUILDKIT_STEP_LOG_MAX_SPEED"), Some("12345"));
    assert_eq!(s.get("BUILDKIT_STEP_LOG_MAX_SIZE"), Some("10485760"), "the rest still comes from .env");
}

#[test]
fn the_project_env_file_holds_only_settings_that_act_and_says_where() {
    let text = std::fs::read_to_string(paths::dotenv_file()).unwrap();
    let s = Settings::parse_file(&paths::dotenv_file()).unwrap();
    for (key, _, scope) in s.iter() {
        let place = acts(key).unwrap_or_else(|| panic!(".env sets {key}, which no part of the build reads"));
        assert_ne!(scope, Scope::NoEffect, ".env sets {key}, which acts on {place}: remove it");
    }
    // Every setting, set or commented out, has a comment in its paragraph saying where it acts.
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let key = line.trim_start_matches("# ").split('=').next().unwrap_or_default();
        if acts(key).is_some() && line.contains('=') {
            let paragraph = lines[..i].iter().rev().take_while(|l| !l.trim().is_empty());
            let said = paragraph.filter(|l| l.starts_with('#') && !l.contains('=')).count();
            assert!(said > 0, ".env line {}: say in a comment above {key} where it acts", i + 1);
        }
    }
    for key in [
        "BUILDKIT_CACHE_MOUNT_NS",
        "BUILDKIT_INLINE_CACHE",
        "BUILDKIT_STEP_LOG_MAX_SIZE",
        "BUILDKIT_STEP_LOG_MAX_SPEED",
    ] {
        assert!(s.get(key).is_some(), ".env lacks {key}");
    }
}
