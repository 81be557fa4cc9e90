//! Recovery: aborting a failed transaction and rewinding every assigned
//! partition to its last checkpoint, restored from the changelog.

use super::tasks::Barrier;
use super::*;
use crate::io::kafka::changelog::{ChangelogError, ChangelogReader};
use crate::state::RestoreError;

/// Why partitions could not be put back to their last checkpoint.
#[derive(Debug, thiserror::Error)]
pub(super) enum RewindError {
    #[error("reading the assignment: {0}")]
    Assignment(#[source] KafkaError),
    #[error(transparent)]
    Changelog(#[from] ChangelogError),
    #[error("restoring {topic}/{partition}: {source}")]
    Restore {
        topic: String,
        partition: i32,
        #[source]
        source: RestoreError,
    },
    #[error(transparent)]
    Layout(#[from] crate::io::kafka::layout::Mismatch),
    #[error("reading topic metadata: {0}")]
    Metadata(#[source] KafkaError),
    #[error("the state changelog holds input partition {partition}'s state (key `{key}`) in its partition {changelog}: it was written under another partition count than topics.input_partitions = {partitions} (grown, or the setting changed, without a reset: see \"Partition counts\" in docs/operations.md); not processing")]
    Misplaced {
        key: String,
        partition: i32,
        changelog: i32,
        partitions: i32,
    },
    #[error("reading committed offsets: {0}")]
    Committed(#[source] KafkaError),
    #[error("seeking back: {0}")]
    Seek(#[source] KafkaError),
    #[error("seeking {topic}[{partition}] back: {source}")]
    SeekPartition {
        topic: String,
        partition: i32,
        #[source]
        source: KafkaError,
    },
    #[error("{topic}[{partition}]: the group's offset {group} is ahead of the checkpoint's {checkpoint}; waiting for the checkpoint's transaction to become readable (if an operator moved the offset forward, stop the group and run `crowdpark reset --to-latest` or `--to-datetime` instead)")]
    Unstable {
        topic: String,
        partition: i32,
        group: i64,
        checkpoint: i64,
    },
}

impl RunContext {
    /// After a failed transaction: abort it and rewind every assigned partition
    /// to its last checkpoint. Returns false while the broker cannot be reached
    /// (the caller tries again later).
    pub(super) fn recover(&self, consumer: &BaseConsumer<RunContext>, reason: &str) -> bool {
        // A background commit still using the transaction finishes first.
        let _ = self.settle(true);
        // The workers are held out from before the abort until the state is
        // rewound. One that processed in between would send what the state
        // being discarded made of its messages into the next transaction,
        // and the rewind would send it again: after forced rewinds, a
        // read_committed consumer saw availability records twice.
        let mut tasks = self.tasks.barrier();
        match self.transaction.abort() {
            Ok(()) => {
                self.event(RunEvent::Aborted);
            }
            Err(TransactionError::Fatal(e)) => {
                self.set_fatal(e.to_string());
                return false;
            }
            Err(e @ (TransactionError::Abort(_) | TransactionError::Retry(_))) => {
                crate::io::kafka::logs::warn(
                    "abort failed; holding processing and trying again",
                    &e,
                );
                return false;
            }
        }
        let rewound = match self.rewind(&mut tasks, consumer) {
            Ok(n) => {
                self.health.restore_failed(None);
                self.view.metrics.runtime.set_partitions_assigned(n);
                self.view.set_ready(true);
                self.view.metrics.runtime.rewind(reason);
                tracing::warn!(partitions = n, reason, "rewound to the last checkpoint");
                // Still under the barrier: the workers resume on the
                // rewound state only.
                self.event(RunEvent::Rewound);
                true
            }
            Err(e) => {
                crate::io::kafka::logs::warn("rewind failed; trying again", &e);
                // Keep processing paused: the state may be half restored.
                self.event(RunEvent::StateLost);
                false
            }
        };
        drop(tasks);
        self.tasks.wake();
        rewound
    }

    /// Partitions the group assigned (noted by the callback): their state
    /// restored from the changelog, each positioned where its state is, its
    /// queue split off, and a task made for it. On the coordinator's thread,
    /// between polls; a failure holds processing and the rewind retries.
    pub(super) fn restore_assigned(
        &self,
        consumer: &BaseConsumer<RunContext>,
        parts: &[(InputTopic, i32)],
    ) {
        let mut tasks = self.tasks.barrier();
        // Where an earlier assignment put messages back means nothing now.
        crate::sync::lock(&self.put_back).clear();
        let positioned = self.restore(parts).and_then(|mut restored| {
            let seek = self.resume_positions(consumer, &mut restored)?;
            Ok((restored, seek))
        });
        match positioned {
            Ok((mut restored, seek)) => {
                // Resume exactly where the restored state is. The group's
                // assignment started fetching at the committed offsets;
                // this one replaces it, and what was fetched before is
                // dropped by librdkafka as outdated. (A whole assignment
                // replaced: right for the eager `range` strategy the
                // runner sets; a cooperative one would need
                // `incremental_assign`.)
                if let Err(e) = consumer.assign(&seek) {
                    tracing::error!(error = %e, "could not position restored partitions");
                }
                // After `assign`, which undoes any split.
                super::tasks::split_queues(self, &mut restored);
                // One task per partition: a task left for one of them
                // (there should be none) gives way to the restored one.
                let fresh: Vec<i32> = restored.iter().map(|t| t.partition).collect();
                let kept: Vec<Task> = super::tasks::take_all(&mut tasks)
                    .into_iter()
                    .filter(|t| !fresh.contains(&t.partition))
                    .collect();
                tasks.extend(kept.into_iter().map(Mutex::new));
                tasks.extend(restored.into_iter().map(Mutex::new));
                self.generation.fetch_add(1, Ordering::Relaxed);
                self.note_owned(&mut tasks);
                tracing::info!(partitions = parts.len(), "partitions assigned and restored");
                self.view
                    .metrics
                    .runtime
                    .set_partitions_assigned(super::tasks::inputs(&mut tasks));
                self.health.restore_failed(None);
                self.view.set_ready(true);
                self.event(RunEvent::Assigned);
            }
            Err(e) => {
                // Keep the partitions (nobody else would process them) and
                // hold; the loop retries the restore every second.
                tracing::error!(error = %e, "state restore failed; holding and retrying");
                self.health.restore_failed(Some(e.to_string()));
                self.event(RunEvent::StateLost);
            }
        }
        drop(tasks);
        self.tasks.wake();
    }

    /// Every assigned partition back to its last checkpoint, under the
    /// barrier the caller holds: state restored from the changelog, consumer
    /// sought back. The split queues stay (only `assign` undoes them); a
    /// partition without one yet (its restore failed at assignment) gets one
    /// now.
    fn rewind(
        &self,
        tasks: &mut Barrier<'_>,
        consumer: &BaseConsumer<RunContext>,
    ) -> Result<usize, RewindError> {
        let assignment = consumer.assignment().map_err(RewindError::Assignment)?;
        let parts = self.input_partitions(&assignment);
        // An assignment not restored yet is in `assignment`: restored here,
        // it must not be restored again on the coordinator's next turn
        // (two tasks for one partition).
        crate::sync::lock(&self.assigned).take();
        let mut queues = BTreeMap::new();
        for task in super::tasks::take_all(tasks) {
            self.retire(&task);
            let p = task.partition;
            for input in task.inputs {
                if let Some(q) = input.queue {
                    queues.insert((input.topic, p), q);
                }
            }
        }
        {
            let mut c = self.commits();
            c.committed.retain(|k, _| !parts.contains(k));
            c.txn_positions = None;
        }
        let mut restored = self.restore(&parts)?;
        let seek = self.resume_positions(consumer, &mut restored)?;
        let sought = consumer
            .seek_partitions(seek, Duration::from_secs(10))
            .map_err(RewindError::Seek)?;
        // Only a global error is returned; each partition's is in the list.
        // One not sought back would go on from where it was, past records
        // the restored state has not seen.
        for e in sought.elements() {
            if let Err(source) = e.error() {
                return Err(RewindError::SeekPartition {
                    topic: e.topic().to_string(),
                    partition: e.partition(),
                    source,
                });
            }
        }
        for task in restored.iter_mut() {
            let p = task.partition;
            for input in task.inputs.iter_mut() {
                input.queue = queues.remove(&(input.topic, p));
            }
        }
        // Those without a queue yet (their restore failed at assignment).
        super::tasks::split_queues(self, &mut restored);
        tasks.extend(restored.into_iter().map(Mutex::new));
        self.generation.fetch_add(1, Ordering::Relaxed);
        self.note_owned(tasks);
        Ok(parts.len())
    }

    /// Where each restored partition resumes: the offset its state reflects, or
    /// for a partition with no checkpoint yet, the group's committed offset (set
    /// by an earlier version or by an operator), else the beginning.
    ///
    /// A checkpoint and the group's offsets are committed in one transaction,
    /// so they agree unless someone moved the group's offsets since (an
    /// operator's `kafka-consumer-groups --reset-offsets`). That reset is
    /// honoured, never silently overridden: the partition's checkpoint is
    /// discarded (its changelog keys deleted at the next checkpoint) and it
    /// resumes, with empty state, from the group's offset.
    pub(super) fn resume_positions(
        &self,
        consumer: &BaseConsumer<RunContext>,
        restored: &mut [Task],
    ) -> Result<TopicPartitionList, RewindError> {
        let mut all = TopicPartitionList::new();
        for (t, p) in restored.iter().flat_map(|s| s.keys().collect::<Vec<_>>()) {
            all.add_partition(self.topic_name(t), p);
        }
        let committed = consumer
            .committed_offsets(all, Duration::from_secs(30))
            .map_err(RewindError::Committed)?;
        let mut seek = TopicPartitionList::new();
        for task in restored.iter_mut() {
            let p = task.partition;
            for k in 0..task.inputs.len() {
                let topic = task.inputs[k].topic;
                let name = self.topic_name(topic);
                let group = match committed.find_partition(name, p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => Some(o),
                    _ => None,
                };
                if let (Some(at), Some(g)) = (task.inputs[k].position, group) {
                    if at < g {
                        self.await_stable(task, k, g)?;
                    }
                }
                let restored_keys = std::mem::take(&mut task.inputs[k].restored_keys);
                if let (Some(at), Some(g)) = (task.inputs[k].position, group) {
                    if at != g {
                        self.discard_checkpoint(task, k, at, g, restored_keys);
                    }
                }
                // What the group holds, which a checkpoint need not send again
                // (it carries only the offsets that moved from there).
                let mut c = self.commits();
                match group {
                    Some(g) => c.committed.insert((topic, p), g),
                    None => c.committed.remove(&(topic, p)),
                };
                drop(c);
                let o = match (task.inputs[k].position, group) {
                    (Some(o), _) | (None, Some(o)) => Offset::Offset(o),
                    (None, None) => Offset::Beginning,
                };
                seek.add_partition_offset(name, p, o)
                    .map_err(RewindError::Seek)?;
            }
        }
        Ok(seek)
    }

    /// The group's offset is ahead of the checkpoint just read: the
    /// checkpoint committed with it may not be readable yet (the transaction's
    /// commit returns before its markers reach the changelog, a
    /// `read_committed` restore stops before them, and another instance's
    /// open transaction on the same changelog partition hides it too), while
    /// the group's offsets are read stable (librdkafka asks for stable offsets
    /// when reading committed). So input `k`'s checkpoint is read again for
    /// up to 5 s; if it is still behind, processing holds and the restore is
    /// retried, for as long as it takes, with the reason in `/healthz`. An
    /// offset an operator moved *forward* therefore holds the partition
    /// rather than discard a checkpoint that may only be late: `crowdpark
    /// reset` is the way to skip ahead.
    fn await_stable(&self, task: &mut Task, k: usize, group: i64) -> Result<(), RewindError> {
        let started = Instant::now();
        let topic = task.inputs[k].topic;
        let cp = task.partition % self.state_partitions;
        let reader = changelog_reader(&self.config)?;
        while started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(250));
            let (records, _) = self.read_state(&reader, state_topic(&self.config), cp)?;
            // This input only: the others of the task keep the state their
            // positions were taken with.
            self.restore_input(task, topic, &records, started)?;
            if task.inputs[k].position >= Some(group) {
                return Ok(());
            }
        }
        Err(RewindError::Unstable {
            topic: self.topic_name(topic).to_string(),
            partition: task.partition,
            group,
            checkpoint: task.inputs[k].position.unwrap_or(0),
        })
    }

    /// The group's offset `group` differs from the checkpoint's `at` for
    /// input `k`: it starts again, empty, at `group`, and the checkpoint's
    /// keys are deleted at the next checkpoint.
    fn discard_checkpoint(
        &self,
        task: &mut Task,
        k: usize,
        at: i64,
        group: i64,
        keys: Vec<String>,
    ) {
        let topic = task.inputs[k].topic;
        tracing::warn!(
            topic = %self.topic_name(topic),
            partition = task.partition,
            checkpoint = at,
            group,
            "the group's offset was moved since the last checkpoint (an operator's reset): honouring it; this partition's checkpointed state is discarded and it is processed again from the group's offset"
        );
        task.engine.drop_partition(topic, task.partition);
        let input = &mut task.inputs[k];
        input.position = Some(group);
        // Deleted by the next checkpoint, which is not skipped while any are
        // left (`prepare`).
        input.stale = keys;
    }

    /// Reads the changelog partitions of `parts` and rebuilds their state, a
    /// task per partition with an input for each of its topics, each
    /// positioned at the offset its state reflects.
    pub(super) fn restore(&self, parts: &[(InputTopic, i32)]) -> Result<Vec<Task>, RewindError> {
        let mut by_changelog: BTreeMap<i32, Vec<(InputTopic, i32)>> = BTreeMap::new();
        for (t, p) in parts {
            by_changelog
                .entry(p % self.state_partitions)
                .or_default()
                .push((*t, *p));
        }
        let reader = changelog_reader(&self.config)?;
        self.check_layout(&reader)?;
        let topic = state_topic(&self.config);
        let mut out = Vec::new();
        for (cp, inputs) in by_changelog {
            let started = Instant::now();
            let (records, read) = self.read_state(&reader, topic, cp)?;
            self.check_keys(cp, &records)?;
            for (p, topics) in super::tasks::by_partition(&inputs) {
                let mut task = Task::new(self, p, &topics);
                for t in topics {
                    self.restore_input(&mut task, t, &records, started)?;
                }
                out.push(task);
            }
            tracing::info!(
                changelog_partition = cp,
                keys = records.len(),
                snapshot_offset = read.snapshot,
                changelog_records = read.records,
                ms = started.elapsed().as_millis() as u64,
                "state restored"
            );
            if let Some(k) = &self.keeper {
                if read.worth_a_snapshot(records.len()) {
                    k.offer(cp, records, read.end, read.as_of_ms);
                }
            }
        }
        Ok(out)
    }

    /// One input of a task from the changelog `records` of its partition:
    /// its stream's state rebuilt in the task's engine, its position the
    /// offset that state reflects.
    fn restore_input(
        &self,
        task: &mut Task,
        topic: InputTopic,
        records: &BTreeMap<String, Vec<u8>>,
        started: Instant,
    ) -> Result<(), RewindError> {
        let p = task.partition;
        task.engine
            .restore_partition(topic, p, records, wall_ms())
            .map_err(|source| RewindError::Restore {
                topic: self.topic_name(topic).to_string(),
                partition: p,
                source,
            })?;
        let position = task.engine.next_offset(topic, p);
        let prefix = crate::state::partition_prefix(self.topic_name(topic), p);
        let keys = records
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        if let Some(input) = task.input_mut(topic) {
            input.position = position;
            input.restored_keys = keys;
        }
        if let Some(o) = position {
            self.commits().committed.insert((topic, p), o);
        }
        self.view.metrics.runtime.set_restore_time(
            self.topic_name(topic),
            p,
            started.elapsed().as_secs_f64(),
        );
        Ok(())
    }

    /// Every consumed topic and the changelog have `topics.input_partitions`
    /// partitions, or nothing is restored (`layout`); health says why.
    fn check_layout(&self, reader: &BaseConsumer<ChangelogReader>) -> Result<(), RewindError> {
        use crate::io::kafka::layout::{check, LayoutError};
        match check(reader, &self.config) {
            Ok(()) => {
                self.health.refuse(None);
                Ok(())
            }
            Err(LayoutError::Mismatch(m)) => {
                self.health.refuse(Some(m.to_string()));
                Err(m.into())
            }
            Err(LayoutError::Metadata(e)) => Err(RewindError::Metadata(e)),
        }
    }

    /// A checkpoint written under another partition count has keys where
    /// this one would not put them: refused like a count that differs.
    fn check_keys(&self, cp: i32, records: &BTreeMap<String, Vec<u8>>) -> Result<(), RewindError> {
        let partitions = self.state_partitions;
        let found = records.keys().find_map(|k| {
            crate::io::kafka::layout::misplaced_key(k, cp, partitions).map(|p| (k, p))
        });
        let Some((key, partition)) = found else {
            return Ok(());
        };
        let e = RewindError::Misplaced {
            key: key.clone(),
            partition,
            changelog: cp,
            partitions,
        };
        self.health.refuse(Some(e.to_string()));
        Err(e)
    }
}
