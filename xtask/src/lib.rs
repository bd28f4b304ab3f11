//! The xtask as a library: every recipe, the runner, the engine and the reports. The binary
//! (`main.rs`) parses the flags and calls in here; the tidy and end-to-end tests use the same
//! code (tar reading, HTTP, the scratch copy, the last report, the npm pin) instead of copies.

pub mod actionlint;
pub mod adapt;
pub mod bake;
pub mod bench;
pub mod bench_second;
pub mod build;
pub mod cache;
pub mod cachegc;
pub mod cachepolicy;
pub mod check;
pub mod chromium;
pub mod clean;
pub mod crosscheck;
pub mod dockerapi;
pub mod doctor;
pub mod engine;
pub mod flags;
pub mod http;
pub mod inputs;
pub mod lock;
pub mod meta;
pub mod oci;
pub mod paths;
pub mod plan;
pub mod platform;
pub mod ports;
pub mod print;
pub mod provision;
pub mod rawjson;
pub mod report;
pub mod reproducible;
pub mod request;
pub mod run;
pub mod runner;
pub mod settings;
pub mod stack;
pub mod standin;
pub mod standin_share;
pub mod stop;
pub mod syntax;
pub mod tar;
pub mod test;
pub mod usage;
pub mod verify;
