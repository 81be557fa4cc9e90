//! Checkpoints: outputs acknowledged, state and offsets into one transaction,
//! committed in place (exactly-once) or on a thread of its own (at-least-once).

use super::tasks::{each, Barrier};
use super::*;
use crate::io::kafka::transaction::Cause;

/// What a commit attempt did.
pub(super) enum Commit {
    /// Nothing was processed since the last commit.
    Nothing,
    Done,
    /// The checkpoint is written and its commit runs on its own thread.
    Started,
    /// At-least-once outputs were not all acknowledged in time; nothing was
    /// written, and the next interval tries again.
    Deferred(Cause),
}

/// A checkpoint written into the open transaction, with what its commit needs.
pub(super) struct Ready {
    offsets: TopicPartitionList,
    group: ConsumerGroupMetadata,
}

/// What preparing a checkpoint came to: one ready to commit, or a reason
/// there is nothing to commit now (`Nothing`, `Deferred`).
pub(super) enum Prepared {
    Ready(Ready),
    Skip(Commit),
}

/// A commit running on its own thread (at-least-once mode).
pub(super) struct InFlight {
    handle: std::thread::JoinHandle<Result<(), TransactionError>>,
    started: Instant,
}

impl RunContext {
    /// Steps 1–2 of the module comment, for every partition this instance owns,
    /// waiting for the commit (and first for a background one still running),
    /// with every worker held out until it is done.
    pub(super) fn commit(
        &self,
        consumer: &BaseConsumer<RunContext>,
    ) -> Result<Commit, TransactionError> {
        self.commit_at_barrier(&mut self.tasks.barrier(), consumer)
    }

    /// [`commit`](Self::commit) for a caller already holding the barrier. The
    /// commit itself happens under it too: in exactly-once mode a worker's
    /// output sent meanwhile would join this transaction without its offset.
    pub(super) fn commit_at_barrier(
        &self,
        tasks: &mut Barrier<'_>,
        consumer: &BaseConsumer<RunContext>,
    ) -> Result<Commit, TransactionError> {
        let r = self.commit_held(tasks, consumer);
        // The run state follows while the barrier still holds the workers
        // out: released first, a worker waiting on it would process (and
        // send into a failing transaction) before the state paused it.
        self.follow_commit(&r);
        r
    }

    /// The run state after a commit attempt (in place, or a background one
    /// settled).
    pub(super) fn follow_commit(&self, r: &Result<Commit, TransactionError>) {
        match r {
            Ok(Commit::Done | Commit::Nothing) => self.event(RunEvent::Committed),
            Ok(_) => self.run_state(),
            Err(TransactionError::Retry(_)) => self.event(RunEvent::CommitUnfinished),
            Err(TransactionError::Abort(_)) => self.event(RunEvent::TransactionFailed),
            Err(TransactionError::Fatal(e)) => self.event(RunEvent::Fatal(e.to_string())),
        };
    }

    fn commit_held(
        &self,
        tasks: &mut Barrier<'_>,
        consumer: &BaseConsumer<RunContext>,
    ) -> Result<Commit, TransactionError> {
        // Its failure is in the transaction's phase, which `prepare` obeys
        // (retry the commit, or abort); only a fatal one is passed on here.
        if let Some(Err(TransactionError::Fatal(e))) = self.settle(true) {
            return Err(TransactionError::Fatal(e));
        }
        let ready = match self.prepare(tasks, consumer)? {
            Prepared::Ready(ready) => ready,
            Prepared::Skip(not) => return Ok(not),
        };
        self.injected_abort()?;
        self.transaction.commit(&ready.offsets, &ready.group)?;
        self.committed(tasks);
        Ok(Commit::Done)
    }

