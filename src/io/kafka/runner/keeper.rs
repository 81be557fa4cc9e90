//! Keeps a local snapshot of every changelog partition this instance owns
//! tasks in (`io/kafka/snapshot.rs`), on a thread of its own, so a restart or
//! a reassignment reads the snapshot and only the changelog's tail.
//!
//! The keeper follows the changelog as a `read_committed` reader, never the
//! engine's memory: a snapshot holds committed checkpoints only, whatever the
//! guarantee, and the workers are never stopped for it. It keeps the records
//! read since the snapshot in memory (at most about an eighth of the
//! snapshot, or 1 MiB) and merges them into a new file when they grow past
//! that, or when the file is half its allowed age. A restore that read the
//! changelog whole hands its records over, so the first snapshot costs no
//! second read.

use super::recovery::RewindError;
use super::*;
use crate::io::kafka::changelog::{read_changelog_from, ChangelogReader, ReadTo};
use crate::io::kafka::health::StopOnDrop;
use crate::io::kafka::snapshot::{directory, Snapshot, SnapshotDir};
use std::collections::BTreeSet;
use std::sync::mpsc;

/// The tail is merged once it holds this share of the snapshot's bytes...
const MERGE_SHARE: u64 = 8;
/// ...or at least this much.
const MERGE_MIN_BYTES: u64 = 1 << 20;

/// After a snapshot could not be written, the keeper leaves the partition
/// alone this long (a full disk would otherwise cost a whole read of it
/// every interval).
const BACKOFF: Duration = Duration::from_secs(600);
/// A temporary file older than this was left by a writer that died.
const LEFTOVER_AGE: Duration = Duration::from_secs(600);

/// What a restore read whole: changelog partition `partition` up to `end`.
struct Offer {
    partition: i32,
    records: BTreeMap<String, Vec<u8>>,
    end: i64,
    as_of_ms: i64,
}

/// The run's side of the keeper: where snapshots are, and what it is told.
pub(super) struct Keeper {
    pub(super) dir: SnapshotDir,
    max_age_ms: i64,
    /// One offer at a time: one that finds the keeper busy is dropped (it
    /// only saves the keeper a read), so offers never pile up in memory.
    offers: Mutex<mpsc::SyncSender<Offer>>,
    /// The changelog partitions this instance now owns tasks in, latest only.
    owned: Arc<Mutex<Option<BTreeSet<i32>>>>,
}

impl Keeper {
    /// Starts the keeper's thread; `None` when snapshots are off
    /// (`engine.snapshot_interval = "0s"`).
    pub(super) fn start(
        config: &Arc<Config>,
        partitions: i32,
    ) -> anyhow::Result<Option<(Arc<Keeper>, StopOnDrop)>> {
        let every = config.engine.snapshot_interval.as_duration();
        if every.is_zero() {
            return Ok(None);
        }
        let dir = SnapshotDir::new(directory(config), state_topic(config), partitions);
        dir.remove_leftovers(LEFTOVER_AGE);
        let (tx, rx) = mpsc::sync_channel(1);
        let owned = Arc::new(Mutex::new(None));
        let keeper = Arc::new(Keeper {
            dir: dir.clone(),
            max_age_ms: config.engine.snapshot_max_age.0,
            offers: Mutex::new(tx),
            owned: owned.clone(),
        });
        let reader = changelog_reader(config)?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut thread = Thread {
            dir,
            reader,
            topic: state_topic(config).to_string(),
            max_age_ms: keeper.max_age_ms,
            told: owned,
            owned: BTreeSet::new(),
            followed: BTreeMap::new(),
            retry_at: BTreeMap::new(),
        };
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("crowdpark-snapshots".into())
            .spawn(move || thread.run(&rx, &flag, every))?;
        Ok(Some((keeper, StopOnDrop::new(stop))))
    }

