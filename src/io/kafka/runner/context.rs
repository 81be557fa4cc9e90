//! What the poll loop and librdkafka's callbacks share: the engine with its
//! positions, the transaction, and the run's state.

use super::*;

/// What the commits have reached, shared by the coordinator, the background
/// commit and the rebalance callbacks.
#[derive(Default)]
pub(super) struct Commits {
    /// Committed offset per input partition.
    pub(super) committed: BTreeMap<(InputTopic, i32), i64>,
    /// The positions the open transaction's checkpoint reflects, from when it
    /// was written (processing may have moved on since, during a background
    /// commit).
    pub(super) txn_positions: Option<BTreeMap<(InputTopic, i32), i64>>,
    pub(super) count: u64,
}

pub(super) struct RunContext {
    pub(super) config: Arc<Config>,
    pub(super) catalog: Arc<Catalog>,
    /// The assigned partitions, each with its engine, and the barrier.
    pub(super) tasks: Tasks,
    pub(super) commits: Mutex<Commits>,
    /// Input messages processed (the repartition topic is not input).
    pub(super) consumed: AtomicU64,
    /// Dedup evictions of partitions no longer owned.
    pub(super) evicted_retired: Mutex<BTreeMap<InputTopic, u64>>,
    /// The consumer this context belongs to, for splitting partition queues
    /// inside its callbacks (set once created; weak, as it holds this).
    pub(super) consumer: OnceLock<Weak<BaseConsumer<RunContext>>>,
    /// Carries every checkpoint, and the outputs too in exactly-once mode.
    pub(super) transaction: Arc<Transactions>,
    /// The background commit, if one is running or finished unseen.
    pub(super) in_flight: Mutex<Option<InFlight>>,
    /// At-least-once mode: the outputs' own idempotent producer.
    pub(super) direct: Option<KafkaSink>,
    pub(super) view: Arc<LiveView>,
    pub(super) state_partitions: i32,
    /// The changelog topic's `max.message.bytes`, or the producer's if lower:
    /// no state record may be larger.
    pub(super) state_max_bytes: usize,
    pub(super) health: Arc<Health>,
    /// Where the run stands; changed only by [`event`](Self::event).
    pub(super) run: Mutex<RunState>,
    /// The state's `may_process`, for the workers to read without a lock.
    pub(super) processing: AtomicBool,
    /// Partitions the group assigned that the coordinator has not restored
    /// yet (see `restore_assigned`).
    pub(super) assigned: Mutex<Option<Vec<(InputTopic, i32)>>>,
    /// Where each partition was sought back to while paused.
    pub(super) put_back: Mutex<BTreeMap<(String, i32), i64>>,
    /// Tests only: every n-th checkpoint is aborted (`FAULT_ABORT_EVERY`).
    pub(super) abort_every: Option<u64>,
    pub(super) checkpoints: AtomicU64,
    /// Bumped at every assignment and rewind: the shared view's writer then
    /// sends everything again.
    pub(super) generation: AtomicU64,
    /// Local snapshots of the changelog (`engine.snapshot_interval`).
    pub(super) keeper: Option<Arc<super::keeper::Keeper>>,
}

/// Set to n, every n-th checkpoint is aborted once it is written, as a
/// failed commit would be, so tests can force rewinds on a healthy broker.
pub(super) const FAULT_ABORT_EVERY: &str = "CROWDPARK_FAULT_ABORT_EVERY";

/// The `FAULT_ABORT_EVERY` setting, said loudly when set.
pub(super) fn abort_every() -> Option<u64> {
    let n = std::env::var(FAULT_ABORT_EVERY).ok()?.parse::<u64>().ok()?;
    (n > 0).then(|| {
        tracing::warn!(
            every = n,
            "{FAULT_ABORT_EVERY} is set: checkpoints are aborted on purpose (tests only)"
        );
        n
    })
}

impl RunContext {
    /// A checkpoint ready to commit: aborted instead when a test asks
    /// (`FAULT_ABORT_EVERY`).
    pub(super) fn injected_abort(&self) -> Result<(), TransactionError> {
        let Some(n) = self.abort_every else {
            return Ok(());
        };
        let seen = self.checkpoints.fetch_add(1, Ordering::Relaxed) + 1;
        if seen % n == 0 {
            // As a real failure does, it marks the transaction for abort, so
            // the workers pause until the rewind.
            return Err(self.transaction.fail(TransactionError::Abort(
                format!("aborted on purpose ({FAULT_ABORT_EVERY}={n})").into(),
            )));
        }
        Ok(())
    }

