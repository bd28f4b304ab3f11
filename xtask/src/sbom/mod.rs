//! SBOMs: the generator the production builds attach them with (`generator`), and
//! `cargo xtask sbom IMAGE`, which reads one back from a pushed image.

pub mod generator;
