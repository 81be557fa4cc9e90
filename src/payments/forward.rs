//! The first stage of payments: re-keying accepted payments by zone.
//!
//! Payments arrive keyed by merchant (contract §1), but statistics are per zone, and
//! one zone's merchants are spread over every partition. Like a Kafka Streams
//! `groupBy`, this stage validates, deduplicates and checks lateness where the
//! message arrived (so the input topic's accounting holds), then forwards the
//! payment keyed by zone to an internal repartition topic whose partitions the
//! windowing stage owns. In process (demo, tests) the engine routes it directly.

use crate::model::{Catalog, Payment, Reject};
use crate::operator::{Emit, Input, Operator};
use crate::output::{ForwardRecord, Forwarded};
use crate::payments::PaymentsParams;
use crate::time::WindowSpec;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct PaymentForwarder {
    catalog: Arc<Catalog>,
    window: WindowSpec,
    lateness: i64,
    /// The input partition this stage reads.
    partition: i32,
    /// Partitions of the repartition topic.
    targets: i32,
    /// Wall time of the last heartbeat.
    last_heartbeat: i64,
    /// Records go through a Kafka topic and need their ids spelled out; in
    /// process only the typed payment and its target partition are needed.
    through_kafka: bool,
}

/// Heartbeats go out this often (wall clock), moved or not: the next stage
/// reads silence as "this partition's owner is gone" and waits.
const HEARTBEAT_EVERY_MS: i64 = 1_000;

impl PaymentForwarder {
    pub fn new(
        catalog: Arc<Catalog>,
        params: PaymentsParams,
        partition: i32,
        targets: i32,
        through_kafka: bool,
    ) -> Self {
        PaymentForwarder {
            catalog,
            partition,
            window: params.window,
            lateness: params.lateness,
            targets: targets.max(1),
            last_heartbeat: i64::MIN,
            through_kafka,
        }
    }

    /// Tells every partition of the next stage how far this partition's event
    /// time has got (`i64::MIN`: no event yet), so its windows can close even if
    /// no payment goes there, and that this partition's owner is alive.
    pub fn heartbeat(
        &mut self,
        partition: i32,
        watermark: i64,
        wall_ms: i64,
        out: &mut Vec<Forwarded>,
    ) {
        if wall_ms < self.last_heartbeat.saturating_add(HEARTBEAT_EVERY_MS) {
            return;
        }
        self.last_heartbeat = wall_ms;
        for target in 0..self.targets {
            out.push(Forwarded {
                key: String::new(),
                partition: Some(target),
                record: ForwardRecord {
                    txn_id: None,
                    // A heartbeat is about its `wm`; `ts` only has to be a valid
                    // time, and the watermark may be "none yet".
                    ts: wall_ms,
                    zone: None,
                    category: None,
                    amount_fen: None,
                    lot: None,
                    upstream: partition,
                    wm: watermark,
                    payment: None,
                },
            });
        }
    }

    /// Late by the same rule as the windowing stage, judged on this partition.
    pub fn is_late(&self, ts: i64, watermark: i64) -> bool {
        self.window.is_late(ts, watermark, self.lateness)
    }

    /// Forwards a payment; `partition` and `watermark` are this stage's.
    pub fn accept(
        &self,
        ts: i64,
        txn_id: &str,
        p: &Payment,
        partition: i32,
        watermark: i64,
        out: &mut Vec<Forwarded>,
    ) {
        let zone = &self.catalog.zones[p.zone as usize].id;
        if !self.through_kafka {
            out.push(Forwarded {
                key: String::new(),
                partition: Some(crate::partitioner::partition_for(
                    zone.as_bytes(),
                    self.targets,
                )),
                record: ForwardRecord {
                    txn_id: None,
                    ts,
                    zone: None,
                    category: None,
                    amount_fen: None,
                    lot: None,
                    upstream: partition,
                    wm: watermark,
                    payment: Some(p.clone()),
                },
            });
            return;
        }
        out.push(Forwarded {
            key: zone.clone(),
            partition: None,
            record: ForwardRecord {
                txn_id: Some(txn_id.to_string()),
                ts,
                zone: Some(zone.clone()),
                category: Some(self.catalog.categories[p.category as usize].clone()),
                amount_fen: Some(p.amount_fen),
                lot: p.lot.map(|l| self.catalog.lots[l as usize].id.clone()),
                upstream: partition,
                wm: watermark,
                payment: Some(p.clone()),
            },
        });
    }
}

impl Operator for PaymentForwarder {
    type Event<'a> = Payment;
    type Peers<'a> = ();

    fn is_late(&self, ts: i64, watermark: i64) -> bool {
        PaymentForwarder::is_late(self, ts, watermark)
    }

    fn accept(&mut self, input: &Input<'_, Payment>, out: &mut Emit<'_>) -> Result<(), Reject> {
        let p = input.event;
        let txn_id = input.id.unwrap_or_default();
        let (partition, wm) = (self.partition, input.watermark);
        PaymentForwarder::accept(self, input.ts, txn_id, p, partition, wm, out.forwarded);
        Ok(())
    }

    fn tick(&mut self, watermark: i64, wall_ms: i64, out: &mut Emit<'_>) {
        let partition = self.partition;
        self.heartbeat(partition, watermark, wall_ms, out.forwarded)
    }
}
