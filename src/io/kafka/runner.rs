//! `crowdpark run`: the engine as a Kafka consumer-group application.
//!
//! One thread owns the consumer and drives the engine, as in rdkafka's
//! at-least-once example, but with the commit made safe for stateful processing
//! (Kafka Streams' order): every `commit_interval`, and before partitions are
//! revoked or the process stops,
//!
//! 1. flush the producer, so every output caused so far is acknowledged;
//! 2. write the changed state to the changelog (each partition's `meta` record,
//!    carrying the input offset the state reflects, last) and flush again;
//! 3. commit the input offsets.
//!
//! A crash between 2 and 3 leaves state ahead of the committed offsets; restore
//! then seeks to the offset recorded in the state, so nothing is counted twice.
//! A crash before 3 replays input whose outputs may already be out: consumers see
//! those records again, with the same ids (at-least-once).

use super::sink::KafkaSink;
use super::{client_config, state_topic};
use crate::config::Config;
use crate::engine::{Engine, InputMessage};
use crate::http::LiveView;
use crate::io::demo::refresh_view;
use crate::model::InputTopic;
use crate::output::Output;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a flush may take before the commit is skipped (and retried on the
/// next interval). Outputs are never dropped; they wait in the producer.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_TIMEOUT: Duration = Duration::from_millis(100);
const TICK_EVERY: Duration = Duration::from_millis(100);
const VIEW_EVERY: Duration = Duration::from_millis(250);

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
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
}

struct RunContext {
    config: Arc<Config>,
    shared: Mutex<Shared>,
    sink: Arc<KafkaSink>,
    view: Arc<LiveView>,
    state_partitions: i32,
    /// Last client error and when, for `/healthz`.
    last_error: Mutex<Option<(Instant, String)>>,
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

    /// Steps 1–3 of the module comment, for `only` the given partitions or all.
    fn commit(
        &self,
        consumer: &BaseConsumer<RunContext>,
        only: Option<&[(InputTopic, i32)]>,
    ) -> Result<bool, String> {
        let mut s = self.lock();
        let parts: Vec<(InputTopic, i32)> = match only {
            Some(p) => p.to_vec(),
            None => s.positions.keys().copied().collect(),
        };
        let due: Vec<(InputTopic, i32, i64)> = parts
            .iter()
            .filter_map(|k| {
                let pos = *s.positions.get(k)?;
                (s.committed.get(k) != Some(&pos)).then_some((k.0, k.1, pos))
            })
            .collect();
        if due.is_empty() {
            return Ok(false);
        }
        self.sink.flush(FLUSH_TIMEOUT).map_err(|e| e.to_string())?;
        let state_topic = state_topic(&self.config).to_string();
        for (topic, p, _) in &due {
            for r in s.engine.checkpoint_partition(*topic, *p) {
                self.sink
                    .send(
                        &state_topic,
                        Some(p % self.state_partitions),
                        Some(r.key.as_bytes()),
                        r.value.as_deref(),
                    )
                    .map_err(|e| e.to_string())?;
            }
        }
        self.sink.flush(FLUSH_TIMEOUT).map_err(|e| e.to_string())?;
        let mut tpl = TopicPartitionList::new();
        for (topic, p, pos) in &due {
            tpl.add_partition_offset(self.topic_name(*topic), *p, Offset::Offset(*pos))
                .map_err(|e| e.to_string())?;
        }
        consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(|e| e.to_string())?;
        for (topic, p, pos) in due {
            s.committed.insert((topic, p), pos);
        }
        s.summary.commits += 1;
        Ok(true)
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
        let reader: BaseConsumer = client_config(
            &self.config,
            &[
                (
                    "group.id",
                    &format!("{}-restore", self.config.kafka.group_id),
                ),
                ("enable.auto.commit", "false"),
                ("enable.partition.eof", "false"),
            ],
        )
        .create()
        .map_err(|e| format!("changelog reader: {e}"))?;
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

/// The latest value of every key in one changelog partition, read from the
/// beginning to the end it had when the read started.
fn read_changelog(
    reader: &BaseConsumer,
    topic: &str,
    partition: i32,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let (low, high) = reader
        .fetch_watermarks(topic, partition, Duration::from_secs(30))
        .map_err(|e| format!("changelog {topic}/{partition}: {e}"))?;
    let mut records = BTreeMap::new();
    if high <= low {
        return Ok(records);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .map_err(|e| e.to_string())?;
    reader.assign(&tpl).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        match reader.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                if let Some(key) = m.key() {
                    let key = String::from_utf8_lossy(key).into_owned();
                    match m.payload() {
                        Some(v) => records.insert(key, v.to_vec()),
                        None => records.remove(&key),
                    };
                }
                if m.offset() + 1 >= high {
                    break;
                }
            }
            Some(Err(e)) => return Err(format!("reading changelog {topic}/{partition}: {e}")),
            None if Instant::now() > deadline => {
                return Err(format!(
                    "changelog {topic}/{partition} not read to offset {high} within 300 s"
                ))
            }
            None => {}
        }
    }
    reader.unassign().map_err(|e| e.to_string())?;
    Ok(records)
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
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "kafka client error");
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now(), format!("{error}: {reason}")));
    }
}

