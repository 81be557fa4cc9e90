//! Least-squares trend of the smoothed density, for the early warning.

use std::collections::VecDeque;

/// Keeps the smoothed density of the last `window` of event time and fits a line
/// through it. A fitted slope over minutes of smoothed data is far less jumpy than
/// the difference of two readings, so one noisy camera cannot raise a forecast.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Trend {
    window_ms: i64,
    samples: VecDeque<(i64, f64)>,
}

/// A fitted line: slope in units per second and its standard error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    pub slope: f64,
    pub slope_se: f64,
}

/// Samples kept at most; beyond it the oldest go first.
const MAX_SAMPLES: usize = 512;

impl Trend {
    pub fn new(window_ms: i64) -> Self {
        Trend {
            window_ms,
            samples: VecDeque::new(),
        }
    }

    pub fn push(&mut self, ts: i64, value: f64) {
        if let Some(last) = self.samples.back_mut() {
            if last.0 == ts {
                last.1 = value;
                return;
            }
        }
        self.samples.push_back((ts, value));
        while self.samples.len() > MAX_SAMPLES
            || self
                .samples
                .front()
                .is_some_and(|s| s.0 < ts - self.window_ms)
        {
            self.samples.pop_front();
        }
    }

    /// The least-squares line with its slope's standard error, once the samples
    /// span at least a third of the window.
    pub fn fit(&self) -> Option<Fit> {
        let (first, last) = (self.samples.front()?, self.samples.back()?);
        if self.samples.len() < 4 || last.0 - first.0 < self.window_ms / 3 {
            return None;
        }
        let n = self.samples.len() as f64;
        let t0 = first.0;
        let t = |ts: i64| (ts - t0) as f64 / 1000.0;
        let mean_t = self.samples.iter().map(|s| t(s.0)).sum::<f64>() / n;
        let mean_v = self.samples.iter().map(|s| s.1).sum::<f64>() / n;
        let (mut sxx, mut sxy) = (0.0, 0.0);
        for &(ts, v) in &self.samples {
            let dt = t(ts) - mean_t;
            sxx += dt * dt;
            sxy += dt * (v - mean_v);
        }
        if sxx <= 0.0 {
            return None;
        }
        let slope = sxy / sxx;
        let residuals: f64 = self
            .samples
            .iter()
            .map(|&(ts, v)| {
                let r = v - (mean_v + slope * (t(ts) - mean_t));
                r * r
            })
            .sum();
        let slope_se = (residuals / (n - 2.0) / sxx).sqrt();
        Some(Fit { slope, slope_se })
    }

    pub fn samples(&self) -> impl Iterator<Item = (i64, f64)> + '_ {
        self.samples.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_a_line() {
        let mut t = Trend::new(180_000);
        assert_eq!(t.fit(), None);
        for i in 0..20 {
            t.push(i * 10_000, 1.0 + 0.01 * (i * 10) as f64);
        }
        let s = t.fit().unwrap().slope;
        assert!((s - 0.01).abs() < 1e-9, "{s}");
        assert!(
            t.fit().unwrap().slope_se < 1e-9,
            "an exact line has no error"
        );
        // Only the window is kept.
        assert!(t.samples().next().unwrap().0 >= 190_000 - 180_000);
    }
}
