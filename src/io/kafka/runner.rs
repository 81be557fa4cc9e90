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
use crate::io::demo::refresh_view;
use crate::metrics::{InputCounters, REWIND_RESTORE_FAILED, REWIND_TRANSACTION_FAILED};
use crate::model::InputTopic;
use crate::output::{Output, OutputTopic};
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

/// What a commit attempt did.
enum Commit {
    /// Nothing was processed since the last commit.
    Nothing,
    Done,
    /// The checkpoint is written and its commit runs on its own thread.
    Started,
    /// At-least-once outputs were not all acknowledged in time; nothing was
    /// written, and the next interval tries again.
    Deferred(String),
}

/// A checkpoint written into the open transaction, with what its commit needs.
struct Ready {
    offsets: TopicPartitionList,
    group: ConsumerGroupMetadata,
}

/// A commit running on its own thread (at-least-once mode).
struct InFlight {
    handle: std::thread::JoinHandle<Result<(), TxnError>>,
    started: Instant,
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
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn topic_name(&self, t: InputTopic) -> &str {
        self.config.topics.input(t)
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
            let mut put_back = self.put_back.lock().unwrap_or_else(|p| p.into_inner());
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
        self.fatal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(e);
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

    /// Steps 1–2 of the module comment, for every partition this instance owns,
    /// waiting for the commit (and first for a background one still running).
    fn commit(&self, consumer: &BaseConsumer<RunContext>) -> Result<Commit, TxnError> {
        // Its failure is in the transaction's phase, which `prepare` obeys
        // (retry the commit, or abort); only a fatal one is passed on here.
        if let Some(Err(TxnError::Fatal(e))) = self.settle(true) {
            return Err(TxnError::Fatal(e));
        }
        let ready = match self.prepare(consumer)? {
            Ok(ready) => ready,
            Err(not) => return Ok(not),
        };
        self.txn.commit(&ready.offsets, &ready.group)?;
        self.committed();
        Ok(Commit::Done)
    }

    /// At-least-once: writes the checkpoint, then commits it on its own thread
    /// while processing goes on. The commit round trips (offsets to the
    /// transaction, then `EndTxn`) took about 120 ms of every one-second
    /// interval, the loop stalled. The state keeps changing meanwhile; the
    /// checkpoint already holds its copy, and the next one starts when this one
    /// is settled. Exactly-once cannot do this: its outputs go into the
    /// transaction, so nothing may be sent until it commits.
    fn commit_in_background(
        &self,
        consumer: &BaseConsumer<RunContext>,
    ) -> Result<Commit, TxnError> {
        let ready = match self.prepare(consumer)? {
            Ok(ready) => ready,
            Err(not) => return Ok(not),
        };
        let txn = self.txn.clone();
        let handle = std::thread::Builder::new()
            .name("crowdpark-commit".into())
            .spawn(move || txn.commit(&ready.offsets, &ready.group))
            .map_err(|e| TxnError::Abort(format!("could not start the commit thread: {e}")))?;
        *self.in_flight_slot() = Some(InFlight {
            handle,
            started: Instant::now(),
        });
        Ok(Commit::Started)
    }

    fn in_flight_slot(&self) -> MutexGuard<'_, Option<InFlight>> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn committing_in_background(&self) -> bool {
        self.in_flight_slot().is_some()
    }

    /// The outcome of the background commit once it has finished (with `wait`,
    /// once it has finished, however long that takes); `None` if there is none
    /// or it is still running.
    fn settle(&self, wait: bool) -> Option<Result<(), TxnError>> {
        let f = {
            let mut slot = self.in_flight_slot();
            if !wait && !slot.as_ref()?.handle.is_finished() {
                return None;
            }
            slot.take()?
        };
        let r = f
            .handle
            .join()
            .unwrap_or_else(|_| Err(TxnError::Fatal("the commit thread panicked".into())));
        if r.is_ok() {
            self.committed();
            tracing::debug!(
                ms = f.started.elapsed().as_millis() as u64,
                "background commit done"
            );
        }
        Some(r)
    }

    /// The open transaction committed: its positions are the committed ones.
    fn committed(&self) {
        let mut s = self.lock();
        s.committed = s
            .txn_positions
            .take()
            .unwrap_or_else(|| s.positions.clone());
        s.summary.commits += 1;
    }

