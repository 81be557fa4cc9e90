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
    lots: BTreeMap<String, Availability>,
    last: Option<(u32, i64)>,
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
        }
    }

    /// Takes the newest record of a car park; returns a district record when due.
    pub fn update(&mut self, record: &Availability) -> Option<ParkingGroup> {
        self.lots.insert(record.id.clone(), record.clone());
        let group = self.current()?;
        let due = match self.last {
            None => true,
            Some((available, at)) => {
                (available != group.available_spot_number && group.observed_ms >= at + self.min_interval)
                    || group.observed_ms >= at + self.heartbeat
            }
        };
        due.then(|| {
            self.last = Some((group.available_spot_number, group.observed_ms));
            group
        })
    }

    /// The district record from the latest record of each car park.
    pub fn current(&self) -> Option<ParkingGroup> {
        if self.lots.is_empty() {
            return None;
        }
        let total: u32 = self.lots.values().map(|l| l.total_spot_number).sum();
        let available: u32 = self.lots.values().map(|l| l.available_spot_number).sum();
        let occupied: u32 = self.lots.values().map(|l| l.occupied_spot_number).sum();
        let observed = self.lots.values().map(|l| l.observed_ms).max().unwrap_or(0);
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
