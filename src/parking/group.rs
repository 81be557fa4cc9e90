//! The district roll-up of every car park (`ParkingGroup`).

use crate::output::{round3, ParkingGroup};
use crate::time::format_ts;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Sums the latest figures of each car park into one district record,
/// published when the district's free count changes (at most once per
/// `min_interval` of event time) and at least every `heartbeat`. The
/// settings live here; the figures in a [`RollupState`], which the district
/// task checkpoints.
#[derive(Debug, Clone)]
pub struct DistrictRollup {
    id: String,
    name: String,
    min_interval: i64,
    heartbeat: i64,
}

/// A car park's figures as the roll-up sums them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotFigures {
    pub total: u32,
    pub available: u32,
    pub occupied: u32,
    pub observed: i64,
}

/// What the roll-up has seen: each car park's latest figures, and the last
/// district record published (free spaces, at event time).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RollupState {
    pub lots: BTreeMap<String, LotFigures>,
    pub last: Option<(u32, i64)>,
}

impl RollupState {
    /// Free spaces over the car parks heard of.
    pub fn available(&self) -> Option<u32> {
        (!self.lots.is_empty()).then(|| self.lots.values().map(|l| l.available).sum())
    }
}

impl DistrictRollup {
    pub fn new(id: String, name: String, min_interval: i64, heartbeat: i64) -> Self {
        DistrictRollup {
            id,
            name,
            min_interval,
            heartbeat,
        }
    }

    /// Takes the newest figures of car park `lot`, made at event time `now`;
    /// returns a district record when one is due.
    pub fn update(
        &self,
        state: &mut RollupState,
        lot: &str,
        figures: LotFigures,
        now: i64,
    ) -> Option<ParkingGroup> {
        match state.lots.get_mut(lot) {
            Some(f) => *f = figures,
            None => {
                state.lots.insert(lot.to_string(), figures);
            }
        }
        // Decide on the sum alone: the whole record (names, ids, formatted
        // time) is built only when it goes out, not on every car park update.
        let free = state.available()?;
        let due = match state.last {
            None => true,
            Some((available, at)) => {
                (available != free && now >= at + self.min_interval) || now >= at + self.heartbeat
            }
        };
        if !due {
            return None;
        }
        state.last = Some((free, now));
        self.current(state)
    }

    /// The district record from the latest figures of each car park.
    pub fn current(&self, state: &RollupState) -> Option<ParkingGroup> {
        let lots = &state.lots;
        if lots.is_empty() {
            return None;
        }
        let total: u32 = lots.values().map(|l| l.total).sum();
        let available: u32 = lots.values().map(|l| l.available).sum();
        let occupied: u32 = lots.values().map(|l| l.occupied).sum();
        let observed = lots.values().map(|l| l.observed).max().unwrap_or(0);
        Some(ParkingGroup {
            id: self.id.clone(),
            kind: "ParkingGroup",
            name: self.name.clone(),
            total_spot_number: total,
            available_spot_number: available,
            occupied_spot_number: occupied,
            occupancy: round3(1.0 - available as f64 / total.max(1) as f64),
            ref_parking_site: lots.keys().cloned().collect(),
            observation_date_time: format_ts(observed),
            observed_ms: observed,
        })
    }
}
