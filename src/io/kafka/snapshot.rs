//! Local snapshots of the state changelog, so that a restart or a
//! reassignment reads only the changelog's tail.
//!
//! Kafka Streams keeps a task's store on disk and a checkpoint file with the
//! changelog offset the store covers; a restart replays the changelog from
//! there. crowdpark's state lives in memory, so the file here holds what a
//! full restore would have read: the latest record of every key of one
//! changelog partition, in key order, and the changelog offset `offset` they
//! cover (every committed record below it is in; everything at or above it
//! is read from the changelog). The changelog stays the truth: a snapshot
//! that is missing, damaged, from another layout, too old, or whose offset
//! the changelog no longer has, is not used, and the partition is read
//! whole, as before.
//!
//! The file: a magic line, a length-prefixed JSON header, then records
//! `[1][key length u32][key][value length u32][value]`, then `[0][record
//! count u64][checksum u64]`. It is written to a temporary name, synced and
//! renamed, so a reader sees a whole file or the previous one.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::hash::Hasher;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8] = b"crowdpark-snapshot 1\n";
/// Fixed, so a checksum means the same in every process; a build whose
/// hasher differs only falls back to the full restore.
const CHECKSUM_SEED: u64 = 0x6372_6f77_6470_6172;
/// A key or value longer than this is damage, not state (a changelog record
/// is at most the topic's `max.message.bytes`).
const MAX_FIELD: u32 = 64 << 20;

/// Why a snapshot could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {problem}")]
    Invalid { path: PathBuf, problem: String },
}

/// What a snapshot covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The changelog topic and partition.
    pub topic: String,
    pub partition: i32,
    /// `topics.input_partitions` when it was written: keys sit in changelog
    /// partitions by that count.
    pub partitions: i32,
    /// The changelog offset the records cover: read on from here.
    pub offset: i64,
    /// When the changelog was read up to `offset` (wall-clock ms): the
    /// broker keeps a tombstone in the tail only for `delete.retention.ms`,
    /// so a snapshot older than that may miss a deletion.
    pub as_of_ms: i64,
}

/// A changelog partition as of `header.offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub header: Header,
    pub records: BTreeMap<String, Vec<u8>>,
}

/// Where the snapshots of one application (its group id) live:
/// `{dir}/{changelog topic}-{partition}.snapshot`.
#[derive(Debug, Clone)]
pub struct SnapshotDir {
    dir: PathBuf,
    topic: String,
    partitions: i32,
}

impl SnapshotDir {
    pub fn new(dir: PathBuf, topic: &str, partitions: i32) -> Self {
        SnapshotDir {
            dir,
            topic: topic.to_string(),
            partitions,
        }
    }

    /// `topics.input_partitions` the snapshots are written under.
    pub fn partitions(&self) -> i32 {
        self.partitions
    }

    pub fn path(&self, partition: i32) -> PathBuf {
        // Topic names are [a-zA-Z0-9._-]: safe in a file name.
        self.dir
            .join(format!("{}-{partition}.snapshot", self.topic))
    }

    /// The header a snapshot of `partition` at `offset` gets now.
    pub fn header(&self, partition: i32, offset: i64) -> Header {
        Header {
            topic: self.topic.clone(),
            partition,
            partitions: self.partitions,
            offset,
            as_of_ms: crate::time::now_ms(),
        }
    }

