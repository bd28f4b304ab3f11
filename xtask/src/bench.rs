//! `cargo xtask bench`: build scenarios measured in a scratch copy of the sources.

use anyhow::{bail, Result};

pub fn run(_names: &[String], _runs: usize) -> Result<()> {
    bail!("bench is not implemented yet (issue 5 stays open)")
}
