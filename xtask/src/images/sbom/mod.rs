//! SBOMs: the generator the production builds attach them with (`generator`), and
//! `cargo xtask sbom IMAGE`, which reads one back from a pushed image (`read`) and prints it as
//! a table or as the SPDX JSON.

pub(crate) mod generator;
pub mod read;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::engine;
use crate::settings::Settings;
use crate::util::runner;

/// Prints the SBOM of each wanted platform of a pushed image. The registry is read through
/// buildx's imagetools, which brings the registry's credentials and TLS settings.
pub fn run(image: &str, platform: Option<&str>, json: bool) -> Result<()> {
    let settings = Settings::load()?;
    let engine = engine::connect(&settings, false)?;
    // The image named on the command line goes after `--`: it is never read as a flag.
    let imagetools = |flags: &[&str]| {
        runner::read(
            &engine.docker().args(["buildx", "imagetools", "inspect"]).args(flags.iter().copied()).names(&[image]),
        )
    };
    let Ok(raw) = imagetools(&["--raw"]) else {
        bail!("`{image}` is in no registry this engine reaches: name a pushed image, e.g. 127.0.0.1:5000/contextcleanse-backend:TAG (`cargo xtask production --push`)");
    };
    let index: Value = serde_json::from_str(&raw).with_context(|| format!("reading the index of `{image}`"))?;
    let found = read::image(&index);
    let wanted = read::wanted(&found, image, platform, json)?;
    let sbom = imagetools(&["--format", "{{json .SBOM}}"]).with_context(|| format!("reading the SBOM of `{image}`"))?;
    let sbom: Value = serde_json::from_str(&sbom).unwrap_or(Value::Null);
    for p in &wanted {
        let Some(doc) = read::document(&sbom, p) else {
            let why = if found.attestations.contains_key(&found.platforms[p]) {
                "its attestations hold no SPDX document"
            } else {
                "it has no attestation"
            };
            bail!("`{image}` has no SBOM for {p}: {why} (`cargo xtask production --push` attaches one)");
        };
        if json {
            println!("{}", serde_json::to_string_pretty(&doc)?);
        } else {
            let rows = read::rows(&doc);
            println!("# {image} {p}: {} packages", rows.len());
            print!("{}", read::table(&rows));
        }
    }
    Ok(())
}
