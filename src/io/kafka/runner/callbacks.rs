//! librdkafka's callbacks into the run: statistics and logs, and the
//! rebalance hooks that checkpoint revoked partitions and note assigned ones
//! (the coordinator restores them on its next turn).

use super::*;

impl ClientContext for RunContext {
    fn stats(&self, stats: Statistics) {
        let now = Instant::now();
        let mut stalls = self.health.stalls();
        for (topic, t) in &stats.topics {
            for (p, part) in &t.partitions {
                if *p < 0 {
                    continue;
                }
                if part.consumer_lag >= 0 {
                    self.view
                        .metrics
                        .runtime
                        .set_lag(topic, *p, part.consumer_lag);
                }
                // Partitions not assigned here are ignored by the watch.
                let key = (topic.clone(), *p);
                stalls.fetched(&key, part.next_offset, part.fetchq_cnt, now);
            }
        }
        drop(stalls);
        let up = crate::io::kafka::health::note_statistics(&stats);
        self.view.metrics.runtime.set_broker_reachable(up);
    }

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        crate::io::kafka::logs::client_log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        crate::io::kafka::logs::client_error("consumer", &error, reason);
        self.health.note_error(format!("{error}: {reason}"));
    }
}

impl RunContext {
    /// Drops the revoked partitions' tasks (or inputs, where some of a
    /// partition's topics stay), under the barrier the revoke holds.
    fn drop_revoked(&self, tasks: &mut tasks::Barrier<'_>, parts: &[(InputTopic, i32)]) {
        let mut kept = Vec::new();
        for mut task in tasks::take_all(tasks) {
            if task.keys().all(|k| parts.contains(&k)) {
                self.retire(&task);
            } else {
                // Some of the partition's topics stay (not with `range`,
                // which moves a partition of every topic together).
                self.retire_inputs(&mut task, parts);
                kept.push(task);
            }
        }
        **tasks = kept.into_iter().map(Mutex::new).collect();
        let still: Vec<(String, i32)> = tasks::each(tasks)
            .flat_map(|s| s.keys().collect::<Vec<_>>())
            .map(|(t, p)| self.stall_key(t, p))
            .collect();
        self.health.stalls().assigned(&still);
        self.note_owned(tasks);
        self.commits().committed.retain(|k, _| !parts.contains(k));
        self.view
            .metrics
            .runtime
            .set_partitions_assigned(tasks::inputs(tasks));
    }
}

impl ConsumerContext for RunContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let parts = self.input_partitions(tpl);
            // Assigned and revoked before the coordinator restored them: no
            // task was made, and nothing is left to do for them.
            crate::sync::lock(&self.assigned).take();
            if consumer.assignment_lost() {
                // Not a handover: the group went on without this instance.
                tracing::warn!(
                    partitions = parts.len(),
                    "this instance lost its partitions: the group removed it (its session timed out, or the loop did not poll within max.poll.interval.ms); they resume from the last checkpoint wherever they are assigned next"
                );
            }
            self.view.set_ready(false);
            // Held until the tasks are gone: no worker processes a message of
            // a revoked partition after its last commit.
            let mut tasks = self.tasks.barrier();
            let keep = self.run_state().may_commit() && !self.health.refused();
            let failed = self.failure().or_else(|| {
                (!keep).then(|| "processing is paused (a rewind is pending)".to_string())
            });
            let committed = match failed {
                // Positions may be ahead of what was delivered: commit nothing,
                // and let the next owner resume from the last checkpoint.
                Some(e) => {
                    tracing::warn!(error = %e, "not committing revoked partitions after an error");
                    let _ = self.settle(true);
                    Err(TransactionError::Abort(e.into()))
                }
                None => self.commit_at_barrier(&mut tasks, consumer),
            };
            match committed {
                Ok(Commit::Deferred(e)) => {
                    tracing::warn!(error = %e, "outputs not acknowledged; the new owner resumes from the last commit")
                }
                // Its run-state event came from `commit_at_barrier`.
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "could not commit revoked partitions; the new owner resumes from the last commit");
                    self.event(RunEvent::TransactionFailed);
                    // Their state is dropped below, so aborting is the whole
                    // recovery; if the broker is away, the loop aborts later.
                    match self.transaction.abort() {
                        Ok(()) => {
                            self.event(RunEvent::Aborted);
                        }
                        Err(TransactionError::Fatal(e)) => self.set_fatal(e.to_string()),
                        Err(_) => {}
                    }
                }
            }
            // Their unsent batches were sent by the commit above; if it
            // failed, the new owner replays the payments.
            self.drop_revoked(&mut tasks, &parts);
            tracing::info!(partitions = parts.len(), "partitions revoked");
        }
    }

    /// Only notes what was assigned: the coordinator restores it on its
    /// next turn (`restore_assigned`), as Kafka Streams restores in its
    /// stream thread, not in the group's callback.
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let parts = self.input_partitions(tpl);
            tracing::debug!(partitions = parts.len(), "partitions assigned; restoring");
            *crate::sync::lock(&self.assigned) = Some(parts);
        }
    }
}
