//! Sales and refunds per zone and category, in fen.

use super::registrar::Registrar;
use crate::model::{Catalog, CategoryIx, ZoneIx};
use crate::output::Tally;
use prometheus::IntCounterVec;
use std::collections::BTreeMap;
use std::sync::Mutex;

pub struct PaymentMetrics {
    payments_total: IntCounterVec,
    payments_amount_fen_total: IntCounterVec,
    refunds_total: IntCounterVec,
    refunds_amount_fen_total: IntCounterVec,
    /// The running totals last counted.
    last_totals: Mutex<BTreeMap<(ZoneIx, CategoryIx), Tally>>,
}

impl PaymentMetrics {
    pub(super) fn new(r: &Registrar) -> Self {
        let labels = &["zone", "category"];
        PaymentMetrics {
            payments_total: r.counters(
                "payments_total",
                "Accepted sales (refunds excluded).",
                labels,
            ),
            payments_amount_fen_total: r.counters(
                "payments_amount_fen_total",
                "Gross amount of accepted sales, in fen.",
                labels,
            ),
            refunds_total: r.counters("refunds_total", "Accepted refunds.", labels),
            refunds_amount_fen_total: r.counters(
                "refunds_amount_fen_total",
                "Amount of accepted refunds, in fen (a positive number).",
                labels,
            ),
            last_totals: Mutex::default(),
        }
    }

    /// Brings the payment counters up to the engine's running totals.
    pub fn set_payment_totals(
        &self,
        catalog: &Catalog,
        totals: &BTreeMap<(ZoneIx, CategoryIx), Tally>,
    ) {
        let mut last_totals = crate::sync::lock(&self.last_totals);
        for (key, t) in totals {
            let last = last_totals.get(key).copied().unwrap_or_default();
            let labels = [
                &*catalog.zones[key.0 as usize].id,
                &*catalog.categories[key.1 as usize],
            ];
            let inc = |c: &IntCounterVec, now: i64, before: i64| {
                c.with_label_values(&labels)
                    .inc_by((now - before).max(0) as u64)
            };
            inc(&self.payments_total, t.sales as i64, last.sales as i64);
            inc(&self.payments_amount_fen_total, t.sales_fen, last.sales_fen);
            inc(&self.refunds_total, t.refunds as i64, last.refunds as i64);
            inc(
                &self.refunds_amount_fen_total,
                t.refund_fen,
                last.refund_fen,
            );
            last_totals.insert(*key, *t);
        }
    }
}