    /// Steps 1 and 2 up to the commit itself: outputs acknowledged (at least
    /// once), the changed state written into the transaction. `Err` says why
    /// there is nothing to commit.
    fn prepare(
        &self,
        consumer: &BaseConsumer<RunContext>,
    ) -> Result<Result<Ready, Commit>, TxnError> {
        let mut s = self.lock();
        if self.txn.must_abort() {
            return Err(TxnError::Abort("an earlier transaction failed".into()));
        }
        let offsets = if self.txn.is_committing() {
            // Only the commit is retried: its records and offsets are in, and
            // `txn_positions` are the positions in it.
            TopicPartitionList::new()
        } else {
            let moved = s
                .positions
                .iter()
                .any(|(k, v)| s.committed.get(k) != Some(v));
            if !moved && !self.txn.is_open() {
                return Ok(Err(Commit::Nothing));
            }
            // The state about to be checkpointed has forwarded these payments.
            let s = &mut *s;
            send_batches(&s.engine, self, &mut s.batches)?;
            if let Some(d) = &self.direct {
                if let Err(e) = d.flush(FLUSH_TIMEOUT) {
                    return Ok(Err(Commit::Deferred(e.to_string())));
                }
            }
            let state_topic = state_topic(&self.config).to_string();
            let parts: Vec<(InputTopic, i32)> = s.positions.keys().copied().collect();
            for (topic, p) in &parts {
                for r in s.engine.checkpoint_partition(*topic, *p) {
                    self.fits_changelog(&r)?;
                    self.txn.send(
                        &state_topic,
                        Some(p % self.state_partitions),
                        Some(r.key.as_bytes()),
                        r.value.as_deref(),
                    )?;
                }
            }
            let mut offsets = TopicPartitionList::new();
            for ((topic, p), pos) in &s.positions {
                offsets
                    .add_partition_offset(self.topic_name(*topic), *p, Offset::Offset(*pos))
                    .map_err(|e| TxnError::Abort(e.to_string()))?;
            }
            s.txn_positions = Some(s.positions.clone());
            offsets
        };
        let group = consumer
            .group_metadata()
            .ok_or_else(|| TxnError::Abort("the consumer has no group metadata".into()))?;
        Ok(Ok(Ready { offsets, group }))
    }

    /// After a failed transaction: abort it and rewind every assigned partition
    /// to its last checkpoint. Returns false while the broker cannot be reached
    /// (the caller tries again later).
    fn recover(&self, consumer: &BaseConsumer<RunContext>, reason: &str) -> bool {
        // A background commit still using the transaction finishes first.
        let _ = self.settle(true);
        match self.txn.abort() {
            Ok(()) => {}
            Err(TxnError::Fatal(e)) => {
                self.set_fatal(e);
                return false;
            }
            Err(e @ (TxnError::Abort(_) | TxnError::Retry(_))) => {
                super::logs::warn("abort failed; holding processing and trying again", &e);
                return false;
            }
        }
        match self.rewind(consumer) {
            Ok(n) => {
                self.rewind_pending.store(false, Ordering::Relaxed);
                self.health.restore_failed(None);
                self.view.metrics.set_partitions_assigned(n);
                self.view.set_ready(true);
                self.view.metrics.rewind(reason);
                tracing::warn!(partitions = n, reason, "rewound to the last checkpoint");
                true
            }
            Err(e) => {
                super::logs::warn("rewind failed; trying again", &e);
                // Keep processing held: the state may be half restored.
                self.rewind_pending.store(true, Ordering::Relaxed);
                false
            }
        }
    }

    fn rewind(&self, consumer: &BaseConsumer<RunContext>) -> Result<usize, String> {
        let assignment = consumer.assignment().map_err(|e| e.to_string())?;
        let parts = self.input_partitions(&assignment);
        {
            let mut s = self.lock();
            for k in &parts {
                s.engine.drop_partition(k.0, k.1);
                s.positions.remove(k);
                s.committed.remove(k);
            }
            // Forwarded by the state being dropped; its replay forwards them again.
            s.batches.clear();
            s.txn_positions = None;
        }
        let restored = self.restore(&parts)?;
        let seek = self.resume_positions(consumer, &restored)?;
        consumer
            .seek_partitions(seek, Duration::from_secs(10))
            .map_err(|e| format!("seeking back: {e}"))?;
        Ok(parts.len())
    }

    /// Where each restored partition resumes: the offset its state reflects, or
    /// for a partition with no checkpoint yet, the group's committed offset (set
    /// by an earlier version or by an operator), else the beginning.
    fn resume_positions(
        &self,
        consumer: &BaseConsumer<RunContext>,
        restored: &[(InputTopic, i32, Option<i64>)],
    ) -> Result<TopicPartitionList, String> {
        let mut unknown = TopicPartitionList::new();
        for (t, p, offset) in restored {
            if offset.is_none() {
                unknown.add_partition(self.topic_name(*t), *p);
            }
        }
        let committed = if unknown.count() > 0 {
            consumer
                .committed_offsets(unknown, Duration::from_secs(30))
                .map_err(|e| format!("reading committed offsets: {e}"))?
        } else {
            unknown
        };
        let mut seek = TopicPartitionList::new();
        for (t, p, offset) in restored {
            let name = self.topic_name(*t);
            let o = match offset {
                Some(o) => Offset::Offset(*o),
                None => match committed.find_partition(name, *p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => Offset::Offset(o),
                    _ => Offset::Beginning,
                },
            };
            seek.add_partition_offset(name, *p, o)
                .map_err(|e| e.to_string())?;
        }
        Ok(seek)
    }