    /// At-least-once: writes the checkpoint, then commits it on its own thread
    /// while processing goes on. The commit round trips (offsets to the
    /// transaction, then `EndTxn`) took about 120 ms of every one-second
    /// interval, the loop stalled. The state keeps changing meanwhile; the
    /// checkpoint already holds its copy, and the next one starts when this one
    /// is settled. Exactly-once cannot do this: its outputs go into the
    /// transaction, so nothing may be sent until it commits.
    pub(super) fn commit_in_background(
        &self,
        consumer: &BaseConsumer<RunContext>,
    ) -> Result<Commit, TransactionError> {
        let ready = match self.prepare(&mut self.tasks.barrier(), consumer)? {
            Prepared::Ready(ready) => ready,
            Prepared::Skip(not) => return Ok(not),
        };
        self.injected_abort()?;
        let transaction = self.transaction.clone();
        let handle = std::thread::Builder::new()
            .name("crowdpark-commit".into())
            .spawn(move || transaction.commit(&ready.offsets, &ready.group))
            .map_err(|e| {
                TransactionError::Abort(format!("could not start the commit thread: {e}").into())
            })?;
        *self.in_flight_task() = Some(InFlight {
            handle,
            started: Instant::now(),
        });
        Ok(Commit::Started)
    }

    pub(super) fn in_flight_task(&self) -> MutexGuard<'_, Option<InFlight>> {
        crate::sync::lock(&self.in_flight)
    }

    pub(super) fn committing_in_background(&self) -> bool {
        self.in_flight_task().is_some()
    }

    /// The outcome of the background commit once it has finished (with `wait`,
    /// once it has finished, however long that takes); `None` if there is none
    /// or it is still running.
    pub(super) fn settle(&self, wait: bool) -> Option<Result<(), TransactionError>> {
        let f = {
            let mut task = self.in_flight_task();
            if !wait && !task.as_ref()?.handle.is_finished() {
                return None;
            }
            task.take()?
        };
        let r = f
            .handle
            .join()
            .unwrap_or_else(|_| Err(TransactionError::Fatal("the commit thread panicked".into())));
        if r.is_ok() {
            self.committed_in_background();
            tracing::debug!(
                ms = f.started.elapsed().as_millis() as u64,
                "background commit done"
            );
        }
        Some(r)
    }

    /// The open transaction committed: its positions are the committed ones.
    pub(super) fn committed(&self, tasks: &mut Barrier<'_>) {
        let mut c = self.commits();
        c.committed = match c.txn_positions.take() {
            Some(p) => p,
            None => positions(tasks),
        };
        c.count += 1;
    }

    /// A background commit finished: it always carries its positions.
    fn committed_in_background(&self) {
        let mut c = self.commits();
        if let Some(p) = c.txn_positions.take() {
            c.committed = p;
        }
        c.count += 1;
    }

    /// Steps 1 and 2 up to the commit itself: outputs acknowledged (at least
    /// once), the changed state written into the transaction.
    pub(super) fn prepare(
        &self,
        tasks: &mut Barrier<'_>,
        consumer: &BaseConsumer<RunContext>,
    ) -> Result<Prepared, TransactionError> {
        // A worker that failed marked the run failed before it let go of the
        // barrier held here: its positions are ahead of what it sent.
        if let Some(e) = self.failure() {
            return Err(TransactionError::Fatal(e.into()));
        }
        if self.transaction.must_abort() {
            return Err(TransactionError::Abort(
                "an earlier transaction failed".into(),
            ));
        }
        let offsets = if self.transaction.is_committing() {
            // Only the commit is retried: its records and offsets are in, and
            // `txn_positions` are the positions in it.
            TopicPartitionList::new()
        } else {
            let positions = positions(tasks);
            // Only the offsets that moved go into the transaction: the group
            // holds the others already, and a partition the engine may no
            // longer read (a revoked Read grant) would fail every commit with
            // `TOPIC_AUTHORIZATION_FAILED`, rewinding the partitions that do move.
            let moved: Vec<_> = {
                let c = self.commits();
                positions
                    .iter()
                    .filter(|(k, v)| c.committed.get(*k) != Some(*v))
                    .map(|(k, v)| (*k, *v))
                    .collect()
            };
            // A discarded checkpoint's keys are deleted even if nothing moved.
            let stale = each(tasks).any(|s| s.inputs.iter().any(|i| !i.stale.is_empty()));
            if moved.is_empty() && !stale && !self.transaction.is_open() {
                return Ok(Prepared::Skip(Commit::Nothing));
            }
            // The state about to be checkpointed has forwarded these payments.
            for task in each(tasks) {
                send_batches(self, &mut task.batches)?;
            }
            if let Some(d) = &self.direct {
                if let Err(e) = d.flush(FLUSH_TIMEOUT) {
                    return Ok(Prepared::Skip(Commit::Deferred(e.into())));
                }
            }
            self.write_state(tasks)?;
            let mut offsets = TopicPartitionList::new();
            for ((topic, p), pos) in moved {
                offsets
                    .add_partition_offset(self.topic_name(topic), p, Offset::Offset(pos))
                    .map_err(|e| TransactionError::Abort(e.into()))?;
            }
            self.commits().txn_positions = Some(positions);
            offsets
        };
        let group = consumer
            .group_metadata()
            .ok_or_else(|| TransactionError::Abort("the consumer has no group metadata".into()))?;
        Ok(Prepared::Ready(Ready { offsets, group }))
    }
}