    /// The snapshot of changelog partition `partition` to restore from, if
    /// there is a usable one; why not, in the log.
    pub(super) fn load(&self, partition: i32) -> Option<Snapshot> {
        match self.dir.read(partition) {
            Ok(Some(s)) if crate::time::now_ms() - s.header.as_of_ms > self.max_age_ms => {
                tracing::info!(
                    partition,
                    age_s = (crate::time::now_ms() - s.header.as_of_ms) / 1000,
                    "local snapshot older than engine.snapshot_max_age (tombstones since may be gone from the changelog): reading the changelog whole"
                );
                None
            }
            Ok(s) => s,
            Err(e) => {
                crate::io::kafka::logs::warn(
                    "local snapshot not usable; reading the changelog whole",
                    &e,
                );
                None
            }
        }
    }

    /// Hands over what a restore read, for a new snapshot; dropped if the
    /// keeper is busy with another.
    pub(super) fn offer(
        &self,
        partition: i32,
        records: BTreeMap<String, Vec<u8>>,
        end: i64,
        as_of_ms: i64,
    ) {
        let offer = Offer {
            partition,
            records,
            end,
            as_of_ms,
        };
        let _ = crate::sync::lock(&self.offers).try_send(offer);
    }

    /// The input partitions this instance now has tasks for.
    pub(super) fn owned(&self, inputs: impl IntoIterator<Item = i32>) {
        let partitions = self.dir.partitions();
        let set = inputs.into_iter().map(|p| p % partitions).collect();
        *crate::sync::lock(&self.owned) = Some(set);
    }
}

/// How a changelog partition was read back.
pub(super) struct StateRead {
    /// The local snapshot's offset, if one was used.
    pub(super) snapshot: Option<i64>,
    /// Changelog records read (after the snapshot, if one was used).
    pub(super) records: u64,
    /// The offset read to, and when.
    pub(super) end: i64,
    pub(super) as_of_ms: i64,
}

impl StateRead {
    /// Whether what was read should become the new snapshot: read whole, or
    /// more of the changelog than an eighth of the keys (the keeper would
    /// soon merge it anyway).
    pub(super) fn worth_a_snapshot(&self, keys: usize) -> bool {
        self.snapshot.is_none() || self.records as usize > keys / 8
    }
}

impl RunContext {
    /// The latest record of every key of changelog partition `cp`: from the
    /// local snapshot and the changelog since its offset when there is a
    /// usable one, else from the changelog whole.
    pub(super) fn read_state(
        &self,
        reader: &BaseConsumer<ChangelogReader>,
        topic: &str,
        cp: i32,
    ) -> Result<(BTreeMap<String, Vec<u8>>, StateRead), RewindError> {
        use crate::io::kafka::changelog::{apply, read_changelog_from, ReadTo};
        use crate::metrics::{RESTORED_FROM_CHANGELOG, RESTORED_FROM_SNAPSHOT};
        let as_of_ms = wall_ms();
        if let Some(snapshot) = self.keeper.as_ref().and_then(|k| k.load(cp)) {
            let offset = snapshot.header.offset;
            let mut records = snapshot.records;
            let mut n = 0;
            let read = read_changelog_from(reader, topic, cp, Some(offset), |k, v| {
                n += 1;
                apply(&mut records, k, v);
            })?;
            match read {
                ReadTo::End(end) => {
                    self.view.metrics.runtime.state_restored(RESTORED_FROM_SNAPSHOT);
                    let read = StateRead {
                        snapshot: Some(offset),
                        records: n,
                        end,
                        as_of_ms,
                    };
                    return Ok((records, read));
                }
                ReadTo::OutOfRange { low, high } => tracing::warn!(
                    changelog_partition = cp,
                    snapshot_offset = offset,
                    low,
                    high,
                    "the changelog no longer holds the local snapshot's offset (recreated, or records deleted): reading it whole"
                ),
            }
        }
        let mut records = BTreeMap::new();
        let mut n = 0;
        let read = read_changelog_from(reader, topic, cp, None, |k, v| {
            n += 1;
            apply(&mut records, k, v);
        })?;
        let (ReadTo::End(end) | ReadTo::OutOfRange { high: end, .. }) = read;
        self.view
            .metrics
            .runtime
            .state_restored(RESTORED_FROM_CHANGELOG);
        let read = StateRead {
            snapshot: None,
            records: n,
            end,
            as_of_ms,
        };
        Ok((records, read))
    }