    /// Reads the changelog partitions of `parts` and rebuilds their state.
    /// Returns the offset each restored partition's state reflects.
    fn restore(
        &self,
        parts: &[(InputTopic, i32)],
    ) -> Result<Vec<(InputTopic, i32, Option<i64>)>, String> {
        let mut by_changelog: BTreeMap<i32, Vec<(InputTopic, i32)>> = BTreeMap::new();
        for (t, p) in parts {
            by_changelog
                .entry(p % self.state_partitions)
                .or_default()
                .push((*t, *p));
        }
        let reader = changelog_reader(&self.config)?;
        let topic = state_topic(&self.config);
        let mut out = Vec::new();
        for (cp, inputs) in by_changelog {
            let started = Instant::now();
            let records = read_changelog(&reader, topic, cp)?;
            let mut s = self.lock();
            for (t, p) in inputs {
                s.engine
                    .restore_partition(t, p, &records, wall_ms())
                    .map_err(|e| format!("restoring {}/{p}: {e}", self.topic_name(t)))?;
                let offset = s.engine.next_offset(t, p);
                if let Some(o) = offset {
                    s.positions.insert((t, p), o);
                    s.committed.insert((t, p), o);
                }
                self.view.metrics.set_restore_time(
                    self.topic_name(t),
                    p,
                    started.elapsed().as_secs_f64(),
                );
                out.push((t, p, offset));
            }
            tracing::info!(
                changelog_partition = cp,
                keys = records.len(),
                ms = started.elapsed().as_millis() as u64,
                "state restored"
            );
        }
        Ok(out)
    }
}

impl ClientContext for RunContext {
    fn stats(&self, stats: Statistics) {
        for (topic, t) in &stats.topics {
            for (p, part) in &t.partitions {
                if *p >= 0 && part.consumer_lag >= 0 {
                    self.view.metrics.set_lag(topic, *p, part.consumer_lag);
                }
            }
        }
        let up = super::health::note_statistics(&stats);
        self.view.metrics.set_broker_reachable(up);
    }

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        super::logs::client_log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        super::logs::client_error("consumer", &error, reason);
        self.health.note_error(format!("{error}: {reason}"));
    }
}

impl ConsumerContext for RunContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let parts = self.input_partitions(tpl);
            self.view.set_ready(false);
            let failed = self.fatal.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let committed = match failed {
                // Positions may be ahead of what was delivered: commit nothing,
                // and let the next owner resume from the last checkpoint.
                Some(e) => {
                    tracing::warn!(error = %e, "not committing revoked partitions after an error");
                    let _ = self.settle(true);
                    Err(TxnError::Abort(e))
                }
                None => self.commit(consumer),
            };
            match committed {
                Ok(Commit::Deferred(e)) => {
                    tracing::warn!(error = %e, "outputs not acknowledged; the new owner resumes from the last commit")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "could not commit revoked partitions; the new owner resumes from the last commit");
                    // Their state is dropped below, so aborting is the whole
                    // recovery; if the broker is away, the loop aborts later.
                    if let Err(TxnError::Fatal(e)) = self.txn.abort() {
                        self.set_fatal(e);
                    }
                }
            }
            let mut s = self.lock();
            // Sent by the commit above; if it failed, the new owner replays them.
            s.batches.clear();
            for k in &parts {
                s.engine.drop_partition(k.0, k.1);
                s.positions.remove(k);
                s.committed.remove(k);
                self.view
                    .metrics
                    .forget_partition(self.topic_name(k.0), k.1);
            }
            self.view.metrics.set_partitions_assigned(0);
            tracing::info!(partitions = parts.len(), "partitions revoked");
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let parts = self.input_partitions(tpl);
            let positioned = self
                .restore(&parts)
                .and_then(|restored| self.resume_positions(consumer, &restored));
            match positioned {
                Ok(seek) => {
                    // Resume exactly where the restored state is.
                    if let Err(e) = consumer.assign(&seek) {
                        tracing::error!(error = %e, "could not position restored partitions");
                    }
                    tracing::info!(partitions = parts.len(), "partitions assigned and restored");
                    self.view.metrics.set_partitions_assigned(parts.len());
                    self.health.restore_failed(None);
                    self.view.set_ready(true);
                }
                Err(e) => {
                    // Keep the partitions (nobody else would process them) and
                    // hold; the loop retries the restore every second.
                    tracing::error!(error = %e, "state restore failed; holding and retrying");
                    self.health.restore_failed(Some(e));
                    self.rewind_pending.store(true, Ordering::Relaxed);
                }
            }
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
    let t = &config.topics;
    consumer.subscribe(&[
        &t.crowd_counts,
        &t.parking_events,
        &t.payments,
        &t.payments_by_zone,
    ])?;
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
    let counters: Vec<(InputTopic, InputCounters)> = InputTopic::ALL
        .iter()
        .chain([&InputTopic::PaymentsByZone])
        .map(|t| (*t, view.metrics.input_counters(ctx.topic_name(*t))))
        .collect();
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
            if let Some(e) = ctx.fatal.lock().unwrap_or_else(|p| p.into_inner()).clone() {
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
                            view.metrics.commit("ok");
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
            ctx.put_back
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
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
                        c.count(&view.metrics, d);
                    }
                });
                s.positions.insert((topic, m.partition()), m.offset() + 1);
                // Input messages only; the internal repartition topic is not input.
                if topic != InputTopic::PaymentsByZone {
                    s.summary.consumed += 1;
                }
                publish(&s.engine, &ctx, &view, &mut s.batches, &mut json, &out)?;
                if !out.is_empty() {
                    view.metrics
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
            publish(&s.engine, &ctx, &view, &mut s.batches, &mut json, &out)?;
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

/// Sends outputs to their topics (re-keyed payments into their batch) and to
/// the local view. A failed send inside a transaction marks it for abort (the
/// loop then rewinds); only a fatal producer error stops the run.
fn publish(
    engine: &Engine,
    ctx: &RunContext,
    view: &LiveView,
    batches: &mut RepartitionBatches,
    json: &mut Vec<u8>,
    out: &[Output],
) -> anyhow::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    for o in out {
        let sent = match o {
            Output::Forward(f) => match batches.add(f) {
                Some((p, batch)) => send_batch(engine, ctx, p, &batch),
                None => Ok(()),
            },
            _ => {
                json.clear();
                o.write_json(json);
                let topic = engine.output_topic_name(o.topic());
                ctx.send_output(topic, o.partition(), o.key().as_bytes(), json)
            }
        };
        if let Err(e) = sent {
            return on_send_error(e);
        }
    }
    crate::io::publish_local(engine, view, out);
    Ok(())
}

