//! Three-colour crowd levels with hysteresis and a minimum dwell before stepping down.

use crate::config::Thresholds;
pub use crate::output::Level;

/// The rules that move a zone between levels.
///
/// Up is immediate: a crowd that reaches red must be reported at once. Down needs
/// both the density below `hysteresis ×` the current level's threshold (so noise
/// around a threshold does not flap) and `min_dwell` spent in the current level (so
/// a brief lull does not stand the operations centre down).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LevelRules {
    pub thresholds: Thresholds,
    pub hysteresis: f64,
    pub min_dwell_ms: i64,
}

impl LevelRules {
    fn threshold(&self, level: Level) -> f64 {
        match level {
            Level::Green => 0.0,
            Level::Yellow => self.thresholds.yellow,
            Level::Red => self.thresholds.red,
        }
    }

    /// The level a zone should be at, given its current `level` held since
    /// `since`, and its smoothed `density` at event time `ts`. `None` means stay.
    pub fn next(&self, level: Level, since: i64, density: f64, ts: i64) -> Option<Level> {
        let up = if density >= self.thresholds.red {
            Level::Red
        } else if density >= self.thresholds.yellow {
            Level::Yellow
        } else {
            Level::Green
        };
        if up > level {
            return Some(up);
        }
        if level == Level::Green || density >= self.hysteresis * self.threshold(level) {
            return None;
        }
        if ts - since < self.min_dwell_ms {
            return None;
        }
        let target = if level == Level::Red && density >= self.hysteresis * self.thresholds.yellow {
            Level::Yellow
        } else {
            Level::Green
        };
        Some(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> LevelRules {
        LevelRules {
            thresholds: Thresholds {
                yellow: 2.0,
                red: 3.5,
            },
            hysteresis: 0.85,
            min_dwell_ms: 120_000,
        }
    }

    #[test]
    fn steps_up_at_once_and_can_skip_yellow() {
        let r = rules();
        assert_eq!(r.next(Level::Green, 0, 1.99, 1), None);
        assert_eq!(r.next(Level::Green, 0, 2.0, 1), Some(Level::Yellow));
        assert_eq!(r.next(Level::Green, 0, 3.6, 1), Some(Level::Red));
        assert_eq!(r.next(Level::Yellow, 0, 3.5, 1), Some(Level::Red));
    }

    #[test]
    fn steps_down_only_below_the_band_and_after_dwell() {
        let r = rules();
        // 0.85 × 3.5 = 2.975: just above stays red however long.
        assert_eq!(r.next(Level::Red, 0, 2.98, 1_000_000), None);
        // Below the band but too soon.
        assert_eq!(r.next(Level::Red, 0, 2.9, 119_999), None);
        assert_eq!(r.next(Level::Red, 0, 2.9, 120_000), Some(Level::Yellow));
        // Far below: straight to green (0.85 × 2.0 = 1.7).
        assert_eq!(r.next(Level::Red, 0, 1.69, 120_000), Some(Level::Green));
        assert_eq!(r.next(Level::Yellow, 0, 1.71, 500_000), None);
        assert_eq!(r.next(Level::Yellow, 0, 1.69, 500_000), Some(Level::Green));
    }
}
