//! Free-space forecasts per car park, learned online from the stream itself.
//!
//! Two things predict a car park a quarter or an hour ahead:
//!
//! - its **time-of-week profile**: how full it usually is in each 15-minute slot
//!   of each weekday, with public holidays as an eighth day (the district's
//!   holidays come from the configuration; until one has been seen, a holiday
//!   borrows Sunday's profile);
//! - its **current trend**: arrivals minus departures over the last minutes.
//!
//! The profile gives the shape of the day; today's deviation from it (a rainy
//! Tuesday, an event nearby) persists for a while and then fades back towards
//! the profile; the trend matters only for the first minutes ahead. Without a
//! profile yet the forecast is the damped trend, which degrades to the current
//! value carried forward.
//!
//! Everything is in event time, and the profile is checkpointed with the car
//! park, so a restored engine forecasts exactly as one that never stopped.

use crate::time::calendar::{DAY_KINDS, HOLIDAY, SUNDAY};
use crate::time::Calendar;

/// The horizons published in every availability record, in minutes.
pub const HORIZONS_MIN: [u32; 3] = [15, 30, 60];

const SLOT_MIN: i64 = 15;
const SLOTS_PER_DAY: usize = (24 * 60 / SLOT_MIN) as usize;

/// Per-sample decay of a profile cell: a slot gets about 15 one-minute samples
/// per week, so this gives each past week's occurrence a weight that halves every
/// three weeks; a profile follows a change of habits without forgetting a week's
/// worth of shape to one odd day.
const CELL_DECAY: f64 = 0.984_7;
/// How much of today's deviation from the profile is left after 15 minutes.
/// This and the trend horizon were chosen on the multi-week simulation
/// (`tests/forecast_accuracy.rs`: MAE 5.9 free spaces against 6.2–7.0 for the
/// neighbouring settings tried); real data should re-tune them.
const DEVIATION_KEPT_PER_SLOT: f64 = 0.95;
/// Weight of the trend against the profile at horizon `h` min: `exp(-h / this)`.
const TREND_HORIZON_MIN: f64 = 5.0;

/// One cell of the profile: an exponentially weighted mean of the share of
/// spaces in use, as (weighted sum, weight); serialised as a pair.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Cell(f64, f64);

impl Cell {
    fn mean(&self) -> Option<f64> {
        (self.1 > 0.0).then(|| self.0 / self.1)
    }
}

/// A car park's time-of-week profile of the share of spaces in use.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Profile {
    /// `DAY_KINDS × SLOTS_PER_DAY` cells, day-major; serialised as pairs.
    cells: Vec<Cell>,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            cells: vec![Cell::default(); DAY_KINDS * SLOTS_PER_DAY],
        }
    }
}

impl Profile {
    /// Learns one sample: `used_share` of the spaces were in use at `ts`.
    pub fn learn(&mut self, cal: &Calendar, ts: i64, used_share: f64) {
        let (day, minute) = cal.day_and_minute(ts);
        let c = &mut self.cells[day * SLOTS_PER_DAY + (minute / SLOT_MIN) as usize];
        c.0 = c.0 * CELL_DECAY + used_share;
        c.1 = c.1 * CELL_DECAY + 1.0;
    }

    fn cell(&self, day: usize, slot: usize) -> Option<f64> {
        self.cells[day * SLOTS_PER_DAY + slot].mean().or_else(|| {
            (day == HOLIDAY)
                .then(|| self.cells[SUNDAY * SLOTS_PER_DAY + slot].mean())
                .flatten()
        })
    }

    /// The usual share in use at `ts`, interpolated between slot centres.
    pub fn expected(&self, cal: &Calendar, ts: i64) -> Option<f64> {
        // Position in slots since the epoch (local), measured from slot centres.
        let local_min = (ts + cal.offset_ms()) as f64 / 60_000.0;
        let x = (local_min - SLOT_MIN as f64 / 2.0) / SLOT_MIN as f64;
        let first = x.floor() as i64;
        let at = |abs_slot: i64| {
            let day = abs_slot.div_euclid(SLOTS_PER_DAY as i64);
            let slot = abs_slot.rem_euclid(SLOTS_PER_DAY as i64) as usize;
            self.cell(cal.kind(day), slot)
        };
        match (at(first), at(first + 1)) {
            (Some(a), Some(b)) => Some(a + (b - a) * (x - first as f64)),
            (a, b) => a.or(b),
        }
    }
}

/// What the forecast starts from.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub ts: i64,
    pub spaces: u32,
    pub used: u32,
    /// Change of spaces in use per minute (arrivals − departures), if known.
    pub trend_per_min: Option<f64>,
}

