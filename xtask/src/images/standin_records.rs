//! The platforms each stand-in was made for, where the engine's store cannot say (an engine API
//! before 1.48, or one reached without a unix socket). They are recorded by the stand-in's image
//! id, which with the containerd store is the digest of its index: an id names one set of
//! platforms, so a record cannot go stale. A stand-in without a record counts as holding the
//! engine's own platform only.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;

use crate::engine::{self, Engine};
use crate::util::paths;

/// Image id → the platforms the stand-in of that id was made for.
type Records = BTreeMap<String, Vec<String>>;

fn records_file() -> PathBuf {
    paths::checkout_target().join("xtask").join("standin-platforms.json")
}

/// The platforms recorded for a stand-in's image id.
pub(crate) fn recorded(id: &str) -> Option<Vec<String>> {
    paths::read_json::<Records>(&records_file()).remove(id)
}

/// Records the platforms the stand-ins were just made for, by their ids, where the store cannot
/// say which platforms they hold (where it can, it is asked).
pub(crate) fn record(engine: &Engine, standins: &[String], platforms: &[String]) -> Result<()> {
    let ids: Vec<String> = standins
        .iter()
        .filter(|s| engine::store::image_platforms(engine, s).is_none())
        .filter_map(|s| engine::store::image_id(engine, s))
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    paths::update_json(&records_file(), |records: &mut Records| {
        records.extend(ids.into_iter().map(|id| (id, platforms.to_vec())));
    })
}
