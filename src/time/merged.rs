//! The watermark of a stage fed by several upstream partitions.

use std::collections::BTreeMap;

/// Event time at a repartitioned stage is as far as the *slowest* upstream
/// partition has got: each forwarded record carries its upstream partition's
/// watermark, and this stage's watermark is the minimum over them, so no window
/// closes while an upstream partition could still send into it. An upstream
/// partition silent for `idle_timeout` of wall clock (or never heard from since
/// this stage started) is left out, as an idle input partition would be.
#[derive(Debug, Clone)]
pub struct MergedWatermark {
    expected: i32,
    idle_timeout: i64,
    started_wall: i64,
    upstream: BTreeMap<i32, (i64, i64)>,
}

impl MergedWatermark {
    pub fn new(expected: i32, idle_timeout_ms: i64, wall_ms: i64) -> Self {
        MergedWatermark {
            expected: expected.max(1),
            idle_timeout: idle_timeout_ms,
            started_wall: wall_ms,
            upstream: BTreeMap::new(),
        }
    }

    /// Upstream partition `from` has reached `watermark`.
    pub fn report(&mut self, from: i32, watermark: i64, wall_ms: i64) {
        let e = self.upstream.entry(from).or_insert((watermark, wall_ms));
        e.0 = e.0.max(watermark);
        e.1 = wall_ms;
    }

    /// Upstream watermarks, for checkpoints.
    pub fn upstreams(&self) -> Vec<(i32, i64)> {
        self.upstream.iter().map(|(p, (wm, _))| (*p, *wm)).collect()
    }

    /// The merged watermark at `wall_ms`; `None` while no active upstream exists.
    pub fn current(&self, wall_ms: i64) -> Option<i64> {
        let mut min: Option<i64> = None;
        for p in 0..self
            .expected
            .max(self.upstream.keys().max().map_or(0, |m| m + 1))
        {
            match self.upstream.get(&p) {
                Some((wm, heard)) if wall_ms - heard < self.idle_timeout => {
                    min = Some(min.map_or(*wm, |m| m.min(*wm)));
                }
                Some(_) => {}
                None if wall_ms - self.started_wall < self.idle_timeout => return None,
                None => {}
            }
        }
        min.or_else(|| self.upstream.values().map(|(wm, _)| *wm).max())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_slowest_active_upstream() {
        let mut m = MergedWatermark::new(2, 30_000, 0);
        m.report(0, 1_000, 0);
        assert_eq!(m.current(1), None, "partition 1 not heard from yet");
        m.report(1, 500, 1);
        assert_eq!(m.current(2), Some(500));
        m.report(1, 2_000, 3);
        assert_eq!(m.current(4), Some(1_000));
        // Partition 0 goes quiet: after the idle timeout only 1 counts.
        assert_eq!(m.current(30_001), Some(2_000));
    }

    #[test]
    fn a_never_heard_upstream_stops_blocking_after_the_idle_timeout() {
        let mut m = MergedWatermark::new(3, 30_000, 0);
        m.report(0, 5_000, 0);
        assert_eq!(m.current(29_999), None);
        m.report(0, 6_000, 29_000);
        assert_eq!(m.current(30_000), Some(6_000));
    }
}
