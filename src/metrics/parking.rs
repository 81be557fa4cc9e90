//! Car parks: spaces, occupancy, and the analytics counters.

use super::registrar::Registrar;
use crate::model::Catalog;
use crate::output::{Availability, LotAnalytics};
use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec};
use std::collections::BTreeMap;
use std::sync::Mutex;

pub struct ParkingMetrics {
    lot_spaces: IntGaugeVec,
    lot_spaces_available: IntGaugeVec,
    lot_occupancy_ratio: GaugeVec,
    lot_sessions: IntCounterVec,
    lot_stays: IntCounterVec,
    lot_stay_seconds: IntCounterVec,
    lot_occupied_space_seconds: IntCounterVec,
    lot_capacity_space_seconds: IntCounterVec,
    lot_revenue_fen: IntCounterVec,
    /// The running totals last counted, per car park.
    last_lot: Mutex<BTreeMap<String, (LotAnalytics, i64)>>,
}

impl ParkingMetrics {
    pub(super) fn new(r: &Registrar, catalog: &Catalog) -> Self {
        let lot = &["lot"];
        let m = ParkingMetrics {
            lot_spaces: r.int_gauges("lot_spaces", "Total spaces of the car park.", lot),
            lot_spaces_available: r.int_gauges(
                "lot_spaces_available",
                "Spaces known to be free (silent sensors count as not free).",
                lot,
            ),
            lot_occupancy_ratio: r.gauges(
                "lot_occupancy_ratio",
                "Share of spaces not known to be free, 0 to 1.",
                lot,
            ),
            lot_sessions: r.counters(
                "lot_sessions_total",
                "Arrivals: a space turning taken, or cars through an entry gate (turnover = increase / spaces / days).",
                lot,
            ),
            lot_stays: r.counters(
                "lot_stays_total",
                "Departures whose arrival a space sensor saw, so whose stay is known.",
                lot,
            ),
            lot_stay_seconds: r.counters(
                "lot_stay_seconds_total",
                "Sum of the measured stays (average stay = increase / increase of lot_stays_total).",
                lot,
            ),
            lot_occupied_space_seconds: r.counters(
                "lot_occupied_space_seconds_total",
                "Event-time integral of spaces in use.",
                lot,
            ),
            lot_capacity_space_seconds: r.counters(
                "lot_capacity_space_seconds_total",
                "Event-time integral of spaces (parking index = occupied / capacity).",
                lot,
            ),
            lot_revenue_fen: r.counters(
                "lot_revenue_fen_total",
                "Net parking revenue in fen from payments that name the car park (refunds subtracted).",
                lot,
            ),
            last_lot: Mutex::default(),
        };
        for l in &catalog.lots {
            m.lot_spaces
                .with_label_values(&[&l.id])
                .set(l.spaces as i64);
            m.set_lot_analytics(&l.id, &LotAnalytics::default(), Some(0));
        }
        m
    }

    /// Moves the car park's analytics counters up to the running totals in
    /// `a` and `revenue_fen` (a total that went down, as when a partition
    /// moved to another instance, adds nothing).
    pub fn set_lot_analytics(&self, id: &str, a: &LotAnalytics, revenue_fen: Option<i64>) {
        let mut last = crate::sync::lock(&self.last_lot);
        let (before, before_rev) = last.get(id).copied().unwrap_or_default();
        let up = |now: i64, then: i64| (now - then).max(0) as u64;
        let l = [id];
        let inc =
            |c: &IntCounterVec, now: i64, then: i64| c.with_label_values(&l).inc_by(up(now, then));
        inc(
            &self.lot_sessions,
            a.sessions as i64,
            before.sessions as i64,
        );
        inc(&self.lot_stays, a.stays as i64, before.stays as i64);
        inc(
            &self.lot_stay_seconds,
            a.stay_ms / 1000,
            before.stay_ms / 1000,
        );
        inc(
            &self.lot_occupied_space_seconds,
            a.occupied_space_ms / 1000,
            before.occupied_space_ms / 1000,
        );
        inc(
            &self.lot_capacity_space_seconds,
            a.capacity_space_ms / 1000,
            before.capacity_space_ms / 1000,
        );
        let revenue = revenue_fen.unwrap_or(before_rev);
        inc(&self.lot_revenue_fen, revenue, before_rev);
        last.insert(id.to_string(), (*a, revenue));
    }

    pub fn set_lot(&self, a: &Availability) {
        self.lot_spaces
            .with_label_values(&[&a.id])
            .set(a.total_spot_number as i64);
        self.lot_spaces_available
            .with_label_values(&[&a.id])
            .set(a.available_spot_number as i64);
        self.lot_occupancy_ratio
            .with_label_values(&[&a.id])
            .set(a.occupancy);
    }
}
