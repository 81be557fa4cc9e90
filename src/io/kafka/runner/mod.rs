//! `crowdpark run`: the engine as a Kafka consumer-group application.
//!
//! One thread owns the consumer and drives the engine, as in rdkafka's examples,
//! with the commit made safe for stateful processing. Every `commit_interval`,
//! and before partitions are revoked or the process stops:
//!
//! 1. at-least-once: flush the output producer, so every output caused so far is
//!    acknowledged (exactly-once: the outputs are already in the transaction);
//! 2. in one Kafka transaction, write the changed state to the changelog (each
//!    partition's `meta` record, carrying the input offset the state reflects,
//!    last) and the consumer offsets, and commit it.
//!
//! In at-least-once mode the commit itself (offsets into the transaction, then
//! `EndTxn`: 120–200 ms under load) runs on its own thread while processing
//! goes on; the checkpoint already holds the state as of its positions, and the
//! next checkpoint waits until this one is settled.
//!
//! State and offsets therefore move together in both modes: a crash at any
//! point resumes from the last whole checkpoint, and nothing is counted twice.
//! What differs is the outputs. At-least-once sends them at once, so after a
//! crash those since the last commit are sent again (same ids, same content).
//! Exactly-once commits them with the state, so `read_committed` consumers see
//! each once, at the commit.
//!
//! A transaction that fails is aborted and every assigned partition is rewound
//! to its last checkpoint (restored from the changelog, consumer seeked back);
//! while the broker is unreachable the abort waits and processing holds, with
//! memory bounded by the clients' buffers.

mod callbacks;
mod checkpoint;
mod publish;
mod recovery;

