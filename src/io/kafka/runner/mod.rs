//! `crowdpark run`: the engine as a Kafka consumer-group application.
//!
//! One thread, the coordinator, owns the consumer: it serves the group's
//! callbacks, ticks, checkpoints and recovers. Each assigned input partition
//! is a task with its own engine and its own librdkafka queue, split from the
//! consumer's; `engine.workers` threads process the tasks, each task by one
//! worker at a time (`tasks.rs`). The commit is made safe for stateful
//! processing: every `commit_interval`, and before partitions are revoked or
//! the process stops, the coordinator holds every worker out (the barrier)
//! and then:
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
mod context;
mod ends;
mod keeper;
mod poll;
mod publish;
mod recovery;
mod share;
mod state;
mod tasks;
mod worker;

use super::changelog::changelog_reader;
use super::health::Health;
use super::repartition::Batches;
use super::sink::KafkaSink;
use super::startup::{connect, Connected};
use super::transaction::{TransactionError, Transactions};
use super::{client_config, state_topic};
use crate::config::{Config, ProcessingGuarantee};
use crate::district::PartialRecord;
use crate::engine::{Engine, InputMessage};
use crate::http::LiveView;
use crate::metrics::{InputCounters, REWIND_RESTORE_FAILED, REWIND_TRANSACTION_FAILED};
use crate::model::{Catalog, InputTopic};
use crate::output::{Forwarded, Output};
use checkpoint::{on_commit, Commit, InFlight};
use context::{Commits, RunContext};
use poll::Coordinator;
use publish::{on_send_error, publish, send_batches, Buffers};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, Consumer, ConsumerContext, ConsumerGroupMetadata, Rebalance,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use state::{Action, RunEvent, RunState};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};
use tasks::{Task, Tasks};

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
    crate::time::now_ms()
}

/// Wall-clock milliseconds derived from a monotonic reading, so a thread reads
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

    fn wall_ms(&mut self, now: Instant) -> i64 {
        if now.saturating_duration_since(self.base) >= VIEW_EVERY {
            *self = Clock::new();
        }
        self.base_wall_ms + now.saturating_duration_since(self.base).as_millis() as i64
    }
}

/// What a run did, for its closing log line.
#[derive(Debug, Default, Clone)]
pub struct RunSummary {
    pub consumed: u64,
    pub commits: u64,
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
    // With every partition's queue split off and drained on its own, each
    // becomes fetchable again at once, and the fetches shrank to about 100 kB
    // (900 requests for a 2M-message backlog instead of 12; the broker's CPU
    // per event tripled). Asking for 1 MB lets the broker gather a batch; when
    // less is there it answers after `fetch.wait.max.ms` (50 ms) anyway.
    ("fetch.min.bytes", "1048576"),
];

/// Messages prefetched for all partitions together (librdkafka's default for
/// its one consumer queue).
const QUEUED_MESSAGES: u64 = 100_000;

/// Runs until `shutdown` is set, then checkpoints, commits and leaves the group.
pub fn run(
    config: Arc<Config>,
    view: Arc<LiveView>,
    shutdown: Arc<AtomicBool>,
) -> anyhow::Result<RunSummary> {
    super::allocator::keep_freed_buffers();
    let health = Arc::new(Health::new(config.kafka.unhealthy_after.as_duration()));
    // Stops with the run, whichever way it ends.
    let _watcher = health.watch(view.clone());
    let kept = keeper::Keeper::start(&config, config.topics.input_partitions)?;
    let (keeper, _keeper_stop) = kept.map_or((None, None), |(k, s)| (Some(k), Some(s)));
    let Some(consumer) = start(&config, &view, &health, keeper, &shutdown)? else {
        tracing::info!("stopped while waiting for the broker");
        return Ok(RunSummary::default());
    };
    let ctx = consumer.context().clone();
    let _ends = ends::watch(&config, &health)?;
    let _shared = match view.shared() {
        Some(_) => Some(super::view_reader::spawn(&config, view.clone())?),
        None => None,
    };
    // Declared after the consumer, so dropped before it: an error return marks
    // the run failed, stops the workers and drops the tasks (whose queues hold
    // the consumer) before the consumer's close runs the revoke callback.
    let mut failing = FailOnDrop {
        ctx: ctx.clone(),
        workers: Vec::new(),
        armed: true,
    };
    for n in 0..config.engine.worker_count() {
        failing.workers.push(worker::spawn(&ctx, &view, n)?);
    }
    Coordinator::new(&ctx, &view).run(&consumer, &shutdown)?;
    failing.stop_workers()?;
    let summary = finish(&ctx, &consumer, &view)?;
    failing.armed = false;
    Ok(summary)
}

