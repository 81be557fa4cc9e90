//! Re-keyed payments on their way to the repartition topic, gathered into one
//! Kafka record per target partition.
//!
//! Every accepted payment crosses the repartition topic once (produced, stored,
//! fetched, polled), and at about 0.4 payments per input message those
//! per-record costs were the largest share of Kafka work in the engine and the
//! broker. Gathered, a record holds up to [`MAX_BATCH_BYTES`] of payments as
//! JSON lines (one `ForwardRecord` per line), so the per-record cost is paid
//! once per few hundred payments. The content per payment is unchanged: the
//! windowing stage reads each line as it read a single record, dedups it by
//! `txn_id`, and dead-letters a bad line alone. A record without a newline is a
//! batch of one, so records written before batching still read.
//!
//! Batches are sent when full, on every engine tick (100 ms, so windows close no
//! later than that), and before every checkpoint; a rewind drops the unsent
//! ones with the state that made them.

use crate::model::InputTopic;
use crate::output::Forwarded;

/// Upper bound of one batch record, well below the broker's default
/// `message.max.bytes` (1 MB) and the producer's `message.max.bytes`.
pub const MAX_BATCH_BYTES: usize = 64 * 1024;

/// Pending batches, one per partition of the repartition topic.
#[derive(Debug)]
pub struct RepartitionBatches {
    pending: Vec<Vec<u8>>,
}

impl RepartitionBatches {
    /// `partitions`: the repartition topic's partition count (the configured
    /// `topics.input_partitions`, as `topics create` makes it).
    pub fn new(partitions: i32) -> Self {
        RepartitionBatches {
            pending: vec![Vec::new(); partitions.max(1) as usize],
        }
    }

    /// Adds a re-keyed payment or heartbeat; returns a batch that is full and
    /// must be sent now, as `(partition, payload)`.
    pub fn add(&mut self, f: &Forwarded) -> Option<(i32, Vec<u8>)> {
        let n = self.pending.len() as i32;
        self.add_line(f.target_partition(n), &f.record)
    }

    /// Adds any record as a line of partition `partition`'s batch.
    pub fn add_line<T: serde::Serialize>(
        &mut self,
        partition: i32,
        record: &T,
    ) -> Option<(i32, Vec<u8>)> {
        let p = partition.rem_euclid(self.pending.len() as i32);
        let buf = &mut self.pending[p as usize];
        if !buf.is_empty() {
            buf.push(b'\n');
        }
        serde_json::to_writer(&mut *buf, record)
            .expect("repartitioned records contain only serialisable fields");
        (buf.len() >= MAX_BATCH_BYTES).then(|| (p, std::mem::take(buf)))
    }

    /// Takes every non-empty batch, to be sent.
    pub fn drain(&mut self) -> impl Iterator<Item = (i32, Vec<u8>)> + '_ {
        self.pending
            .iter_mut()
            .enumerate()
            .filter(|(_, b)| !b.is_empty())
            .map(|(p, b)| (p as i32, std::mem::take(b)))
    }

    /// Drops unsent batches (their state is being rewound).
    pub fn clear(&mut self) {
        for b in &mut self.pending {
            b.clear();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pending.iter().all(Vec::is_empty)
    }
}

/// The pending batches of both repartition topics: payments by zone, and
/// what partitions tell their district.
#[derive(Debug)]
pub struct Batches {
    pub payments: RepartitionBatches,
    pub partials: RepartitionBatches,
}

impl Batches {
    pub fn new(partitions: i32) -> Self {
        Batches {
            payments: RepartitionBatches::new(partitions),
            partials: RepartitionBatches::new(partitions),
        }
    }

    /// Takes every non-empty batch, to be sent: `(topic, partition, payload)`.
    pub fn drain(&mut self) -> impl Iterator<Item = (InputTopic, i32, Vec<u8>)> + '_ {
        let payments = self
            .payments
            .drain()
            .map(|(p, b)| (InputTopic::PaymentsByZone, p, b));
        let partials = (self.partials.drain()).map(|(p, b)| (InputTopic::DistrictPartials, p, b));
        payments.chain(partials)
    }

    /// Drops unsent batches (their state is being rewound).
    pub fn clear(&mut self) {
        self.payments.clear();
        self.partials.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.payments.is_empty() && self.partials.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::forwarded_lines;
    use crate::output::ForwardRecord;
    use crate::partitioner::partition_for;

    fn payment(zone: &str, id: &str) -> Forwarded {
        Forwarded {
            key: zone.to_string(),
            partition: None,
            record: ForwardRecord {
                txn_id: Some(id.to_string()),
                ts: 1_790_834_580_000,
                zone: Some(zone.to_string()),
                category: Some("food".into()),
                amount_fen: Some(12_850),
                lot: None,
                upstream: 1,
                wm: 1_790_834_579_000,
                payment: None,
            },
        }
    }

    #[test]
    fn payments_keep_their_zone_partition_and_order() {
        let mut b = RepartitionBatches::new(3);
        for i in 0..5 {
            assert!(b
                .add(&payment("lakeside-promenade", &format!("t{i}")))
                .is_none());
        }
        let p = partition_for(b"lakeside-promenade", 3);
        let batches: Vec<_> = b.drain().collect();
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].0, p);
        let ids: Vec<String> = forwarded_lines(&batches[0].1)
            .map(|l| {
                let v: serde_json::Value = serde_json::from_slice(l).unwrap();
                v["txn_id"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(ids, ["t0", "t1", "t2", "t3", "t4"]);
        assert!(b.is_empty());
        assert_eq!(b.drain().count(), 0);
    }

    #[test]
    fn a_full_batch_is_handed_back_and_stays_bounded() {
        let mut b = RepartitionBatches::new(2);
        let mut full = Vec::new();
        for i in 0..2_000 {
            if let Some(x) = b.add(&payment("lakeside-promenade", &format!("t{i}"))) {
                full.push(x);
            }
        }
        assert!(!full.is_empty());
        for (_, payload) in &full {
            assert!(payload.len() >= MAX_BATCH_BYTES);
            assert!(payload.len() < MAX_BATCH_BYTES + 1024);
        }
        let lines: usize = full
            .iter()
            .map(|(_, p)| forwarded_lines(p).count())
            .chain(b.drain().map(|(_, p)| forwarded_lines(&p).count()))
            .sum();
        assert_eq!(lines, 2_000);
    }

    #[test]
    fn heartbeats_go_to_their_own_partition_and_clear_drops_everything() {
        let mut b = RepartitionBatches::new(3);
        let mut hb = payment("", "");
        hb.partition = Some(2);
        hb.record.txn_id = None;
        b.add(&hb);
        assert!(!b.is_empty());
        b.clear();
        assert!(b.is_empty());
        b.add(&hb);
        let got: Vec<_> = b.drain().map(|(p, _)| p).collect();
        assert_eq!(got, [2]);
    }

    #[test]
    fn a_single_record_is_a_batch_of_one() {
        let one = br#"{"txn_id":"t","ts":1,"upstream":0,"wm":0}"#;
        assert_eq!(forwarded_lines(one).count(), 1);
        assert_eq!(forwarded_lines(b"").count(), 0);
    }
}