use super::changelog::{changelog_reader, read_changelog};
use super::health::Health;
use super::repartition::RepartitionBatches;
use super::sink::KafkaSink;
use super::startup::{connect, Connected};
use super::txn::{Transactions, TxnError};
use super::{client_config, state_topic};
use crate::config::{Config, ProcessingGuarantee};
use crate::engine::{Engine, InputMessage};
use crate::http::LiveView;
use crate::io::refresh_view;
use crate::metrics::{InputCounters, REWIND_RESTORE_FAILED, REWIND_TRANSACTION_FAILED};
use crate::model::InputTopic;
use crate::output::{Output, OutputTopic};
use checkpoint::{on_commit, Commit, InFlight};
use publish::{on_send_error, publish, send_batches};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, Consumer, ConsumerContext, ConsumerGroupMetadata, Rebalance,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a flush may take before the commit is deferred (and retried on the
/// next interval). Outputs are never dropped; they wait in the producer.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_TIMEOUT: Duration = Duration::from_millis(100);
const TICK_EVERY: Duration = Duration::from_millis(100);
const VIEW_EVERY: Duration = Duration::from_millis(250);
const RECOVER_EVERY: Duration = Duration::from_secs(1);
/// A record's bytes beyond key and value in a batch of one (headers, varints,
/// batch header), rounded up.
const RECORD_OVERHEAD: usize = 128;

/// The part size for changelog values: a quarter of what the changelog topic
/// takes, at most the default.
fn part_bytes(topic_max: usize) -> usize {
    (topic_max / 4).clamp(1024, crate::state::DEFAULT_PART_BYTES)
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Wall-clock milliseconds derived from a monotonic reading, so the loop reads
/// the clock once per message, twice when it has outputs (their latency),
/// instead of six (reads showed up at 5 % of the profile). Re-based every
/// `VIEW_EVERY` to follow clock adjustments.
struct Clock {
    base: Instant,
    base_wall_ms: i64,
}

impl Clock {
    fn new() -> Self {
        Clock {
            base: Instant::now(),
            base_wall_ms: wall_ms(),
        }
    }

    fn wall_ms(&self, now: Instant) -> i64 {
        self.base_wall_ms + now.saturating_duration_since(self.base).as_millis() as i64
    }
}

/// What a run did, for its closing log line.
#[derive(Debug, Default, Clone)]
pub struct RunSummary {
    pub consumed: u64,
    pub commits: u64,
}

/// Engine and positions, shared between the poll loop and the rebalance
/// callbacks (which run inside `poll`, on the same thread, so the lock is never
/// contended; it exists because librdkafka calls back through `&self`).
struct Shared {
    engine: Engine,
    /// Next offset to commit per input partition.
    positions: BTreeMap<(InputTopic, i32), i64>,
    committed: BTreeMap<(InputTopic, i32), i64>,
    summary: RunSummary,
    /// Re-keyed payments not yet sent to the repartition topic.
    batches: RepartitionBatches,
    /// The positions the open transaction's checkpoint reflects, from when it
    /// was written (processing may have moved on since, during a background
    /// commit).
    txn_positions: Option<BTreeMap<(InputTopic, i32), i64>>,
}

struct RunContext {
    config: Arc<Config>,
    shared: Mutex<Shared>,
    /// Carries every checkpoint, and the outputs too in exactly-once mode.
    txn: Arc<Transactions>,
    /// The background commit, if one is running or finished unseen.
    in_flight: Mutex<Option<InFlight>>,
    /// At-least-once mode: the outputs' own idempotent producer.
    direct: Option<KafkaSink>,
    view: Arc<LiveView>,
    state_partitions: i32,
    /// The changelog topic's `max.message.bytes`, or the producer's if lower:
    /// no state record may be larger.
    state_max_bytes: usize,
    health: Arc<Health>,
    /// A rewind failed half-way; processing holds until one succeeds.
    rewind_pending: AtomicBool,
    /// Where each partition was sought back to while held.
    put_back: Mutex<BTreeMap<(String, i32), i64>>,
    /// Set by a callback that hit an unrecoverable error; the loop stops on it.
    fatal: Mutex<Option<String>>,
}

impl RunContext {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        crate::sync::lock(&self.shared)
    }

    fn topic_name(&self, t: InputTopic) -> &str {
        t.name_in(&self.config.topics)
    }

    fn input_partitions(&self, tpl: &TopicPartitionList) -> Vec<(InputTopic, i32)> {
        let s = self.lock();
        tpl.elements()
            .iter()
            .filter_map(|e| Some((s.engine.input_topic(e.topic())?, e.partition())))
            .collect()
    }

    /// True while processing must hold: a commit waits to be retried, or a
    /// transaction failed and the state has not been rewound yet.
    fn held(&self) -> bool {
        self.txn.is_committing()
            || self.txn.must_abort()
            || self.rewind_pending.load(Ordering::Relaxed)
    }

    /// While held, a message that still arrives is put back: its partition is
    /// sought to it, so it is read again once processing resumes. Only the first
    /// per partition counts (a later one was fetched before the seek).
    fn put_back(&self, consumer: &BaseConsumer<RunContext>, m: &BorrowedMessage<'_>) {
        {
            let mut put_back = crate::sync::lock(&self.put_back);
            let key = (m.topic().to_string(), m.partition());
            match put_back.get(&key) {
                Some(at) if *at <= m.offset() => return,
                _ => put_back.insert(key, m.offset()),
            };
        }
        if let Err(e) = consumer.seek(
            m.topic(),
            m.partition(),
            Offset::Offset(m.offset()),
            Duration::from_secs(10),
        ) {
            super::logs::warn("could not put a message back; the rewind will", &e);
            self.rewind_pending.store(true, Ordering::Relaxed);
        }
    }

    /// Refuses a changelog record the topic would refuse: retrying it could
    /// only fail again, so the run stops with the reason instead of rewinding
    /// forever. (Values are split to fit; only an absurd key can get here.)
    fn fits_changelog(&self, r: &crate::state::StateRecord) -> Result<(), TxnError> {
        let size = r.key.len() + r.value.as_ref().map_or(0, Vec::len) + RECORD_OVERHEAD;
        if size <= self.state_max_bytes {
            return Ok(());
        }
        let shown: String = r.key.chars().take(120).collect();
        Err(TxnError::Fatal(format!(
            "state record `{shown}` is {size} bytes, more than the {} bytes `{}` and its producer take (max.message.bytes)",
            self.state_max_bytes,
            state_topic(&self.config)
        )))
    }

    fn set_fatal(&self, e: String) {
        tracing::error!(error = %e, "stopping");
        self.mark_failed(e);
    }

    /// Records why the run must stop (the first reason wins); the loop stops
    /// on it and the revoke callback then commits nothing.
    fn mark_failed(&self, e: String) {
        crate::sync::lock(&self.fatal).get_or_insert(e);
    }

    /// Sends one output record where the processing guarantee says.
    fn send_output(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), TxnError> {
        match &self.direct {
            Some(d) => d
                .send(topic, partition, Some(key), Some(value))
                .map_err(|e| TxnError::Fatal(e.to_string())),
            None => self.txn.send(topic, partition, Some(key), Some(value)),
        }
    }
}

/// Consumer settings: manual commits only (offsets go into the checkpoint's
/// transaction), start from the beginning of a topic the group never read,
/// read only committed records (the repartition topic is transactional in
/// exactly-once mode), eager range assignment (partition `p` of every input
/// topic goes to the same instance, so co-partitioned keys meet).
const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("auto.offset.reset", "earliest"),
    ("enable.partition.eof", "false"),
    ("isolation.level", "read_committed"),
    ("partition.assignment.strategy", "range"),
    ("session.timeout.ms", "10000"),
    ("statistics.interval.ms", "1000"),
    ("fetch.wait.max.ms", "50"),
    // When a partition's prefetch queue is full, librdkafka postpones its next
    // fetch by this much (default 1 s); the loop drains a full queue in well
    // under that and then sat idle in poll (measured: 2–5 empty 100 ms polls
    // per second with lag outstanding).
    ("fetch.queue.backoff.ms", "10"),
];

