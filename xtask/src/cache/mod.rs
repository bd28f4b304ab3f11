//! The build cache: where a build's cache goes (`policy`), keeping the local cache bounded (`gc`),
//! the records the project's builds made (`records`), which of the engine's records are this
//! project's (`ownership`, `cargo xtask du`), removing them (`clean`), and the build lock that
//! keeps clean-up and builds apart (`lock`).

pub mod clean;
pub(crate) mod gc;
pub mod lock;
pub mod ownership;
pub(crate) mod policy;
pub(crate) mod records;
