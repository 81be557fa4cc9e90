//! One car park's occupancy.

use crate::config::Detection;
use crate::model::Reject;
use foldhash::{HashMap, HashMapExt};
use std::collections::VecDeque;

/// One space's last sensor reading. 16 bytes: the map entry, not this, dominates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SlotReading {
    pub ts: i64,
    pub occupied: bool,
    /// False once the sensor has been silent longer than `slot_ttl`.
    pub fresh: bool,
    /// Changed since the last checkpoint.
    #[serde(skip)]
    pub changed: bool,
}

/// Counts of one car park. For space sensors: `occupied` and `vacant` count fresh
/// readings and everything else is unknown. For gates: `occupied` is the balance of
/// entries and exits, clamped to `0..=spaces`, and nothing is unknown.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LotState {
    pub spaces: u32,
    pub detection: Detection,
    /// Checkpointed one record per space, not with the car park.
    #[serde(skip)]
    pub slots: HashMap<Box<str>, SlotReading>,
    pub occupied: u32,
    pub vacant: u32,
    pub last_event_ts: i64,
    pub last_sweep_ts: i64,
    /// `(ts, spaces not free)`, about one a minute, for the trend.
    pub history: VecDeque<(i64, u32)>,
}

/// How often silent sensors are looked for, in event time: a full pass over a car
/// park's spaces is cheap once a minute and far too dear on every event.
pub const SWEEP_EVERY_MS: i64 = 60_000;

impl LotState {
    pub fn new(spaces: u32, detection: Detection) -> Self {
        LotState {
            spaces,
            detection,
            slots: HashMap::new(),
            occupied: 0,
            vacant: 0,
            last_event_ts: i64::MIN,
            last_sweep_ts: i64::MIN,
            history: VecDeque::new(),
        }
    }

    /// Applies a space reading at `ts`, with `now` the partition's watermark.
    /// An older reading than the one held for the space changes nothing.
    pub fn space(
        &mut self,
        lot_id: &str,
        slot: &str,
        occupied: bool,
        ts: i64,
        now: i64,
        ttl: i64,
    ) -> Result<(), Reject> {
        let fresh = ts + ttl > now;
        let reading = SlotReading {
            ts,
            occupied,
            fresh,
            changed: true,
        };
        match self.slots.get_mut(slot) {
            Some(old) => {
                if old.ts > ts {
                    return Ok(());
                }
                let before = *old;
                *old = reading;
                self.uncount(before);
            }
            None => {
                if self.slots.len() >= self.spaces as usize {
                    return Err(Reject::range(format!(
                        "car park `{lot_id}` has {} spaces, and space `{slot}` would be one more distinct space than that",
                        self.spaces
                    )));
                }
                self.slots.insert(slot.into(), reading);
            }
        }
        self.count(reading);
        self.last_event_ts = self.last_event_ts.max(ts);
        Ok(())
    }

    /// Applies `count` cars through a gate.
    pub fn gate(&mut self, entry: bool, count: u32, ts: i64) {
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
    pub fn sweep(&mut self, now: i64, ttl: i64) -> bool {
        if self.detection != Detection::SingleSpace
            || now < self.last_sweep_ts.saturating_add(SWEEP_EVERY_MS)
        {
            return false;
        }
        self.last_sweep_ts = now;
        let (mut lost_occupied, mut lost_vacant) = (0, 0);
        for r in self.slots.values_mut() {
            if r.fresh && r.ts + ttl <= now {
                r.fresh = false;
                r.changed = true;
                if r.occupied {
                    lost_occupied += 1;
                } else {
                    lost_vacant += 1;
                }
            }
        }
        self.occupied -= lost_occupied;
        self.vacant -= lost_vacant;
        lost_occupied + lost_vacant > 0
    }

    /// Puts back a space read from a checkpoint; counts are rebuilt by
    /// [`recount`](Self::recount) once all spaces are in.
    pub fn restore_space(&mut self, slot: &str, reading: SlotReading) {
        self.slots.insert(slot.into(), reading);
    }

    /// Recomputes the sensor counts from the spaces.
    pub fn recount(&mut self) {
        if self.detection == Detection::SingleSpace {
            self.occupied = self
                .slots
                .values()
                .filter(|r| r.fresh && r.occupied)
                .count() as u32;
            self.vacant = self
                .slots
                .values()
                .filter(|r| r.fresh && !r.occupied)
                .count() as u32;
        }
    }

    /// Free spaces: fresh vacant readings, or what the gates leave.
    pub fn available(&self) -> u32 {
        match self.detection {
            Detection::SingleSpace => self.vacant,
            Detection::Gate => self.spaces - self.occupied,
        }
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
        assert_eq!((l.available(), l.unknown()), (0, 3));
        l.space("p", "a", false, 0, 0, 1_000).unwrap();
        l.space("p", "b", true, 0, 0, 1_000).unwrap();
        assert_eq!((l.available(), l.occupied, l.unknown()), (1, 1, 1));
        l.space("p", "a", true, 10, 10, 1_000).unwrap();
        l.space("p", "a", false, 5, 10, 1_000).unwrap(); // older: ignored
        assert_eq!((l.available(), l.occupied), (0, 2));
        l.space("p", "c", false, 20, 20, 1_000).unwrap();
        assert!(
            l.space("p", "d", false, 30, 30, 1_000).is_err(),
            "a 4th space in a 3-space car park"
        );
        assert!(l.sweep(1_010, 1_000));
        assert_eq!((l.available(), l.occupied, l.unknown()), (1, 0, 2));
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
