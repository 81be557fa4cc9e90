//! Per-partition event-time watermark with idle advance.

/// The watermark of one input partition: the highest event time seen minus the
/// allowed out-of-orderness, never moving backwards.
///
/// When a partition goes quiet for `idle_timeout` of wall clock, its event time is
/// assumed to keep flowing with the wall clock, so windows still close and car parks
/// still send their heartbeat when a stream stops (contract §2). The wall clock is always
/// passed in, never read here, so tests and the simulator control it.
///
/// One sensor cannot move it alone. A sensor whose clock is 59 minutes ahead
/// once moved the partition's watermark 59 minutes on, and every other zone,
/// car park and merchant on that partition was dead-lettered `late`. Like
/// Flink's per-split watermarks, the watermark here follows what the sensors
/// agree on: the newest event time of the *second* most advanced sensor (two
/// leaders are kept; their per-sensor maxima only grow, so the top two are
/// exact without a table of sensors). A runaway sensor therefore waits until
/// another one reaches its time. A runner-up silent for `idle_timeout` makes
/// way for any sensor still reporting; when none is, the leader alone moves
/// the watermark (a dead camera must not stop its zone's windows). A
/// partition with a single sensor follows it. And event times ahead of the wall clock (up to
/// `max_future_skew` is accepted) count as the wall clock's time.
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

/// A sensor (by a stable hash of its identity), its newest event time and
/// when that arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Leader {
    pub sensor: u64,
    pub ts: i64,
    pub wall: i64,
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
    /// not silent, so the wall clock does not count towards its idleness nor
    /// towards a sensor's silence. Without this, a partition whose records
    /// waited (a rebalance, a held engine, a broker failover) had its
    /// watermark moved on by the wall clock before they came in, and the
    /// same input gave different windows from one run to the next.
    pub fn hold_idle(&mut self, wall: i64) {
        self.waiting_wall = self.waiting_wall.max(wall);
    }

    /// When a sensor last seen at `wall` counts as last heard of: not before
    /// the partition last had records waiting.
    fn heard(&self, wall: i64) -> i64 {
        wall.max(self.waiting_wall)
    }

    /// The watermark now; `i64::MIN` before the first event.
    pub fn current(&self) -> i64 {
        self.current
    }

    /// Accounts for an accepted event at `ts` from `sensor`, received at wall
    /// time `wall`.
    pub fn observe(&mut self, sensor: u64, ts: i64, wall: i64) {
        self.last_event_wall = wall;
        self.rank(Leader { sensor, ts, wall });
        if let Some(agreed) = self.agreed(wall) {
            self.current = self.current.max(agreed - self.out_of_orderness);
        }
    }

    /// Keeps the two most advanced sensors, most advanced first.
    fn rank(&mut self, seen: Leader) {
        let waiting_wall = self.waiting_wall;
        let idle_timeout = self.idle_timeout;
        let [first, second] = &mut self.leaders;
        match (first.as_mut(), second.as_mut()) {
            (Some(a), _) if a.sensor == seen.sensor => {
                a.ts = a.ts.max(seen.ts);
                a.wall = seen.wall;
            }
            (_, Some(b)) if b.sensor == seen.sensor => {
                b.ts = b.ts.max(seen.ts);
                b.wall = seen.wall;
            }
            (None, _) => *first = Some(seen),
            (Some(_), None) => *second = Some(seen),
            (Some(_), Some(b)) if seen.ts > b.ts => *b = seen,
            // A runner-up silent for `idle_timeout` gives its place to any
            // sensor still talking, so a dead one never holds the watermark.
            (Some(_), Some(b))
                if seen.wall.saturating_sub(b.wall.max(waiting_wall)) > idle_timeout =>
            {
                *b = seen
            }
            _ => {}
        }
        if let (Some(a), Some(b)) = (*first, *second) {
            if b.ts > a.ts {
                self.leaders = [Some(b), Some(a)];
            }
        }
    }

    /// The event time the sensors agree the partition has reached, never past
    /// the wall clock (so a first or lone sensor ahead of the clock cannot
    /// carry the watermark into the future either).
    fn agreed(&self, wall: i64) -> Option<i64> {
        let agreed = match self.leaders {
            [Some(a), Some(b)] if wall.saturating_sub(self.heard(b.wall)) > self.idle_timeout => {
                a.ts
            }
            [Some(_), Some(b)] => b.ts,
            [Some(a), None] => a.ts,
            _ => return None,
        };
        Some(agreed.min(wall))
    }

    /// Advances by the wall clock: an idle partition's (no event for
    /// `idle_timeout`) from what the sensors agreed, and the leader's once the
    /// runner-up has been silent that long. Returns true when the watermark
    /// moved.
    pub fn on_wall_clock(&mut self, wall: i64) -> bool {
        let Some(agreed) = self.agreed(wall) else {
            return false;
        };
        let silent_for = wall.saturating_sub(self.heard(self.last_event_wall));
        let idle = if silent_for < self.idle_timeout {
            0
        } else {
            silent_for
        };
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
            self.rank(Leader { wall, ..*l });
        }
        if let (None, Some(ts)) = (self.leaders[0], max_ts) {
            self.rank(Leader {
                sensor: 0,
                ts,
                wall,
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
        assert!(!w.on_wall_clock(W + 30_999));
        assert_eq!(w.current(), 95_000);
        assert!(w.on_wall_clock(W + 31_000));
        assert_eq!(w.current(), 125_000);
        assert!(w.on_wall_clock(W + 61_000));
        assert_eq!(w.current(), 155_000);
        // A fresh event resets the idle clock; the watermark stays where it got to.
        w.observe(1, 110_000, W + 61_500);
        assert_eq!(w.current(), 155_000);
        assert!(!w.on_wall_clock(W + 70_000));
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

    #[test]
    fn a_silent_runner_up_makes_way() {
        let mut w = Watermark::new(5_000, 30_000);
        w.observe(1, 100_000, W);
        w.observe(2, 100_000, W);
        // Sensor 2 dies; sensor 1 alone goes on, and after the idle timeout
        // it moves the watermark by itself.
        w.observe(1, 120_000, W + 20_000);
        assert_eq!(w.current(), 95_000);
        w.observe(1, 140_000, W + 40_000);
        assert_eq!(w.current(), 135_000);
        // Sensor 9, an hour fast, and sensor 3, on time: 3 takes the dead
        // runner-up's place and 9 cannot jump the watermark.
        w.observe(9, 140_000 + 3_600_000, W + 41_000);
        w.observe(3, 141_000, W + 42_000);
        w.observe(1, 142_000, W + 42_000);
        assert_eq!(w.current(), 137_000);
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
        assert_eq!(w.current(), 126_000);
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
        // A sensor heard again after the wait does not push its silent
        // runner-up out: it was waiting too.
        w.observe(1, W - 59_000, W + 60_500);
        assert_eq!(w.current(), before);
        // Nothing waits any more: idle after idle_timeout, as before.
        assert!(!w.on_wall_clock(W + 60_000 + 29_000));
        assert!(w.on_wall_clock(W + 60_500 + 31_000));
    }
}
