//! The subcommands that are not a build: one file each (`doctor`, `audit`, `bench`, `stack`,
//! `test`, …), with the few helpers only they use (`ports`, `chromium`, `actionlint`, `crosscheck`).

pub(crate) mod actionlint;
pub mod audit;
pub mod bench;
pub mod bench_second;
pub(crate) mod chromium;
pub(crate) mod crosscheck;
pub mod doctor;
pub(crate) mod ports;
pub mod stack;
pub mod test;