/// Where every task that has processed or restored anything stands.
pub(super) fn positions(tasks: &mut Barrier<'_>) -> BTreeMap<(InputTopic, i32), i64> {
    each(tasks)
        .flat_map(|s| {
            let p = s.partition;
            s.inputs
                .iter()
                .filter_map(move |i| Some(((i.topic, p), i.position?)))
        })
        .collect()
}

impl RunContext {
    /// Every task's changed state into the open transaction, each
    /// partition's records to the changelog partition its restore reads.
    fn write_state(&self, tasks: &mut Barrier<'_>) -> Result<(), TransactionError> {
        let state_topic = state_topic(&self.config).to_string();
        for task in each(tasks) {
            let p = task.partition;
            let changelog = Some(p % self.state_partitions);
            for input in task.inputs.iter_mut().filter(|i| i.position.is_some()) {
                // A discarded checkpoint's keys go first: its own records may
                // write some of them again.
                for key in std::mem::take(&mut input.stale) {
                    self.transaction
                        .send(&state_topic, changelog, Some(key.as_bytes()), None)?;
                }
                for r in task.engine.checkpoint_partition(input.topic, p) {
                    self.fits_changelog(&r)?;
                    self.transaction.send(
                        &state_topic,
                        changelog,
                        Some(r.key.as_bytes()),
                        r.value.as_deref(),
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// Counts and acts on what a commit did: a retriable failure holds processing
/// until a retry succeeds, an abortable one rewinds, a fatal one stops the run.
pub(super) fn on_commit(
    ctx: &RunContext,
    consumer: &BaseConsumer<RunContext>,
    view: &LiveView,
    r: Result<Commit, TransactionError>,
    last_recover: &mut Instant,
) -> anyhow::Result<()> {
    match r {
        Ok(Commit::Done) => {
            view.metrics.runtime.commit("ok");
            ctx.health.progress();
        }
        Ok(Commit::Nothing) => ctx.health.progress(),
        Ok(Commit::Started) => {}
        Ok(Commit::Deferred(e)) => {
            ctx.health.note_error(e.to_string());
            view.metrics.runtime.commit("deferred");
            crate::io::kafka::logs::warn("outputs not yet acknowledged; commit deferred", &e);
        }
        Err(TransactionError::Fatal(e)) => anyhow::bail!(e),
        Err(TransactionError::Retry(e)) => {
            ctx.health.note_error(e.to_string());
            view.metrics.runtime.commit("retry");
            crate::io::kafka::logs::warn("commit not finished; holding until it is", &e);
            *last_recover = Instant::now();
        }
        Err(TransactionError::Abort(e)) => {
            ctx.health.note_error(e.to_string());
            view.metrics.runtime.commit("aborted");
            crate::io::kafka::logs::warn("checkpoint transaction failed", &e);
            ctx.recover(consumer, REWIND_TRANSACTION_FAILED);
            *last_recover = Instant::now();
        }
    }
    Ok(())
}
