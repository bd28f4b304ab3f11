//! `cargo xtask`: ContextCleanse's build recipes, driving Docker BuildKit through
//! `docker buildx bake`. This file parses the flags and hands each subcommand to its module.

use xtask::build::{self, check};
use xtask::cache::{clean, ownership};
use xtask::commands::{audit, bench, bench_second, doctor, stack, test};
use xtask::images::{signing, verify};
use xtask::report::{self, metrics};
use xtask::util::stop;
use xtask::{engine, flags, settings};

use build::{Options, Recipe};
use flags::{Args, Parsed, Sub};

/// The flags every building command shares (`flags::BUILD`), read in one place.
fn options(a: &Args) -> Options {
    Options {
        dry_run: a.switch("dry-run"),
        no_cache: a.switch("no-cache"),
        pull: a.switch("pull"),
        progress: a.value("progress"),
        builder: a.value("builder"),
        set: a.values("set"),
        registry: a.value("registry"),
        version: a.value("release-version"),
        push: a.switch_if_declared("push"),
        oci: a.switch_if_declared("oci"),
        check: false,
        json: false,
        cache_export: a.switch("cache-export"),
        sign: a.switch_if_declared("sign"),
        key: a.value_if_declared("key"),
        allow: a.values("allow"),
        keyless: a.switch_if_declared("keyless"),
    }
}

/// The private engine the flags name: its name, channel (parsed once) and store.
fn which_engine(a: &Args) -> anyhow::Result<engine::Which> {
    Ok(engine::Which {
        name: a.value("name"),
        channel: a.value("channel").as_deref().map(str::parse).transpose()?,
        classic: a.switch("classic"),
    })
}

fn dispatch(a: &Args) -> anyhow::Result<()> {
    let names = || a.positionals.clone();
    match a.command.sub {
        Sub::Build => build::run(Recipe::Local, &names(), &options(a)),
        Sub::Backend => build::run(Recipe::Local, &["backend".to_string()], &options(a)),
        Sub::Frontend => build::run(Recipe::Local, &["frontend".to_string()], &options(a)),
        Sub::Production => build::run(Recipe::Production, &[], &options(a)),
        Sub::Multiplatform => build::run(Recipe::Multiplatform, &names(), &options(a)),
        Sub::Print => {
            let opts = Options {
                dry_run: true,
                builder: a.value("builder"),
                set: a.values("set"),
                registry: a.value("registry"),
                version: a.value("release-version"),
                allow: a.values("allow"),
                json: a.switch("json"),
                ..Options::default()
            };
            build::run(Recipe::Local, &names(), &opts)
        }
        Sub::Check => {
            let names = if a.positionals.is_empty() { check::GROUPS.map(String::from).to_vec() } else { names() };
            build::run(Recipe::Local, &names, &Options { check: true, ..Options::default() })
        }
        Sub::Doctor => doctor::run(),
        Sub::Verify => verify_image(a),
        Sub::Sbom => match a.positionals.first() {
            Some(image) => xtask::images::sbom::run(image, a.value("platform").as_deref(), a.switch("json")),
            None => anyhow::bail!(
                "`sbom` needs an image, e.g. `cargo xtask sbom 127.0.0.1:5000/contextcleanse-backend:0.4.0`"
            ),
        },
        Sub::EngineUp => engine::up(&settings::Settings::load()?, &which_engine(a)?),
        Sub::EngineDown => engine::down(&which_engine(a)?),
        Sub::EngineStatus => engine::status(&settings::Settings::load()?, &which_engine(a)?),
        Sub::EngineEnv => engine::env(&which_engine(a)?),
        Sub::Up => stack::up(&names(), &Options { version: a.value("release-version"), ..Options::default() }),
        Sub::Down => stack::down(),
        Sub::Logs => stack::logs(a.switch("follow"), a.value("tail").as_deref(), &names()),
        Sub::Ps => stack::ps(),
        Sub::Du => ownership::du(),
        Sub::Clean => {
            let asked = clean::Asked::from_flags(a.switch("cache"), a.switch("images"), a.switch("all"));
            let ask = clean::asks(a.switch("cache"), a.switch("images"), a.switch("all"), a.switch("yes"));
            clean::run(&asked, a.switch("dry-run"), ask)
        }
        Sub::Report => report::command(
            &report::Request {
                compare: a.switch("compare"),
                list: a.switch("list"),
                json: a.switch("json"),
                markdown: a.switch("markdown"),
                why: a.switch("why"),
                trend: a.switch("trend"),
                last: a.switch("last"),
                ids: names(),
            },
            &|| engine::connect(&settings::Settings::load()?, false),
        ),
        Sub::Bench => {
            let runs = a.value("runs").map(|n| n.parse::<usize>()).transpose();
            let runs = runs.map_err(|e| anyhow::anyhow!("--runs wants a whole number: {e}"))?;
            match a.switch("second-engine") {
                true => bench_second::run(&names(), runs.unwrap_or(3)),
                false => bench::run(&names(), runs.unwrap_or(3)),
            }
        }
        Sub::Metrics => metrics::command(a.positionals.first().map(String::as_str)),
        Sub::Audit => audit::run(a.switch("json")),
        Sub::Test => test::run(a.switch("no-e2e"), a.switch("quick"), a.value("e2e-filter").as_deref()),
    }
}

/// `verify IMAGE`: the signature when a public key is given, then the rebuild's comparison.
fn verify_image(a: &Args) -> anyhow::Result<()> {
    let Some(image) = a.positionals.first() else {
        anyhow::bail!("`verify` needs an image, e.g. `cargo xtask verify 127.0.0.1:5000/contextcleanse-backend:0.4.0`")
    };
    let env = std::env::var("COSIGN_PUBLIC_KEY").ok();
    let no_rebuild = a.switch("no-rebuild");
    match verify::signature_key(a.value("key"), env, a.switch("accept-unchecked-signature"), no_rebuild)? {
        Some(key) => signing::command(image, Some(&key))?,
        None => println!("signature: not checked (--accept-unchecked-signature)"),
    }
    if no_rebuild {
        return Ok(());
    }
    verify::run(image, a.value("platform").as_deref())
}

/// How the xtask ends when a stop signal ends it: as the shell expects of a program that signal
/// ended (128+N), so `timeout`, CI runners and scripts can tell a stop from a failure.
fn exit_stopped(stop: stop::Stop) -> ! {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "xtask: stopped by {}", stop.name());
    std::process::exit(stop.exit_code());
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match flags::parse(&argv) {
        Ok(Parsed::Run(args)) => {
            for w in &args.warnings {
                eprintln!("xtask: warning: {w}");
            }
            args
        }
        Ok(Parsed::Help(text)) => {
            print!("{text}");
            return;
        }
        Err(line) => {
            eprintln!("error: {line}");
            std::process::exit(2);
        }
    };
    if let Err(e) = stop::handler(exit_stopped) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
    let result = dispatch(&args);
    if let Err(e) = result {
        // A build stopped by a signal exits as the shell expects of a program that signal ended
        // (128+N), so `timeout`, CI runners and scripts can tell a stop from a failure.
        if let Some(stopped) = e.downcast_ref::<stop::Stopped>() {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "xtask: {stopped}");
            std::process::exit(stopped.stop.exit_code());
        }
        // One line: the chain of contexts from outer to inner, then any captured output.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
