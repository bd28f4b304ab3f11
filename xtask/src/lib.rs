//! The xtask as a library. The folders are the architecture: each uses only those below it
//! (see ARCHITECTURE.md). The binary (`main.rs`) parses the flags and calls `commands` and
//! `build`; the tidy and end-to-end tests use the same code instead of copies.

pub mod commands;
pub mod build;
pub mod cache;
pub mod images;
pub mod report;
pub mod engine;
pub mod settings;
pub mod flags;
pub mod util;
