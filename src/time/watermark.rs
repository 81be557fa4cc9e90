//! Per-partition event-time watermark with idle advance.

/// The watermark of one input partition: the highest event time seen minus the
/// allowed out-of-orderness, never moving backwards.
///
/// When a partition goes quiet for `idle_timeout` of wall clock, its event time is
/// assumed to keep flowing with the wall clock, so windows still close and car parks
/// still send their heartbeat when a stream stops (SPEC §2). The wall clock is always
/// passed in, never read here, so tests and the simulator control it.
#[derive(Debug, Clone)]
pub struct Watermark {
    out_of_orderness: i64,
    idle_timeout: i64,
    max_ts: Option<i64>,
    /// Wall time of the last event that moved or matched the watermark's input.
    last_event_wall: i64,
    current: i64,
}

impl Watermark {
    pub fn new(out_of_orderness_ms: i64, idle_timeout_ms: i64) -> Self {
        Watermark {
            out_of_orderness: out_of_orderness_ms,
            idle_timeout: idle_timeout_ms,
            max_ts: None,
            last_event_wall: i64::MIN,
            current: i64::MIN,
        }
    }

    /// The watermark now; `i64::MIN` before the first event.
    pub fn current(&self) -> i64 {
        self.current
    }

    /// The newest event time seen on this partition.
    pub fn max_event_time(&self) -> Option<i64> {
        self.max_ts
    }

    /// Accounts for an accepted event at `ts`, received at wall time `wall`.
    pub fn observe(&mut self, ts: i64, wall: i64) {
        self.last_event_wall = wall;
        if self.max_ts.is_none_or(|m| ts > m) {
            self.max_ts = Some(ts);
        }
        self.current = self.current.max(ts - self.out_of_orderness);
    }

    /// Advances an idle partition by the wall-clock time since its last event.
    /// Returns true when the watermark moved.
    pub fn on_wall_clock(&mut self, wall: i64) -> bool {
        let Some(max_ts) = self.max_ts else {
            return false;
        };
        let silent_for = wall.saturating_sub(self.last_event_wall);
        if silent_for < self.idle_timeout {
            return false;
        }
        let advanced = max_ts - self.out_of_orderness + silent_for;
        if advanced > self.current {
            self.current = advanced;
            true
        } else {
            false
        }
    }

    /// Moves the watermark forward to at least `watermark` (end of a replay, tests).
    pub fn advance_to(&mut self, watermark: i64) {
        self.current = self.current.max(watermark);
    }

    /// State for a checkpoint: (max event time, watermark).
    pub fn snapshot(&self) -> (Option<i64>, i64) {
        (self.max_ts, self.current)
    }

    /// Restores from a checkpoint; idle time counts from `wall`.
    pub fn restore(&mut self, max_ts: Option<i64>, current: i64, wall: i64) {
        self.max_ts = max_ts;
        self.current = current;
        self.last_event_wall = wall;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lags_behind_the_newest_event_and_never_goes_back() {
        let mut w = Watermark::new(5_000, 30_000);
        assert_eq!(w.current(), i64::MIN);
        w.observe(100_000, 0);
        assert_eq!(w.current(), 95_000);
        w.observe(90_000, 1);
        assert_eq!(w.current(), 95_000);
        w.observe(101_000, 2);
        assert_eq!(w.current(), 96_000);
    }

    #[test]
    fn idle_partition_follows_the_wall_clock() {
        let mut w = Watermark::new(5_000, 30_000);
        assert!(
            !w.on_wall_clock(1_000_000),
            "no events: nothing to advance from"
        );
        w.observe(100_000, 1_000);
        assert!(!w.on_wall_clock(30_999));
        assert_eq!(w.current(), 95_000);
        assert!(w.on_wall_clock(31_000));
        assert_eq!(w.current(), 125_000);
        assert!(w.on_wall_clock(61_000));
        assert_eq!(w.current(), 155_000);
        // A fresh event resets the idle clock; the watermark stays where it got to.
        w.observe(110_000, 61_500);
        assert_eq!(w.current(), 155_000);
        assert!(!w.on_wall_clock(70_000));
    }
}
