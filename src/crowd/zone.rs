//! One zone's people estimate from headcount and counting-line sources.

use foldhash::{HashMap, HashMapExt};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Combines the zone's sources into one estimate (contract §2): the sum of the latest
/// headcount of each headcount source heard within `source_ttl`; where counting
/// lines exist, an occupancy `baseline + entered − exited` (never below zero) that is
/// re-based to that sum whenever a fresh headcount arrives, so the lines carry the
/// estimate between camera reports.
///
/// The sum and the expiry order are kept as readings arrive, so a reading
/// costs O(log sources), not a pass over every source: with 40,000 cameras in
/// one zone that pass made a fast feed quadratic. They are derived data, not
/// checkpointed, and rebuilt from the sources after a restore.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct PeopleEstimate {
    headcounts: HashMap<Box<str>, (i64, u32)>,
    line_occupancy: Option<u64>,
    #[serde(skip)]
    index: Option<Index>,
}

/// The sum of the sources' latest headcounts, and their report times in
/// expiry order (a source's older entries stay until they surface, and are
/// then skipped: its map entry has a newer time).
#[derive(Debug, Clone, Default)]
struct Index {
    sum: u64,
    expiry: BinaryHeap<Reverse<(i64, Box<str>)>>,
}

impl Index {
    /// Built from the sources, after a restore.
    fn of(headcounts: &HashMap<Box<str>, (i64, u32)>) -> Self {
        Index {
            sum: headcounts.values().map(|(_, p)| *p as u64).sum(),
            expiry: headcounts
                .iter()
                .map(|(s, (ts, _))| Reverse((*ts, s.clone())))
                .collect(),
        }
    }
}

impl PeopleEstimate {
    pub fn with_baseline(baseline: u32) -> Self {
        PeopleEstimate {
            headcounts: HashMap::new(),
            line_occupancy: (baseline > 0).then_some(baseline as u64),
            index: None,
        }
    }

    /// Records a headcount; returns the zone's people estimate after it.
    pub fn headcount(&mut self, source: &str, ts: i64, people: u32, ttl: i64) -> u32 {
        let index = self
            .index
            .get_or_insert_with(|| Index::of(&self.headcounts));
        match self.headcounts.get_mut(source) {
            Some(slot) if slot.0 > ts => {}
            Some(slot) => {
                index.sum = index.sum - slot.1 as u64 + people as u64;
                *slot = (ts, people);
                index.expiry.push(Reverse((ts, source.into())));
            }
            None => {
                self.headcounts.insert(source.into(), (ts, people));
                index.sum += people as u64;
                index.expiry.push(Reverse((ts, source.into())));
            }
        }
        // Forget sources silent for longer than the ttl; they no longer describe now.
        while let Some(Reverse((seen, _))) = index.expiry.peek() {
            if *seen > ts - ttl {
                break;
            }
            let Reverse((seen, s)) = index.expiry.pop().expect("peeked");
            if self
                .headcounts
                .get(&s)
                .is_some_and(|(last, _)| *last == seen)
            {
                if let Some((_, p)) = self.headcounts.remove(&s) {
                    index.sum -= p as u64;
                }
            }
        }
        let sum = index.sum;
        if self.line_occupancy.is_some() {
            self.line_occupancy = Some(sum);
        }
        clamp_u32(sum)
    }

    /// Records a counting-line report; returns the zone's people estimate after it.
    pub fn line(&mut self, entered: u32, exited: u32) -> u32 {
        let base = match self.line_occupancy {
            Some(o) => o,
            None => {
                self.index
                    .get_or_insert_with(|| Index::of(&self.headcounts))
                    .sum
            }
        };
        let next = (base + entered as u64).saturating_sub(exited as u64);
        self.line_occupancy = Some(next);
        clamp_u32(next)
    }

    /// True when `source` is one of the headcount sources heard within the ttl.
    pub fn knows(&self, source: &str) -> bool {
        self.headcounts.contains_key(source)
    }

    pub fn source_count(&self) -> usize {
        self.headcounts.len()
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

    /// The kept sum and expiry order give what summing every fresh source
    /// would, for any sequence of reports (restores included).
    #[test]
    fn the_running_sum_equals_the_naive_one() {
        let ttl = 120_000;
        let mut e = PeopleEstimate::default();
        let mut naive: std::collections::HashMap<String, (i64, u32)> = Default::default();
        let mut x: u64 = 7;
        let mut ts = 0i64;
        for i in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ts += (x % 3_000) as i64;
            let source = format!("cam-{}", x % 200);
            let people = (x % 500) as u32;
            let back = (x % 7 == 0) as i64 * 5_000; // now and then an older report
            let at = ts - back;
            match naive.get_mut(&source) {
                Some(s) if s.0 > at => {}
                Some(s) => *s = (at, people),
                None => {
                    naive.insert(source.clone(), (at, people));
                }
            }
            naive.retain(|_, (seen, _)| *seen > at - ttl);
            let expected: u64 = naive.values().map(|(_, p)| *p as u64).sum();
            assert_eq!(
                e.headcount(&source, at, people, ttl) as u64,
                expected,
                "at {i}"
            );
            if i % 5_000 == 4_999 {
                // A checkpoint and restore drops the derived index.
                let json = serde_json::to_vec(&e).unwrap();
                e = serde_json::from_slice(&json).unwrap();
            }
        }
    }
}
