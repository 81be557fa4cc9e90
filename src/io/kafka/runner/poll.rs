//! The coordinator: the one thread that polls the consumer itself (its
//! callbacks run here), ticks the tasks, refreshes the view and checkpoints;
//! while processing must hold, it retries the commit or the rewind.

use super::tasks::TaskList;
use super::*;

/// How long one poll of the consumer's own queue waits: it carries only the
/// group's events, so this paces the ticks.
const COORDINATOR_POLL: Duration = Duration::from_millis(20);

pub(super) struct Coordinator<'a> {
    ctx: &'a RunContext,
    view: &'a LiveView,
    clock: Clock,
    out: Vec<Output>,
    bufs: Buffers,
    last_tick: Instant,
    last_view: Instant,
    last_commit: Instant,
    last_recover: Instant,
    commit_every: Duration,
    was_paused: bool,
    writer: super::share::ViewWriter,
    last_share: Instant,
}

impl<'a> Coordinator<'a> {
    pub(super) fn new(ctx: &'a Arc<RunContext>, view: &'a LiveView) -> Self {
        let now = Instant::now();
        Coordinator {
            ctx,
            view,
            clock: Clock::new(),
            out: Vec::new(),
            bufs: Buffers::default(),
            last_tick: now,
            last_view: now,
            last_commit: now,
            last_recover: now,
            commit_every: ctx.config.kafka.commit_interval.as_duration(),
            was_paused: false,
            writer: Default::default(),
            last_share: now,
        }
    }

