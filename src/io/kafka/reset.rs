//! `crowdpark reset`: reprocess from a time, from the beginning, or skip to the
//! end, with offsets and state kept consistent.
//!
//! The engine resumes from the offsets its checkpoint records, not from the
//! group's: a checkpoint holds state as of those offsets, and resuming
//! anywhere else would count input twice or not at all. So a reset has to move
//! both, as Kafka Streams' application reset tool does for its internal
//! topics:
//!
//! 1. with every instance stopped (the command refuses while the group has
//!    members: a running instance would write its checkpoint over the reset),
//! 2. every key of the changelog is deleted (a tombstone each): the state
//!    starts empty, and a restore finds no checkpoint to resume from;
//! 3. the group's offsets are set: each input partition to the first offset at
//!    or after the time (or its beginning or end), the repartition topic to
//!    its end (the payments reprocessed are forwarded again; what it holds now
//!    was forwarded from input before the reset point, or will be again).
//!
//! The engine then starts from the group's offsets with empty state. The
//! windows open at the reset point fill from the reprocessed input only, so
//! reprocessing from a window boundary gives whole windows.

use super::changelog::{changelog_reader, ChangelogError};
use super::sink::KafkaSink;
use super::{client_config, state_topic};
use crate::config::Config;
use crate::model::InputTopic;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Where the input topics are reset to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    Earliest,
    Latest,
    /// The first offset whose record's timestamp is at or after this time,
    /// in Unix milliseconds (the end when there is none).
    Time(i64),
}

/// What a reset did, for its summary.
#[derive(Debug, Default)]
pub struct ResetSummary {
    /// Per partition of every consumed topic: the offset the group resumes from.
    pub offsets: BTreeMap<(String, i32), i64>,
    /// Changelog keys deleted.
    pub state_keys: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error("{what}: {source}")]
    Kafka {
        what: String,
        #[source]
        source: KafkaError,
    },
    #[error(transparent)]
    Changelog(#[from] ChangelogError),
    #[error("the consumer group `{group}` still has {members} member(s) (state {state}); stop every `crowdpark run` of the group first")]
    GroupActive {
        group: String,
        members: usize,
        state: String,
    },
    #[error("deleting the checkpoint: {0}")]
    Tombstones(#[source] super::sink::SinkError),
}

fn kafka(what: impl Into<String>) -> impl FnOnce(KafkaError) -> ResetError {
    let what = what.into();
    move |source| ResetError::Kafka { what, source }
}

/// Resets the group and the checkpoint; see the module comment.
pub fn reset(config: &Config, to: ResetTo) -> Result<ResetSummary, ResetError> {
    let group = config.kafka.group_id.clone();
    // A consumer of the group that never joins it: it commits with no
    // generation, which the broker refuses while the group has members.
    let consumer: BaseConsumer = client_config(
        config,
        &[
            ("group.id", group.as_str()),
            ("enable.auto.commit", "false"),
        ],
    )
    .create()
    .map_err(kafka("creating a client"))?;
    // Nothing is touched while an instance runs: it would go on from its
    // own positions and write its checkpoint over the reset.
    let groups = consumer
        .fetch_group_list(Some(&group), TIMEOUT)
        .map_err(kafka(format!("describing the group `{group}`")))?;
    if let Some(g) = groups.groups().iter().find(|g| g.name() == group) {
        if !g.members().is_empty() {
            return Err(ResetError::GroupActive {
                group,
                members: g.members().len(),
                state: g.state().to_string(),
            });
        }
    }
    let offsets = target_offsets(config, &consumer, to)?;
    let mut tpl = TopicPartitionList::new();
    for ((topic, p), o) in &offsets {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*o))
            .map_err(kafka("listing offsets"))?;
    }
    consumer
        .commit(&tpl, CommitMode::Sync)
        .map_err(kafka(format!("setting the offsets of the group `{group}`")))?;
    let state_keys = delete_checkpoint(config)?;
    // This host's local snapshots of the changelog: the tombstones just
    // written would correct them, but a changelog recreated since would not.
    let _ = std::fs::remove_dir_all(super::snapshot::directory(config));
    Ok(ResetSummary {
        offsets,
        state_keys,
    })
}

/// The offset each consumed partition resumes from.
fn target_offsets(
    config: &Config,
    consumer: &BaseConsumer,
    to: ResetTo,
) -> Result<BTreeMap<(String, i32), i64>, ResetError> {
    let mut out = BTreeMap::new();
    for t in InputTopic::CONSUMED {
        let name = t.name_in(&config.topics);
        let partitions = partitions_of(consumer, name)?;
        let internal = t.is_internal();
        let mut by_time = TopicPartitionList::new();
        for p in &partitions {
            let (low, high) = consumer
                .fetch_watermarks(name, *p, TIMEOUT)
                .map_err(kafka(format!("reading the offsets of {name}[{p}]")))?;
            let offset = match (to, internal) {
                (_, true) | (ResetTo::Latest, _) => high,
                (ResetTo::Earliest, _) => low,
                (ResetTo::Time(ms), _) => {
                    by_time
                        .add_partition_offset(name, *p, Offset::Offset(ms))
                        .map_err(kafka("listing offsets"))?;
                    continue;
                }
            };
            out.insert((name.to_string(), *p), offset);
        }
        if by_time.count() > 0 {
            let found = consumer
                .offsets_for_times(by_time, TIMEOUT)
                .map_err(kafka(format!("finding offsets by time in {name}")))?;
            for e in found.elements() {
                let offset = match e.offset() {
                    Offset::Offset(o) => o,
                    // No record at or after the time: the end.
                    _ => {
                        consumer
                            .fetch_watermarks(name, e.partition(), TIMEOUT)
                            .map_err(kafka(format!("reading the offsets of {name}")))?
                            .1
                    }
                };
                out.insert((name.to_string(), e.partition()), offset);
            }
        }
    }
    Ok(out)
}

/// The partitions of `topic`, as the broker lists them.
fn partitions_of<C: ConsumerContext>(
    client: &BaseConsumer<C>,
    topic: &str,
) -> Result<Vec<i32>, ResetError> {
    let md = client
        .fetch_metadata(Some(topic), TIMEOUT)
        .map_err(kafka(format!("reading the partitions of {topic}")))?;
    Ok(md
        .topics()
        .iter()
        .flat_map(|m| m.partitions().iter().map(|p| p.id()))
        .collect())
}

/// A tombstone for every key the changelog holds; how many.
fn delete_checkpoint(config: &Config) -> Result<usize, ResetError> {
    let topic = state_topic(config);
    let reader = changelog_reader(config)?;
    let partitions = partitions_of(&reader, topic)?;
    let sink = KafkaSink::new(config, None).map_err(kafka("creating a producer"))?;
    let mut deleted = 0;
    for p in partitions {
        let keys = super::changelog::read_changelog(&reader, topic, p)?;
        // Each input partition's `meta` (its offset) goes last, once the rest
        // is delivered: a reset cut short leaves a checkpoint whose `meta`
        // still says where its state stands, never state without one.
        let (meta, state): (Vec<&String>, Vec<&String>) =
            keys.keys().partition(|k| k.ends_with("/meta"));
        for batch in [state, meta] {
            for key in batch {
                sink.send(topic, Some(p), Some(key.as_bytes()), None)
                    .map_err(ResetError::Tombstones)?;
                deleted += 1;
            }
            sink.flush(TIMEOUT).map_err(ResetError::Tombstones)?;
        }
    }
    Ok(deleted)
}