    /// Tells the keeper which changelog partitions hold the tasks' state.
    pub(super) fn note_owned(&self, tasks: &mut super::tasks::Barrier<'_>) {
        if let Some(k) = &self.keeper {
            k.owned(super::tasks::each(tasks).map(|t| t.partition));
        }
    }
}

/// A changelog partition followed since its snapshot.
struct Followed {
    /// Read up to here.
    offset: i64,
    /// When the changelog was read to `offset`.
    as_of_ms: i64,
    /// The snapshot file's offset and size, and the time its records were
    /// read.
    file_offset: i64,
    file_bytes: u64,
    file_as_of_ms: i64,
    /// Records read since the snapshot (`None`: a tombstone).
    tail: BTreeMap<String, Option<Vec<u8>>>,
    tail_bytes: u64,
}

impl Followed {
    /// Followed from a snapshot file of `bytes` covering up to `offset`,
    /// read then, with nothing read since.
    fn from_file(offset: i64, as_of_ms: i64, bytes: u64) -> Self {
        Followed {
            offset,
            as_of_ms,
            file_offset: offset,
            file_bytes: bytes,
            file_as_of_ms: as_of_ms,
            tail: BTreeMap::new(),
            tail_bytes: 0,
        }
    }
}

/// The keeper's own thread.
struct Thread {
    dir: SnapshotDir,
    reader: BaseConsumer<ChangelogReader>,
    topic: String,
    max_age_ms: i64,
    told: Arc<Mutex<Option<BTreeSet<i32>>>>,
    owned: BTreeSet<i32>,
    followed: BTreeMap<i32, Followed>,
    /// Partitions left alone until then, after a failed write.
    retry_at: BTreeMap<i32, Instant>,
}

