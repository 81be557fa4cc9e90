//! The run's input partitions as slots, and the barrier over them.
//!
//! Each assigned input partition is a slot: its engine (that partition's
//! task), its librdkafka queue (split from the consumer's), its position and
//! the re-keyed payments it has not sent yet. A worker claims one slot at a
//! time and processes a batch of its messages, so a partition's messages are
//! processed in order, by one thread at a time, and any idle worker takes the
//! next partition with messages waiting (a busy car park's partition does not
//! hold up the others behind a fixed assignment).
//!
//! The slot list sits behind one `RwLock`: workers read it while they process a
//! batch; the coordinator writes it for a checkpoint, a rewind or a rebalance.
//! That write lock is the barrier: when it is held no worker is inside a batch,
//! so the coordinator sees every partition between two messages, and the
//! state it checkpoints matches the offsets it commits. std's lock on Linux
//! lets a waiting writer in before new readers, so the barrier is not starved.

use super::*;
use rdkafka::consumer::base_consumer::PartitionQueue;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::Thread;

pub(super) struct Slot {
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

impl Slot {
    /// A slot with a fresh engine for one partition.
    pub fn new(ctx: &RunContext, topic: InputTopic, partition: i32) -> Self {
        let mut engine = Engine::with_catalog(ctx.config.clone(), ctx.catalog.clone());
        engine.enable_checkpoints();
        engine.repartition_through_kafka();
        engine.require_entity_keys();
        engine.set_state_part_bytes(part_bytes(ctx.state_max_bytes));
        Slot {
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

/// Every slot, behind the barrier.
pub(super) type SlotList = Vec<Mutex<Slot>>;
/// The coordinator's exclusive hold on every slot.
pub(super) type Barrier<'a> = RwLockWriteGuard<'a, SlotList>;

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

/// The slots and the worker threads that process them.
pub(super) struct Slots {
    list: RwLock<SlotList>,
    wakers: Arc<Wakers>,
    /// Set when the workers must stop.
    pub stop: AtomicBool,
}

impl Slots {
    pub fn new() -> Self {
        Slots {
            list: RwLock::new(Vec::new()),
            wakers: Arc::default(),
            stop: AtomicBool::new(false),
        }
    }

    /// For a worker's batch: the slots, shared with the other workers.
    pub fn read(&self) -> RwLockReadGuard<'_, SlotList> {
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

    /// Drops every slot and its queue: each queue holds the consumer, which
    /// holds these slots, so the consumer can close only once they are gone.
    pub fn clear(&self) {
        self.barrier().clear();
    }
}

/// A slot as the barrier's holder may change it (no worker is inside one).
pub(super) fn held(slot: &mut Mutex<Slot>) -> &mut Slot {
    slot.get_mut()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Takes every slot out of the list, to keep some and drop others.
pub(super) fn take_all(barrier: &mut Barrier<'_>) -> Vec<Slot> {
    std::mem::take(&mut **barrier)
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        })
        .collect()
}

/// Every slot under the barrier.
pub(super) fn each<'b>(barrier: &'b mut Barrier<'_>) -> impl Iterator<Item = &'b mut Slot> {
    barrier.iter_mut().map(held)
}

/// Splits each slot's partition into its own queue, which wakes the workers
/// when messages arrive. Called after every `assign`, which undoes splits.
pub(super) fn split_queues(ctx: &RunContext, slots: &mut [Slot]) {
    let Some(consumer) = ctx.consumer.get().and_then(std::sync::Weak::upgrade) else {
        return;
    };
    for slot in slots {
        let name = ctx.topic_name(slot.topic);
        slot.queue = consumer
            .split_partition_queue(name, slot.partition)
            .map(|mut q| {
                let wakers = ctx.slots.wakers.clone();
                q.set_nonempty_callback(move || wakers.wake());
                q
            });
    }
}
