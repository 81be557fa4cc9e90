//! The pipeline between a source and the sinks: decode → dedup → event time →
//! operators, per input partition, as Kafka Streams runs one task per partition.
//!
//! The engine owns no thread, socket or clock. A source hands it messages with the
//! wall time they were received, and a timer calls [`Engine::tick`]; outputs are
//! appended to a caller's buffer. The demo, the Kafka runner, the tests and the
//! benchmarks all drive the very same code this way.

mod keys;
mod partials;
mod partition;
mod queries;
mod streams;

use crate::config::Config;
use crate::district::PartialRecord;
use crate::model::{forwarded_lines, Catalog, Decoded, InputTopic, RejectReason};
use crate::operator::Emit;
use crate::output::{DeadLetter, Forwarded, Origin, Output, OutputTopic};
use crate::state::{joined, partition_prefix, RestoreError, StateRecord, DEFAULT_PART_BYTES};
use std::collections::BTreeMap;
use std::sync::Arc;
use streams::{AnyTask, Build, Message, Peers, Stream, Streams};

/// One consumed message.
#[derive(Debug, Clone, Copy)]
pub struct InputMessage<'a> {
    pub topic: InputTopic,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub payload: &'a [u8],
    /// Wall-clock milliseconds when it was received (the simulator's clock in the
    /// demo); used for idle advance and the future-skew check only.
    pub wall_ms: i64,
}

/// What became of a message: the three terms of contract §4's accounting identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Accepted,
    Duplicate,
    Rejected(RejectReason),
}

pub struct Engine {
    config: Arc<Config>,
    catalog: Arc<Catalog>,
    tasks: Streams,
    checkpointing: bool,
    /// Route re-keyed payments to their zone's task directly, instead of leaving
    /// them in the outputs for a repartition topic.
    inline_repartition: bool,
    state_part_bytes: usize,
    check_keys: bool,
    /// Dedup evictions of partitions no longer held (see `dedup_evicted`).
    evicted_retired: BTreeMap<InputTopic, u64>,
    /// Re-keyed records made since the caller last took them (see
    /// [`take_forwarded_into`](Self::take_forwarded_into)); empty when routed in process.
    forwarded: Vec<Forwarded>,
    /// What the partitions told their district since the caller last took it
    /// ([`take_partials_into`](Self::take_partials_into)), with the target
    /// partition; empty when routed in process.
    partials: Vec<(i32, PartialRecord)>,
    /// The partition of the district topic each district is in, by index,
    /// and those partitions once each (where heartbeats go).
    district_targets: Vec<i32>,
    heartbeat_targets: Vec<i32>,
}

impl Engine {
    pub fn new(config: Arc<Config>) -> Self {
        let catalog = Arc::new(Catalog::new(&config));
        Self::with_catalog(config, catalog)
    }

    /// An engine sharing a catalog already built from `config`.
    pub fn with_catalog(config: Arc<Config>, catalog: Arc<Catalog>) -> Self {
        let partitions = config.topics.input_partitions;
        let district_targets: Vec<i32> = catalog
            .districts
            .iter()
            .map(|d| crate::district::district_partition(&d.id, partitions))
            .collect();
        let mut heartbeat_targets = district_targets.clone();
        heartbeat_targets.sort_unstable();
        heartbeat_targets.dedup();
        Engine {
            district_targets,
            heartbeat_targets,
            config,
            catalog,
            tasks: Streams::default(),
            checkpointing: false,
            inline_repartition: true,
            state_part_bytes: DEFAULT_PART_BYTES,
            check_keys: false,
            evicted_retired: BTreeMap::new(),
            forwarded: Vec::new(),
            partials: Vec::new(),
        }
    }

