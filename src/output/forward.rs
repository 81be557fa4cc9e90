//! Records re-keyed for a later stage, on the internal repartition topic.

use serde::Serialize;

/// An accepted payment on its way to the partition that owns its zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    pub key: String,
    /// Set for watermark heartbeats, which go to every partition; payments are
    /// placed by their key.
    pub partition: Option<i32>,
    pub record: ForwardRecord,
}

impl Forwarded {
    /// The repartition partition it goes to: its own for a heartbeat, else the
    /// one Kafka's murmur2 partitioner gives its key, so in-process routing and
    /// batched records land where a record keyed by zone would.
    pub fn target_partition(&self, partitions: i32) -> i32 {
        self.partition
            .unwrap_or_else(|| crate::partitioner::partition_for(self.key.as_bytes(), partitions))
    }

    /// The record as the repartition topic carries it.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.record).expect("forwarded records serialise")
    }
}

/// The repartition topic's record: a payment in configured ids and fen, or (no
/// `txn_id`) a watermark heartbeat. Serialised only when it goes through Kafka;
/// in process the typed payment is handed over as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForwardRecord {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txn_id: Option<String>,
    pub ts: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount_fen: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lot: Option<String>,
    pub upstream: i32,
    pub wm: i64,
    #[serde(skip)]
    pub payment: Option<crate::model::Payment>,
}