/// Runs until `shutdown` is set, then checkpoints, commits and leaves the group.
pub fn run(
    config: Arc<Config>,
    view: Arc<LiveView>,
    shutdown: Arc<AtomicBool>,
) -> anyhow::Result<RunSummary> {
    let exactly_once = config.kafka.processing_guarantee == ProcessingGuarantee::ExactlyOnce;
    let health = Arc::new(Health::new(config.kafka.unhealthy_after.as_duration()));
    // Stops with the run, whichever way it ends.
    let _watcher = health.watch(view.clone());
    let Some(Connected {
        direct,
        txn,
        state_partitions,
        state_max_bytes,
    }) = connect(&config, &view.metrics, &health, &shutdown)?
    else {
        tracing::info!("stopped while waiting for the broker");
        return Ok(RunSummary::default());
    };
    let transactional_id = config.kafka.transactional_id();
    let mut engine = Engine::new(config.clone());
    engine.enable_checkpoints();
    engine.repartition_through_kafka();
    engine.require_entity_keys();
    engine.set_state_part_bytes(part_bytes(state_max_bytes));
    let context = RunContext {
        config: config.clone(),
        shared: Mutex::new(Shared {
            engine,
            positions: BTreeMap::new(),
            committed: BTreeMap::new(),
            summary: RunSummary::default(),
            batches: RepartitionBatches::new(config.topics.input_partitions),
            txn_positions: None,
        }),
        txn: Arc::new(txn),
        in_flight: Mutex::new(None),
        direct,
        view: view.clone(),
        state_partitions,
        state_max_bytes,
        health: health.clone(),
        rewind_pending: AtomicBool::new(false),
        put_back: Mutex::new(BTreeMap::new()),
        fatal: Mutex::new(None),
    };
    let budget_kb = config.kafka.buffer_kbytes().to_string();
    let mut settings = CONSUMER_DEFAULTS.to_vec();
    settings.push(("group.id", config.kafka.group_id.as_str()));
    settings.push(("queued.max.messages.kbytes", &budget_kb));
    let consumer: BaseConsumer<RunContext> =
        client_config(&config, &settings).create_with_context(context)?;
    let topics = InputTopic::CONSUMED.map(|t| t.name_in(&config.topics));
    consumer.subscribe(&topics)?;
    tracing::info!(
        brokers = %config.kafka.brokers,
        group = %config.kafka.group_id,
        transactional_id,
        guarantee = ?config.kafka.processing_guarantee,
        "consuming"
    );

    let ctx = consumer.context().clone();
    // Declared after the consumer, so dropped before it: an error return marks
    // the run failed before the consumer's close runs the revoke callback.
    let mut failing = FailOnDrop(Some(ctx.clone()));
    let counters: Vec<(InputTopic, InputCounters)> = InputTopic::CONSUMED
        .map(|t| (t, view.metrics.input.counters(ctx.topic_name(t))))
        .into();
    let mut clock = Clock::new();
    let mut out: Vec<Output> = Vec::new();
    // Every output is serialised into this one buffer, which librdkafka copies.
    let mut json: Vec<u8> = Vec::new();
    let (mut last_tick, mut last_view, mut last_commit, mut last_recover) = (
        Instant::now(),
        Instant::now(),
        Instant::now(),
        Instant::now(),
    );
    let commit_every = config.kafka.commit_interval.as_duration();
    let mut was_held = false;
    // One clock read per loop, taken when poll returns: it times the message's
    // receipt and then the periodic work, this pass's and the next one's.
    let mut now = Instant::now();
    while !shutdown.load(Ordering::Relaxed) {
        if now.duration_since(last_view) >= VIEW_EVERY {
            // A fatal error set by a callback stops the run within this period.
            if let Some(e) = crate::sync::lock(&ctx.fatal).clone() {
                anyhow::bail!(e);
            }
            refresh_view(&ctx.lock().engine, &view);
            clock = Clock::new();
            last_view = now;
        }
        if ctx.held() {
            if !was_held {
                // Not serving fresh results while held (`/readyz` 503).
                view.set_ready(false);
            }
            was_held = true;
            if let Some(Ok(m)) = consumer.poll(POLL_TIMEOUT) {
                ctx.put_back(&consumer, &m);
            }
            if last_recover.elapsed() >= RECOVER_EVERY {
                if ctx.txn.is_committing() {
                    match ctx.commit(&consumer) {
                        Ok(_) => {
                            view.metrics.runtime.commit("ok");
                            ctx.health.progress();
                        }
                        Err(TxnError::Fatal(e)) => anyhow::bail!(e),
                        Err(e) => super::logs::warn("commit still not finished", &e),
                    }
                } else if ctx.txn.must_abort() {
                    ctx.recover(&consumer, REWIND_TRANSACTION_FAILED);
                } else {
                    ctx.recover(&consumer, REWIND_RESTORE_FAILED);
                }
                last_recover = Instant::now();
            }
            now = Instant::now();
            continue;
        }
        if was_held {
            view.set_ready(true);
            crate::sync::lock(&ctx.put_back).clear();
            was_held = false;
        }
        let polled = consumer.poll(POLL_TIMEOUT);
        now = Instant::now();
        match polled {
            Some(Ok(m)) => {
                let received = now;
                let mut guard = ctx.lock();
                let s = &mut *guard;
                let Some(topic) = s.engine.input_topic(m.topic()) else {
                    continue;
                };
                let msg = InputMessage {
                    topic,
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key(),
                    payload: m.payload().unwrap_or(&[]),
                    wall_ms: clock.wall_ms(received),
                };
                out.clear();
                let c = counters.iter().find(|(t, _)| *t == topic).map(|(_, c)| c);
                s.engine.process_each(&msg, &mut out, |d| {
                    if let Some(c) = c {
                        c.count(&view.metrics.input, d);
                    }
                });
                s.positions.insert((topic, m.partition()), m.offset() + 1);
                // Input messages only; the internal repartition topic is not input.
                if topic != InputTopic::PaymentsByZone {
                    s.summary.consumed += 1;
                }
                publish(&mut s.engine, &ctx, &view, &mut s.batches, &mut json, &out)?;
                if !out.is_empty() {
                    view.metrics
                        .runtime
                        .observe_latency(received.elapsed().as_secs_f64());
                }
            }
            Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                anyhow::bail!("the consumer failed for good: {code}");
            }
            Some(Err(e)) => {
                super::logs::warn("consumer error", &e);
                std::thread::sleep(Duration::from_millis(100));
            }
            None => {}
        }
        if now.duration_since(last_tick) >= TICK_EVERY && !ctx.held() {
            let mut guard = ctx.lock();
            let s = &mut *guard;
            out.clear();
            s.engine.tick(clock.wall_ms(now), &mut out);
            publish(&mut s.engine, &ctx, &view, &mut s.batches, &mut json, &out)?;
            if let Err(e) = send_batches(&s.engine, &ctx, &mut s.batches) {
                on_send_error(e)?;
            }
            drop(guard);
            if let Some(r) = ctx.settle(false) {
                let r = r.map(|()| Commit::Done);
                on_commit(&ctx, &consumer, &view, r, &mut last_recover)?;
            }
            last_tick = now;
        }
        if now.duration_since(last_commit) >= commit_every
            && !ctx.held()
            && !ctx.committing_in_background()
        {
            let r = if exactly_once {
                ctx.commit(&consumer)
            } else {
                ctx.commit_in_background(&consumer)
            };
            on_commit(&ctx, &consumer, &view, r, &mut last_recover)?;
            last_commit = Instant::now();
        }
    }
    tracing::info!("stopping: final checkpoint and commit");
    view.set_ready(false);
    match ctx.commit(&consumer) {
        Ok(Commit::Deferred(e))
        | Err(TxnError::Abort(e))
        | Err(TxnError::Retry(e))
        | Err(TxnError::Fatal(e)) => {
            tracing::error!(error = %e, "final commit failed; the next run resumes from the previous commit");
            let _ = ctx.txn.abort();
        }
        Ok(_) => {}
    }
    consumer.unsubscribe();
    // Let the revoke callback run (it finds nothing left to commit).
    let _ = consumer.poll(Duration::from_millis(100));
    if let Some(d) = &ctx.direct {
        d.flush(FLUSH_TIMEOUT)?;
    }
    let summary = ctx.lock().summary.clone();
    failing.0 = None;
    Ok(summary)
}

/// Marks the run failed when dropped armed (any error return), so that closing
/// the consumer, which revokes its partitions, commits nothing: after a failed
/// produce the positions are ahead of what was delivered, and committing them
/// would skip those messages for good.
struct FailOnDrop(Option<Arc<RunContext>>);

impl Drop for FailOnDrop {
    fn drop(&mut self) {
        if let Some(ctx) = self.0.take() {
            ctx.mark_failed("the run stopped on an error".into());
        }
    }
}
