//! The first stage of payments: re-keying accepted payments by zone.
//!
//! Payments arrive keyed by merchant (SPEC §1), but statistics are per zone, and
//! one zone's merchants are spread over every partition. Like a Kafka Streams
//! `groupBy`, this stage validates, deduplicates and checks lateness where the
//! message arrived (so the input topic's accounting holds), then forwards the
//! payment keyed by zone to an internal repartition topic whose partitions the
//! windowing stage owns. In process (demo, tests) the engine routes it directly.

use crate::model::{Catalog, Payment};
use crate::output::{Forwarded, Output};
use crate::payments::PaymentsParams;
use crate::time::WindowSpec;
use serde::Serialize;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct PaymentForwarder {
    catalog: Arc<Catalog>,
    window: WindowSpec,
    lateness: i64,
}

/// The internal record: configured ids and integer fen, nothing to re-parse.
#[derive(Serialize)]
struct ForwardedPayment<'a> {
    txn_id: &'a str,
    ts: i64,
    zone: &'a str,
    category: &'a str,
    amount_fen: i64,
}

impl PaymentForwarder {
    pub fn new(catalog: Arc<Catalog>, params: PaymentsParams) -> Self {
        PaymentForwarder {
            catalog,
            window: params.window,
            lateness: params.lateness,
        }
    }

    /// Late by the same rule as the windowing stage, judged on this partition.
    pub fn is_late(&self, ts: i64, watermark: i64) -> bool {
        self.window.is_late(ts, watermark, self.lateness)
    }

    pub fn accept(&self, ts: i64, txn_id: &str, p: &Payment, out: &mut Vec<Output>) {
        let zone = &self.catalog.zones[p.zone as usize].id;
        let record = ForwardedPayment {
            txn_id,
            ts,
            zone,
            category: &self.catalog.categories[p.category as usize],
            amount_fen: p.amount_fen,
        };
        out.push(Output::Forward(Forwarded {
            key: zone.clone(),
            payload: serde_json::to_vec(&record).expect("plain struct"),
        }));
    }
}
