//! Exponentially weighted moving average over event time.

/// Smooths irregular samples with a half-life in event time: a sample `dt` after the
/// previous one gets weight `1 - 2^(-dt / half_life)`. Unlike a per-sample alpha, a
/// burst of reports from many cameras does not weigh more than one report.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ewma {
    half_life_ms: f64,
    state: Option<(i64, f64)>,
}

impl Ewma {
    pub fn new(half_life_ms: i64) -> Self {
        Ewma {
            half_life_ms: half_life_ms.max(1) as f64,
            state: None,
        }
    }

    /// Adds a sample at `ts` and returns the smoothed value. Samples must come in
    /// event-time order; an older one is treated as simultaneous.
    pub fn update(&mut self, ts: i64, value: f64) -> f64 {
        let next = match self.state {
            None => value,
            Some((prev_ts, prev)) => {
                let dt = (ts - prev_ts).max(0) as f64;
                let keep = (-dt / self.half_life_ms).exp2();
                // A convex combination, not `prev + w * (value - prev)`: once
                // the old value's weight is negligible this is exactly `value`,
                // where the other form rounded 1190/400 = 2.975 to one ulp
                // below, and a zone stepped down from red at exactly the band.
                value * (1.0 - keep) + prev * keep
            }
        };
        self.state = Some((ts.max(self.state.map_or(ts, |s| s.0)), next));
        next
    }

    pub fn value(&self) -> Option<f64> {
        self.state.map(|s| s.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_life_halves_the_gap() {
        let mut e = Ewma::new(60_000);
        assert_eq!(e.update(0, 0.0), 0.0);
        let v = e.update(60_000, 4.0);
        assert!((v - 2.0).abs() < 1e-12, "{v}");
        // A simultaneous sample does not move the average.
        assert_eq!(e.update(60_000, 100.0), v);
    }
}
