//! `cargo xtask`: ContextCleanse's build recipes, driving Docker BuildKit through
//! `docker buildx bake`. This file parses the flags and hands each subcommand to its module.

mod adapt;
mod bake;
mod bench;
mod build;
mod cache;
mod cachegc;
mod cachepolicy;
mod check;
mod dockerapi;
mod doctor;
mod engine;
mod flags;
mod meta;
mod oci;
mod paths;
mod print;
mod rawjson;
mod report;
mod reproducible;
mod run;
mod runner;
mod settings;
mod standin;
mod stop;
mod syntax;
mod test;
mod verify;

use build::{Options, Recipe};
use flags::XtaskCmd;

/// The flags every building command shares, copied into `build::Options`.
macro_rules! options {
    ($f:expr, push: $push:expr, oci: $oci:expr) => {
        Options {
            dry_run: $f.dry_run,
            no_cache: $f.no_cache,
            pull: $f.pull,
            progress: $f.progress.clone(),
            builder: $f.builder.clone(),
            set: $f.set.clone(),
            registry: $f.registry.clone(),
            version: $f.version.clone(),
            push: $push,
            oci: $oci,
            check: false,
            cache_export: $f.cache_export,
        }
    };
}

/// `engine up | down | status | env`, with the channel parsed once.
fn engine_command(cmd: flags::EngineCmd) -> anyhow::Result<()> {
    let channel = |c: &Option<String>| c.as_deref().map(str::parse::<engine::Channel>).transpose();
    match cmd {
        flags::EngineCmd::Up(f) => engine::up(&settings::Settings::load()?, channel(&f.channel)?, f.classic),
        flags::EngineCmd::Down(f) => engine::down(channel(&f.channel)?, f.classic),
        flags::EngineCmd::Status(_) => engine::status(&settings::Settings::load()?),
        flags::EngineCmd::Env(f) => engine::env(channel(&f.channel)?, f.classic),
    }
}

fn main() {
    let flags = flags::Xtask::from_env_or_exit();
    if let Err(e) = stop::handler() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
    let result = match flags.subcommand {
        XtaskCmd::Help(_) => {
            // xflags keeps its help text private: asking for --help is the way to get it.
            if let Err(help) = flags::Xtask::from_vec(vec!["--help".into()]) {
                println!("{help}");
            }
            Ok(())
        }
        XtaskCmd::Build(f) => build::run(Recipe::Local, &f.names, &options!(f, push: false, oci: false)),
        XtaskCmd::Backend(f) => {
            build::run(Recipe::Local, &["backend".to_string()], &options!(f, push: false, oci: false))
        }
        XtaskCmd::Frontend(f) => {
            build::run(Recipe::Local, &["frontend".to_string()], &options!(f, push: false, oci: false))
        }
        XtaskCmd::Production(f) => build::run(Recipe::Production, &[], &options!(f, push: f.push, oci: false)),
        XtaskCmd::Multiplatform(f) => {
            build::run(Recipe::Multiplatform, &f.names, &options!(f, push: f.push, oci: f.oci))
        }
        XtaskCmd::Print(f) => {
            let opts = Options {
                dry_run: true,
                builder: f.builder.clone(),
                set: f.set.clone(),
                registry: f.registry.clone(),
                version: f.version.clone(),
                ..Options::default()
            };
            build::run(Recipe::Local, &f.name.into_iter().collect::<Vec<_>>(), &opts)
        }
        XtaskCmd::Check(f) => {
            let names = if f.names.is_empty() { check::GROUPS.map(String::from).to_vec() } else { f.names.clone() };
            build::run(Recipe::Local, &names, &Options { check: true, ..Options::default() })
        }
        XtaskCmd::Doctor(_) => doctor::run(),
        XtaskCmd::Verify(f) => verify::run(&f.image, f.platform.as_deref()),
        XtaskCmd::Engine(f) => engine_command(f.subcommand),
        XtaskCmd::Report(f) => report::command(f.compare, f.list, f.json, &f.ids),
        XtaskCmd::Bench(f) => bench::run(&f.names, f.runs.unwrap_or(3)),
        XtaskCmd::Test(f) => test::run(f.no_e2e, f.e2e_filter.as_deref()),
    };
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
