//! Per-partition event-time watermark with idle advance.

/// The watermark of one input partition: the highest event time seen minus the
/// allowed out-of-orderness, never moving backwards.
///
/// When a partition goes quiet for `idle_timeout` of wall clock, its event time is
/// assumed to flow on with the wall clock from there, so windows still close and car
/// parks still send their heartbeat when a stream stops (contract §2). The wall clock is always
/// passed in, never read here, so tests and the simulator control it.
///
/// One sensor cannot move it alone. A sensor whose clock is 59 minutes ahead
/// once moved the partition's watermark 59 minutes on, and every other zone,
/// car park and merchant on that partition was dead-lettered `late`. Like
/// Flink's per-split watermarks, the watermark here follows what the sensors
/// agree on: the newest event time of the *second* most advanced sensor (two
/// leaders are kept; their per-sensor maxima only grow, so the top two are
/// exact without a table of sensors). A runaway sensor therefore waits until
/// another one reaches its time. A runner-up silent while the leader's
/// event time moved `idle_timeout` on makes way for any sensor still
/// reporting; when none is, the leader alone moves the watermark (a dead
/// camera must not stop its zone's windows). A partition with a single
/// sensor follows it. And event times ahead of the wall clock (up to
/// `max_future_skew` is accepted) count as the wall clock's time.
///
/// Silence is measured in the leader's event time, not the wall clock
/// between records: that is the pace the records were processed at, which
/// a stall, a rebalance or a replay after downtime changes, and the same
/// input must give the same windows however fast it is read
/// (`tests/pacing.rs`). Only a partition with nothing left to read lets the
/// wall clock move it ([`on_wall_clock`](Self::on_wall_clock)).
#[derive(Debug, Clone)]
pub struct Watermark {
    out_of_orderness: i64,
    idle_timeout: i64,
    /// The two sensors with the newest event times, most advanced first (so
    /// the first holds the newest event time seen).
    leaders: [Option<Leader>; 2],
    /// Wall time of the last event that moved or matched the watermark's input.
    last_event_wall: i64,
    /// The last wall time the partition was known to hold records not yet
    /// processed (see [`hold_idle`](Self::hold_idle)).
    waiting_wall: i64,
    current: i64,
}

/// A sensor (by a stable hash of its identity) and its newest event time;
/// for the runner-up, also how far the leader has moved on without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Leader {
    pub sensor: u64,
    pub ts: i64,
    /// Event time the leader advanced since this sensor was last heard,
    /// each of the leader's readings counting for at most `idle_timeout`:
    /// one reading an hour ahead (a clock that jumps) is not an hour of
    /// silence for everyone else.
    #[serde(default)]
    pub quiet: i64,
}

impl Watermark {
    pub fn new(out_of_orderness_ms: i64, idle_timeout_ms: i64) -> Self {
        Watermark {
            out_of_orderness: out_of_orderness_ms,
            idle_timeout: idle_timeout_ms,
            leaders: [None, None],
            last_event_wall: i64::MIN,
            waiting_wall: i64::MIN,
            current: i64::MIN,
        }
    }

    /// The partition holds records not yet processed at wall time `wall`
    /// (the broker has more, or the client has them queued): it is waiting,
    /// not idle, so the wall clock does not count towards its idleness.
    /// Without this, a partition whose records waited (a rebalance, a held
    /// engine, a broker failover) had its watermark moved on by the wall
    /// clock before they came in, and the same input gave different windows
    /// from one run to the next.
    pub fn hold_idle(&mut self, wall: i64) {
        self.waiting_wall = self.waiting_wall.max(wall);
    }

    /// True when `sensor` has not been heard while the leading sensor's
    /// event time moved on by more than `idle_timeout` (see [`Leader::quiet`]).
    fn silent(&self, sensor: &Leader) -> bool {
        sensor.quiet > self.idle_timeout
    }

    /// The watermark now; `i64::MIN` before the first event.
    pub fn current(&self) -> i64 {
        self.current
    }

    /// Accounts for an accepted event at `ts` from `sensor`, received at wall
    /// time `wall`.
    pub fn observe(&mut self, sensor: u64, ts: i64, wall: i64) {
        self.last_event_wall = wall;
        self.rank(Leader {
            sensor,
            ts,
            quiet: 0,
        });
        if let Some(agreed) = self.agreed(wall) {
            self.current = self.current.max(agreed - self.out_of_orderness);
        }
    }

    /// Keeps the two most advanced sensors, most advanced first.
    fn rank(&mut self, seen: Leader) {
        let runner_up_silent = self.leaders[1].is_some_and(|b| self.silent(&b));
        let idle_timeout = self.idle_timeout;
        let [first, second] = &mut self.leaders;
        match (first.as_mut(), second.as_mut()) {
            (Some(a), b) if a.sensor == seen.sensor => {
                let moved = (seen.ts - a.ts).clamp(0, idle_timeout);
                a.ts = a.ts.max(seen.ts);
                if let Some(b) = b {
                    b.quiet = b.quiet.saturating_add(moved);
                }
            }
            (_, Some(b)) if b.sensor == seen.sensor => {
                b.ts = b.ts.max(seen.ts);
                b.quiet = 0;
            }
            (None, _) => *first = Some(seen),
            (Some(_), None) => *second = Some(seen),
            (Some(_), Some(b)) if seen.ts > b.ts => *b = seen,
            // A silent runner-up gives its place to any sensor still
            // talking, so a dead one never holds the watermark.
            (Some(_), Some(b)) if runner_up_silent => *b = seen,
            _ => {}
        }
        if let (Some(a), Some(b)) = (*first, *second) {
            if b.ts > a.ts {
                // A new leader: silence is measured along its event time
                // from here.
                self.leaders = [Some(b), Some(Leader { quiet: 0, ..a })];
            }
        }
    }

