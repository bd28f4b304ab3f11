//! The subcommands that are not a build: one file each (`doctor`, `audit`, `bench`, `stack`,
//! `test`, …), with the few helpers only they use (`ports`, `chromium`, `actionlint`, `crosscheck`).

pub mod actionlint;
pub mod audit;
pub mod bench;
pub mod bench_second;
pub mod chromium;
pub mod crosscheck;
pub mod doctor;
pub mod ports;
pub mod stack;
pub mod test;
