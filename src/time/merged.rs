//! The watermark of a stage fed by several upstream partitions.

use std::collections::BTreeMap;

/// Event time at a repartitioned stage is as far as the *slowest* upstream
/// partition has got: each forwarded record carries its upstream partition's
/// watermark, and this stage's watermark is the minimum over them, so no window
/// closes while an upstream partition could still send into it.
///
/// Every upstream task sends a heartbeat each second, idle or not, so silence
/// means its owner is gone (crashed, or its partitions are being moved) rather
/// than that it has nothing to say: this stage then *waits* at the last
/// watermark it heard, so the windows close the same whether or not an
/// instance died. Two exceptions keep it live: an upstream that is alive but has
/// seen no event for `idle_timeout` (heartbeats with no watermark) is left out,
/// as an idle input partition would be; and an upstream silent for `dead_after`
/// is written off, so a stage whose upstream is gone for good still closes its
/// windows.
#[derive(Debug, Clone)]
pub struct MergedWatermark {
    expected: i32,
    idle_timeout: i64,
    dead_after: i64,
    started_wall: i64,
    upstream: BTreeMap<i32, Upstream>,
    /// Upstreams known to hold entities: one that has no event yet is waited
    /// for up to `dead_after`, not left out after `idle_timeout`.
    holding: std::collections::BTreeSet<i32>,
}

#[derive(Debug, Clone, Copy)]
struct Upstream {
    /// `i64::MIN` while the upstream has seen no event.
    watermark: i64,
    heard: i64,
    /// Since when it has been reporting "no event yet".
    empty_since: Option<i64>,
}

/// An upstream silent this long is written off, whatever the idle timeout.
pub const MIN_DEAD_AFTER_MS: i64 = 60_000;

impl MergedWatermark {
    /// An upstream that reports no event for `idle_timeout_ms` is left out; one
    /// silent for `max(idle_timeout_ms, MIN_DEAD_AFTER_MS)` (longer than a
    /// consumer-group session timeout plus a restore) is written off.
    pub fn new(expected: i32, idle_timeout_ms: i64, wall_ms: i64) -> Self {
        MergedWatermark {
            expected: expected.max(1),
            idle_timeout: idle_timeout_ms,
            dead_after: idle_timeout_ms.max(MIN_DEAD_AFTER_MS),
            started_wall: wall_ms,
            upstream: BTreeMap::new(),
            holding: Default::default(),
        }
    }

    /// Names the upstreams that hold entities and so will have events: while
    /// one has none yet (a stage catching up, a partition still restoring),
    /// the merged watermark waits for it rather than close windows it still
    /// has records for. Left out only once empty for `dead_after`.
    pub fn expect_events_from(&mut self, upstreams: impl IntoIterator<Item = i32>) {
        self.holding.extend(upstreams);
    }

    /// Upstream partition `from` has reached `watermark` (`i64::MIN`: it is
    /// alive and has seen no event yet).
    pub fn report(&mut self, from: i32, watermark: i64, wall_ms: i64) {
        let e = self.upstream.entry(from).or_insert(Upstream {
            watermark,
            heard: wall_ms,
            empty_since: None,
        });
        e.watermark = e.watermark.max(watermark);
        e.heard = wall_ms;
        e.empty_since = if e.watermark == i64::MIN {
            Some(e.empty_since.unwrap_or(wall_ms))
        } else {
            None
        };
    }

    /// Upstream watermarks, for checkpoints.
    pub fn upstreams(&self) -> Vec<(i32, i64)> {
        self.upstream
            .iter()
            .map(|(p, u)| (*p, u.watermark))
            .collect()
    }

    /// The merged watermark at `wall_ms`; `None` while it must wait for an
    /// upstream it knows nothing about yet.
    pub fn current(&self, wall_ms: i64) -> Option<i64> {
        let mut min: Option<i64> = None;
        let partitions = self
            .expected
            .max(self.upstream.keys().max().map_or(0, |m| m + 1));
        for p in 0..partitions {
            match self.upstream.get(&p) {
                Some(u) if wall_ms - u.heard >= self.dead_after => {}
                Some(u) if u.watermark == i64::MIN => {
                    let alive = wall_ms - u.heard < HEARD_RECENTLY_MS;
                    let patience = if self.holding.contains(&p) {
                        self.dead_after
                    } else {
                        self.idle_timeout
                    };
                    let idle = u.empty_since.is_some_and(|t| wall_ms - t >= patience);
                    if !(alive && idle) {
                        return None;
                    }
                }
                Some(u) => min = Some(min.map_or(u.watermark, |m| m.min(u.watermark))),
                None if wall_ms - self.started_wall < self.dead_after => return None,
                None => {}
            }
        }
        min
    }
}

/// An upstream with no event time counts as alive (and empty) for this long
/// after its last heartbeat; three heartbeat periods.
const HEARD_RECENTLY_MS: i64 = 3_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_upstream_that_holds_entities_is_waited_for_longer() {
        let mut m = MergedWatermark::new(2, 3_000, 0);
        m.expect_events_from([1]);
        for t in (0..=10_000).step_by(1_000) {
            m.report(0, 5_000, t);
            m.report(1, i64::MIN, t);
        }
        assert_eq!(m.current(10_000), None, "upstream 1 will have events");
        let mut idle = MergedWatermark::new(2, 3_000, 0);
        for t in (0..=10_000).step_by(1_000) {
            idle.report(0, 5_000, t);
            idle.report(1, i64::MIN, t);
        }
        assert_eq!(
            idle.current(10_000),
            Some(5_000),
            "an empty one is left out"
        );
    }

    #[test]
    fn follows_the_slowest_upstream_and_waits_for_a_silent_one() {
        let mut m = MergedWatermark::new(2, 30_000, 0);
        m.report(0, 1_000, 0);
        assert_eq!(m.current(1), None, "partition 1 not heard from yet");
        m.report(1, 500, 1);
        assert_eq!(m.current(2), Some(500));
        m.report(1, 2_000, 3);
        assert_eq!(m.current(4), Some(1_000));
        // Partition 0 goes silent (its owner died): the stage waits for it…
        assert_eq!(m.current(30_001), Some(1_000));
        // …until it is written off.
        assert_eq!(m.current(60_001), Some(2_000));
    }

    #[test]
    fn an_alive_upstream_without_events_is_left_out_once_idle() {
        let mut m = MergedWatermark::new(2, 3_000, 0);
        m.report(0, 5_000, 0);
        m.report(1, i64::MIN, 0);
        // It may just not have reached its backlog yet: wait.
        assert_eq!(m.current(1_000), None);
        m.report(1, i64::MIN, 2_000);
        m.report(1, i64::MIN, 3_000);
        assert_eq!(m.current(3_000), Some(5_000));
        // No more heartbeats from it: it may have events now; wait.
        assert_eq!(m.current(10_000), None);
    }

    #[test]
    fn a_never_heard_upstream_stops_blocking_when_written_off() {
        let mut m = MergedWatermark::new(3, 30_000, 0);
        m.report(0, 5_000, 0);
        assert_eq!(m.current(59_999), None);
        m.report(0, 6_000, 59_000);
        assert_eq!(m.current(60_000), Some(6_000));
    }
}