    pub(super) fn commits(&self) -> MutexGuard<'_, Commits> {
        crate::sync::lock(&self.commits)
    }

    pub(super) fn topic_name(&self, t: InputTopic) -> &str {
        t.name_in(&self.config.topics)
    }

    /// A partition as the stall watch knows it: topic name and number.
    pub(super) fn stall_key(&self, t: InputTopic, p: i32) -> crate::io::kafka::stall::Key {
        (self.topic_name(t).to_string(), p)
    }

    pub(super) fn input_partitions(&self, tpl: &TopicPartitionList) -> Vec<(InputTopic, i32)> {
        tpl.elements()
            .iter()
            .filter_map(|e| {
                let topic = InputTopic::named(e.topic(), &self.config.topics)?;
                Some((topic, e.partition()))
            })
            .collect()
    }

    /// Forgets a task: its dedup evictions are kept in the total, its
    /// metrics dropped.
    pub(super) fn retire(&self, task: &Task) {
        let mut retired = crate::sync::lock(&self.evicted_retired);
        for (topic, evicted) in task.engine.dedup_evicted() {
            *retired.entry(topic).or_default() += evicted;
        }
        drop(retired);
        for input in &task.inputs {
            self.view
                .metrics
                .runtime
                .forget_partition(self.topic_name(input.topic), task.partition);
        }
    }

    /// Forgets some of a task's inputs (revoked while others of the
    /// partition stay): their state and metrics. Their dedup evictions stay
    /// in the engine's total, counted when the task retires.
    pub(super) fn retire_inputs(&self, task: &mut Task, revoked: &[(InputTopic, i32)]) {
        let p = task.partition;
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut task.inputs)
            .into_iter()
            .partition(|i| revoked.contains(&(i.topic, p)));
        task.inputs = kept;
        for input in gone {
            task.engine.drop_partition(input.topic, p);
            self.view
                .metrics
                .runtime
                .forget_partition(self.topic_name(input.topic), p);
        }
    }

    /// True while processing is paused: the run is not
    /// [`Running`](RunState::Running) (a commit waits to be retried, a
    /// transaction failed and the state has not been rewound yet, the run
    /// stops), or the partition counts were just found not to match (the
    /// watch that checks them runs on a thread of its own; the coordinator
    /// turns that into the state on its next turn).
    pub(super) fn paused(&self) -> bool {
        !self.processing.load(Ordering::Acquire) || self.health.refused()
    }

    /// The run's state after `event` (see `state.rs`); workers are woken
    /// when it lets them process again.
    pub(super) fn event(&self, event: RunEvent) -> RunState {
        let mut run = crate::sync::lock(&self.run);
        let before = run.clone();
        *run = before.clone().next(event.clone());
        let now = run.clone();
        // Under the lock, so the flag always follows the latest state.
        let was = self.processing.swap(now.may_process(), Ordering::AcqRel);
        drop(run);
        if now != before {
            tracing::debug!(?before, ?event, after = ?now, "run state");
        }
        if now.may_process() && !was {
            self.tasks.wake();
        }
        now
    }

    /// The run's state now.
    pub(super) fn run_state(&self) -> RunState {
        crate::sync::lock(&self.run).clone()
    }

    /// Why the run failed, once it has.
    pub(super) fn failure(&self) -> Option<String> {
        match self.run_state() {
            RunState::Failed(why) => Some(why),
            _ => None,
        }
    }

    /// While paused, a message that still arrives is put back: its partition is
    /// sought to it, so it is read again once processing resumes. Only the first
    /// per partition counts (a later one was fetched before the seek).
    pub(super) fn put_back(&self, consumer: &BaseConsumer<RunContext>, m: &BorrowedMessage<'_>) {
        {
            let mut put_back = crate::sync::lock(&self.put_back);
            let key = (m.topic().to_string(), m.partition());
            match put_back.get(&key) {
                Some(at) if *at <= m.offset() => return,
                _ => put_back.insert(key, m.offset()),
            };
        }
        self.seek_back(consumer, m);
    }

    /// A message that reached the consumer's own queue, fetched for its
    /// partition before that partition's queue was split off: its partition is
    /// sought back to it, so it is fetched again into its own queue (messages
    /// fetched before the seek are dropped by librdkafka as outdated).
    pub(super) fn return_to_queue(
        &self,
        consumer: &BaseConsumer<RunContext>,
        m: &BorrowedMessage<'_>,
    ) {
        tracing::debug!(
            topic = m.topic(),
            partition = m.partition(),
            offset = m.offset(),
            "a message arrived before its partition's queue was split; fetching it again"
        );
        self.seek_back(consumer, m);
    }

    /// Seeks a message's partition back to it; if that fails, the rewind
    /// puts the partition back instead.
    fn seek_back(&self, consumer: &BaseConsumer<RunContext>, m: &BorrowedMessage<'_>) {
        if let Err(e) = consumer.seek(
            m.topic(),
            m.partition(),
            Offset::Offset(m.offset()),
            Duration::from_secs(10),
        ) {
            crate::io::kafka::logs::warn("could not put a message back; the rewind will", &e);
            self.event(RunEvent::StateLost);
        }
    }

    /// Refuses a changelog record the topic would refuse: retrying it could
    /// only fail again, so the run stops with the reason instead of rewinding
    /// forever. (Values are split to fit; only an absurd key can get here.)
    pub(super) fn fits_changelog(
        &self,
        r: &crate::state::StateRecord,
    ) -> Result<(), TransactionError> {
        let size = r.key.len() + r.value.as_ref().map_or(0, Vec::len) + RECORD_OVERHEAD;
        if size <= self.state_max_bytes {
            return Ok(());
        }
        let shown: String = r.key.chars().take(120).collect();
        Err(TransactionError::Fatal(
            format!(
                "state record `{shown}` is {size} bytes, more than the {} bytes `{}` and its producer take (max.message.bytes)",
                self.state_max_bytes,
                state_topic(&self.config)
            )
            .into(),
        ))
    }

    pub(super) fn set_fatal(&self, e: String) {
        tracing::error!(error = %e, "stopping");
        self.mark_failed(e);
    }

    /// Records why the run must stop (the first reason wins); the loop stops
    /// on it and the revoke callback then commits nothing.
    pub(super) fn mark_failed(&self, e: String) {
        self.event(RunEvent::Fatal(e));
    }

    /// Sends one output record where the processing guarantee says.
    pub(super) fn send_output(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), TransactionError> {
        match &self.direct {
            Some(d) => d
                .send(topic, partition, Some(key), Some(value))
                .map_err(|e| TransactionError::Fatal(e.into())),
            None => self
                .transaction
                .send(topic, partition, Some(key), Some(value)),
        }
    }
}
