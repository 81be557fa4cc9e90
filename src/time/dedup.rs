//! Bounded memory of message ids (`event_id`, `txn_id`) per partition.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Remembers the ids seen within `horizon` of event time, and at most `max_ids` of
/// them. Ids are forgotten oldest-arrival first once the watermark has moved past
/// their event time by the horizon; configuration guarantees the horizon exceeds
/// out-of-orderness plus lateness, so a forgotten id can only come back as a late
/// event, which is rejected anyway.
#[derive(Debug, Clone)]
pub struct Dedup {
    horizon: i64,
    max_ids: usize,
    seen: HashMap<Arc<str>, i64>,
    order: VecDeque<(i64, Arc<str>)>,
    evicted_early: u64,
}

impl Dedup {
    pub fn new(horizon_ms: i64, max_ids: usize) -> Self {
        Dedup {
            horizon: horizon_ms,
            max_ids: max_ids.max(1),
            seen: HashMap::new(),
            order: VecDeque::new(),
            evicted_early: 0,
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
            if let Some((_, old)) = self.order.pop_front() {
                self.seen.remove(&old);
                self.evicted_early += 1;
            }
        }
        let id: Arc<str> = Arc::from(id);
        self.seen.insert(id.clone(), ts);
        self.order.push_back((ts, id));
        true
    }

    /// Forgets ids whose event time is older than `watermark - horizon`.
    pub fn expire(&mut self, watermark: i64) {
        let cutoff = watermark.saturating_sub(self.horizon);
        while let Some((ts, _)) = self.order.front() {
            if *ts >= cutoff {
                break;
            }
            let (_, id) = self.order.pop_front().expect("front exists");
            self.seen.remove(&id);
        }
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

    /// `(id, ts)` pairs in arrival order, for checkpoints.
    pub fn entries(&self) -> impl Iterator<Item = (&str, i64)> {
        self.order.iter().map(|(ts, id)| (&**id, *ts))
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
        d.expire(1_101);
        assert!(!d.contains("a"));
        assert!(d.insert("a", 2_000));
    }

    #[test]
    fn bounded_by_count() {
        let mut d = Dedup::new(1_000_000, 2);
        d.insert("a", 1);
        d.insert("b", 2);
        d.insert("c", 3);
        assert_eq!(d.len(), 2);
        assert!(!d.contains("a"));
        assert_eq!(d.evicted_early(), 1);
    }
}
