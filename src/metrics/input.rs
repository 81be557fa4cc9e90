//! The input accounting: consumed = accepted + rejected + duplicate, per topic.

use super::registrar::Registrar;
use crate::engine::Disposition;
use crate::model::{InputTopic, RejectReason};
use prometheus::{IntCounter, IntCounterVec};
use std::collections::BTreeMap;
use std::sync::Mutex;

pub struct InputMetrics {
    consumed: IntCounterVec,
    accepted: IntCounterVec,
    rejected: IntCounterVec,
    duplicates: IntCounterVec,
    dedup_evicted: IntCounterVec,
    /// The engine's running totals last seen by `set_dedup_evicted`.
    dedup_evicted_seen: Mutex<BTreeMap<String, u64>>,
}

/// One input topic's counters, looked up once, so counting a message on the
/// hot path is an atomic add rather than hashing a label.
#[derive(Clone)]
pub struct InputCounters {
    topic: String,
    consumed: IntCounter,
    accepted: IntCounter,
    duplicates: IntCounter,
}

impl InputCounters {
    pub fn count(&self, metrics: &InputMetrics, d: Disposition) {
        self.consumed.inc();
        match d {
            Disposition::Accepted => self.accepted.inc(),
            Disposition::Duplicate => self.duplicates.inc(),
            // Rare: the label lookup is fine here.
            Disposition::Rejected(r) => metrics
                .rejected
                .with_label_values(&[&self.topic, r.as_str()])
                .inc(),
        }
    }
}

impl InputMetrics {
    pub(super) fn new(r: &Registrar, topic_names: &[(InputTopic, String)]) -> Self {
        let topic = &["topic"];
        let m = InputMetrics {
            consumed: r.counters(
                "events_consumed_total",
                "Input messages consumed; equals accepted + rejected + duplicate.",
                topic,
            ),
            accepted: r.counters("events_accepted_total", "Input messages that took effect.", topic),
            rejected: r.counters(
                "events_rejected_total",
                "Input messages sent to the dead-letter topic, by reason.",
                &["topic", "reason"],
            ),
            duplicates: r.counters(
                "events_duplicate_total",
                "Input messages whose id was already seen within the dedup horizon.",
                topic,
            ),
            dedup_evicted: r.counters(
                "dedup_evicted_total",
                "Remembered ids dropped before their dedup horizon because dedup_max_ids was reached; a resent message with such an id is counted again.",
                topic,
            ),
            dedup_evicted_seen: Mutex::default(),
        };
        for (_, name) in topic_names {
            m.consumed.with_label_values(&[name]);
            m.accepted.with_label_values(&[name]);
            m.duplicates.with_label_values(&[name]);
            m.dedup_evicted.with_label_values(&[name]);
            for reason in RejectReason::ALL {
                m.rejected.with_label_values(&[name, reason.as_str()]);
            }
        }
        m
    }

    /// Messages consumed from `topic` so far, without rendering the exposition.
    pub fn consumed(&self, topic: &str) -> u64 {
        self.consumed.with_label_values(&[topic]).get()
    }

    /// Counts a message by what became of it.
    pub fn count(&self, topic: &str, d: Disposition) {
        self.counters(topic).count(self, d);
    }

    /// One input topic's counters, to count with on the hot path.
    pub fn counters(&self, topic: &str) -> InputCounters {
        InputCounters {
            topic: topic.to_string(),
            consumed: self.consumed.with_label_values(&[topic]),
            accepted: self.accepted.with_label_values(&[topic]),
            duplicates: self.duplicates.with_label_values(&[topic]),
        }
    }

    /// Brings `dedup_evicted_total{topic}` up to the engine's running total.
    pub fn set_dedup_evicted(&self, topic: &str, total: u64) {
        let mut seen = crate::sync::lock(&self.dedup_evicted_seen);
        let last = seen.entry(topic.to_string()).or_insert(0);
        if total > *last {
            self.dedup_evicted
                .with_label_values(&[topic])
                .inc_by(total - *last);
            *last = total;
        }
    }
}
