//! Bounded memory of message ids (`event_id`, `txn_id`) per partition.
//!
//! Two representations, each sized for its job:
//!
//! - In memory an id is its 64-bit hash under a seed drawn per process, so an
//!   entry costs 16 bytes plus the table's overhead instead of a heap string.
//!   Two distinct ids collide with probability 2⁻⁶⁴ per pair: with a million
//!   ids remembered, a new id is mistaken for a duplicate about once in 10¹³
//!   messages. The random seed keeps anyone from crafting ids that collide.
//! - In the changelog the ids keep their text (the seed changes with the
//!   process), written as one chunk record per checkpoint rather than one
//!   record per id. A chunk is tombstoned once every id in it is past the
//!   horizon, so compaction keeps about `horizon / commit_interval` chunks.

use foldhash::quality::RandomState;
use foldhash::{HashMap, HashMapExt};
use serde::de::{self, Deserialize, Deserializer, Visitor};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::hash::BuildHasher;

/// A chunk's size limit: well under the broker's default `max.message.bytes`
/// (1 MB), so a checkpoint after a burst of a million ids is many records, not
/// one the broker refuses.
const CHUNK_BYTES: usize = 256 * 1024;

/// Ids remembered since the last checkpoint, as one changelog chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupChunk {
    pub seq: u64,
    /// `[[id, ts], ...]` as JSON.
    pub ids: Vec<u8>,
}

/// What a checkpoint writes for the dedup memory.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DedupChanges {
    pub added: Vec<DedupChunk>,
    /// Chunks whose ids are all past the horizon.
    pub expired: Vec<u64>,
}

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
    hasher: RandomState,
    seen: HashMap<u64, i64>,
    next_sweep: i64,
    evicted_early: u64,
    /// When checkpointing: the ids added since the last checkpoint, already
    /// encoded as JSON arrays of at most `CHUNK_BYTES`, each with its newest
    /// event time.
    track: bool,
    pending: Vec<(Vec<u8>, i64)>,
    /// Chunks written and not yet expired: (sequence, newest event time in it).
    chunks: VecDeque<(u64, i64)>,
    next_seq: u64,
    cutoff: i64,
}

impl Dedup {
    pub fn new(horizon_ms: i64, max_ids: usize) -> Self {
        Dedup {
            horizon: horizon_ms.max(1),
            max_ids: max_ids.max(1),
            hasher: RandomState::default(),
            seen: HashMap::new(),
            next_sweep: i64::MIN,
            evicted_early: 0,
            track: false,
            pending: Vec::new(),
            chunks: VecDeque::new(),
            next_seq: 0,
            cutoff: i64::MIN,
        }
    }

    fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.seen.contains_key(&self.hash(id))
    }

    /// Records `id` at event time `ts`. Returns false when it was already known.
    pub fn insert(&mut self, id: &str, ts: i64) -> bool {
        let h = self.hash(id);
        if self.seen.contains_key(&h) {
            return false;
        }
        if self.seen.len() >= self.max_ids {
            self.evict_oldest_half();
        }
        self.seen.insert(h, ts);
        if self.track {
            let open = match self.pending.last_mut() {
                Some((buf, _)) if buf.len() < CHUNK_BYTES => {
                    buf.push(b',');
                    buf
                }
                _ => {
                    self.pending.push((vec![b'['], i64::MIN));
                    &mut self.pending.last_mut().expect("just pushed").0
                }
            };
            serde_json::to_writer(&mut *open, &(id, ts)).expect("strings serialise");
            let newest = &mut self.pending.last_mut().expect("open chunk").1;
            *newest = (*newest).max(ts);
        }
        true
    }

    /// Forgets ids whose event time is older than `watermark - horizon`.
    pub fn expire(&mut self, watermark: i64) {
        if watermark < self.next_sweep {
            return;
        }
        let cutoff = watermark.saturating_sub(self.horizon);
        self.cutoff = self.cutoff.max(cutoff);
        self.seen.retain(|_, ts| *ts >= cutoff);
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
        self.seen.retain(|_, ts| *ts > median);
        self.evicted_early += (before - self.seen.len()) as u64;
    }

    /// Starts recording changes for checkpoints.
    pub fn track_changes(&mut self) {
        self.track = true;
    }

    /// The ids added since the last call as a new chunk, and the chunks that
    /// have expired since.
    pub fn take_changes(&mut self) -> DedupChanges {
        let mut changes = DedupChanges::default();
        while let Some(&(seq, max_ts)) = self.chunks.front() {
            if max_ts >= self.cutoff {
                break;
            }
            changes.expired.push(seq);
            self.chunks.pop_front();
        }
        for (mut ids, newest) in std::mem::take(&mut self.pending) {
            ids.push(b']');
            let seq = self.next_seq;
            self.next_seq += 1;
            // Chunks expire in write order; one that holds an old id expires
            // no earlier than the chunks before it, which is only late.
            let max_ts = newest.max(self.chunks.back().map_or(i64::MIN, |c| c.1));
            self.chunks.push_back((seq, max_ts));
            changes.added.push(DedupChunk { seq, ids });
        }
        changes
    }

    /// Puts back a chunk read from a checkpoint (chunks in any order).
    pub fn restore_chunk(&mut self, seq: u64, ids: &[u8]) -> Result<(), serde_json::Error> {
        let ids: Vec<(Id<'_>, i64)> = serde_json::from_slice(ids)?;
        let mut max_ts = i64::MIN;
        for (id, ts) in ids {
            self.restore(&id.0, ts);
            max_ts = max_ts.max(ts);
        }
        // Keep expiry in write order, as `take_changes` does. Chunks come in
        // key order, which is sequence order, so this appends.
        let at = self.chunks.partition_point(|c| c.0 < seq);
        let before = at.checked_sub(1).map_or(i64::MIN, |i| self.chunks[i].1);
        self.chunks.insert(at, (seq, max_ts.max(before)));
        let newest = max_ts.max(before);
        for c in self.chunks.iter_mut().skip(at + 1) {
            if c.1 >= newest {
                break;
            }
            c.1 = newest;
        }
        self.next_seq = self.next_seq.max(seq + 1);
        Ok(())
    }

    /// Puts back one id read from a checkpoint. Keeps the count bound, so a
    /// restore never holds more than the running engine would have.
    pub fn restore(&mut self, id: &str, ts: i64) {
        let h = self.hash(id);
        if !self.seen.contains_key(&h) && self.seen.len() >= self.max_ids {
            self.evict_oldest_half();
        }
        let e = self.seen.entry(h).or_insert(ts);
        *e = (*e).max(ts);
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

/// The changelog side: one record per chunk, `{seq}` zero-padded so that key
/// order, in which a restore reads them, is write order.
impl crate::state::Store for Dedup {
    fn flush(&mut self, key: &str, out: &mut Vec<crate::state::StateRecord>) {
        use crate::state::StateRecord;
        let ids = self.take_changes();
        for seq in ids.expired {
            out.push(StateRecord::delete(format!("{key}/{seq:020}")));
        }
        for chunk in ids.added {
            out.push(StateRecord {
                key: format!("{key}/{:020}", chunk.seq),
                value: Some(chunk.ids),
            });
        }
    }

    fn restore(&mut self, key: &str, value: &[u8]) -> Result<(), crate::state::RestoreError> {
        let bad = |problem: String| crate::state::RestoreError {
            key: key.to_string(),
            problem,
        };
        let seq = key.parse().map_err(|e| bad(format!("chunk number: {e}")))?;
        self.restore_chunk(seq, value)
            .map_err(|e| bad(e.to_string()))
    }
}

/// An id read from a chunk: borrowed from the record unless it has escapes
/// (serde's own `Cow<str>` always copies).
struct Id<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Id<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Id<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an id string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Id<'de>, E> {
                Ok(Id(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Id<'de>, E> {
                Ok(Id(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_ids_is_split_into_bounded_chunks() {
        let mut d = Dedup::new(1_000_000, 1_000_000);
        d.track_changes();
        for i in 0..100_000 {
            d.insert(&format!("event-{i:08}"), i);
        }
        let added = d.take_changes().added;
        assert!(added.len() > 1);
        let mut r = Dedup::new(1_000_000, 1_000_000);
        for c in &added {
            assert!(c.ids.len() <= CHUNK_BYTES + 64, "{}", c.ids.len());
            r.restore_chunk(c.seq, &c.ids).unwrap();
        }
        assert_eq!(r.len(), 100_000);
        assert!(r.contains("event-00099999"));
    }

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

    #[test]
    fn chunks_round_trip_and_expire() {
        let mut d = Dedup::new(1_000, 100);
        d.track_changes();
        d.insert("a\"quoted\"", 100);
        d.insert("b", 200);
        let first = d.take_changes();
        assert!(first.expired.is_empty());
        let chunk = first.added[0].clone();
        assert_eq!(first.added.len(), 1);
        assert_eq!(chunk.seq, 0);
        assert_eq!(d.take_changes(), DedupChanges::default(), "nothing new");
        d.insert("c", 2_000);
        let second = d.take_changes().added.remove(0);
        assert_eq!(second.seq, 1);

        // A fresh process (another hash seed) restores both chunks.
        let mut r = Dedup::new(1_000, 100);
        r.track_changes();
        r.restore_chunk(second.seq, &second.ids).unwrap();
        r.restore_chunk(chunk.seq, &chunk.ids).unwrap();
        for id in ["a\"quoted\"", "b", "c"] {
            assert!(r.contains(id), "{id}");
        }
        r.insert("d", 2_100);
        assert_eq!(r.take_changes().added[0].seq, 2, "numbering goes on");

        // Once the watermark passes 200 + horizon, chunk 0 is tombstoned.
        r.expire(1_250);
        assert!(!r.contains("b"));
        assert_eq!(r.take_changes().expired, vec![0]);
        assert!(r.contains("c"));
    }
}
