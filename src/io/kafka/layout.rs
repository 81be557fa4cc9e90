//! Partition counts checked: every consumed topic and the state changelog
//! must have `topics.input_partitions` partitions.
//!
//! The engine's routing assumes it. A payment is forwarded to the partition of
//! its zone by hashing the zone over that count, as the producers of crowd
//! counts do; a repartitioned stage waits for that many upstream partitions;
//! the checkpointed state of input partition `p` lives in changelog partition
//! `p % count`. A topic grown while the engine runs breaks all three
//! silently: producers send a zone's records to a new partition whose task
//! starts empty, and its earlier state stays behind in the old one (measured:
//! 23 % of payments dead-lettered `late`, four car parks with wrong free
//! counts). As Kafka Streams refuses a topology whose internal topics have the
//! wrong partition count, so does crowdpark: at start, at every assignment and
//! rewind, and every few seconds while it runs, until the topics are put right
//! (growing them needs a reset, see "Partition counts" in docs/operations.md).

use crate::config::Config;
use crate::model::InputTopic;
use rdkafka::consumer::Consumer;
use std::time::Duration;

/// How long one metadata request may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The partition counts do not match what the engine and its state assume.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "partition counts differ: {}; every consumed topic and the state changelog must have topics.input_partitions = {expected} (growing topics needs a reset: see \"Partition counts\" in docs/operations.md); not processing",
    describe(.counts, *.expected)
)]
pub struct Mismatch {
    /// Every checked topic that could be described, and its partition count.
    pub counts: Vec<(String, i32)>,
    pub expected: i32,
}

/// The topics that differ, then the ones that agree.
fn describe(counts: &[(String, i32)], expected: i32) -> String {
    let says = |(t, n): &(String, i32)| format!("{t} has {n}");
    let (wrong, right): (Vec<_>, Vec<_>) = counts.iter().partition(|(_, n)| *n != expected);
    let mut parts: Vec<String> = wrong.into_iter().map(says).collect();
    if !right.is_empty() {
        let names: Vec<&str> = right.iter().map(|(t, _)| t.as_str()).collect();
        parts.push(format!("{} have {expected}", names.join(", ")));
    }
    parts.join(", ")
}

/// Why the counts could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error(transparent)]
    Mismatch(#[from] Mismatch),
    #[error("reading topic metadata: {0}")]
    Metadata(#[source] rdkafka::error::KafkaError),
}

/// The topics whose partition counts must all be `topics.input_partitions`.
pub fn checked_topics(config: &Config) -> Vec<String> {
    let t = &config.topics;
    let mut names: Vec<String> = InputTopic::CONSUMED
        .iter()
        .map(|i| i.name_in(t).to_string())
        .collect();
    names.push(super::state_topic(config).to_string());
    names
}

/// Asks the broker for the partition counts, through any client.
pub fn check<C: rdkafka::consumer::ConsumerContext>(
    client: &impl Consumer<C>,
    config: &Config,
) -> Result<(), LayoutError> {
    let md = client
        .fetch_metadata(None, TIMEOUT)
        .map_err(LayoutError::Metadata)?;
    // A topic this principal may not describe (a revoked grant) is left out
    // of the listing, or listed with an error: its count is unknown, not
    // wrong, and the stall watch names the partitions that cannot be read.
    let counts = checked_topics(config)
        .into_iter()
        .filter_map(|name| {
            let t = md.topics().iter().find(|t| t.name() == name)?;
            if t.error().is_some() || t.partitions().is_empty() {
                return None;
            }
            Some((name, t.partitions().len() as i32))
        })
        .collect();
    compare(counts, config.topics.input_partitions)?;
    Ok(())
}

/// `Ok` when every count is `expected`.
pub fn compare(counts: Vec<(String, i32)>, expected: i32) -> Result<(), Mismatch> {
    if counts.iter().all(|(_, n)| *n == expected) {
        Ok(())
    } else {
        Err(Mismatch { counts, expected })
    }
}

/// A changelog key `{topic}/{partition}/…` read from changelog partition
/// `changelog` that a state of `partitions` partitions would not have put
/// there: the changelog was written under another partition count (grown, or
/// `topics.input_partitions` changed, without a reset).
pub fn misplaced_key(key: &str, changelog: i32, partitions: i32) -> Option<i32> {
    let mut parts = key.splitn(3, '/');
    let (_, p) = (parts.next()?, parts.next()?.parse::<i32>().ok()?);
    (p >= partitions || p % partitions != changelog).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grown_topic_is_named_with_its_count_and_the_expected_one() {
        let counts = vec![
            ("crowd.counts".to_string(), 6),
            ("parking.events".to_string(), 3),
            ("payments".to_string(), 3),
            ("crowdpark.state".to_string(), 1),
        ];
        let e = compare(counts, 3).unwrap_err().to_string();
        assert!(
            e.starts_with("partition counts differ: crowd.counts has 6, crowdpark.state has 1, parking.events, payments have 3;"),
            "{e}"
        );
        assert!(e.contains("topics.input_partitions = 3"), "{e}");
        assert!(
            e.contains("\"Partition counts\" in docs/operations.md"),
            "{e}"
        );
    }

    #[test]
    fn equal_counts_pass() {
        let counts = vec![("a".to_string(), 3), ("b".to_string(), 3)];
        assert_eq!(compare(counts, 3), Ok(()));
    }

    #[test]
    fn a_key_in_the_wrong_changelog_partition_is_found() {
        // Three partitions: input partition 4 does not exist, and input
        // partition 1's state belongs in changelog partition 1.
        assert_eq!(misplaced_key("crowd.counts/4/meta", 1, 3), Some(4));
        assert_eq!(misplaced_key("crowd.counts/1/meta", 2, 3), Some(1));
        assert_eq!(misplaced_key("crowd.counts/1/zone/z1", 1, 3), None);
        // Written under six partitions, read under three.
        assert_eq!(misplaced_key("payments/5/meta", 2, 3), Some(5));
        // Not a partition key: left to the restore's own checks.
        assert_eq!(misplaced_key("layout", 0, 3), None);
    }
}