impl ConsumerContext for RunContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let parts = self.input_partitions(tpl);
            self.view.set_ready(false);
            if let Err(e) = self.commit(consumer, Some(&parts)) {
                tracing::warn!(error = %e, "could not commit revoked partitions; their new owner resumes from the last commit");
            }
            let mut s = self.lock();
            for k in &parts {
                s.engine.drop_partition(k.0, k.1);
                s.positions.remove(k);
                s.committed.remove(k);
            }
            tracing::info!(partitions = parts.len(), "partitions revoked");
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let parts = self.input_partitions(tpl);
            match self.restore(&parts) {
                Ok(restored) => {
                    // Resume where the state is, which may be past the committed
                    // offset if the last run stopped between checkpoint and commit.
                    let mut seek = TopicPartitionList::new();
                    for (t, p, offset) in &restored {
                        let o = offset.map_or(Offset::Stored, Offset::Offset);
                        let _ = seek.add_partition_offset(self.topic_name(*t), *p, o);
                    }
                    if let Err(e) = consumer.assign(&seek) {
                        tracing::error!(error = %e, "could not position restored partitions");
                    }
                    tracing::info!(partitions = parts.len(), "partitions assigned and restored");
                    self.view.set_ready(true);
                }
                Err(e) => {
                    tracing::error!(error = %e, "state restore failed; not processing");
                    self.view
                        .set_health(false, &format!("state restore failed: {e}"));
                    let _ = consumer.unassign();
                }
            }
        }
    }
}

/// Consumer settings: manual commits only, start from the beginning of a topic
/// the group never read, eager range assignment (partition `p` of every input
/// topic goes to the same instance, so co-partitioned keys meet).
const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("auto.offset.reset", "earliest"),
    ("enable.partition.eof", "false"),
    ("partition.assignment.strategy", "range"),
    ("session.timeout.ms", "10000"),
    ("statistics.interval.ms", "5000"),
    ("fetch.wait.max.ms", "50"),
];

