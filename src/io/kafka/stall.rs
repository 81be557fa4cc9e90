//! Which assigned partitions have stopped moving, and why.
//!
//! A checkpoint commits as long as any partition moves, so the engine-wide
//! "no progress" verdict cannot see one partition that is stuck: a batch the
//! client cannot decompress (zstd, before the client had it), a revoked Read
//! grant, a fetch that fails for good, a partition whose messages wait in its
//! queue while nothing processes them. Each of those was silent before.
//!
//! A partition is stalled once, for longer than `kafka.unhealthy_after`,
//! - the broker holds records beyond where the client fetches (its end offset,
//!   asked of the broker itself, is ahead of the fetch position), or the
//!   client holds fetched records in the partition's queue,
//! - and neither the fetch position nor the processed position has moved.
//!
//! A partition that ends in transaction markers is not stalled: the fetch
//! position passes the markers although no message reaches the engine.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A partition: topic name and number.
pub type Key = (String, i32);

#[derive(Debug, Default, Clone)]
struct Track {
    /// The next offset the client fetches (librdkafka's statistics).
    fetch: Option<i64>,
    /// The next offset the engine processes.
    processed: Option<i64>,
    /// The broker's end offset (high watermark, or last stable offset for a
    /// `read_committed` consumer).
    end: Option<i64>,
    /// Messages fetched and waiting in the partition's queue.
    queued: i64,
    /// Since when the partition has records waiting and has not moved.
    since: Option<Instant>,
    /// The last error the client reported for this partition.
    cause: Option<String>,
}

impl Track {
    fn waiting(&self) -> bool {
        let reached = self.fetch.max(self.processed);
        let behind = match (self.end, reached) {
            (Some(end), Some(at)) => end > at,
            // Records exist and nothing has been fetched or processed yet.
            (Some(end), None) => end > 0 && self.fetch.is_none(),
            _ => false,
        };
        behind || self.queued > 0
    }

    /// Starts or clears the stall clock after a change. A partition the
    /// client reports an error for counts as stuck even when no records are
    /// known to wait: a revoked Read grant takes Describe with it, so the
    /// broker's end offset can no longer be asked and stays where it was.
    fn settle(&mut self, moved: bool, now: Instant) {
        if moved {
            self.cause = None;
        }
        if moved || !(self.waiting() || self.cause.is_some()) {
            self.since = None;
        } else if self.since.is_none() {
            self.since = Some(now);
        }
    }
}

/// A stalled partition, as `/healthz` names it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stalled {
    pub topic: String,
    pub partition: i32,
    pub seconds: u64,
    pub cause: String,
}

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "partition {}[{}] has not advanced for {} s ({})",
            self.topic, self.partition, self.seconds, self.cause
        )
    }
}

/// The assigned partitions' progress.
#[derive(Debug, Default)]
pub struct StallWatch {
    parts: BTreeMap<Key, Track>,
}

impl StallWatch {
    /// Keeps only the partitions in `assigned` (new ones start unknown).
    pub fn assigned(&mut self, assigned: &[Key]) {
        self.parts.retain(|k, _| assigned.contains(k));
        for k in assigned {
            self.parts.entry(k.clone()).or_default();
        }
    }

    /// The client's statistics for a partition: where it fetches and how many
    /// messages wait in its queue. Partitions not assigned are ignored.
    pub fn fetched(&mut self, key: &Key, fetch: i64, queued: i64, now: Instant) {
        let Some(t) = self.parts.get_mut(key) else {
            return;
        };
        let fetch = (fetch >= 0).then_some(fetch);
        // Progress is reaching offsets not reached before: a rewind loop
        // (seek back, read the same records again) is not.
        let moved = fetch.is_some() && t.fetch.is_some() && fetch > t.fetch;
        if fetch > t.fetch {
            t.fetch = fetch;
        }
        t.queued = queued.max(0);
        t.settle(moved, now);
    }

    /// Whether the partition is known to hold nothing the engine has not
    /// taken: the broker's end offset is known, the client has fetched up to
    /// it (or there is nothing) and holds nothing queued. Unknown (just
    /// assigned, the broker not answering) is not caught up.
    pub fn caught_up(&self, key: &Key) -> bool {
        self.parts.get(key).is_some_and(|t| {
            let known = t.fetch.is_some() || t.processed.is_some() || t.end == Some(0);
            t.end.is_some() && known && !t.waiting()
        })
    }