    /// The event time the sensors agree the partition has reached, never past
    /// the wall clock (so a first or lone sensor ahead of the clock cannot
    /// carry the watermark into the future either).
    fn agreed(&self, wall: i64) -> Option<i64> {
        let agreed = match self.leaders {
            [Some(a), Some(b)] if self.silent(&b) => a.ts,
            [Some(_), Some(b)] => b.ts,
            [Some(a), None] => a.ts,
            _ => return None,
        };
        Some(agreed.min(wall))
    }

    /// Advances an idle partition's watermark (no event for `idle_timeout`
    /// of wall clock, and no record known to wait) by the wall clock, from
    /// what the sensors agreed. Returns true when the watermark moved.
    pub fn on_wall_clock(&mut self, wall: i64) -> bool {
        let Some(agreed) = self.agreed(wall) else {
            return false;
        };
        let silent_for = wall.saturating_sub(self.last_event_wall.max(self.waiting_wall));
        // Event time flows with the wall clock from where it stood when the
        // partition was found idle, with no jump: a stall of just over
        // `idle_timeout` (a paused producer, a broker's garbage collection)
        // must not put the watermark past readings merely delayed within
        // the out-of-orderness, or the same input gives other windows.
        let idle = silent_for.saturating_sub(self.idle_timeout).max(0);
        let advanced = agreed - self.out_of_orderness + idle;
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

    /// State for a checkpoint: (max event time, watermark, leading sensors).
    pub fn snapshot(&self) -> (Option<i64>, i64, Vec<Leader>) {
        (
            self.leaders[0].map(|l| l.ts),
            self.current,
            self.leaders.iter().flatten().copied().collect(),
        )
    }

    /// Restores from a checkpoint; idle time counts from `wall`. A checkpoint
    /// written before sensors were tracked has only its newest event time,
    /// which stands in as one sensor.
    pub fn restore(&mut self, max_ts: Option<i64>, current: i64, leaders: &[Leader], wall: i64) {
        self.current = current;
        self.last_event_wall = wall;
        self.leaders = [None, None];
        for l in leaders {
            self.rank(*l);
        }
        if let (None, Some(ts)) = (self.leaders[0], max_ts) {
            self.rank(Leader {
                sensor: 0,
                ts,
                quiet: 0,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wall-clock times in these tests are well after their event times.
    const W: i64 = 10_000_000_000;

    #[test]
    fn lags_behind_the_newest_event_and_never_goes_back() {
        let mut w = Watermark::new(5_000, 30_000);
        assert_eq!(w.current(), i64::MIN);
        w.observe(1, 100_000, W);
        assert_eq!(w.current(), 95_000);
        w.observe(1, 90_000, W + 1);
        assert_eq!(w.current(), 95_000);
        w.observe(1, 101_000, W + 2);
        assert_eq!(w.current(), 96_000);
    }

    #[test]
    fn idle_partition_follows_the_wall_clock() {
        let mut w = Watermark::new(5_000, 30_000);
        assert!(
            !w.on_wall_clock(W + 1_000_000),
            "no events: nothing to advance from"
        );
        w.observe(1, 100_000, W + 1_000);
        assert!(!w.on_wall_clock(W + 31_000));
        assert_eq!(w.current(), 95_000);
        // Idle from W + 31 s: event time flows on from there, no jump.
        assert!(w.on_wall_clock(W + 31_500));
        assert_eq!(w.current(), 95_500);
        assert!(w.on_wall_clock(W + 61_000));
        assert_eq!(w.current(), 125_000);
        // A fresh event resets the idle clock; the watermark stays where it got to.
        w.observe(1, 110_000, W + 61_500);
        assert_eq!(w.current(), 125_000);
        assert!(!w.on_wall_clock(W + 91_500));
    }

    /// A stall of just over the idle timeout moves the watermark by the
    /// excess only, so a reading delayed within the out-of-orderness still
    /// arrives ahead of it and is applied in order.
    #[test]
    fn a_short_stall_does_not_jump_past_delayed_readings() {
        let mut w = Watermark::new(5_000, 3_000);
        w.observe(1, 100_000, W);
        w.observe(2, 100_000, W);
        assert!(w.on_wall_clock(W + 4_000));
        assert_eq!(w.current(), 96_000, "one second past the idle timeout");
        assert!(w.current() < 98_000, "a reading 2 s late is still ahead");
    }

    #[test]
    fn one_sensor_ahead_does_not_move_the_watermark_alone() {
        let mut w = Watermark::new(5_000, 30_000);
        for s in 1..=3 {
            w.observe(s, 100_000, W);
        }
        assert_eq!(w.current(), 95_000);
        // Sensor 9's clock is 59 minutes fast.
        w.observe(9, 100_000 + 59 * 60_000, W + 100);
        assert_eq!(w.current(), 95_000, "the others have not got there");
        w.observe(2, 101_000, W + 200);
        assert_eq!(w.current(), 96_000, "the others still move it");
        // Its next readings, still fast, change nothing either (no ratchet).
        w.observe(9, 100_000 + 118 * 60_000, W + 300);
        w.observe(3, 102_000, W + 400);
        assert_eq!(w.current(), 97_000);
    }

    /// Silence is counted in the leader's event time: sensor 2 dies, and
    /// once sensor 1 has moved the idle timeout on without it, sensor 1
    /// moves the watermark alone, whatever the wall clock did meanwhile.
    #[test]
    fn a_silent_runner_up_makes_way() {
        for pace in [0, 1, 1_000] {
            let mut w = Watermark::new(5_000, 30_000);
            w.observe(1, 100_000, W);
            w.observe(2, 100_000, W);
            w.observe(1, 120_000, W + 20 * pace);
            assert_eq!(w.current(), 95_000, "pace {pace}");
            w.observe(1, 140_000, W + 40 * pace);
            assert_eq!(w.current(), 135_000, "pace {pace}");
            // Sensor 9, an hour fast, and sensor 3, on time: 3 takes the dead
            // runner-up's place and 9 cannot jump the watermark.
            w.observe(9, 140_000 + 3_600_000, W + 41 * pace);
            assert_eq!(
                w.current(),
                135_000,
                "pace {pace}: 9 leads, 1 is not silent"
            );
            w.observe(3, 141_000, W + 42 * pace);
            w.observe(1, 142_000, W + 42 * pace);
            assert_eq!(w.current(), 137_000, "pace {pace}");
        }
    }

    /// Only the wall clock between records changed: a stall (the records
    /// waited) makes no sensor silent.
    #[test]
    fn a_stall_between_records_makes_no_sensor_silent() {
        let mut w = Watermark::new(5_000, 30_000);
        w.observe(1, 100_000, W);
        w.observe(2, 100_000, W);
        assert_eq!(w.current(), 95_000);
        w.observe(1, 110_000, W + 600_000);
        assert_eq!(w.current(), 95_000, "sensor 2 was not heard of, not silent");
        w.observe(2, 101_000, W + 600_001);
        assert_eq!(w.current(), 96_000);
    }

    #[test]
    fn leaders_survive_a_restore() {
        let mut w = Watermark::new(5_000, 30_000);
        w.observe(1, 100_000, W);
        w.observe(9, 5_000_000, W);
        let (max_ts, current, leaders) = w.snapshot();
        let mut r = Watermark::new(5_000, 30_000);
        r.restore(max_ts, current, &leaders, W + 10);
        r.observe(9, 5_001_000, W + 20);
        assert_eq!(
            r.current(),
            95_000,
            "the runaway still waits for the others"
        );
    }

    #[test]
    fn event_times_ahead_of_the_clock_count_as_the_clock() {
        let mut w = Watermark::new(5_000, 30_000);
        let now = 1_790_834_400_000;
        w.observe(1, now + 59 * 60_000, now);
        assert_eq!(w.current(), now - 5_000, "a lone sensor an hour fast");
        w.observe(2, now + 1_000, now + 1_000);
        assert_eq!(w.current(), now - 4_000);
    }

    #[test]
    fn a_checkpoint_without_sensors_restores_its_newest_event_time() {
        let mut w = Watermark::new(5_000, 30_000);
        w.restore(Some(100_000), 95_000, &[], W);
        assert!(
            w.on_wall_clock(W + 31_000),
            "an idle restored partition moves on"
        );
        assert_eq!(w.current(), 96_000);
    }

    /// Records waiting to be processed are not silence: while the runner
    /// says so, neither the partition's idleness nor a sensor's silence
    /// moves the watermark by the wall clock; once they are processed and
    /// nothing more comes, it idles as before.
    #[test]
    fn records_waiting_hold_the_wall_clock_advance() {
        let mut w = Watermark::new(5_000, 30_000);
        w.observe(1, W - 60_000, W);
        w.observe(2, W - 61_000, W);
        let before = w.current();
        for step in 1..=30 {
            w.hold_idle(W + step * 2_000);
            assert!(!w.on_wall_clock(W + step * 2_000), "moved at step {step}");
        }
        assert_eq!(w.current(), before);
        // A sensor heard again after the wait does not push its runner-up
        // out: it was waiting too.
        w.observe(1, W - 59_000, W + 60_500);
        assert_eq!(w.current(), before);
        // Nothing waits any more: idle after idle_timeout, as before.
        assert!(!w.on_wall_clock(W + 60_000 + 29_000));
        assert!(w.on_wall_clock(W + 60_500 + 40_000));
        assert_eq!(w.current(), W - 66_000 + 10_000);
    }
}
