//! Multi-week parking traffic, for forecast accuracy: every car park's gates
//! count cars in and out each minute for weeks, following a weekday pattern
//! that depends on what the car park serves (offices, shops, the lakeside),
//! with weekends and public holidays of their own, and noise at three scales:
//! each day busier or quieter than usual, an occasional surge (a concert, a
//! rainy evening), and minute-to-minute randomness.
//!
//! Only gate counts are simulated, one `entry` and one `exit` message per car
//! park per minute: weeks of space sensors (with their heartbeats) would be
//! tens of millions of messages, and the forecast sees the same occupancy
//! either way. Run the engine with gate detection for every car park.

use super::{Expect, Rng, SimMessage};
use crate::model::{Catalog, InputTopic};
use crate::time::Calendar;
use serde::Serialize;

/// 2026-08-31T00:00:00+08:00, a Monday: five weeks from it take in the
/// embedded configuration's Mid-Autumn day and National Day week.
pub const DEFAULT_WEEKS_START_MS: i64 = 1_788_105_600_000;

#[derive(Debug, Clone)]
pub struct WeeksOptions {
    /// Local midnight the simulation starts at.
    pub start_ms: i64,
    pub weeks: u32,
    pub seed: u64,
}

/// What a car park serves, which decides its day.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Offices,
    Shops,
    Lakeside,
}

/// Share of spaces in use by hour of day, as (hour, share) points joined by
/// straight lines.
fn shape(kind: Kind, day_off: bool) -> &'static [(f64, f64)] {
    match (kind, day_off) {
        (Kind::Offices, false) => &[
            (0.0, 0.08),
            (7.0, 0.1),
            (9.5, 0.92),
            (12.0, 0.85),
            (13.5, 0.93),
            (17.5, 0.9),
            (19.5, 0.2),
            (24.0, 0.08),
        ],
        (Kind::Offices, true) => &[(0.0, 0.05), (10.0, 0.15), (16.0, 0.2), (24.0, 0.05)],
        (Kind::Shops, false) => &[
            (0.0, 0.05),
            (9.5, 0.08),
            (12.5, 0.55),
            (15.0, 0.45),
            (19.5, 0.8),
            (22.5, 0.1),
            (24.0, 0.05),
        ],
        (Kind::Shops, true) => &[
            (0.0, 0.05),
            (9.5, 0.1),
            (13.0, 0.9),
            (18.0, 0.97),
            (21.5, 0.4),
            (24.0, 0.05),
        ],
        (Kind::Lakeside, false) => &[
            (0.0, 0.1),
            (8.0, 0.15),
            (12.0, 0.35),
            (17.0, 0.4),
            (20.0, 0.75),
            (23.0, 0.2),
            (24.0, 0.1),
        ],
        (Kind::Lakeside, true) => &[
            (0.0, 0.1),
            (8.0, 0.2),
            (11.0, 0.85),
            (20.0, 0.98),
            (23.0, 0.3),
            (24.0, 0.1),
        ],
    }
}

fn at(points: &[(f64, f64)], hour: f64) -> f64 {
    for w in points.windows(2) {
        let ((h0, v0), (h1, v1)) = (w[0], w[1]);
        if hour <= h1 {
            return v0 + (v1 - v0) * ((hour - h0) / (h1 - h0)).clamp(0.0, 1.0);
        }
    }
    points.last().map_or(0.0, |p| p.1)
}

#[derive(Serialize)]
struct GateMsg<'a> {
    lot: &'a str,
    ts: i64,
    gate: &'static str,
    count: u32,
    event_id: String,
}

/// The messages of `weeks` weeks, in delivery order (event time plus up to two
/// seconds).
/// Each car park follows its district's calendar.
pub fn parking_weeks(catalog: &Catalog, opts: &WeeksOptions) -> Vec<SimMessage> {
    let mut rng = Rng::new(opts.seed);
    let minutes = opts.weeks as i64 * 7 * 1440;
    let mut out = Vec::with_capacity((minutes as usize) * catalog.lots.len() * 2);
    for (i, lot) in catalog.lots.iter().enumerate() {
        let cal = &catalog.districts[lot.district as usize].calendar;
        let kind = match i % 3 {
            0 => Kind::Offices,
            1 => Kind::Shops,
            _ => Kind::Lakeside,
        };
        let cap = lot.spaces as f64;
        let mut used = 0.0f64;
        let (mut day_factor, mut surge_left, mut surge) = (1.0, 0i64, 0.0);
        for m in 0..minutes {
            let ts = opts.start_ms + m * 60_000;
            let hour = (m % 1440) as f64 / 60.0;
            if m % 1440 == 0 {
                day_factor = 1.0 + 0.12 * rng.normal();
            }
            // About one surge a week per car park, lasting one to three hours.
            if surge_left == 0 && rng.chance(1.0 / (7.0 * 1440.0)) {
                surge_left = rng.range(60, 180) as i64;
                surge = 0.15 + 0.2 * rng.f64();
            }
            let day_off = cal.is_holiday(ts) || is_weekend(cal, ts);
            let mut share = at(shape(kind, day_off), hour);
            if cal.is_holiday(ts) {
                share = (share * 1.08).min(1.0);
            }
            share = (share * day_factor).clamp(0.0, 1.0);
            if surge_left > 0 {
                share = (share + surge).min(1.0);
                surge_left -= 1;
            }
            // Cars stay about three hours; arrivals steer towards the target.
            let departures = rng.poisson(used / 180.0) as f64;
            let towards = 0.08 * (share * cap - used) + 0.6 * cap.sqrt() * rng.normal() * 0.3;
            let arrivals = (departures + towards).round().max(0.0);
            let departures = departures.min(used + arrivals);
            let arrivals = arrivals.min(cap - used + departures);
            used += arrivals - departures;
            for (gate, count) in [("entry", arrivals as u32), ("exit", departures as u32)] {
                if count == 0 {
                    continue;
                }
                let event_ts = ts + rng.range(0, 60_000) as i64;
                let msg = GateMsg {
                    lot: &lot.id,
                    ts: event_ts,
                    gate,
                    count,
                    event_id: format!("{}-w-{gate}-{m}", lot.id),
                };
                out.push(SimMessage {
                    topic: InputTopic::ParkingEvents,
                    key: lot.id.clone(),
                    payload: serde_json::to_vec(&msg).expect("plain struct"),
                    ts_ms: event_ts,
                    deliver_ms: event_ts + rng.range(0, 2_000) as i64,
                    expect: Expect::Accept,
                });
            }
        }
    }
    out.sort();
    out
}

fn is_weekend(cal: &Calendar, ts: i64) -> bool {
    matches!(cal.weekday(ts), 5 | 6)
}
