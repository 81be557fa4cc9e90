//! Bounded memory of message ids (`event_id`, `txn_id`) per partition.

use foldhash::{HashMap, HashMapExt};

/// Ids added (with their event time) and ids forgotten since a checkpoint.
pub type DedupChanges = (Vec<(Box<str>, i64)>, Vec<Box<str>>);

/// Remembers the ids seen within `horizon` of event time, and at most `max_ids` of
/// them. Configuration guarantees the horizon exceeds out-of-orderness plus
/// lateness, so an id forgotten by age can only come back as a late event, which
/// is rejected anyway.
///
/// Expiry is amortised: rather than a queue that costs a removal per insertion,
/// the map is swept whenever the watermark has moved an eighth of the horizon, so
/// an id lives between 1 and 1⅛ horizons.
#[derive(Debug, Clone)]
pub struct Dedup {
    horizon: i64,
    max_ids: usize,
    seen: HashMap<Box<str>, i64>,
    next_sweep: i64,
    evicted_early: u64,
    /// When checkpointing: ids added and forgotten since the last checkpoint.
    track: bool,
    added: Vec<(Box<str>, i64)>,
    forgotten: Vec<Box<str>>,
}

impl Dedup {
    pub fn new(horizon_ms: i64, max_ids: usize) -> Self {
        Dedup {
            horizon: horizon_ms.max(1),
            max_ids: max_ids.max(1),
            seen: HashMap::new(),
            next_sweep: i64::MIN,
            evicted_early: 0,
            track: false,
            added: Vec::new(),
            forgotten: Vec::new(),
        }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.seen.contains_key(id)
    }

    /// Records `id` at event time `ts`. Returns false when it was already known.
    pub fn insert(&mut self, id: &str, ts: i64) -> bool {
        if self.seen.contains_key(id) {
            return false;
        }
        if self.seen.len() >= self.max_ids {
            self.evict_oldest_half();
        }
        self.seen.insert(id.into(), ts);
        if self.track {
            self.added.push((id.into(), ts));
        }
        true
    }

    /// Forgets ids whose event time is older than `watermark - horizon`.
    pub fn expire(&mut self, watermark: i64) {
        if watermark < self.next_sweep {
            return;
        }
        let cutoff = watermark.saturating_sub(self.horizon);
        self.forget_where(|ts| ts < cutoff);
        self.next_sweep = watermark.saturating_add(self.horizon / 8);
    }

    /// Over the count limit: drop the older half by event time. Rare, and only
    /// under a flood of ids, so a linear pass is fine.
    fn evict_oldest_half(&mut self) {
        let mut times: Vec<i64> = self.seen.values().copied().collect();
        let mid = times.len() / 2;
        let (_, median, _) = times.select_nth_unstable(mid);
        let median = *median;
        let before = self.seen.len();
        self.forget_where(|ts| ts <= median);
        self.evicted_early += (before - self.seen.len()) as u64;
    }

    fn forget_where(&mut self, old: impl Fn(i64) -> bool) {
        if self.track {
            let forgotten = &mut self.forgotten;
            self.seen.retain(|id, ts| {
                if old(*ts) {
                    forgotten.push(id.clone());
                    false
                } else {
                    true
                }
            });
        } else {
            self.seen.retain(|_, ts| !old(*ts));
        }
    }

    /// Starts recording changes for checkpoints.
    pub fn track_changes(&mut self) {
        self.track = true;
    }

    /// Ids added and forgotten since the last call.
    pub fn take_changes(&mut self) -> DedupChanges {
        let added = std::mem::take(&mut self.added);
        let forgotten = std::mem::take(&mut self.forgotten);
        // An id added and forgotten between two checkpoints needs no record.
        if forgotten.is_empty() {
            return (added, forgotten);
        }
        let gone: std::collections::HashSet<&str> = forgotten.iter().map(|f| &**f).collect();
        let added = added
            .into_iter()
            .filter(|(id, _)| !gone.contains(&**id))
            .collect();
        (added, forgotten)
    }

    /// Puts back an id read from a checkpoint.
    pub fn restore(&mut self, id: &str, ts: i64) {
        self.seen.insert(id.into(), ts);
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Ids dropped because `max_ids` was reached before their horizon ran out.
    pub fn evicted_early(&self) -> u64 {
        self.evicted_early
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_within_the_horizon_only() {
        let mut d = Dedup::new(1_000, 10);
        assert!(d.insert("a", 100));
        assert!(!d.insert("a", 100));
        d.expire(1_100);
        assert!(d.contains("a"));
        d.expire(1_101); // before the next sweep: still there
        assert!(d.contains("a"));
        d.expire(1_225);
        assert!(!d.contains("a"));
        assert!(d.insert("a", 2_000));
    }

    #[test]
    fn bounded_by_count() {
        let mut d = Dedup::new(1_000_000, 4);
        for (i, id) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            d.insert(id, i as i64);
        }
        assert!(d.len() <= 4);
        assert!(!d.contains("a"), "the oldest go first");
        assert!(d.contains("e"));
        assert!(d.evicted_early() >= 1);
    }
}
