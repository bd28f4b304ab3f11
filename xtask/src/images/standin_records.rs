//! The platforms each stand-in was made for, on an engine before API 1.48 that cannot list an
//! image's platforms. They are recorded by the stand-in's image id, which with the containerd
//! store is the digest of its index: an id names one set of platforms, so a record cannot go
//! stale. A stand-in without a record counts as holding the engine's own platform only.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;

use crate::engine::api as dockerapi;
use crate::engine::{self, Engine};
use crate::util::paths;

/// True when the engine can list an image's platforms (API 1.48 and newer).
pub(crate) fn lists(engine: &Engine) -> bool {
    let Some(socket) = engine.socket() else { return false };
    let api = dockerapi::get_json(&socket, "/version").and_then(|v| v["ApiVersion"].as_str().map(String::from));
    api.and_then(|v| {
        let (major, minor) = v.split_once('.')?;
        Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?) >= (1, 48))
    })
    .unwrap_or(false)
}

/// Where the platforms of stand-ins made on engines that cannot list them are recorded.
fn records_file() -> PathBuf {
    paths::checkout_target().join("xtask").join("standin-platforms.json")
}

fn read_records() -> BTreeMap<String, Vec<String>> {
    std::fs::read(records_file()).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

/// The platforms recorded for a stand-in's image id.
pub(crate) fn recorded(id: &str) -> Option<Vec<String>> {
    read_records().remove(id)
}

/// Records the platforms the stand-ins were just made for, by their ids, on an engine that cannot
/// list them (on one that can, the store says).
pub(crate) fn record(engine: &Engine, standins: &[String], platforms: &[String]) -> Result<()> {
    if lists(engine) {
        return Ok(());
    }
    let _lock = paths::lock_exclusive(&records_file().with_extension("lock"))?;
    let mut records = read_records();
    for standin in standins {
        if let Some(id) = engine::store::image_id(engine, standin) {
            records.insert(id, platforms.to_vec());
        }
    }
    paths::write_atomic(&records_file(), &serde_json::to_vec_pretty(&records)?)
}
