//! The run's tasks, and the barrier over them.
//!
//! A task is partition `p` of every co-partitioned input, as in Kafka
//! Streams: crowd counts, parking events, payments, payments by zone and
//! district partials, partition `p` each (the `range` assignment gives an
//! instance partition `p` of every topic together). It holds one engine for
//! all of them, so the stores of every stream of the partition sit side by
//! side and an operator may read another stream's; each input keeps its own
//! librdkafka queue (split from the consumer's) and position; and the task
//! keeps the re-keyed payments and partials it has not sent yet. Its state is
//! one changelog partition, `p` (`p % count`), which is also what a restore
//! reads. A worker claims one task at a time and processes a batch of its
//! messages, its inputs taking turns, so a partition's messages are processed
//! in order, by one thread at a time, and any idle worker takes the next task
//! with messages waiting.
//!
//! The task list sits behind one `RwLock`: workers read it while they process a
//! batch; the coordinator writes it for a checkpoint, a rewind or a rebalance.
//! That write lock is the barrier: when it is held no worker is inside a batch,
//! so the coordinator sees every partition between two messages, and the
//! state it checkpoints matches the offsets it commits. std's lock on Linux
//! lets a waiting writer in before new readers, so the barrier is not starved.

use super::*;
use rdkafka::consumer::base_consumer::PartitionQueue;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::Thread;

/// Partition `p` of one topic, within its task.
pub(super) struct Input {
    pub topic: InputTopic,
    /// Messages of this topic-partition only; `None` until split after
    /// assignment.
    pub queue: Option<PartitionQueue<RunContext>>,
    /// Next offset to commit: the next message to process.
    pub position: Option<i64>,
    /// The changelog keys the restore read for it, until the positions are
    /// settled (`resume_positions`).
    pub restored_keys: Vec<String>,
    /// Changelog keys of a checkpoint that was discarded (an operator reset
    /// the group's offsets): deleted by the next checkpoint.
    pub stale: Vec<String>,
}

impl Input {
    pub fn new(topic: InputTopic) -> Self {
        Input {
            topic,
            queue: None,
            position: None,
            restored_keys: Vec::new(),
            stale: Vec::new(),
        }
    }
}

pub(super) struct Task {
    pub partition: i32,
    /// Every input's operators and stores, for this partition.
    pub engine: Engine,
    /// The topics of this partition assigned here, in topic order.
    pub inputs: Vec<Input>,
    /// Re-keyed payments and district partials not yet sent.
    pub batches: Batches,
    /// The input the next batch starts with, so each takes its turn first.
    pub next_input: usize,
}

impl Task {
    /// A task with a fresh engine for partition `partition` of `topics`.
    pub fn new(ctx: &RunContext, partition: i32, topics: &[InputTopic]) -> Self {
        let mut engine = Engine::with_catalog(ctx.config.clone(), ctx.catalog.clone());
        engine.enable_checkpoints();
        engine.repartition_through_kafka();
        engine.require_entity_keys();
        engine.set_state_part_bytes(part_bytes(ctx.state_max_bytes));
        let mut topics = topics.to_vec();
        topics.sort();
        topics.dedup();
        Task {
            partition,
            engine,
            inputs: topics.into_iter().map(Input::new).collect(),
            batches: Batches::new(ctx.config.topics.input_partitions),
            next_input: 0,
        }
    }

    /// Its topic-partitions.
    pub fn keys(&self) -> impl Iterator<Item = (InputTopic, i32)> + '_ {
        self.inputs.iter().map(|i| (i.topic, self.partition))
    }

    pub fn input_mut(&mut self, topic: InputTopic) -> Option<&mut Input> {
        self.inputs.iter_mut().find(|i| i.topic == topic)
    }
}

/// Groups topic-partitions into their tasks' partitions: `(p, topics)`.
pub(super) fn by_partition(parts: &[(InputTopic, i32)]) -> BTreeMap<i32, Vec<InputTopic>> {
    let mut out: BTreeMap<i32, Vec<InputTopic>> = BTreeMap::new();
    for (t, p) in parts {
        out.entry(*p).or_default().push(*t);
    }
    out
}

/// Every task, behind the barrier.
pub(super) type TaskList = Vec<Mutex<Task>>;
/// The coordinator's exclusive hold on every task.
pub(super) type Barrier<'a> = RwLockWriteGuard<'a, TaskList>;

/// The worker threads, to wake when a queue has messages, the run resumes
/// or stops.
#[derive(Default)]
pub(super) struct Wakers(Mutex<Vec<Thread>>);

impl Wakers {
    pub fn wake(&self) {
        for t in crate::sync::lock(&self.0).iter() {
            t.unpark();
        }
    }
}

/// The tasks and the worker threads that process them.
pub(super) struct Tasks {
    list: RwLock<TaskList>,
    wakers: Arc<Wakers>,
    /// Set when the workers must stop.
    pub stop: AtomicBool,
}

impl Tasks {
    pub fn new() -> Self {
        Tasks {
            list: RwLock::new(Vec::new()),
            wakers: Arc::default(),
            stop: AtomicBool::new(false),
        }
    }

    /// For a worker's batch: the tasks, shared with the other workers.
    pub fn read(&self) -> RwLockReadGuard<'_, TaskList> {
        crate::sync::read(&self.list)
    }

    /// Waits until no worker is inside a batch, and keeps them out until the
    /// returned guard is dropped.
    pub fn barrier(&self) -> Barrier<'_> {
        crate::sync::write(&self.list)
    }

    pub fn register(&self, worker: Thread) {
        crate::sync::lock(&self.wakers.0).push(worker);
    }

    /// Wakes every worker (a queue has messages, the run resumes, or stops).
    pub fn wake(&self) {
        self.wakers.wake();
    }

    /// Drops every task and its queue: each queue holds the consumer, which
    /// holds these tasks, so the consumer can close only once they are gone.
    pub fn clear(&self) {
        self.barrier().clear();
    }
}

/// A task as the barrier's holder may change it (no worker is inside one).
pub(super) fn unlocked(task: &mut Mutex<Task>) -> &mut Task {
    task.get_mut()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Takes every task out of the list, to keep some and drop others.
pub(super) fn take_all(barrier: &mut Barrier<'_>) -> Vec<Task> {
    std::mem::take(&mut **barrier)
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        })
        .collect()
}

/// Every task under the barrier.
pub(super) fn each<'b>(barrier: &'b mut Barrier<'_>) -> impl Iterator<Item = &'b mut Task> {
    barrier.iter_mut().map(unlocked)
}

/// How many topic-partitions the tasks hold.
pub(super) fn inputs(barrier: &mut Barrier<'_>) -> usize {
    each(barrier).map(|t| t.inputs.len()).sum()
}

/// Splits each task's input partitions (those without one) into queues of
/// their own, which wakes the workers
/// when messages arrive. Called after every `assign`, which undoes splits.
pub(super) fn split_queues(ctx: &RunContext, tasks: &mut [Task]) {
    let Some(consumer) = ctx.consumer.get().and_then(std::sync::Weak::upgrade) else {
        return;
    };
    for task in tasks {
        let p = task.partition;
        for input in task.inputs.iter_mut().filter(|i| i.queue.is_none()) {
            let name = ctx.topic_name(input.topic);
            input.queue = consumer.split_partition_queue(name, p).map(|mut q| {
                let wakers = ctx.tasks.wakers.clone();
                q.set_nonempty_callback(move || wakers.wake());
                q
            });
        }
    }
}
