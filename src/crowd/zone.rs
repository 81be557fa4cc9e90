//! One zone's people estimate from headcount and counting-line sources.

use foldhash::{HashMap, HashMapExt};

/// Combines the zone's sources into one estimate (SPEC §2): the sum of the latest
/// headcount of each headcount source heard within `source_ttl`; where counting
/// lines exist, an occupancy `baseline + entered − exited` (never below zero) that is
/// re-based to that sum whenever a fresh headcount arrives, so the lines carry the
/// estimate between camera reports.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct PeopleEstimate {
    headcounts: HashMap<Box<str>, (i64, u32)>,
    line_occupancy: Option<u64>,
}

impl PeopleEstimate {
    pub fn with_baseline(baseline: u32) -> Self {
        PeopleEstimate {
            headcounts: HashMap::new(),
            line_occupancy: (baseline > 0).then_some(baseline as u64),
        }
    }

    /// Records a headcount; returns the zone's people estimate after it.
    pub fn headcount(&mut self, source: &str, ts: i64, people: u32, ttl: i64) -> u32 {
        match self.headcounts.get_mut(source) {
            Some(slot) if slot.0 > ts => {}
            Some(slot) => *slot = (ts, people),
            None => {
                self.headcounts.insert(source.into(), (ts, people));
            }
        }
        // Forget sources silent for longer than the ttl; they no longer describe now.
        self.headcounts.retain(|_, (seen, _)| *seen > ts - ttl);
        let sum: u64 = self.headcounts.values().map(|(_, p)| *p as u64).sum();
        if self.line_occupancy.is_some() {
            self.line_occupancy = Some(sum);
        }
        clamp_u32(sum)
    }

    /// Records a counting-line report; returns the zone's people estimate after it.
    pub fn line(&mut self, entered: u32, exited: u32) -> u32 {
        let base = self
            .line_occupancy
            .unwrap_or_else(|| self.headcounts.values().map(|(_, p)| *p as u64).sum());
        let next = (base + entered as u64).saturating_sub(exited as u64);
        self.line_occupancy = Some(next);
        clamp_u32(next)
    }

    /// Headcount sources with their last report, for checkpoints and the API.
    pub fn sources(&self) -> impl Iterator<Item = (&str, i64, u32)> {
        self.headcounts.iter().map(|(s, (ts, p))| (&**s, *ts, *p))
    }

    pub fn line_occupancy(&self) -> Option<u64> {
        self.line_occupancy
    }
}

fn clamp_u32(v: u64) -> u32 {
    v.min(u32::MAX as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_fresh_headcounts() {
        let mut e = PeopleEstimate::default();
        assert_eq!(e.headcount("cam-1", 0, 100, 120_000), 100);
        assert_eq!(e.headcount("cam-2", 10_000, 50, 120_000), 150);
        assert_eq!(e.headcount("cam-1", 20_000, 120, 120_000), 170);
        // cam-2 last reported at 10 s; at 131 s it is stale.
        assert_eq!(e.headcount("cam-1", 131_000, 90, 120_000), 90);
        // An older report from a source does not replace a newer one.
        assert_eq!(e.headcount("cam-1", 130_000, 1, 120_000), 90);
    }

    #[test]
    fn lines_count_from_the_last_headcount_and_never_go_negative() {
        let mut e = PeopleEstimate::with_baseline(10);
        assert_eq!(e.line(5, 2), 13);
        assert_eq!(e.line(0, 50), 0);
        assert_eq!(e.line(4, 0), 4);
        assert_eq!(e.headcount("cam", 0, 200, 120_000), 200);
        assert_eq!(e.line(10, 5), 205);
    }
}
