//! Tumbling and hopping event-time windows and a changelogged store of
//! per-window aggregates.

use crate::state::{unknown_key, RestoreError, StateRecord, Store, ValueFormat};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Window geometry: `size` and `advance` in ms; `advance == size` is tumbling.
/// Windows are aligned to the epoch, as in Kafka Streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    pub size: i64,
    pub advance: i64,
}

impl WindowSpec {
    pub fn tumbling(size: i64) -> Self {
        WindowSpec {
            size,
            advance: size,
        }
    }

    pub fn hopping(size: i64, advance: i64) -> Self {
        assert!(
            advance > 0 && advance <= size,
            "window advance must be in (0, size]"
        );
        WindowSpec { size, advance }
    }

    /// Start of the newest window that contains `ts`.
    fn last_start(&self, ts: i64) -> i64 {
        ts.div_euclid(self.advance) * self.advance
    }

    /// Starts of every window containing `ts`, oldest first.
    pub fn starts_of(&self, ts: i64) -> impl Iterator<Item = i64> {
        let last = self.last_start(ts);
        let first = last - (self.size / self.advance - 1) * self.advance;
        let (size, advance) = (self.size, self.advance);
        (0..)
            .map(move |i| first + i * advance)
            .take_while(move |s| *s <= last)
            .filter(move |s| s + size > ts)
    }

    /// An event is late when even the newest window holding it is final.
    pub fn is_late(&self, ts: i64, watermark: i64, lateness: i64) -> bool {
        self.last_start(ts) + self.size + lateness <= watermark
    }
}

/// Aggregates of type `A` per window start and entity `K`. Windows close in start
/// order, entities within a window in key order, so output order is deterministic.
///
/// As a [`Store`] it logs one record per open window (`{start}`), written when
/// the window changed and tombstoned when it closed.
#[derive(Clone)]
pub struct WindowStore<K: Ord, A> {
    spec: WindowSpec,
    lateness: i64,
    windows: BTreeMap<i64, BTreeMap<K, A>>,
    changed: BTreeSet<i64>,
    closed: BTreeSet<i64>,
    format: Arc<dyn ValueFormat<BTreeMap<K, A>>>,
}

impl<K: Ord + std::fmt::Debug, A: std::fmt::Debug> std::fmt::Debug for WindowStore<K, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.windows.fmt(f)
    }
}

impl<K: Ord + Clone, A: Default> WindowStore<K, A> {
    /// `format` writes one window's aggregates into its changelog record.
    pub fn new(
        spec: WindowSpec,
        lateness: i64,
        format: Arc<dyn ValueFormat<BTreeMap<K, A>>>,
    ) -> Self {
        WindowStore {
            spec,
            lateness,
            windows: BTreeMap::new(),
            changed: BTreeSet::new(),
            closed: BTreeSet::new(),
            format,
        }
    }

    pub fn spec(&self) -> WindowSpec {
        self.spec
    }

    pub fn is_late(&self, ts: i64, watermark: i64) -> bool {
        self.spec.is_late(ts, watermark, self.lateness)
    }

    /// Applies `f` to the aggregate of `key` in every window containing `ts`.
    pub fn update(&mut self, ts: i64, key: &K, mut f: impl FnMut(&mut A)) {
        for start in self.spec.starts_of(ts) {
            self.changed.insert(start);
            let window = self.windows.entry(start).or_default();
            match window.get_mut(key) {
                Some(agg) => f(agg),
                None => f(window.entry(key.clone()).or_default()),
            }
        }
    }

    /// Removes and hands over every window that the watermark made final, as
    /// `(start, end, key, aggregate)`.
    pub fn close_until(&mut self, watermark: i64, mut emit: impl FnMut(i64, i64, K, A)) {
        while let Some(entry) = self.windows.first_entry() {
            let start = *entry.key();
            let end = start + self.spec.size;
            if end + self.lateness > watermark {
                break;
            }
            for (key, agg) in entry.remove() {
                emit(start, end, key, agg);
            }
            self.changed.remove(&start);
            self.closed.insert(start);
        }
    }

    /// Number of open windows, for metrics and tests.
    pub fn open_windows(&self) -> usize {
        self.windows.len()
    }
}

impl<K: Ord, A> Store for WindowStore<K, A> {
    fn flush(&mut self, key: &str, out: &mut Vec<StateRecord>) {
        for start in std::mem::take(&mut self.changed) {
            if let Some(w) = self.windows.get(&start) {
                out.push(StateRecord {
                    key: format!("{key}/{start}"),
                    value: Some(self.format.write(w)),
                });
            }
        }
        for start in std::mem::take(&mut self.closed) {
            out.push(StateRecord::delete(format!("{key}/{start}")));
        }
    }

    fn restore(&mut self, key: &str, value: &[u8]) -> Result<(), RestoreError> {
        let start: i64 = key.parse().map_err(|_| unknown_key(key))?;
        let aggs = self.format.read(value)?;
        self.windows.insert(start, aggs);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumbling_windows_hold_each_instant_once() {
        let w = WindowSpec::tumbling(60_000);
        assert_eq!(w.starts_of(0).collect::<Vec<_>>(), vec![0]);
        assert_eq!(w.starts_of(59_999).collect::<Vec<_>>(), vec![0]);
        assert_eq!(w.starts_of(60_000).collect::<Vec<_>>(), vec![60_000]);
        assert_eq!(w.starts_of(-1).collect::<Vec<_>>(), vec![-60_000]);
    }

    #[test]
    fn hopping_windows_overlap() {
        let w = WindowSpec::hopping(60_000, 20_000);
        assert_eq!(
            w.starts_of(65_000).collect::<Vec<_>>(),
            vec![20_000, 40_000, 60_000]
        );
        assert_eq!(
            w.starts_of(60_000).collect::<Vec<_>>(),
            vec![20_000, 40_000, 60_000]
        );
    }

    #[test]
    fn lateness_is_judged_by_the_newest_window() {
        let w = WindowSpec::tumbling(60_000);
        // Window [0, 60s) is final once the watermark reaches 70s with 10s lateness.
        assert!(!w.is_late(30_000, 69_999, 10_000));
        assert!(w.is_late(30_000, 70_000, 10_000));
        let h = WindowSpec::hopping(60_000, 30_000);
        // 30s also sits in [30s, 90s), open until the watermark reaches 100s.
        assert!(!h.is_late(30_000, 70_000, 10_000));
    }

    #[test]
    fn store_closes_in_order() {
        let json = Arc::new(crate::state::Json);
        let mut s: WindowStore<u8, u32> = WindowStore::new(WindowSpec::tumbling(10), 5, json);
        s.update(3, &2, |a| *a += 1);
        s.update(4, &1, |a| *a += 2);
        s.update(12, &1, |a| *a += 4);
        let mut out = vec![];
        s.close_until(14, |st, en, k, a| out.push((st, en, k, a)));
        assert!(out.is_empty());
        s.close_until(15, |st, en, k, a| out.push((st, en, k, a)));
        assert_eq!(out, vec![(0, 10, 1, 2), (0, 10, 2, 1)]);
        assert_eq!(s.open_windows(), 1);
        let mut log = Vec::new();
        s.flush("p/0/win", &mut log);
        let keys: Vec<_> = log
            .iter()
            .map(|r| (r.key.as_str(), r.value.is_some()))
            .collect();
        assert_eq!(
            keys,
            [("p/0/win/10", true), ("p/0/win/0", false)],
            "open written, closed deleted"
        );
    }
}
