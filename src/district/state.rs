//! A district's open windows and car parks: what its task checkpoints.

use super::Partial;
use crate::parking::RollupState;
use crate::payments::Tally;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One zone's closed crowd window, as its partition sent it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ZoneCrowd {
    pub people_tenths: i64,
    /// 0 green, 1 yellow, 2 red.
    pub level: u8,
    pub entered: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct CrowdWindow {
    pub end: i64,
    pub zones: BTreeMap<String, ZoneCrowd>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct SalesWindow {
    pub end: i64,
    pub zones: BTreeMap<String, Tally>,
}

/// Everything the district task knows, checkpointed whole when it changed
/// (a few windows and ten car parks: small).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct DistrictState {
    /// Open crowd and payments windows by start, each zone's part by zone.
    pub crowd: BTreeMap<i64, CrowdWindow>,
    pub sales: BTreeMap<i64, SalesWindow>,
    /// The end of the last window published: a partial for a window up to
    /// there is a replay (a partition rewound, or moved) and changes nothing.
    pub crowd_done: i64,
    pub sales_done: i64,
    /// People entering through counting lines, per payments window start,
    /// summed from the crowd windows published.
    pub entries: BTreeMap<i64, u64>,
    /// Each car park's free spaces by crowd-window boundary, from the oldest still
    /// needed by an open crowd window's end onwards.
    pub free: BTreeMap<String, BTreeMap<i64, u32>>,
    pub rollup: RollupState,
}

impl Default for DistrictState {
    fn default() -> Self {
        DistrictState {
            crowd: BTreeMap::new(),
            sales: BTreeMap::new(),
            crowd_done: i64::MIN,
            sales_done: i64::MIN,
            entries: BTreeMap::new(),
            free: BTreeMap::new(),
            rollup: RollupState::default(),
        }
    }
}

/// Entries are kept this many payments windows back at most: a payments
/// window that never closes (no sales at all) must not grow memory.
pub(super) const KEEP_WINDOWS: i64 = 48;

/// Free-space reports kept per car park at most (one per crowd-window
/// boundary: hours of them).
const MAX_FREE_HISTORY: usize = 512;

impl DistrictState {
    /// Takes in a zone window (replacing what the zone sent for it before) or
    /// a car park's free spaces. False when it was a replay of a window
    /// already published.
    pub fn take(&mut self, partial: &Partial) -> bool {
        match partial {
            Partial::Crowd {
                zone,
                start,
                end,
                people_tenths,
                level,
                entered,
            } => {
                if *end <= self.crowd_done {
                    return false;
                }
                let w = self.crowd.entry(*start).or_default();
                w.end = *end;
                let part = ZoneCrowd {
                    people_tenths: *people_tenths,
                    level: *level,
                    entered: *entered,
                };
                w.zones.insert(zone.clone(), part);
            }
            Partial::Sales {
                zone,
                start,
                end,
                sales,
                sales_fen,
                refunds,
                refund_fen,
            } => {
                if *end <= self.sales_done {
                    return false;
                }
                let w = self.sales.entry(*start).or_default();
                w.end = *end;
                let tally = Tally {
                    sales: *sales,
                    sales_fen: *sales_fen,
                    refunds: *refunds,
                    refund_fen: *refund_fen,
                };
                w.zones.insert(zone.clone(), tally);
            }
            // The live figures are the roll-up's (`operator`).
            Partial::Lot { .. } => {}
            Partial::Free { lot, at, available } => {
                let history = self.free.entry(lot.clone()).or_default();
                history.insert(*at, *available);
                // Bounded whether or not crowd windows close to prune it.
                if history.len() > MAX_FREE_HISTORY {
                    history.pop_first();
                }
            }
        }
        true
    }

    /// Whether `done` closes any open window.
    pub fn closes_any(&self, done: i64) -> bool {
        let crowd = self.crowd.values().next().is_some_and(|w| w.end <= done);
        crowd || self.sales.values().next().is_some_and(|w| w.end <= done)
    }

    /// The open crowd window that `done` closes, the oldest first.
    pub fn close_crowd(&mut self, done: i64) -> Option<(i64, CrowdWindow)> {
        let entry = self.crowd.first_entry()?;
        if entry.get().end > done {
            return None;
        }
        let (start, w) = entry.remove_entry();
        self.crowd_done = self.crowd_done.max(w.end);
        Some((start, w))
    }

    /// The open payments window that `done` closes, the oldest first.
    pub fn close_sales(&mut self, done: i64) -> Option<(i64, SalesWindow)> {
        let entry = self.sales.first_entry()?;
        if entry.get().end > done {
            return None;
        }
        let (start, w) = entry.remove_entry();
        self.sales_done = self.sales_done.max(w.end);
        Some((start, w))
    }

    /// Free spaces over the car parks as last reported at or before `at`
    /// (event time); car parks heard of only later are not counted. What is
    /// older than that is no longer needed: windows close in order.
    pub fn free_at(&mut self, at: i64) -> Option<u32> {
        let mut sum = None;
        for history in self.free.values_mut() {
            let Some((&t, &free)) = history.range(..=at).next_back() else {
                continue;
            };
            *sum.get_or_insert(0) += free;
            *history = history.split_off(&t);
        }
        sum
    }

    /// Counts the people a published crowd window saw entering into the
    /// payments window (`payments_ms` long) it falls in.
    pub fn entered(&mut self, start: i64, people: u64, payments_ms: i64) {
        let bucket = start - start.rem_euclid(payments_ms);
        *self.entries.entry(bucket).or_default() += people;
        let oldest = bucket - KEEP_WINDOWS * payments_ms;
        if self
            .entries
            .first_key_value()
            .is_some_and(|(k, _)| *k < oldest)
        {
            self.entries = self.entries.split_off(&oldest);
        }
    }
}