    /// Where the engine stands in a partition (the next offset to process).
    pub fn processed(&mut self, key: &Key, next: i64, now: Instant) {
        let Some(t) = self.parts.get_mut(key) else {
            return;
        };
        // As for the fetch position: only new offsets are progress.
        let moved = t.processed.is_some_and(|p| next > p);
        t.processed = t.processed.max(Some(next));
        t.settle(moved, now);
    }

    /// The broker's end offset for a partition.
    pub fn end(&mut self, key: &Key, end: i64, now: Instant) {
        let Some(t) = self.parts.get_mut(key) else {
            return;
        };
        t.end = Some(end);
        // The broker answers for the partition and nothing waits in it: an
        // error the client reported was passing, not a stall.
        if !t.waiting() {
            t.cause = None;
        }
        t.settle(false, now);
    }

    /// An error the client reported for a partition: the partition is stuck
    /// from now until it moves or the broker shows it has nothing to read,
    /// and a stall is given this cause.
    pub fn error(&mut self, key: &Key, cause: String, now: Instant) {
        if let Some(t) = self.parts.get_mut(key) {
            t.cause = Some(cause);
            t.settle(false, now);
        }
    }

    /// The partitions assigned now, for the end-offset queries.
    pub fn keys(&self) -> Vec<Key> {
        self.parts.keys().cloned().collect()
    }

    /// Every partition stalled for longer than `limit`, longest first.
    pub fn stalled(&self, limit: Duration, now: Instant) -> Vec<Stalled> {
        let mut out: Vec<Stalled> = self
            .parts
            .iter()
            .filter_map(|((topic, partition), t)| {
                let age = now.saturating_duration_since(t.since?);
                (age > limit).then(|| Stalled {
                    topic: topic.clone(),
                    partition: *partition,
                    seconds: age.as_secs(),
                    cause: t.cause.clone().unwrap_or_else(|| describe(t)),
                })
            })
            .collect();
        out.sort_by_key(|s| std::cmp::Reverse(s.seconds));
        out
    }
}