/// Spaces expected in use `minutes` after `now`.
pub fn used_in(profile: &Profile, cal: &Calendar, now: Now, minutes: u32) -> u32 {
    let cap = now.spaces as f64;
    let used = now.used as f64;
    let h = minutes as f64;
    let trend = now.trend_per_min.map(|r| used + r * h);
    let at = now.ts + minutes as i64 * 60_000;
    let from_profile = match (profile.expected(cal, now.ts), profile.expected(cal, at)) {
        (Some(p0), Some(p1)) => {
            let kept = DEVIATION_KEPT_PER_SLOT.powf(h / SLOT_MIN as f64);
            Some(p1 * cap + (used - p0 * cap) * kept)
        }
        _ => None,
    };
    let f = match (from_profile, trend) {
        (Some(p), Some(t)) => {
            let w = (-h / TREND_HORIZON_MIN).exp();
            w * t + (1.0 - w) * p
        }
        (Some(p), None) => p,
        // No profile yet: a trend, damped the further out it reaches.
        (None, Some(t)) => used + (t - used) * (-h / 60.0).exp(),
        (None, None) => used,
    };
    f.round().clamp(0.0, cap) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::UtcOffset;

    fn cal() -> Calendar {
        Calendar::new(
            UtcOffset::parse("+08:00").unwrap(),
            &["2026-10-01".to_string()],
        )
    }

    /// 2026-09-28 00:00 +08:00, a Monday.
    const MONDAY: i64 = 1_790_524_800_000;

    #[test]
    fn weekdays_and_holidays() {
        let c = cal();
        assert_eq!(c.day_and_minute(MONDAY), (0, 0));
        assert_eq!(c.day_and_minute(MONDAY + 6 * 86_400_000 + 61_000), (6, 1));
        // Thursday 2026-10-01 is National Day.
        assert!(c.is_holiday(MONDAY + 3 * 86_400_000 + 3_600_000));
        assert!(!c.is_holiday(MONDAY + 2 * 86_400_000));
    }

    #[test]
    fn a_learned_profile_predicts_the_shape_of_the_day() {
        let c = cal();
        let mut p = Profile::default();
        // Three weeks of Mondays: 20 % in use until 9:00, 80 % after.
        for week in 0..3 {
            for minute in 0..(12 * 60) {
                let ts = MONDAY + week * 7 * 86_400_000 + minute * 60_000;
                p.learn(&c, ts, if minute < 9 * 60 { 0.2 } else { 0.8 });
            }
        }
        let monday = MONDAY + 21 * 86_400_000;
        let now = Now {
            ts: monday + 8 * 3_600_000 + 30 * 60_000,
            spaces: 100,
            used: 20,
            trend_per_min: Some(0.0),
        };
        // At 8:30, an hour ahead is 9:30: mostly the profile.
        let ahead = used_in(&p, &c, now, 60);
        assert!((70..=80).contains(&ahead), "{ahead}");
        // Fifteen minutes ahead (8:45) is still morning.
        assert!(used_in(&p, &c, now, 15) <= 50);
        // Nothing learned for Tuesday: carried forward.
        let tuesday = Now {
            ts: now.ts + 86_400_000,
            trend_per_min: None,
            ..now
        };
        assert_eq!(used_in(&p, &c, tuesday, 60), 20);
    }

    #[test]
    fn a_holiday_borrows_sunday_until_it_has_its_own() {
        let c = cal();
        let mut p = Profile::default();
        let sunday = MONDAY + 6 * 86_400_000;
        for minute in 0..1440 {
            p.learn(&c, sunday + minute * 60_000, 0.5);
        }
        let national_day = MONDAY + 3 * 86_400_000 + 12 * 3_600_000;
        assert_eq!(p.expected(&c, national_day), Some(0.5));
        p.learn(&c, national_day, 0.9);
        // At the centre of the slot it learned in, the holiday's own figure.
        assert_eq!(p.expected(&c, national_day + 450_000), Some(0.9));
    }

    #[test]
    fn forecasts_stay_within_the_car_park() {
        let c = cal();
        let p = Profile::default();
        let now = Now {
            ts: MONDAY,
            spaces: 50,
            used: 48,
            trend_per_min: Some(5.0),
        };
        for h in HORIZONS_MIN {
            assert!(used_in(&p, &c, now, h) <= 50);
        }
        let emptying = Now {
            trend_per_min: Some(-5.0),
            ..now
        };
        assert_eq!(used_in(&p, &c, emptying, 60), 0);
    }
}
