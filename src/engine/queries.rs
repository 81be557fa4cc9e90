//! Read-only queries of live state for the HTTP API and the metrics: each
//! asks the tasks of the stream whose operator holds it, by that operator's
//! type (as Kafka Streams' interactive queries ask a store by name and
//! type), never by a downcast.

use super::streams::Stream;
use super::Engine;
use crate::crowd::{CrowdOperator, ZoneStatus};
use crate::model::{CategoryIx, InputTopic, LotIx, ZoneIx};
use crate::output::Availability;
use crate::parking::ParkingOperator;
use crate::payments::{PaymentsOperator, Tally};
use std::collections::BTreeMap;

impl Engine {
    /// Every operator of stream `O`, with its partition's watermark.
    fn operators<O: Stream>(&self) -> impl Iterator<Item = (&O, i64)> {
        O::tasks(&self.tasks)
            .values()
            .map(|t| (&t.op, t.core.watermark.current()))
    }

    /// Live state of every zone seen, newest observation first per zone.
    pub fn zone_statuses(&self) -> Vec<ZoneStatus> {
        let mut by_zone: BTreeMap<String, ZoneStatus> = BTreeMap::new();
        for (op, _) in self.operators::<CrowdOperator>() {
            for z in op.zone_statuses() {
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
        for (op, wm) in self.operators::<ParkingOperator>() {
            for a in op.snapshots(wm) {
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
        self.operators::<crate::district::DistrictOperator>()
            .flat_map(|(op, _)| op.current())
            .collect()
    }

    /// Running payment totals per zone and category since start.
    pub fn payment_totals(&self) -> BTreeMap<(ZoneIx, CategoryIx), Tally> {
        self.sum_payment_tallies(PaymentsOperator::totals)
    }

    /// Revenue per car park from the payments that name one, summed over this
    /// instance's partitions.
    pub fn lot_revenue(&self) -> BTreeMap<LotIx, Tally> {
        self.sum_payment_tallies(PaymentsOperator::lot_totals)
    }

    /// One of the payments stage's running tallies, summed over its partitions.
    fn sum_payment_tallies<K: Ord + Copy>(
        &self,
        tallies: impl Fn(&PaymentsOperator) -> &BTreeMap<K, Tally>,
    ) -> BTreeMap<K, Tally> {
        let mut totals: BTreeMap<K, Tally> = BTreeMap::new();
        for (op, _) in self.operators::<PaymentsOperator>() {
            for (k, t) in tallies(op) {
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