/// Counts and acts on what a commit did: a retriable failure holds processing
/// until a retry succeeds, an abortable one rewinds, a fatal one stops the run.
fn on_commit(
    ctx: &RunContext,
    consumer: &BaseConsumer<RunContext>,
    view: &LiveView,
    r: Result<Commit, TxnError>,
    last_recover: &mut Instant,
) -> anyhow::Result<()> {
    match r {
        Ok(Commit::Done) => {
            view.metrics.commit("ok");
            ctx.health.progress();
        }
        Ok(Commit::Nothing) => ctx.health.progress(),
        Ok(Commit::Started) => {}
        Ok(Commit::Deferred(e)) => {
            ctx.health.note_error(e.clone());
            view.metrics.commit("deferred");
            super::logs::warn("outputs not yet acknowledged; commit deferred", &e);
        }
        Err(TxnError::Fatal(e)) => anyhow::bail!(e),
        Err(TxnError::Retry(e)) => {
            ctx.health.note_error(e.clone());
            view.metrics.commit("retry");
            super::logs::warn("commit not finished; holding until it is", &e);
            *last_recover = Instant::now();
        }
        Err(TxnError::Abort(e)) => {
            ctx.health.note_error(e.clone());
            view.metrics.commit("aborted");
            super::logs::warn("checkpoint transaction failed", &e);
            ctx.recover(consumer, REWIND_TRANSACTION_FAILED);
            *last_recover = Instant::now();
        }
    }
    Ok(())
}

/// A send that failed: inside a transaction it is aborted and rewound by the
/// loop, so only a fatal error stops the run.
fn on_send_error(e: TxnError) -> anyhow::Result<()> {
    match e {
        TxnError::Abort(e) | TxnError::Retry(e) => {
            super::logs::warn("output not added to the transaction", &e);
            Ok(())
        }
        TxnError::Fatal(e) => anyhow::bail!(e),
    }
}

fn send_batch(
    engine: &Engine,
    ctx: &RunContext,
    partition: i32,
    batch: &[u8],
) -> Result<(), TxnError> {
    let topic = engine.output_topic_name(OutputTopic::PaymentsByZone);
    ctx.send_output(topic, Some(partition), b"", batch)
}

/// Sends every pending batch of re-keyed payments.
fn send_batches(
    engine: &Engine,
    ctx: &RunContext,
    batches: &mut RepartitionBatches,
) -> Result<(), TxnError> {
    for (p, batch) in batches.drain() {
        send_batch(engine, ctx, p, &batch)?;
    }
    Ok(())
}