/// Runs until `shutdown` is set, then checkpoints, commits and leaves the group.
pub fn run(
    config: Arc<Config>,
    view: Arc<LiveView>,
    shutdown: Arc<AtomicBool>,
) -> anyhow::Result<RunSummary> {
    let sink = Arc::new(KafkaSink::new(&config, Some(view.metrics.clone()))?);
    let mut engine = Engine::new(config.clone());
    engine.enable_checkpoints();
    engine.repartition_through_kafka();
    let state_partitions = changelog_partitions(&config)?;
    let context = RunContext {
        config: config.clone(),
        shared: Mutex::new(Shared {
            engine,
            positions: BTreeMap::new(),
            committed: BTreeMap::new(),
            summary: RunSummary::default(),
        }),
        sink: sink.clone(),
        view: view.clone(),
        state_partitions,
        last_error: Mutex::new(None),
    };
    let group = [("group.id", config.kafka.group_id.as_str())];
    let mut settings = CONSUMER_DEFAULTS.to_vec();
    settings.extend_from_slice(&group);
    let consumer: BaseConsumer<RunContext> =
        client_config(&config, &settings).create_with_context(context)?;
    let t = &config.topics;
    consumer.subscribe(&[
        &t.crowd_counts,
        &t.parking_events,
        &t.payments,
        &t.payments_by_zone,
    ])?;
    tracing::info!(brokers = %config.kafka.brokers, group = %config.kafka.group_id, "consuming");

    let ctx = consumer.context().clone();
    let mut out: Vec<Output> = Vec::new();
    let (mut last_tick, mut last_view, mut last_commit) =
        (Instant::now(), Instant::now(), Instant::now());
    let commit_every = Duration::from_millis(config.kafka.commit_interval.as_ms().max(1) as u64);
    let mut last_message = Instant::now();
    while !shutdown.load(Ordering::Relaxed) {
        let polled = consumer.poll(POLL_TIMEOUT);
        match polled {
            Some(Ok(m)) => {
                last_message = Instant::now();
                let received = Instant::now();
                let mut s = ctx.lock();
                let Some(topic) = s.engine.input_topic(m.topic()) else {
                    continue;
                };
                let msg = InputMessage {
                    topic,
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key(),
                    payload: m.payload().unwrap_or(&[]),
                    wall_ms: wall_ms(),
                };
                out.clear();
                let d = s.engine.process(&msg, &mut out);
                s.positions.insert((topic, m.partition()), m.offset() + 1);
                // Input messages only; the internal repartition topic is not input.
                if topic != InputTopic::PaymentsByZone {
                    s.summary.consumed += 1;
                }
                view.metrics.count_input(m.topic(), d);
                publish(&s.engine, &sink, &view, &out)?;
                if !out.is_empty() {
                    view.metrics
                        .observe_latency(received.elapsed().as_secs_f64());
                }
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "consumer error");
                std::thread::sleep(Duration::from_millis(100));
            }
            None => {}
        }
        if last_tick.elapsed() >= TICK_EVERY {
            let mut s = ctx.lock();
            out.clear();
            s.engine.tick(wall_ms(), &mut out);
            publish(&s.engine, &sink, &view, &out)?;
            last_tick = Instant::now();
        }
        if last_view.elapsed() >= VIEW_EVERY {
            refresh_view(&ctx.lock().engine, &view);
            update_health(&ctx, &view, last_message);
            last_view = Instant::now();
        }
        if last_commit.elapsed() >= commit_every {
            match ctx.commit(&consumer, None) {
                Ok(did) => {
                    if did {
                        view.metrics.commit(true);
                    }
                }
                Err(e) => {
                    view.metrics.commit(false);
                    tracing::warn!(error = %e, "checkpoint and commit failed; will retry");
                }
            }
            last_commit = Instant::now();
        }
    }
    tracing::info!("stopping: final checkpoint and commit");
    view.set_ready(false);
    if let Err(e) = ctx.commit(&consumer, None) {
        tracing::error!(error = %e, "final commit failed; the next run resumes from the previous commit");
    }
    consumer.unsubscribe();
    // Let the revoke callback run (it finds nothing left to commit).
    let _ = consumer.poll(Duration::from_millis(100));
    sink.flush(FLUSH_TIMEOUT)?;
    let summary = ctx.lock().summary.clone();
    Ok(summary)
}

/// Sends outputs to their topics and to the local view.
fn publish(
    engine: &Engine,
    sink: &KafkaSink,
    view: &LiveView,
    out: &[Output],
) -> anyhow::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    for o in out {
        let topic = engine.output_topic_name(o.topic());
        sink.send(
            topic,
            o.partition(),
            Some(o.key().as_bytes()),
            Some(&o.to_json()),
        )?;
    }
    crate::io::publish_local(engine, view, out);
    Ok(())
}

/// Unhealthy when the client has reported errors recently and nothing has been
/// consumed since (the broker is unreachable); healthy again on the next message.
fn update_health(ctx: &RunContext, view: &LiveView, last_message: Instant) {
    let err = ctx
        .last_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    match err {
        Some((at, reason)) if at > last_message && at.elapsed() < Duration::from_secs(60) => {
            if last_message.elapsed() > Duration::from_secs(30) {
                view.set_health(
                    false,
                    &format!(
                        "no input for {} s; last client error: {reason}",
                        last_message.elapsed().as_secs()
                    ),
                );
            }
        }
        _ => view.set_health(true, ""),
    }
}

/// Partition count of the changelog topic (it must exist: `topics create`).
fn changelog_partitions(config: &Config) -> anyhow::Result<i32> {
    let probe: BaseConsumer = client_config(config, &[]).create()?;
    let topic = state_topic(config);
    // A topic created a moment ago may take a little while to show in metadata.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let md = probe.fetch_metadata(Some(topic), Duration::from_secs(30))?;
        let n = md
            .topics()
            .first()
            .map_or(0, |t| t.partitions().len() as i32);
        if n > 0 {
            return Ok(n);
        }
        if Instant::now() > deadline {
            anyhow::bail!("the state changelog topic `{topic}` does not exist; run `crowdpark topics create` first");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