impl Thread {
    fn run(&mut self, offers: &mpsc::Receiver<Offer>, stop: &AtomicBool, every: Duration) {
        let mut next = Instant::now() + every;
        while !stop.load(Ordering::Relaxed) {
            // Woken at least every second to notice the stop.
            let wait = next
                .saturating_duration_since(Instant::now())
                .min(Duration::from_secs(1));
            match offers.recv_timeout(wait) {
                Ok(offer) => self.take(offer),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            if let Some(set) = crate::sync::lock(&self.told).take() {
                self.followed.retain(|p, _| set.contains(p));
                self.owned = set;
            }
            if Instant::now() >= next {
                let owned: Vec<i32> = self.owned.iter().copied().collect();
                for p in owned {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    self.catch_up(p);
                }
                next = Instant::now() + every;
            }
        }
    }

    /// A restore's records as the new snapshot, if they are newer than
    /// what the keeper has.
    fn take(&mut self, offer: Offer) {
        let newer = self
            .followed
            .get(&offer.partition)
            .is_none_or(|f| offer.end > f.offset);
        if newer {
            self.write_whole(offer.partition, &offer.records, offer.end, offer.as_of_ms);
        }
    }

    /// A new snapshot of `partition` from records read whole.
    fn write_whole(
        &mut self,
        partition: i32,
        records: &BTreeMap<String, Vec<u8>>,
        end: i64,
        as_of_ms: i64,
    ) {
        let mut header = self.dir.header(partition, end);
        header.as_of_ms = as_of_ms;
        let written = self.dir.write(
            &header,
            records.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
        );
        match written {
            Ok(bytes) => {
                tracing::debug!(partition, offset = end, bytes, "snapshot written");
                self.followed
                    .insert(partition, Followed::from_file(end, as_of_ms, bytes));
            }
            Err(e) => {
                crate::io::kafka::logs::warn("could not write a state snapshot", &e);
                self.give_up(partition);
            }
        }
    }

    /// Reads `partition`'s changelog on from its snapshot, and merges what
    /// was read into a new snapshot when it has grown or the file has aged.
    fn catch_up(&mut self, partition: i32) {
        if self
            .retry_at
            .get(&partition)
            .is_some_and(|t| Instant::now() < *t)
        {
            return;
        }
        let now = crate::time::now_ms();
        // Not read for longer than a snapshot may be old (the process was
        // stopped, or reads failed): tombstones since may be gone from the
        // changelog, so the records read so far are no base to go on from.
        if self
            .followed
            .get(&partition)
            .is_some_and(|f| now - f.as_of_ms > self.max_age_ms)
        {
            self.followed.remove(&partition);
        }
        if !self.followed.contains_key(&partition) && !self.start_following(partition) {
            return;
        }
        let f = self.followed.get_mut(&partition).expect("followed");
        let read = read_changelog_from(
            &self.reader,
            &self.topic,
            partition,
            Some(f.offset),
            |k, v| {
                f.tail_bytes += (k.len() + v.map_or(0, <[u8]>::len)) as u64;
                f.tail.insert(k.to_string(), v.map(<[u8]>::to_vec));
            },
        );
        match read {
            Ok(ReadTo::End(end)) => {
                f.offset = end;
                f.as_of_ms = now;
            }
            Ok(ReadTo::OutOfRange { low, high }) => {
                tracing::warn!(partition, offset = f.offset, low, high, "the changelog no longer holds the snapshot's offset (recreated, or records deleted): the snapshot is dropped and taken again");
                self.dir.remove(partition);
                self.followed.remove(&partition);
                return;
            }
            Err(e) => {
                crate::io::kafka::logs::warn("snapshot keeper: reading the changelog", &e);
                return;
            }
        }
        let grown = f.tail_bytes >= (f.file_bytes / MERGE_SHARE).max(MERGE_MIN_BYTES);
        let aging = now - f.file_as_of_ms > self.max_age_ms / 2;
        if !grown && !aging {
            return;
        }
        let mut header = self.dir.header(partition, f.offset);
        header.as_of_ms = f.as_of_ms;
        match self.dir.merge(f.file_offset, &header, &f.tail) {
            Ok(bytes) => {
                tracing::debug!(partition, offset = f.offset, bytes, "snapshot merged");
                f.file_offset = f.offset;
                f.file_bytes = bytes;
                f.file_as_of_ms = f.as_of_ms;
                f.tail.clear();
                f.tail_bytes = 0;
            }
            Err(e) => {
                crate::io::kafka::logs::warn(
                    "could not merge a state snapshot; taking it again",
                    &e,
                );
                self.give_up(partition);
            }
        }
    }

    /// Forgets `partition` after a failed write or merge: its file goes
    /// (the next restore reads the changelog whole) and it is left alone for
    /// a while.
    fn give_up(&mut self, partition: i32) {
        self.dir.remove(partition);
        self.followed.remove(&partition);
        self.retry_at.insert(partition, Instant::now() + BACKOFF);
    }

    /// Starts from the snapshot on disk if it is usable, else reads the
    /// changelog partition whole (as a restore does) and writes one.
    fn start_following(&mut self, partition: i32) -> bool {
        if let Ok(Some(h)) = self.dir.read_header(partition) {
            if crate::time::now_ms() - h.as_of_ms <= self.max_age_ms / 2 {
                let bytes = std::fs::metadata(self.dir.path(partition)).map_or(0, |m| m.len());
                self.followed
                    .insert(partition, Followed::from_file(h.offset, h.as_of_ms, bytes));
                return true;
            }
        }
        let now = crate::time::now_ms();
        let mut records = BTreeMap::new();
        let read = read_changelog_from(&self.reader, &self.topic, partition, None, |k, v| {
            crate::io::kafka::changelog::apply(&mut records, k, v)
        });
        match read {
            Ok(ReadTo::End(end)) => {
                self.write_whole(partition, &records, end, now);
                self.followed.contains_key(&partition)
            }
            Ok(ReadTo::OutOfRange { .. }) => false,
            Err(e) => {
                crate::io::kafka::logs::warn("snapshot keeper: reading the changelog", &e);
                false
            }
        }
    }
}