    /// The largest changelog value written as one record; larger ones are
    /// written in parts (the runner sizes this from the changelog topic's
    /// `max.message.bytes`).
    pub fn set_state_part_bytes(&mut self, bytes: usize) {
        self.state_part_bytes = bytes;
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The configured name of an input topic.
    pub fn topic_name(&self, topic: InputTopic) -> &str {
        topic.name_in(&self.config.topics)
    }

    /// The configured name of an output topic.
    pub fn output_topic_name(&self, topic: OutputTopic) -> &str {
        topic.name_in(&self.config.topics)
    }

    /// The task of `topic`'s `partition`, built first if there is none.
    fn task(&mut self, topic: InputTopic, partition: i32, wall_ms: i64) -> &mut dyn AnyTask {
        let b = Build {
            config: &self.config,
            catalog: &self.catalog,
            partition,
            through_kafka: !self.inline_repartition,
        };
        ensure_task(&mut self.tasks, topic, &b, self.checkpointing, wall_ms).0
    }

    /// The task of a partition of `O`'s stream, built first if there is none.
    fn typed_task<O: Stream>(
        &mut self,
        partition: i32,
        wall_ms: i64,
    ) -> (&mut partition::PartitionTask<O>, Peers<'_>) {
        let b = Build {
            config: &self.config,
            catalog: &self.catalog,
            partition,
            through_kafka: !self.inline_repartition,
        };
        let (task, fresh, peers) = self.tasks.typed::<O>(&b, wall_ms);
        if fresh && self.checkpointing {
            task.core.dedup.track_changes();
        }
        (task, peers)
    }

    /// Keeps re-keyed payments for the caller to publish to the repartition
    /// topic ([`take_forwarded_into`](Self::take_forwarded_into)), whose partitions come
    /// back as input (the Kafka runner). By default they are routed in process.
    pub fn repartition_through_kafka(&mut self) {
        self.inline_repartition = false;
    }

    /// Replaces `into` with the re-keyed records made since the last call, in
    /// the order made (the two buffers swap, so neither allocates again).
    pub fn take_forwarded_into(&mut self, into: &mut Vec<Forwarded>) {
        into.clear();
        std::mem::swap(&mut self.forwarded, into);
    }

    /// Refuses input messages not keyed by their entity (`key_mismatch`).
    /// Wherever the key chooses the partition (Kafka) it must; callers that
    /// choose partitions themselves (tests, benchmarks) may leave keys out.
    pub fn require_entity_keys(&mut self) {
        self.check_keys = true;
    }

    /// Turns on change tracking for [`checkpoint`](Self::checkpoint). Off by
    /// default: the demo and benchmarks need no changelog.
    pub fn enable_checkpoints(&mut self) {
        self.checkpointing = true;
        for (topic, p) in self.tasks.keys() {
            if let Some(t) = self.tasks.get_mut(topic, p) {
                t.core_mut().dedup.track_changes();
            }
        }
    }

    /// Changelog records of one partition's changes since its last checkpoint.
    pub fn checkpoint_partition(&mut self, topic: InputTopic, partition: i32) -> Vec<StateRecord> {
        let prefix = partition_prefix(self.topic_name(topic), partition);
        let mut out = Vec::new();
        if let Some(task) = self.tasks.get_mut(topic, partition) {
            let mut whole = Vec::new();
            task.checkpoint(&prefix, &mut whole);
            task.core_mut()
                .split
                .split(whole, self.state_part_bytes, &mut out);
        }
        out
    }

    /// The partitions this engine holds state for.
    pub fn partitions(&self) -> Vec<(InputTopic, i32)> {
        self.tasks.keys()
    }

    /// Replaces a partition's state with the one in `records`: the latest value
    /// of each changelog key of that partition, with its full key.
    pub fn restore_partition(
        &mut self,
        topic: InputTopic,
        partition: i32,
        records: &BTreeMap<String, Vec<u8>>,
        wall_ms: i64,
    ) -> Result<(), RestoreError> {
        let prefix = partition_prefix(self.topic_name(topic), partition);
        self.drop_partition(topic, partition);
        let task = self.task(topic, partition, wall_ms);
        let own = joined(records, &prefix, &mut task.core_mut().split)?;
        task.restore(own.iter().map(|(k, v)| (*k, v.as_ref())).collect(), wall_ms)?;
        Ok(())
    }

    /// The input offset a partition's state reflects: the next message to
    /// process, if the partition has processed or restored any.
    pub fn next_offset(&self, topic: InputTopic, partition: i32) -> Option<i64> {
        self.tasks
            .get(topic, partition)
            .and_then(|t| t.core().next_offset)
    }

    /// Forgets a partition (it was revoked and its state checkpointed).
    pub fn drop_partition(&mut self, topic: InputTopic, partition: i32) {
        if let Some(t) = self.tasks.remove(topic, partition) {
            *self.evicted_retired.entry(topic).or_default() += t.dedup.evicted_early();
        }
    }

    /// Per input topic, how many remembered ids were dropped before their
    /// horizon because `dedup_max_ids` was reached, since the engine started.
    pub fn dedup_evicted(&self) -> BTreeMap<InputTopic, u64> {
        let mut total = self.evicted_retired.clone();
        for ((topic, _), t) in self.tasks.iter() {
            *total.entry(topic).or_default() += t.core().dedup.evicted_early();
        }
        total
    }

    /// Processes one consumed message and tells `each` what became of every
    /// event in it: one event, except on the repartition topics, whose messages
    /// are batches of re-keyed payments or district partials
    /// ([`forwarded_lines`]). Each line is
    /// deduplicated, checked and dead-lettered (with the batch's offset) alone.
    pub fn process_each(
        &mut self,
        msg: &InputMessage<'_>,
        out: &mut Vec<Output>,
        mut each: impl FnMut(Disposition),
    ) {
        let mut lines = forwarded_lines(msg.payload).peekable();
        // A message with no line at all is processed whole, to be dead-lettered.
        if !msg.topic.is_internal() || lines.peek().is_none() {
            each(self.process(msg, out));
            return;
        }
        for line in lines {
            each(self.process(
                &InputMessage {
                    payload: line,
                    ..*msg
                },
                out,
            ));
        }
    }

    /// Processes one message, appending what it caused to `out`.
    pub fn process(&mut self, msg: &InputMessage<'_>, out: &mut Vec<Output>) -> Disposition {
        let first = out.len();
        let mut forwarded = std::mem::take(&mut self.forwarded);
        let message = Message {
            payload: msg.payload,
            key: msg.key,
            wall_ms: msg.wall_ms,
            catalog: &self.catalog,
            max_bytes: self.config.engine.max_message_bytes,
            max_future_skew: self.config.engine.max_future_skew.as_ms(),
            check_keys: self.check_keys,
        };
        let b = Build {
            config: &self.config,
            catalog: &self.catalog,
            partition: msg.partition,
            through_kafka: !self.inline_repartition,
        };
        let (topic, checkpointing) = (msg.topic, self.checkpointing);
        let (task, peers) = ensure_task(&mut self.tasks, topic, &b, checkpointing, msg.wall_ms);
        task.core_mut().next_offset = Some(msg.offset + 1);
        let mut emit = Emit {
            records: out,
            forwarded: &mut forwarded,
        };
        let disposition = task.process_message(&message, &peers, &mut emit);
        self.forwarded = forwarded;
        let disposition = match disposition {
            Ok(d) => d,
            Err(reject) => {
                let reason = reject.reason;
                let origin = Origin {
                    topic: self.topic_name(msg.topic),
                    partition: msg.partition,
                    offset: msg.offset,
                    key: msg.key,
                };
                out.push(Output::DeadLetter(DeadLetter::new(
                    origin,
                    reject,
                    msg.payload,
                )));
                Disposition::Rejected(reason)
            }
        };
        // The free spaces first: the heartbeat after this step's partials
        // may say the boundary they are for has passed.
        self.free_spaces_due(msg.topic, msg.partition);
        self.forward_partials(msg.topic, msg.partition, first, out);
        if self.inline_repartition {
            self.route_forwarded(msg.wall_ms, out);
            self.route_partials(msg.wall_ms, out);
        }
        disposition
    }

    /// Feeds re-keyed payments to the windowing task of their zone's partition,
    /// as the repartition topic would (same partitioner, same partition count).
    fn route_forwarded(&mut self, wall_ms: i64, out: &mut Vec<Output>) {
        if self.forwarded.is_empty() {
            return;
        }
        for f in std::mem::take(&mut self.forwarded) {
            self.process_forwarded(&f, wall_ms, out);
        }
    }

    /// Processes one re-keyed payment (or heartbeat) in its zone's partition
    /// here, without the repartition topic: the in-process route, and a worker
    /// taking a record another worker forwarded.
    pub fn process_forwarded(&mut self, f: &Forwarded, wall_ms: i64, out: &mut Vec<Output>) {
        let first = out.len();
        let partition = f.target_partition(self.config.topics.input_partitions);
        let skew = self.config.engine.max_future_skew.as_ms();
        // In process the typed payment is handed over without a JSON round
        // trip, and without a second dedup: stage 1 saw every id, and nothing
        // is replayed in process (through Kafka, stage 2 dedups replays).
        let r = &f.record;
        let decoded = Decoded {
            ts: r.ts,
            dedup_id: None,
            event: r.payment.clone(),
            upstream: Some((r.upstream, r.wm)),
            merchant: None,
        };
        // The windowing stage forwards nothing; this stays empty.
        let mut none = Vec::new();
        type O = crate::payments::PaymentsOperator;
        let (task, peers) = self.typed_task::<O>(partition, wall_ms);
        let mut emit = Emit {
            records: out,
            forwarded: &mut none,
        };
        if let Err(reject) = task.process_among(&decoded, wall_ms, skew, &peers, &mut emit) {
            let origin = Origin {
                topic: self.topic_name(InputTopic::PaymentsByZone),
                partition,
                offset: -1,
                key: Some(f.key.as_bytes()),
            };
            let letter = DeadLetter::new(origin, reject, &f.to_json());
            out.push(Output::DeadLetter(letter));
        }
        self.forward_partials(InputTopic::PaymentsByZone, partition, first, out);
    }

    /// Lets idle partitions' watermarks follow the wall clock and publishes what
    /// that makes due (closed windows, heartbeats).
    pub fn tick(&mut self, wall_ms: i64, out: &mut Vec<Output>) {
        self.each_task(
            |_| true,
            out,
            |task, emit| task.on_wall_clock(wall_ms, emit),
        );
        for (topic, partition) in self.tasks.keys() {
            // The free spaces before the heartbeat that says the boundary
            // has passed.
            self.free_spaces_due(topic, partition);
            self.district_heartbeat(topic, partition, wall_ms);
        }
        if self.inline_repartition {
            self.route_forwarded(wall_ms, out);
            self.route_partials(wall_ms, out);
        }
    }

    /// Partition `partition` of `topic` holds records not yet processed at
    /// wall time `wall_ms`: its watermark does not advance by the wall clock
    /// meanwhile (see `Watermark::hold_idle`). The Kafka runner says so from
    /// the broker's end offsets; in process, records are never left waiting.
    pub fn hold_idle(&mut self, topic: InputTopic, partition: i32, wall_ms: i64) {
        if let Some(task) = self.tasks.get_mut(topic, partition) {
            task.core_mut().watermark.hold_idle(wall_ms);
        }
    }

    /// Advances every partition's watermark to at least `watermark`, as if the
    /// streams had moved on: closes windows in tests and at the end of a replay.
    /// The district follows last, once the windows it sums are in.
    pub fn advance_all(&mut self, watermark: i64, out: &mut Vec<Output>) {
        for district in [false, true] {
            let which = |t: InputTopic| (t == InputTopic::DistrictPartials) == district;
            self.each_task(which, out, |task, emit| {
                task.force_watermark(watermark, emit)
            });
            if self.inline_repartition {
                self.route_forwarded(watermark, out);
                self.route_partials(watermark, out);
            }
        }
    }

    /// Runs `f` on the task of every partition of the topics `which` picks,
    /// forwarding to the district what each one publishes.
    fn each_task(
        &mut self,
        which: impl Fn(InputTopic) -> bool,
        out: &mut Vec<Output>,
        mut f: impl FnMut(&mut dyn AnyTask, &mut Emit<'_>),
    ) {
        let keys = self.tasks.keys();
        for (topic, partition) in keys.into_iter().filter(|(t, _)| which(*t)) {
            let first = out.len();
            let Some(task) = self.tasks.get_mut(topic, partition) else {
                continue;
            };
            let mut emit = Emit {
                records: out,
                forwarded: &mut self.forwarded,
            };
            f(task, &mut emit);
            self.forward_partials(topic, partition, first, out);
        }
    }
}

/// The task of `topic`'s partition `b.partition`, built first if there is
/// none (its dedup memory tracking changes when checkpoints are on), and
/// the other streams' tasks of the partition, to read.
fn ensure_task<'t>(
    tasks: &'t mut Streams,
    topic: InputTopic,
    b: &Build<'_>,
    checkpointing: bool,
    wall_ms: i64,
) -> (&'t mut dyn AnyTask, Peers<'t>) {
    let (task, fresh, peers) = tasks.ensure(topic, b, wall_ms);
    if fresh && checkpointing {
        task.core_mut().dedup.track_changes();
    }
    (task, peers)
}
