//! The district roll-up of every car park (`ParkingGroup`).

use crate::output::{round3, Availability, ParkingGroup};
use crate::time::format_ts;
use std::collections::BTreeMap;

/// Sums the latest record of each car park into one district record, published
/// when the district's free count changes (at most once per `min_interval` of
/// observation time) and at least every `heartbeat`.
///
/// With several instances each sees only its own partitions' car parks; the
/// roll-up is then per instance, and a consumer sums the instances' records.
#[derive(Debug, Clone)]
pub struct DistrictRollup {
    id: String,
    name: String,
    min_interval: i64,
    heartbeat: i64,
    /// Per car park: (total, available, occupied, observed).
    lots: BTreeMap<String, (u32, u32, u32, i64)>,
    last: Option<(u32, i64)>,
    /// Free spaces summed from restored car parks, taken as already published.
    restored: Option<u32>,
}

impl DistrictRollup {
    pub fn new(id: String, name: String, min_interval: i64, heartbeat: i64) -> Self {
        DistrictRollup {
            id,
            name,
            min_interval,
            heartbeat,
            lots: BTreeMap::new(),
            last: None,
            restored: None,
        }
    }

    /// Takes the newest record of a car park; returns a district record when due.
    pub fn update(&mut self, record: &Availability) -> Option<ParkingGroup> {
        let figures = (
            record.total_spot_number,
            record.available_spot_number,
            record.occupied_spot_number,
            record.observed_ms,
        );
        match self.lots.get_mut(&record.id) {
            Some(f) => *f = figures,
            None => {
                self.lots.insert(record.id.clone(), figures);
            }
        }
        let now = record.emitted_ms;
        // Decide on the sum alone: the whole record (names, ids, formatted
        // time) is built only when it goes out, not on every car park update.
        let free = self.available()?;
        let due = match self.last {
            None => self.restored != Some(free),
            Some((available, at)) => {
                (available != free && now >= at + self.min_interval) || now >= at + self.heartbeat
            }
        };
        if !due {
            return None;
        }
        self.last = Some((free, now));
        self.current()
    }

    /// Takes a car park's current figures without publishing anything (after a
    /// restore), as if the sum so far had been published.
    pub fn seed(&mut self, record: &Availability) {
        let figures = (
            record.total_spot_number,
            record.available_spot_number,
            record.occupied_spot_number,
            record.observed_ms,
        );
        self.lots.insert(record.id.clone(), figures);
        // What the restored car parks add up to was published before the
        // restart; publish again when it changes, not at once (an exactly-once
        // consumer would see the same record twice).
        if self.last.is_none() {
            self.restored = self.current().map(|g| g.available_spot_number);
        }
    }

    /// Free spaces over the car parks heard of, without building the record.
    pub fn available(&self) -> Option<u32> {
        (!self.lots.is_empty()).then(|| self.lots.values().map(|l| l.1).sum())
    }

    /// The district record from the latest record of each car park.
    pub fn current(&self) -> Option<ParkingGroup> {
        if self.lots.is_empty() {
            return None;
        }
        let total: u32 = self.lots.values().map(|l| l.0).sum();
        let available: u32 = self.lots.values().map(|l| l.1).sum();
        let occupied: u32 = self.lots.values().map(|l| l.2).sum();
        let observed = self.lots.values().map(|l| l.3).max().unwrap_or(0);
        Some(ParkingGroup {
            id: self.id.clone(),
            kind: "ParkingGroup",
            name: self.name.clone(),
            total_spot_number: total,
            available_spot_number: available,
            occupied_spot_number: occupied,
            occupancy: round3(1.0 - available as f64 / total.max(1) as f64),
            ref_parking_site: self.lots.keys().cloned().collect(),
            observation_date_time: format_ts(observed),
            observed_ms: observed,
        })
    }
}
