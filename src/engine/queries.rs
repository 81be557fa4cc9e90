//! Read-only queries of live state for the HTTP API and the metrics: each
//! reads a store by its name and type (`StoreName`, as Kafka Streams'
//! interactive queries ask for a store) in every task of the stream that
//! holds it, never through a downcast, and the store's operator formats it
//! with its settings (names, areas, parameters).

use super::streams::Stream;
use super::Engine;
use crate::crowd::ZoneStatus;
use crate::model::{CategoryIx, InputTopic, LotIx, ZoneIx};
use crate::operator::StoreName;
use crate::output::Availability;
use crate::payments::Tally;
use crate::state::Cell;
use std::collections::BTreeMap;

impl Engine {
    /// Store `name` of every task of its operator's stream, with the
    /// operator and the partition's watermark.
    fn store<'a, O: Stream, S: 'a>(
        &'a self,
        name: &'a StoreName<O, S>,
    ) -> impl Iterator<Item = (&'a O, &'a S, i64)> {
        O::tasks(&self.tasks)
            .values()
            .map(move |t| (&t.op, name.of(&t.op), t.core.watermark.current()))
    }

    /// Live state of every zone seen, newest observation first per zone.
    pub fn zone_statuses(&self) -> Vec<ZoneStatus> {
        let mut by_zone: BTreeMap<String, ZoneStatus> = BTreeMap::new();
        for (op, zones, _) in self.store(&crate::crowd::ZONES) {
            for z in op.zone_statuses(zones) {
                if by_zone
                    .get(&z.id)
                    .is_none_or(|old| old.updated_ms < z.updated_ms)
                {
                    by_zone.insert(z.id.clone(), z);
                }
            }
        }
        by_zone.into_values().collect()
    }

    /// Current record of every car park seen.
    pub fn lot_snapshots(&self) -> Vec<Availability> {
        let mut by_lot: BTreeMap<String, Availability> = BTreeMap::new();
        for (op, lots, wm) in self.store(&crate::parking::LOTS) {
            for a in op.snapshots(lots, wm) {
                if by_lot
                    .get(&a.id)
                    .is_none_or(|old| old.observed_ms < a.observed_ms)
                {
                    by_lot.insert(a.id.clone(), a);
                }
            }
        }
        by_lot.into_values().collect()
    }

    /// The car park roll-up of each district whose task this engine holds.
    pub fn districts(&self) -> Vec<crate::output::ParkingGroup> {
        self.store(&crate::district::DISTRICTS)
            .flat_map(|(op, states, _)| op.current(states))
            .collect()
    }

    /// Running payment totals per zone and category since start.
    pub fn payment_totals(&self) -> BTreeMap<(ZoneIx, CategoryIx), Tally> {
        self.sum_payment_tallies(&crate::payments::TOTALS)
    }

    /// Revenue per car park from the payments that name one, summed over this
    /// instance's partitions.
    pub fn lot_revenue(&self) -> BTreeMap<LotIx, Tally> {
        self.sum_payment_tallies(&crate::payments::LOT_TOTALS)
    }

    /// One of the payments stage's running tallies, summed over its partitions.
    fn sum_payment_tallies<K: Ord + Copy>(
        &self,
        tallies: &StoreName<crate::payments::PaymentsOperator, Cell<BTreeMap<K, Tally>>>,
    ) -> BTreeMap<K, Tally> {
        let mut totals: BTreeMap<K, Tally> = BTreeMap::new();
        for (_, cell, _) in self.store(tallies) {
            for (k, t) in cell.get() {
                totals.entry(*k).or_default().absorb(t);
            }
        }
        totals
    }

    /// `(topic, partition, watermark ms)` of every partition that has seen events.
    pub fn watermarks(&self) -> Vec<(InputTopic, i32, i64)> {
        self.tasks
            .iter()
            .map(|((topic, p), t)| (topic, p, t.core().watermark.current()))
            .filter(|(_, _, wm)| *wm != i64::MIN)
            .collect()
    }
}