    /// The snapshot of `partition`, `None` if there is none. A file for
    /// another topic, partition or partition count is refused.
    pub fn read(&self, partition: i32) -> Result<Option<Snapshot>, SnapshotError> {
        let path = self.path(partition);
        let mut reader = match Reader::open(&path) {
            Ok(r) => r,
            Err(SnapshotError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        self.check(&reader, partition)?;
        let mut records = BTreeMap::new();
        while let Some((k, v)) = reader.next_record()? {
            records.insert(k, v);
        }
        Ok(Some(Snapshot {
            header: reader.header,
            records,
        }))
    }

    /// The header of `partition`'s snapshot, without reading its records.
    pub fn read_header(&self, partition: i32) -> Result<Option<Header>, SnapshotError> {
        match Reader::open(&self.path(partition)) {
            Ok(r) => {
                self.check(&r, partition)?;
                Ok(Some(r.header))
            }
            Err(SnapshotError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn check(&self, r: &Reader, partition: i32) -> Result<(), SnapshotError> {
        let h = &r.header;
        if h.topic != self.topic || h.partition != partition || h.partitions != self.partitions {
            return Err(r.invalid(format!(
                "written for {}/{} under {} partitions, not {}/{partition} under {}",
                h.topic, h.partition, h.partitions, self.topic, self.partitions
            )));
        }
        Ok(())
    }

    /// Writes `records` (in key order) as the snapshot `header` describes,
    /// replacing the one there was. Returns the file's size in bytes.
    pub fn write<'a>(
        &self,
        header: &Header,
        records: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<u64, SnapshotError> {
        let path = self.path(header.partition);
        let mut w = Writer::create(&self.dir, &path, header)?;
        for (k, v) in records {
            w.record(k, v)?;
        }
        w.finish()
    }

    /// A new snapshot of `partition`: the one there is, which must cover up
    /// to `base` (the offset `tail` was read from: another process sharing
    /// the directory may have replaced it), with `tail` (records read from
    /// the changelog since; `None` is a tombstone) applied on top, covering
    /// up to `header.offset`. Streams the old file, so only the tail is held
    /// in memory. Returns the new file's size.
    pub fn merge(
        &self,
        base: i64,
        header: &Header,
        tail: &BTreeMap<String, Option<Vec<u8>>>,
    ) -> Result<u64, SnapshotError> {
        let path = self.path(header.partition);
        let mut old = Reader::open(&path)?;
        self.check(&old, header.partition)?;
        if old.header.offset != base {
            return Err(old.invalid(format!(
                "replaced meanwhile: it covers up to offset {}, the records to merge start at {base}",
                old.header.offset
            )));
        }
        let mut w = Writer::create(&self.dir, &path, header)?;
        let mut changes = tail.iter().peekable();
        let mut next_old = old.next_record()?;
        loop {
            let take_old = match (&next_old, changes.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((ok, _)), Some((ck, _))) => ok.as_str() < ck.as_str(),
            };
            if take_old {
                let (k, v) = next_old.take().expect("checked");
                w.record(&k, &v)?;
                next_old = old.next_record()?;
                continue;
            }
            let (k, v) = changes.next().expect("checked");
            if next_old.as_ref().is_some_and(|(ok, _)| ok == k) {
                next_old = old.next_record()?;
            }
            if let Some(v) = v {
                w.record(k, v)?;
            }
        }
        w.finish()
    }

    /// Removes `partition`'s snapshot (damaged, or its changelog moved on).
    pub fn remove(&self, partition: i32) {
        let _ = std::fs::remove_file(self.path(partition));
    }

    /// Removes temporary files older than `age` that a writer left behind
    /// (killed mid-write): a younger one may be another process's, at work.
    pub fn remove_leftovers(&self, age: std::time::Duration) {
        let prefix = format!("{}-", self.topic);
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|a| a > age);
            if name.starts_with(&prefix) && name.contains(".tmp-") && old {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Where the snapshots of an application (its group id) live:
/// `engine.state_dir` (or the system's temporary directory, under
/// `crowdpark-state`), then the group id.
pub fn directory(config: &crate::config::Config) -> PathBuf {
    let base = match &config.engine.state_dir {
        Some(d) => PathBuf::from(d),
        None => std::env::temp_dir().join("crowdpark-state"),
    };
    base.join(&config.kafka.group_id)
}

fn checksum() -> impl Hasher {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(CHECKSUM_SEED).build_hasher()
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a snapshot file record by record, checking its checksum at the end.
struct Reader {
    path: PathBuf,
    file: BufReader<File>,
    header: Header,
    hash: Box<dyn Hasher>,
    count: u64,
    done: bool,
}

impl Reader {
    fn open(path: &Path) -> Result<Self, SnapshotError> {
        let file = File::open(path).map_err(io_error(path))?;
        let mut r = Reader {
            path: path.to_path_buf(),
            file: BufReader::with_capacity(1 << 20, file),
            header: Header::default(),
            hash: Box::new(checksum()),
            count: 0,
            done: false,
        };
        let mut magic = vec![0; MAGIC.len()];
        r.read(&mut magic)?;
        if magic != MAGIC {
            return Err(r.invalid("not a crowdpark snapshot of this format".into()));
        }
        let header = r.field()?;
        r.header =
            serde_json::from_slice(&header).map_err(|e| r.invalid(format!("header: {e}")))?;
        Ok(r)
    }

    fn invalid(&self, problem: String) -> SnapshotError {
        SnapshotError::Invalid {
            path: self.path.clone(),
            problem,
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<(), SnapshotError> {
        self.file.read_exact(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => self.invalid("truncated".into()),
            _ => SnapshotError::Io {
                path: self.path.clone(),
                source: e,
            },
        })
    }

    fn u64(&mut self) -> Result<u64, SnapshotError> {
        let mut b = [0; 8];
        self.read(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn field(&mut self) -> Result<Vec<u8>, SnapshotError> {
        let mut len = [0; 4];
        self.read(&mut len)?;
        let len = u32::from_le_bytes(len);
        if len > MAX_FIELD {
            return Err(self.invalid(format!("a field of {len} bytes")));
        }
        let mut v = vec![0; len as usize];
        self.read(&mut v)?;
        self.hash.write_u32(len);
        self.hash.write(&v);
        Ok(v)
    }

    /// The next record, `None` after the last (whose checksum matched).
    fn next_record(&mut self) -> Result<Option<(String, Vec<u8>)>, SnapshotError> {
        if self.done {
            return Ok(None);
        }
        let mut tag = [0; 1];
        self.read(&mut tag)?;
        match tag[0] {
            1 => {
                let key = self.field()?;
                let key =
                    String::from_utf8(key).map_err(|_| self.invalid("a key not UTF-8".into()))?;
                let value = self.field()?;
                self.count += 1;
                Ok(Some((key, value)))
            }
            0 => {
                let (count, sum) = (self.u64()?, self.u64()?);
                if count != self.count || sum != self.hash.finish() {
                    return Err(self.invalid("checksum does not match: damaged".into()));
                }
                self.done = true;
                Ok(None)
            }
            t => Err(self.invalid(format!("unknown record tag {t}"))),
        }
    }
}

/// Writes a snapshot to a temporary file, renamed over `path` by `finish`.
struct Writer<'p> {
    path: &'p Path,
    tmp: PathBuf,
    file: Option<BufWriter<File>>,
    hash: Box<dyn Hasher>,
    count: u64,
    bytes: u64,
}

impl<'p> Writer<'p> {
    fn create(dir: &Path, path: &'p Path, header: &Header) -> Result<Self, SnapshotError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        // Unique per writer: two processes sharing a directory never write
        // into one temporary file.
        let tmp = path.with_extension(format!(
            "tmp-{}-{}",
            std::process::id(),
            crate::time::now_ms()
        ));
        let file = File::create(&tmp).map_err(io_error(&tmp))?;
        let mut w = Writer {
            path,
            tmp,
            file: Some(BufWriter::with_capacity(1 << 20, file)),
            hash: Box::new(checksum()),
            count: 0,
            bytes: 0,
        };
        w.put(MAGIC)?;
        let header = serde_json::to_vec(header).expect("a header serialises");
        w.field(&header)?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.bytes += bytes.len() as u64;
        let file = self.file.as_mut().expect("open until finished");
        file.write_all(bytes).map_err(io_error(&self.tmp))
    }

    fn field(&mut self, v: &[u8]) -> Result<(), SnapshotError> {
        let len = u32::try_from(v.len()).unwrap_or(u32::MAX);
        self.put(&len.to_le_bytes())?;
        self.put(v)?;
        self.hash.write_u32(len);
        self.hash.write(v);
        Ok(())
    }

    fn record(&mut self, key: &str, value: &[u8]) -> Result<(), SnapshotError> {
        self.put(&[1])?;
        self.field(key.as_bytes())?;
        self.field(value)?;
        self.count += 1;
        Ok(())
    }

    /// The end mark, synced to disk, then renamed over the old snapshot.
    /// On any failure the temporary file goes (`Drop`).
    fn finish(mut self) -> Result<u64, SnapshotError> {
        let (count, sum) = (self.count, self.hash.finish());
        self.put(&[0])?;
        self.put(&count.to_le_bytes())?;
        self.put(&sum.to_le_bytes())?;
        let file = self.file.as_mut().expect("open until finished");
        file.flush().map_err(io_error(&self.tmp))?;
        file.get_ref().sync_all().map_err(io_error(&self.tmp))?;
        std::fs::rename(&self.tmp, self.path).map_err(io_error(self.path))?;
        self.file = None;
        Ok(self.bytes)
    }
}

impl Drop for Writer<'_> {
    /// A writer dropped unfinished (an error) leaves no temporary file.
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
