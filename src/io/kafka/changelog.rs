//! Reading the state changelog back: whole checkpoints only.

use super::client_config;
use crate::config::Config;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Why a changelog partition could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum ChangelogError {
    #[error("changelog reader: {0}")]
    Reader(#[source] KafkaError),
    #[error("changelog {topic}/{partition}: {source}")]
    Read {
        topic: String,
        partition: i32,
        #[source]
        source: KafkaError,
    },
    #[error("changelog {topic}/{partition} not read to its end within 300 s")]
    TimedOut { topic: String, partition: i32 },
}

/// The restore consumer's context: the end-of-partition event it waits for is
/// also reported as a client "error", which is not one.
pub struct ChangelogReader;

impl ClientContext for ChangelogReader {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        super::logs::client_log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() != Some(RDKafkaErrorCode::PartitionEOF) {
            super::logs::client_error("changelog reader", &error, reason);
        }
    }
}

impl ConsumerContext for ChangelogReader {}

/// The latest value of every key in one changelog partition: every committed
/// record, up to the end of the partition (for a `read_committed` reader, the
/// last stable offset, so an open transaction of a dead instance is skipped).
pub fn read_changelog(
    reader: &BaseConsumer<ChangelogReader>,
    topic: &str,
    partition: i32,
) -> Result<BTreeMap<String, Vec<u8>>, ChangelogError> {
    let mut records = BTreeMap::new();
    read_changelog_from(reader, topic, partition, None, |k, v| {
        apply(&mut records, k, v)
    })?;
    Ok(records)
}

/// Applies one changelog record to the latest values read so far.
pub fn apply(records: &mut BTreeMap<String, Vec<u8>>, key: &str, value: Option<&[u8]>) {
    match value {
        Some(v) => {
            records.insert(key.to_string(), v.to_vec());
        }
        None => {
            records.remove(key);
        }
    }
}

/// How far a changelog read went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadTo {
    /// Every committed record before this offset was handed over.
    End(i64),
    /// The offset asked for is not in the partition (`low..=high`): deleted
    /// by retention, or the topic was recreated since.
    OutOfRange { low: i64, high: i64 },
}

/// Hands every committed record of one changelog partition from `from`
/// (`None`: its beginning) to its end to `each` (key, value; `None` is a
/// tombstone), in offset order. The end returned is the offset after the last
/// record handed over, or `from` if there was none: below it, nothing
/// committed is left to read (only aborted records and transaction markers),
/// so a later read may start there.
pub fn read_changelog_from(
    reader: &BaseConsumer<ChangelogReader>,
    topic: &str,
    partition: i32,
    from: Option<i64>,
    mut each: impl FnMut(&str, Option<&[u8]>),
) -> Result<ReadTo, ChangelogError> {
    let failed = |source: KafkaError| ChangelogError::Read {
        topic: topic.to_string(),
        partition,
        source,
    };
    let (low, high) = watermarks(reader, topic, partition)?;
    let start = match from {
        Some(o) if o < low || o > high => return Ok(ReadTo::OutOfRange { low, high }),
        Some(o) => o,
        None => low,
    };
    if high <= start {
        return Ok(ReadTo::End(start));
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(start))
        .map_err(failed)?;
    reader.assign(&tpl).map_err(failed)?;
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut end = start;
    loop {
        // A long restore is the loop at work, not stuck (`/livez`).
        crate::liveness::beat();
        match reader.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                if m.partition() != partition {
                    continue;
                }
                end = end.max(m.offset() + 1);
                if let Some(key) = m.key() {
                    each(&String::from_utf8_lossy(key), m.payload());
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) if p == partition => break,
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => return Err(failed(e)),
            None if Instant::now() > deadline => {
                return Err(ChangelogError::TimedOut {
                    topic: topic.to_string(),
                    partition,
                })
            }
            None => {}
        }
    }
    reader.unassign().map_err(failed)?;
    Ok(ReadTo::End(end))
}

/// The partition's first and end offsets. Right after the topic is created,
/// or while its leader moves, the broker may not know the partition's leader
/// yet: asked again for a while.
fn watermarks(
    reader: &BaseConsumer<ChangelogReader>,
    topic: &str,
    partition: i32,
) -> Result<(i64, i64), ChangelogError> {
    let asked = Instant::now();
    loop {
        match reader.fetch_watermarks(topic, partition, Duration::from_secs(10)) {
            Ok(w) => return Ok(w),
            Err(e) if asked.elapsed() < Duration::from_secs(30) => {
                tracing::debug!(error = %e, topic, partition, "changelog offsets not known yet");
                std::thread::sleep(Duration::from_millis(250));
            }
            Err(source) => {
                return Err(ChangelogError::Read {
                    topic: topic.to_string(),
                    partition,
                    source,
                })
            }
        }
    }
}

/// A consumer for [`read_changelog`]: `read_committed`, so checkpoints that
/// were not committed (a crash mid-checkpoint) are never read.
pub fn changelog_reader(config: &Config) -> Result<BaseConsumer<ChangelogReader>, ChangelogError> {
    client_config(
        config,
        &[
            ("group.id", &format!("{}-restore", config.kafka.group_id)),
            ("enable.auto.commit", "false"),
            // Whole checkpoints only, and the end is where they end.
            ("isolation.level", "read_committed"),
            ("enable.partition.eof", "true"),
            // The end of the partition is reported after one empty fetch;
            // do not let the broker hold that fetch open.
            ("fetch.wait.max.ms", "10"),
            // A restore reads one partition start to end: fetch big.
            ("max.partition.fetch.bytes", "16777216"),
            ("fetch.max.bytes", "67108864"),
        ],
    )
    .create_with_context(ChangelogReader)
    .map_err(ChangelogError::Reader)
}
