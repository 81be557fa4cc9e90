//! One car park's occupancy.

use super::slots::{SlotReading, SlotTable, UNSEEN_ARRIVAL};
use crate::config::Detection;
use crate::model::Reject;
pub use crate::output::LotAnalytics;
use std::collections::VecDeque;

/// Counts of one car park. For space sensors: `occupied` and `vacant` count fresh
/// readings (held in the car park's [`SlotTable`]) and everything else is unknown. For gates: `occupied` is the balance of
/// entries and exits, clamped to `0..=spaces`, and nothing is unknown.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LotState {
    pub spaces: u32,
    pub detection: Detection,
    pub occupied: u32,
    pub vacant: u32,
    pub last_event_ts: i64,
    pub last_sweep_ts: i64,
    /// `(ts, spaces not free)`, about one a minute, for the trend.
    pub history: VecDeque<(i64, u32)>,
    #[serde(default)]
    pub analytics: LotAnalytics,
}

/// How often silent sensors are looked for, in event time: a full pass over a car
/// park's spaces is cheap once a minute and far too dear on every event.
pub const SWEEP_EVERY_MS: i64 = 60_000;

impl LotState {
    pub fn new(spaces: u32, detection: Detection) -> Self {
        LotState {
            spaces,
            detection,
            occupied: 0,
            vacant: 0,
            last_event_ts: i64::MIN,
            last_sweep_ts: i64::MIN,
            history: VecDeque::new(),
            analytics: LotAnalytics::default(),
        }
    }

    /// Extends the occupancy integrals to `ts` with the counts as they were
    /// before it; only forwards in event time, so a late reading is not
    /// integrated twice.
    fn integrate_to(&mut self, ts: i64) {
        let used = self.in_use() as i64;
        let a = &mut self.analytics;
        match a.integrated_to {
            Some(t) if ts > t => {
                a.occupied_space_ms += used * (ts - t);
                a.capacity_space_ms += self.spaces as i64 * (ts - t);
                a.integrated_to = Some(ts);
            }
            Some(_) => {}
            None => a.integrated_to = Some(ts),
        }
    }

