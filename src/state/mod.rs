//! Checkpoint and restore of operator state through a compacted changelog topic.
//!
//! As in Kafka Streams, state is written as a changelog of per-entity records
//! (one per zone, car park, space, open window, remembered id), keyed
//! `{input topic}/{partition}/{entity}`, so compaction keeps exactly the latest
//! state of each entity and a restore reads one record per entity. Only what
//! changed since the last checkpoint is written; a closed window or a forgotten id
//! is written as a tombstone so compaction removes it.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// One changelog record: `value` `None` is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRecord {
    pub key: String,
    pub value: Option<Vec<u8>>,
}

impl StateRecord {
    pub fn put<T: Serialize>(key: String, value: &T) -> Self {
        StateRecord {
            key,
            value: Some(serde_json::to_vec(value).expect("state types serialise")),
        }
    }

    pub fn delete(key: String) -> Self {
        StateRecord { key, value: None }
    }
}

/// Why a checkpoint could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("state record `{key}`: {problem}")]
pub struct RestoreError {
    pub key: String,
    pub problem: String,
}

/// Decodes a state value, naming the key on failure.
pub fn read<T: DeserializeOwned>(key: &str, value: &[u8]) -> Result<T, RestoreError> {
    serde_json::from_slice(value).map_err(|e| RestoreError {
        key: key.to_string(),
        problem: e.to_string(),
    })
}

/// A key this version does not know; refused rather than ignored, because
/// ignoring state silently would be losing it.
pub fn unknown_key(key: &str) -> RestoreError {
    RestoreError {
        key: key.to_string(),
        problem: "unknown state entry (written by another version?)".into(),
    }
}

/// The prefix of every changelog key of one input partition.
pub fn partition_prefix(topic_name: &str, partition: i32) -> String {
    format!("{topic_name}/{partition}/")
}

mod split;
pub use split::{joined, Splitter, DEFAULT_PART_BYTES};

mod store;
pub use store::{
    flush_all, restore_into, Cell, Json, KeyFormat, KeyMap, Pairs, Store, Stores, ValueFormat,
};
