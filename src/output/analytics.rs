//! A car park's running analytics, published with its availability.

/// Running totals since the car park was first heard of, in event time, from
/// which turnover, average stay and the parking index follow for any window
/// (as differences: Prometheus' `increase()` does that from the counters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LotAnalytics {
    /// Arrivals: a space turning taken, or cars through an entry gate.
    pub sessions: u64,
    /// Departures measured by a space sensor, and their stays.
    pub stays: u64,
    pub stay_ms: i64,
    /// ∫ spaces in use dt and ∫ spaces dt, in space-milliseconds.
    pub occupied_space_ms: i64,
    pub capacity_space_ms: i64,
    /// Event time the integrals reach.
    pub integrated_to: Option<i64>,
}

impl LotAnalytics {
    /// Average stay of the departures measured so far.
    pub fn average_stay_ms(&self) -> Option<i64> {
        (self.stays > 0).then(|| self.stay_ms / self.stays as i64)
    }

    /// Occupied space-hours over capacity space-hours.
    pub fn parking_index(&self) -> Option<f64> {
        (self.capacity_space_ms > 0)
            .then(|| self.occupied_space_ms as f64 / self.capacity_space_ms as f64)
    }

    /// Sessions per space per day over the time observed.
    pub fn turnover_per_day(&self, spaces: u32) -> Option<f64> {
        let days = self.capacity_space_ms as f64 / spaces.max(1) as f64 / 86_400_000.0;
        (days > 0.0).then(|| self.sessions as f64 / spaces.max(1) as f64 / days)
    }
}