/// What is known of a stall without an error from the client.
fn describe(t: &Track) -> String {
    let at = |o: Option<i64>| o.map_or("none".to_string(), |v| v.to_string());
    if t.queued > 0 {
        format!(
            "{} fetched message(s) not processed; processed up to {}",
            t.queued,
            at(t.processed)
        )
    } else {
        format!(
            "the broker holds up to offset {} and the client fetches at {}",
            at(t.end),
            at(t.fetch)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(5);

    fn key() -> Key {
        ("payments".into(), 2)
    }

    fn watch() -> StallWatch {
        let mut w = StallWatch::default();
        w.assigned(&[key()]);
        w
    }

    #[test]
    fn records_at_the_broker_and_a_fetch_position_that_never_moves_is_a_stall() {
        let (mut w, t0) = (watch(), Instant::now());
        w.fetched(&key(), 400, 0, t0);
        w.end(&key(), 1261, t0);
        w.error(
            &key(),
            "Decompression (codec 0x4) of message at 400 failed".into(),
            t0,
        );
        assert!(w.stalled(LIMIT, t0 + Duration::from_secs(4)).is_empty());
        w.fetched(&key(), 400, 0, t0 + Duration::from_secs(3));
        w.end(&key(), 1300, t0 + Duration::from_secs(4));
        let s = w.stalled(LIMIT, t0 + Duration::from_secs(6));
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!((s[0].topic.as_str(), s[0].partition), ("payments", 2));
        assert!(s[0].cause.contains("codec 0x4"), "{}", s[0]);
        assert!(s[0].to_string().contains("payments[2]"), "{}", s[0]);
    }

    #[test]
    fn a_moving_partition_is_never_stalled_however_far_behind() {
        let (mut w, t0) = (watch(), Instant::now());
        w.end(&key(), 1_000_000, t0);
        for s in 0..20 {
            let now = t0 + Duration::from_secs(s);
            w.fetched(&key(), 1000 + s as i64 * 500, 100, now);
            w.processed(&key(), 900 + s as i64 * 500, now);
        }
        assert!(w.stalled(LIMIT, t0 + Duration::from_secs(20)).is_empty());
    }

    #[test]
    fn a_partition_that_ends_in_transaction_markers_is_idle_not_stalled() {
        let (mut w, t0) = (watch(), Instant::now());
        // The last data record is offset 99, its commit marker 100: the
        // engine's next offset stays 100 while the end is 101, and the fetch
        // position has passed the marker.
        w.processed(&key(), 100, t0);
        w.fetched(&key(), 101, 0, t0);
        w.end(&key(), 101, t0);
        assert!(w.stalled(LIMIT, t0 + Duration::from_secs(60)).is_empty());
    }

    #[test]
    fn fetched_messages_that_are_not_processed_are_a_stall_until_they_are() {
        let (mut w, t0) = (watch(), Instant::now());
        w.processed(&key(), 10, t0);
        w.fetched(&key(), 50, 40, t0);
        w.end(&key(), 50, t0);
        let s = w.stalled(LIMIT, t0 + Duration::from_secs(6));
        assert_eq!(s.len(), 1);
        assert!(s[0].cause.contains("40 fetched"), "{}", s[0]);
        w.processed(&key(), 50, t0 + Duration::from_secs(7));
        w.fetched(&key(), 50, 0, t0 + Duration::from_secs(7));
        assert!(w.stalled(LIMIT, t0 + Duration::from_secs(20)).is_empty());
    }

    #[test]
    fn a_rewind_loop_over_the_same_records_is_a_stall() {
        let (mut w, t0) = (watch(), Instant::now());
        w.end(&key(), 500, t0);
        for s in 0..12 {
            let now = t0 + Duration::from_millis(500 * s);
            // Sought back to the checkpoint, read forward again, aborted.
            let at = if s % 2 == 0 { 100 } else { 300 };
            w.fetched(&key(), at, 0, now);
            w.processed(&key(), at, now);
        }
        assert_eq!(w.stalled(LIMIT, t0 + Duration::from_secs(7)).len(), 1);
    }

    #[test]
    fn an_error_on_a_partition_whose_end_cannot_be_asked_is_a_stall() {
        let (mut w, t0) = (watch(), Instant::now());
        // Caught up when the grant goes: the last end the broker gave is the
        // fetch position, and no later one comes.
        w.end(&key(), 400, t0);
        w.fetched(&key(), 400, 0, t0);
        w.error(&key(), "Topic authorization failed".into(), t0);
        for s in 1..8 {
            w.fetched(&key(), 400, 0, t0 + Duration::from_secs(s));
            w.processed(&key(), 400, t0 + Duration::from_secs(s));
        }
        let s = w.stalled(LIMIT, t0 + Duration::from_secs(8));
        assert_eq!(s.len(), 1, "{s:?}");
        assert!(s[0].cause.contains("authorization"), "{}", s[0]);
        // Read again: the partition moves and the stall is over.
        w.fetched(&key(), 450, 0, t0 + Duration::from_secs(9));
        assert!(w.stalled(LIMIT, t0 + Duration::from_secs(20)).is_empty());
    }

    #[test]
    fn a_passing_error_on_an_idle_partition_is_cleared_by_the_broker_end() {
        let (mut w, t0) = (watch(), Instant::now());
        w.fetched(&key(), 400, 0, t0);
        w.error(&key(), "Broker: Not leader for partition".into(), t0);
        w.end(&key(), 400, t0 + Duration::from_secs(2));
        assert!(w.stalled(LIMIT, t0 + Duration::from_secs(60)).is_empty());
    }

    #[test]
    fn revoked_partitions_are_forgotten() {
        let (mut w, t0) = (watch(), Instant::now());
        w.fetched(&key(), 0, 5, t0);
        w.assigned(&[]);
        assert!(w.keys().is_empty());
        assert!(w.stalled(LIMIT, t0 + Duration::from_secs(60)).is_empty());
    }

    /// Caught up only once known: the end offset asked of the broker, the
    /// client at it, nothing queued (what lets a partition's watermark
    /// advance by the wall clock).
    #[test]
    fn caught_up_only_once_known_to_be_at_the_end() {
        let (mut w, t0) = (watch(), Instant::now());
        assert!(!w.caught_up(&key()), "just assigned: unknown");
        w.fetched(&key(), 400, 0, t0);
        assert!(!w.caught_up(&key()), "the end is not known");
        w.end(&key(), 1261, t0);
        assert!(!w.caught_up(&key()), "records wait at the broker");
        w.fetched(&key(), 1261, 12, t0);
        assert!(!w.caught_up(&key()), "records wait in the client's queue");
        w.fetched(&key(), 1261, 0, t0);
        assert!(w.caught_up(&key()));
        let empty = ("payments".to_string(), 0);
        w.assigned(&[key(), empty.clone()]);
        w.end(&empty, 0, t0);
        assert!(w.caught_up(&empty), "an empty partition");
    }
}
