//! Start-up of `crowdpark run`: reach the broker, register the transactional
//! producer, find the changelog topic. A broker that is away is waited for,
//! with backoff, for as long as it takes (health says so after
//! `unhealthy_after`); SIGTERM ends the wait. Only what no waiting can fix
//! (the changelog topic is missing, a client setting is invalid) stops it.

use super::health::Health;
use super::logs::{self, Quiet};
use super::sink::KafkaSink;
use super::transaction::Transactions;
use super::{client_config, state_topic};
use crate::config::{Config, ProcessingGuarantee};
use crate::metrics::Metrics;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one attempt may wait for the broker; short, so SIGTERM is
/// answered quickly.
const ATTEMPT: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// librdkafka's default `message.max.bytes`.
const LIBRDKAFKA_MESSAGE_MAX_BYTES: usize = 1_000_000;

/// The clients and facts a run needs from the broker.
pub struct Connected {
    /// At-least-once mode: the outputs' own idempotent producer.
    pub direct: Option<KafkaSink>,
    pub transaction: Transactions,
    pub state_partitions: i32,
    /// The largest changelog record that can be written: the changelog
    /// topic's `max.message.bytes`, or the producer's own limit if lower.
    pub state_max_bytes: usize,
}

enum Failure {
    /// The broker may come back: try again.
    Waiting(anyhow::Error),
    /// Waiting cannot fix it.
    Final(anyhow::Error),
}

/// Connects, waiting for the broker; `None` when `shutdown` was set first.
pub fn connect(
    config: &Config,
    metrics: &Arc<Metrics>,
    health: &Health,
    shutdown: &AtomicBool,
) -> anyhow::Result<Option<Connected>> {
    let mut backoff = Duration::from_millis(500);
    loop {
        if shutdown.load(Ordering::Relaxed) {
            return Ok(None);
        }
        match attempt(config, metrics) {
            Ok(c) => {
                health.connected();
                return Ok(wait_for_layout(config, health, shutdown)?.then_some(c));
            }
            Err(Failure::Final(e)) => return Err(e),
            Err(Failure::Waiting(e)) => {
                let e = format!("{e:#}");
                logs::warn("waiting for the Kafka broker", &e);
                health.note_error(e);
            }
        }
        let until = Instant::now() + backoff;
        while Instant::now() < until && !shutdown.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn attempt(config: &Config, metrics: &Arc<Metrics>) -> Result<Connected, Failure> {
    let exactly_once = config.kafka.processing_guarantee == ProcessingGuarantee::ExactlyOnce;
    let direct = if exactly_once {
        None
    } else {
        Some(KafkaSink::new(config, Some(metrics.clone())).map_err(|e| Failure::Final(e.into()))?)
    };
    let id = config.kafka.transactional_id();
    let transaction =
        Transactions::new(config, Some(metrics.clone()), &id, ATTEMPT).map_err(Failure::Waiting)?;
    let state_partitions = changelog_partitions(config)?;
    let topic_max =
        super::admin::max_message_bytes(config, state_topic(config)).map_err(Failure::Waiting)?;
    // The producer refuses larger records itself, before the broker sees them.
    let producer_max = match config.kafka.client.get("message.max.bytes") {
        // No kafka.client value is ever printed (see config::secrets).
        Some(v) => v.parse().map_err(|e| {
            Failure::Final(anyhow::anyhow!(
                "kafka.client.message.max.bytes is not a whole number of bytes ({e})"
            ))
        })?,
        None => LIBRDKAFKA_MESSAGE_MAX_BYTES,
    };
    let state_max_bytes = topic_max.min(producer_max);
    Ok(Connected {
        direct,
        transaction,
        state_partitions,
        state_max_bytes,
    })
}

/// Waits until every consumed topic and the changelog have
/// `topics.input_partitions` partitions (`layout`): until then the engine
/// joins no group and processes nothing, and health says why. False when
/// `shutdown` was set first.
fn wait_for_layout(
    config: &Config,
    health: &Health,
    shutdown: &AtomicBool,
) -> anyhow::Result<bool> {
    let probe: BaseConsumer<Quiet> = client_config(config, &[]).create_with_context(Quiet)?;
    loop {
        match super::layout::check(&probe, config) {
            Ok(()) => {
                health.refuse(None);
                return Ok(true);
            }
            Err(super::layout::LayoutError::Mismatch(m)) => health.refuse(Some(m.to_string())),
            Err(e) => logs::warn("checking partition counts", &e),
        }
        let until = Instant::now() + LAYOUT_RECHECK;
        while Instant::now() < until {
            if shutdown.load(Ordering::Relaxed) {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// How often refused partition counts are checked again.
pub const LAYOUT_RECHECK: Duration = Duration::from_secs(5);

/// Partition count of the changelog topic (it must exist: `topics create`).
fn changelog_partitions(config: &Config) -> Result<i32, Failure> {
    let probe: BaseConsumer<Quiet> = client_config(config, &[])
        .create_with_context(Quiet)
        .map_err(|e| Failure::Final(e.into()))?;
    let topic = state_topic(config);
    // A topic created a moment ago may take a little while to show in metadata.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let md = probe
            .fetch_metadata(Some(topic), ATTEMPT)
            .map_err(|e| Failure::Waiting(e.into()))?;
        let n = md
            .topics()
            .first()
            .map_or(0, |t| t.partitions().len() as i32);
        if n > 0 {
            return Ok(n);
        }
        if Instant::now() > deadline {
            return Err(Failure::Final(anyhow::anyhow!(
                "the state changelog topic `{topic}` does not exist; run `crowdpark topics create` first"
            )));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