    pub(super) fn run(
        &mut self,
        consumer: &BaseConsumer<RunContext>,
        shutdown: &AtomicBool,
    ) -> anyhow::Result<()> {
        while !shutdown.load(Ordering::Relaxed) {
            crate::liveness::beat();
            // Assigned during the last poll: restored before anything else.
            let assigned = crate::sync::lock(&self.ctx.assigned).take();
            if let Some(parts) = assigned {
                self.ctx.restore_assigned(consumer, &parts);
            }
            let now = Instant::now();
            if now.duration_since(self.last_view) >= VIEW_EVERY {
                self.refresh(now)?;
            }
            if self.ctx.paused() {
                self.while_paused(consumer)?;
                continue;
            }
            if self.was_paused {
                self.view.set_ready(true);
                crate::sync::lock(&self.ctx.put_back).clear();
                self.was_paused = false;
                self.ctx.tasks.wake();
            }
            match consumer.poll(COORDINATOR_POLL) {
                // Fetched for a partition before its queue was split: put
                // back, it is fetched again into its own queue.
                Some(Ok(m)) => self.ctx.return_to_queue(consumer, &m),
                Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                    anyhow::bail!("the consumer failed for good: {code}");
                }
                Some(Err(e)) => {
                    crate::io::kafka::logs::warn("consumer error", &e);
                    std::thread::sleep(Duration::from_millis(100));
                }
                None => {}
            }
            let now = Instant::now();
            if now.duration_since(self.last_tick) >= TICK_EVERY && !self.ctx.paused() {
                self.tick(consumer, now)?;
            }
            if now.duration_since(self.last_commit) >= self.commit_every
                && !self.ctx.paused()
                && !self.ctx.committing_in_background()
            {
                self.checkpoint(consumer)?;
            }
        }
        Ok(())
    }

    /// Stops on a fatal error a callback or worker set, refreshes the view.
    /// Each task is read under its own lock, not the barrier: the workers go
    /// on with the other tasks meanwhile.
    fn refresh(&mut self, now: Instant) -> anyhow::Result<()> {
        // A fatal error set by a callback or worker stops the run within
        // this period.
        if let Some(e) = self.ctx.failure() {
            anyhow::bail!(e);
        }
        let ctx = self.ctx;
        let retired = crate::sync::lock(&ctx.evicted_retired).clone();
        let mut parts = crate::io::ViewParts::new(&retired);
        // Not while paused: the transaction is failing, or the state rewinding.
        let share =
            now.duration_since(self.last_share) >= super::share::SHARE_EVERY && !ctx.paused();
        let mut shared = Vec::new();
        {
            let tasks = ctx.tasks.read();
            self.watch_positions(&tasks, now);
            for task in tasks.iter() {
                let task = crate::sync::lock(task);
                parts.add(&task.engine);
                if share {
                    super::share::task_records(ctx, &task, &mut shared);
                }
            }
        }
        parts.apply(self.view);
        if share {
            self.writer.write(ctx, self.view, shared);
            self.last_share = now;
        }
        self.last_view = now;
        Ok(())
    }

    /// Tells the stall watch which partitions are assigned and where the
    /// engine stands in each; and tells the engine which of them are not
    /// known to be caught up (records wait, or the broker's end is not known
    /// yet), whose wall time then does not count as idle (see
    /// `Watermark::hold_idle`).
    fn watch_positions(&self, tasks: &TaskList, now: Instant) {
        let ctx = self.ctx;
        let mut stands: Vec<((String, i32), Option<i64>)> = Vec::new();
        let mut owners: Vec<(usize, InputTopic)> = Vec::new();
        for (k, t) in tasks.iter().enumerate() {
            let t = crate::sync::lock(t);
            for i in &t.inputs {
                stands.push((ctx.stall_key(i.topic, t.partition), i.position));
                owners.push((k, i.topic));
            }
        }
        let waiting: Vec<bool> = {
            let mut stalls = ctx.health.stalls();
            let keys: Vec<(String, i32)> = stands.iter().map(|(k, _)| k.clone()).collect();
            stalls.assigned(&keys);
            for (key, position) in &stands {
                if let Some(p) = position {
                    stalls.processed(key, *p, now);
                }
            }
            stands.iter().map(|(k, _)| !stalls.caught_up(k)).collect()
        };
        let wall_ms = crate::time::now_ms();
        for ((k, topic), waits) in owners.into_iter().zip(waiting) {
            if waits {
                let mut task = crate::sync::lock(&tasks[k]);
                let partition = task.partition;
                task.engine.hold_idle(topic, partition, wall_ms);
            }
        }
    }

    /// Paused: the workers leave messages in their queues; a message that
    /// still arrives here is put back, and once a second the commit is
    /// retried or the state rewound.
    fn while_paused(&mut self, consumer: &BaseConsumer<RunContext>) -> anyhow::Result<()> {
        let ctx = self.ctx;
        if !self.was_paused {
            // Not serving fresh results while paused (`/readyz` 503).
            self.view.set_ready(false);
        }
        self.was_paused = true;
        if let Some(Ok(m)) = consumer.poll(POLL_TIMEOUT) {
            ctx.put_back(consumer, &m);
        }
        // Partition counts that do not match: what was processed since the
        // last checkpoint is dropped (the open transaction aborted, the state
        // rewound), and the rewind, which checks the counts, is tried again
        // until they match.
        let state = if ctx.health.refused() {
            ctx.event(RunEvent::LayoutRefused)
        } else {
            ctx.run_state()
        };
        let every = match state.action() {
            Action::RecheckLayout => crate::io::kafka::startup::LAYOUT_RECHECK,
            _ => RECOVER_EVERY,
        };
        if self.last_recover.elapsed() < every {
            return Ok(());
        }
        match state.action() {
            Action::RetryCommit => {
                let r = ctx.commit(consumer);
                on_commit(ctx, consumer, self.view, r, &mut self.last_recover)?;
            }
            Action::Recover if state == RunState::Aborting => {
                ctx.recover(consumer, REWIND_TRANSACTION_FAILED);
            }
            Action::Recover | Action::RecheckLayout => {
                ctx.recover(consumer, REWIND_RESTORE_FAILED);
            }
            // Paused only by the layout watch, which the next turn sees.
            Action::Process => {}
            Action::Stop => {
                if let Some(e) = ctx.failure() {
                    anyhow::bail!(e);
                }
            }
        }
        self.last_recover = Instant::now();
        Ok(())
    }

    /// Every task's tick (idle partitions, heartbeats) and pending
    /// repartition batches sent, each task taken in turn from the workers;
    /// then a finished background commit settled.
    fn tick(&mut self, consumer: &BaseConsumer<RunContext>, now: Instant) -> anyhow::Result<()> {
        let (ctx, view) = (self.ctx, self.view);
        let wall_ms = self.clock.wall_ms(now);
        {
            let tasks = ctx.tasks.read();
            for task in tasks.iter() {
                let mut task = crate::sync::lock(task);
                let Task {
                    engine, batches, ..
                } = &mut *task;
                self.out.clear();
                engine.tick(wall_ms, &mut self.out);
                publish(engine, batches, ctx, view, &mut self.bufs, &self.out)?;
                if let Err(e) = send_batches(ctx, batches) {
                    on_send_error(ctx, e)?;
                }
            }
        }
        if let Some(r) = ctx.settle(false) {
            let r = r.map(|()| Commit::Done);
            ctx.follow_commit(&r);
            on_commit(ctx, consumer, view, r, &mut self.last_recover)?;
        }
        self.last_tick = now;
        Ok(())
    }

    /// A checkpoint: in place (exactly-once), or committed in the background.
    fn checkpoint(&mut self, consumer: &BaseConsumer<RunContext>) -> anyhow::Result<()> {
        let ctx = self.ctx;
        let exactly_once =
            ctx.config.kafka.processing_guarantee == ProcessingGuarantee::ExactlyOnce;
        let r = if exactly_once {
            ctx.commit(consumer)
        } else {
            let r = ctx.commit_in_background(consumer);
            ctx.follow_commit(&r);
            r
        };
        on_commit(ctx, consumer, self.view, r, &mut self.last_recover)?;
        self.last_commit = Instant::now();
        Ok(())
    }
}
