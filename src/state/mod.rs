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

#[cfg(test)]
mod tests {
    use super::*;

    /// A restored state equals the state written, to the last bit: a sum of
    /// densities that came back one unit in the last place off rounded a
    /// published window average differently after a restart (0.972 against
    /// the uninterrupted run's 0.973). serde_json's default float parser is
    /// not correctly rounded; the `float_roundtrip` feature is.
    #[test]
    fn floats_restore_to_the_last_bit() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut wrong = Vec::new();
        for _ in 0..200_000 {
            // xorshift64*: sums of densities and everything else in between.
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let bits = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
            let v = f64::from_bits(bits);
            if !v.is_finite() {
                continue;
            }
            let r = StateRecord::put("k".into(), &v);
            let back: f64 = read("k", r.value.as_deref().unwrap()).unwrap();
            if back.to_bits() != v.to_bits() {
                wrong.push(v);
            }
        }
        assert!(
            wrong.is_empty(),
            "{} values changed, e.g. {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(3)]
        );
    }
}
