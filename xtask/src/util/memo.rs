//! Answers worth keeping for a while between runs (registry lookups, what buildx says of the
//! builder): a JSON file of keyed values, each with the time it was saved, under the checkout's
//! `target/xtask/`. Delete the file to ask again at once.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::util::paths::{self, write_atomic};

pub(crate) struct Cache {
    file: PathBuf,
    ttl_secs: i64,
}

/// Saved values stay JSON until asked for, so one file can hold values of several types.
type Entries = BTreeMap<String, (i64, serde_json::Value)>;

impl Cache {
    pub fn new(name: &str, ttl_secs: i64) -> Cache {
        Cache { file: paths::checkout_target().join("xtask").join(name), ttl_secs }
    }

    fn entries(&self) -> Entries {
        std::fs::read_to_string(&self.file).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
    }

    /// The value saved under `key`, unless it is older than the time to live.
    pub(crate) fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let (saved, value) = self.entries().remove(key)?;
        if chrono::Utc::now().timestamp() - saved >= self.ttl_secs {
            return None;
        }
        serde_json::from_value(value).ok()
    }

    /// Saves a value. Several threads may save at once: the file is read again just before the
    /// atomic write, so another key's answer is at worst lost until it is asked again.
    pub(crate) fn put<T: Serialize>(&self, key: &str, value: T) {
        let Ok(value) = serde_json::to_value(value) else { return };
        let mut entries = self.entries();
        entries.insert(key.to_string(), (chrono::Utc::now().timestamp(), value));
        if let Ok(json) = serde_json::to_string(&entries) {
            let _ = write_atomic(&self.file, json.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_come_back_until_they_expire() {
        let name = format!("cache-test-{}.json", std::process::id());
        let fresh = Cache::new(&name, 60);
        fresh.put("a", true);
        fresh.put("b", vec!["x".to_string()]);
        assert_eq!(fresh.get::<bool>("a"), Some(true), "another key's save keeps the first");
        assert_eq!(fresh.get::<Vec<String>>("b"), Some(vec!["x".to_string()]));
        assert_eq!(fresh.get::<bool>("c"), None);
        let expired = Cache::new(&name, 0);
        assert_eq!(expired.get::<bool>("a"), None);
        std::fs::remove_file(fresh.file).unwrap();
    }
}
