//! The run's input partitions as tasks, and the barrier over them.
//!
//! Each assigned input partition is a task, as in Kafka Streams: its engine,
//! its librdkafka queue (split from the consumer's), its position and
//! the re-keyed payments it has not sent yet. A worker claims one task at a
//! time and processes a batch of its messages, so a partition's messages are
//! processed in order, by one thread at a time, and any idle worker takes the
//! next partition with messages waiting (a busy car park's partition does not
//! hold up the others behind a fixed assignment).
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

pub(super) struct Task {
    pub topic: InputTopic,
    pub partition: i32,
    pub engine: Engine,
    /// Messages of this partition only; `None` until split after assignment.
    pub queue: Option<PartitionQueue<RunContext>>,
    /// Next offset to commit: the next message to process.
    pub position: Option<i64>,
    /// Re-keyed payments and district partials not yet sent.
    pub batches: Batches,
    /// The changelog keys the restore read for this partition, until the
    /// positions are settled (`resume_positions`).
    pub restored_keys: Vec<String>,
    /// Changelog keys of a checkpoint that was discarded (an operator reset
    /// the group's offsets): deleted by the next checkpoint.
    pub stale: Vec<String>,
}

impl Task {
    /// A task with a fresh engine for one partition.
    pub fn new(ctx: &RunContext, topic: InputTopic, partition: i32) -> Self {
        let mut engine = Engine::with_catalog(ctx.config.clone(), ctx.catalog.clone());
        engine.enable_checkpoints();
        engine.repartition_through_kafka();
        engine.require_entity_keys();
        engine.set_state_part_bytes(part_bytes(ctx.state_max_bytes));
        Task {
            topic,
            partition,
            engine,
            queue: None,
            position: None,
            batches: Batches::new(ctx.config.topics.input_partitions),
            restored_keys: Vec::new(),
            stale: Vec::new(),
        }
    }

    pub fn key(&self) -> (InputTopic, i32) {
        (self.topic, self.partition)
    }
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

/// Splits each task's partition into its own queue, which wakes the workers
/// when messages arrive. Called after every `assign`, which undoes splits.
pub(super) fn split_queues(ctx: &RunContext, tasks: &mut [Task]) {
    let Some(consumer) = ctx.consumer.get().and_then(std::sync::Weak::upgrade) else {
        return;
    };
    for task in tasks {
        let name = ctx.topic_name(task.topic);
        task.queue = consumer
            .split_partition_queue(name, task.partition)
            .map(|mut q| {
                let wakers = ctx.tasks.wakers.clone();
                q.set_nonempty_callback(move || wakers.wake());
                q
            });
    }
}