/// Connects, registers the transactional producer, and subscribes a consumer
/// whose context holds the engine; `None` if stopped while waiting.
fn start(
    config: &Arc<Config>,
    view: &Arc<LiveView>,
    health: &Arc<Health>,
    keeper: Option<Arc<keeper::Keeper>>,
    shutdown: &AtomicBool,
) -> anyhow::Result<Option<Arc<BaseConsumer<RunContext>>>> {
    let Some(Connected {
        direct,
        transaction,
        state_partitions,
        state_max_bytes,
    }) = connect(config, &view.metrics, health, shutdown)?
    else {
        return Ok(None);
    };
    let catalog = Arc::new(Catalog::new(config));
    let context = RunContext {
        config: config.clone(),
        catalog,
        tasks: Tasks::new(),
        commits: Mutex::new(Commits::default()),
        consumed: AtomicU64::new(0),
        evicted_retired: Mutex::new(BTreeMap::new()),
        consumer: OnceLock::new(),
        transaction: Arc::new(transaction),
        in_flight: Mutex::new(None),
        direct,
        view: view.clone(),
        state_partitions,
        state_max_bytes,
        health: health.clone(),
        run: Mutex::new(RunState::Running),
        processing: AtomicBool::new(true),
        assigned: Mutex::new(None),
        put_back: Mutex::new(BTreeMap::new()),
        abort_every: context::abort_every(),
        checkpoints: AtomicU64::new(0),
        generation: AtomicU64::new(0),
        keeper,
    };
    // Each partition's queue is split off the consumer's, and librdkafka
    // then holds up to this much prefetched for each (not for all together):
    // the budget is shared among the most partitions this instance can own.
    let queues = (config.topics.input_partitions.max(1) as u64) * InputTopic::CONSUMED.len() as u64;
    let budget_kb = (config.kafka.buffer_kbytes() / queues)
        .max(1024)
        .to_string();
    // Likewise librdkafka's default of 100,000 messages (each with its own
    // bookkeeping beyond its bytes).
    let min_messages = (QUEUED_MESSAGES / queues).max(1000).to_string();
    let mut settings = CONSUMER_DEFAULTS.to_vec();
    settings.push(("group.id", config.kafka.group_id.as_str()));
    settings.push(("queued.max.messages.kbytes", &budget_kb));
    settings.push(("queued.min.messages", &min_messages));
    let consumer: Arc<BaseConsumer<RunContext>> =
        Arc::new(client_config(config, &settings).create_with_context(context)?);
    let _ = consumer.context().consumer.set(Arc::downgrade(&consumer));
    let topics = InputTopic::CONSUMED.map(|t| t.name_in(&config.topics));
    consumer.subscribe(&topics)?;
    tracing::info!(
        brokers = %config.kafka.brokers,
        group = %config.kafka.group_id,
        transactional_id = config.kafka.transactional_id(),
        guarantee = ?config.kafka.processing_guarantee,
        workers = config.engine.worker_count(),
        "consuming"
    );
    Ok(Some(consumer))
}

/// The last checkpoint and commit, then leaving the group.
fn finish(
    ctx: &RunContext,
    consumer: &BaseConsumer<RunContext>,
    view: &LiveView,
) -> anyhow::Result<RunSummary> {
    view.set_ready(false);
    if !ctx.event(RunEvent::Shutdown).may_commit() || ctx.health.refused() {
        // What the tasks hold is not a state to keep (half restored, or
        // processed under partition counts that no longer hold).
        tracing::warn!("stopping while processing is paused: nothing committed; the next run resumes from the last checkpoint");
        let _ = ctx.transaction.abort();
        consumer.unsubscribe();
        let _ = consumer.poll(Duration::from_millis(100));
        return Ok(RunSummary {
            consumed: ctx.consumed.load(Ordering::Relaxed),
            commits: ctx.commits().count,
        });
    }
    tracing::info!("stopping: final checkpoint and commit");
    match ctx.commit(consumer) {
        Ok(Commit::Deferred(e))
        | Err(TransactionError::Abort(e))
        | Err(TransactionError::Retry(e))
        | Err(TransactionError::Fatal(e)) => {
            tracing::error!(error = %e, "final commit failed; the next run resumes from the previous commit");
            // Nor may the revoke below commit: the positions are past
            // outputs this abort drops.
            ctx.event(RunEvent::TransactionFailed);
            let _ = ctx.transaction.abort();
        }
        Ok(_) => {}
    }
    consumer.unsubscribe();
    // Let the revoke callback run (it finds nothing left to commit).
    let _ = consumer.poll(Duration::from_millis(100));
    if let Some(d) = &ctx.direct {
        d.flush(FLUSH_TIMEOUT)?;
    }
    Ok(RunSummary {
        consumed: ctx.consumed.load(Ordering::Relaxed),
        commits: ctx.commits().count,
    })
}

/// Stops the workers and drops the tasks when the run ends, whichever way.
/// Dropped armed (any error return), it first marks the run failed, so that
/// closing the consumer, which revokes its partitions, commits nothing: after
/// a failed produce the positions are ahead of what was delivered, and
/// committing them would skip those messages for good.
struct FailOnDrop {
    ctx: Arc<RunContext>,
    workers: Vec<std::thread::JoinHandle<()>>,
    armed: bool,
}

impl FailOnDrop {
    /// Stops the workers and waits for them; an error one of them stopped on
    /// is the run's.
    fn stop_workers(&mut self) -> anyhow::Result<()> {
        self.ctx.tasks.stop.store(true, Ordering::Relaxed);
        self.ctx.tasks.wake();
        for w in self.workers.drain(..) {
            if w.join().is_err() {
                self.ctx.mark_failed("a worker panicked".into());
            }
        }
        match self.ctx.failure() {
            Some(e) => anyhow::bail!(e),
            None => Ok(()),
        }
    }
}

impl Drop for FailOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.ctx.mark_failed("the run stopped on an error".into());
        }
        let _ = self.stop_workers();
        self.ctx.tasks.clear();
    }
}