    /// Applies a space reading at `ts`, with `now` the partition's watermark.
    /// An older reading than the one held for the space changes nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn space(
        &mut self,
        slots: &mut SlotTable,
        lot_id: &str,
        slot: &str,
        occupied: bool,
        ts: i64,
        now: i64,
        ttl: i64,
    ) -> Result<(), Reject> {
        let fresh = ts + ttl > now;
        let mut reading = SlotReading {
            ts,
            since: ts,
            occupied,
            fresh,
        };
        self.integrate_to(ts);
        match slots.entry(slot) {
            Some(held) => {
                let before = held.reading();
                if before.ts > ts {
                    return Ok(());
                }
                if before.occupied == occupied {
                    reading.since = before.since;
                } else if occupied {
                    self.analytics.sessions += 1;
                } else if before.since != UNSEEN_ARRIVAL {
                    self.analytics.stays += 1;
                    self.analytics.stay_ms += ts - before.since;
                }
                held.set(reading);
                self.uncount(before);
            }
            None => {
                // A space first heard taken: its car's arrival was not seen, so
                // it counts as neither a session nor, later, a measured stay.
                if occupied {
                    reading.since = UNSEEN_ARRIVAL;
                }
                if slots.len() >= self.spaces as usize {
                    return Err(Reject::range(format!(
                        "car park `{lot_id}` has {} spaces, and space `{slot}` would be one more distinct space than that",
                        self.spaces
                    )));
                }
                slots.set(slot, reading);
            }
        }
        self.count(reading);
        self.last_event_ts = self.last_event_ts.max(ts);
        Ok(())
    }

    /// Applies `count` cars through a gate.
    pub fn gate(&mut self, entry: bool, count: u32, ts: i64) {
        self.integrate_to(ts);
        if entry {
            self.analytics.sessions += count as u64;
        }
        self.occupied = if entry {
            (self.occupied + count).min(self.spaces)
        } else {
            self.occupied.saturating_sub(count)
        };
        self.last_event_ts = self.last_event_ts.max(ts);
    }

    fn count(&mut self, r: SlotReading) {
        if r.fresh {
            if r.occupied {
                self.occupied += 1;
            } else {
                self.vacant += 1;
            }
        }
    }

    fn uncount(&mut self, r: SlotReading) {
        if r.fresh {
            if r.occupied {
                self.occupied -= 1;
            } else {
                self.vacant -= 1;
            }
        }
    }

    /// Marks readings older than `ttl` at watermark `now` as unknown, at most once
    /// per [`SWEEP_EVERY_MS`]. Returns true when a count changed.
    pub fn sweep(&mut self, slots: &mut SlotTable, now: i64, ttl: i64) -> bool {
        if self.detection != Detection::SingleSpace
            || now < self.last_sweep_ts.saturating_add(SWEEP_EVERY_MS)
        {
            return false;
        }
        self.last_sweep_ts = now;
        let (mut lost_occupied, mut lost_vacant) = (0, 0);
        slots.update_each(|r| {
            let stale = r.fresh && r.ts + ttl <= now;
            if stale {
                r.fresh = false;
                if r.occupied {
                    lost_occupied += 1;
                } else {
                    lost_vacant += 1;
                }
            }
            stale
        });
        self.occupied -= lost_occupied;
        self.vacant -= lost_vacant;
        lost_occupied + lost_vacant > 0
    }

    /// Recomputes the sensor counts from the spaces (after a restore, which
    /// reads the car park and its spaces from separate records).
    pub fn recount(&mut self, slots: &SlotTable) {
        if self.detection == Detection::SingleSpace {
            let fresh = || slots.readings().filter(|r| r.fresh);
            self.occupied = fresh().filter(|r| r.occupied).count() as u32;
            self.vacant = fresh().filter(|r| !r.occupied).count() as u32;
        }
    }

    /// Free spaces: fresh vacant readings, or what the gates leave.
    pub fn available(&self) -> u32 {
        match self.detection {
            Detection::SingleSpace => self.vacant,
            Detection::Gate => self.spaces - self.occupied,
        }
    }

    /// Spaces not known to be free: taken, or unknown.
    pub fn in_use(&self) -> u32 {
        self.spaces - self.available()
    }

    pub fn unknown(&self) -> u32 {
        self.spaces - self.occupied - self.available()
    }

    /// Share of spaces not known to be free.
    pub fn occupancy(&self) -> f64 {
        1.0 - self.available() as f64 / self.spaces as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensors_count_fresh_readings_only() {
        let mut l = LotState::new(3, Detection::SingleSpace);
        let t = &mut SlotTable::default();
        assert_eq!((l.available(), l.unknown()), (0, 3));
        l.space(t, "p", "a", false, 0, 0, 1_000).unwrap();
        l.space(t, "p", "b", true, 0, 0, 1_000).unwrap();
        assert_eq!((l.available(), l.occupied, l.unknown()), (1, 1, 1));
        l.space(t, "p", "a", true, 10, 10, 1_000).unwrap();
        l.space(t, "p", "a", false, 5, 10, 1_000).unwrap(); // older: ignored
        assert_eq!((l.available(), l.occupied), (0, 2));
        l.space(t, "p", "c", false, 20, 20, 1_000).unwrap();
        assert!(
            l.space(t, "p", "d", false, 30, 30, 1_000).is_err(),
            "a 4th space in a 3-space car park"
        );
        assert!(l.sweep(t, 1_010, 1_000));
        assert_eq!((l.available(), l.occupied, l.unknown()), (1, 0, 2));
    }

    #[test]
    fn analytics_count_sessions_stays_and_space_hours() {
        let mut l = LotState::new(2, Detection::SingleSpace);
        let t = &mut SlotTable::default();
        let h = 3_600_000;
        l.space(t, "p", "a", true, 0, 0, 10 * h).unwrap(); // arrival not seen
        l.space(t, "p", "b", false, 0, 0, 10 * h).unwrap();
        l.space(t, "p", "b", true, h, h, 10 * h).unwrap(); // arrives at 1 h
        l.space(t, "p", "b", true, 2 * h, 2 * h, 10 * h).unwrap(); // heartbeat
        l.space(t, "p", "b", false, 3 * h, 3 * h, 10 * h).unwrap(); // leaves at 3 h
        l.space(t, "p", "a", false, 4 * h, 4 * h, 10 * h).unwrap();
        let a = l.analytics;
        assert_eq!(a.sessions, 1);
        assert_eq!((a.stays, a.average_stay_ms()), (1, Some(2 * h)));
        // In use: a for 0–4 h, b for 1–3 h: 6 space-hours of 8.
        assert_eq!(a.occupied_space_ms, 6 * h);
        assert_eq!(a.capacity_space_ms, 8 * h);
        assert_eq!(a.parking_index(), Some(0.75));
        // One session on 2 spaces over 4 hours: 3 per space per day.
        assert!((a.turnover_per_day(2).unwrap() - 3.0).abs() < 1e-9);
    }

    #[test]
    fn gates_clamp_to_capacity() {
        let mut l = LotState::new(10, Detection::Gate);
        l.gate(true, 8, 0);
        l.gate(true, 5, 1);
        assert_eq!(l.available(), 0);
        l.gate(false, 30, 2);
        assert_eq!(l.available(), 10);
    }
}
