//! The consumer loop: one thread polls, processes, publishes, ticks and
//! commits; while processing must hold it only puts messages back and
//! retries the commit or the rewind.

use super::*;

pub(super) struct PollLoop<'a> {
    ctx: &'a RunContext,
    view: &'a LiveView,
    counters: Vec<(InputTopic, InputCounters)>,
    clock: Clock,
    out: Vec<Output>,
    bufs: Buffers,
    last_tick: Instant,
    last_view: Instant,
    last_commit: Instant,
    last_recover: Instant,
    commit_every: Duration,
    was_held: bool,
}

impl<'a> PollLoop<'a> {
    pub(super) fn new(ctx: &'a Arc<RunContext>, view: &'a LiveView) -> Self {
        let counters = InputTopic::CONSUMED
            .map(|t| (t, view.metrics.input.counters(ctx.topic_name(t))))
            .into();
        let now = Instant::now();
        PollLoop {
            ctx,
            view,
            counters,
            clock: Clock::new(),
            out: Vec::new(),
            bufs: Buffers::default(),
            last_tick: now,
            last_view: now,
            last_commit: now,
            last_recover: now,
            commit_every: ctx.config.kafka.commit_interval.as_duration(),
            was_held: false,
        }
    }

    pub(super) fn run(
        &mut self,
        consumer: &BaseConsumer<RunContext>,
        shutdown: &AtomicBool,
    ) -> anyhow::Result<()> {
        // One clock read per loop, taken when poll returns: it times the message's
        // receipt and then the periodic work, this pass's and the next one's.
        let mut now = Instant::now();
        while !shutdown.load(Ordering::Relaxed) {
            if now.duration_since(self.last_view) >= VIEW_EVERY {
                self.refresh(now)?;
            }
            if self.ctx.held() {
                self.while_held(consumer)?;
                now = Instant::now();
                continue;
            }
            if self.was_held {
                self.view.set_ready(true);
                crate::sync::lock(&self.ctx.put_back).clear();
                self.was_held = false;
            }
            let polled = consumer.poll(POLL_TIMEOUT);
            now = Instant::now();
            match polled {
                Some(Ok(m)) => self.process(&m, now)?,
                Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                    anyhow::bail!("the consumer failed for good: {code}");
                }
                Some(Err(e)) => {
                    crate::io::kafka::logs::warn("consumer error", &e);
                    std::thread::sleep(Duration::from_millis(100));
                }
                None => {}
            }
            if now.duration_since(self.last_tick) >= TICK_EVERY && !self.ctx.held() {
                self.tick(consumer, now)?;
            }
            if now.duration_since(self.last_commit) >= self.commit_every
                && !self.ctx.held()
                && !self.ctx.committing_in_background()
            {
                self.checkpoint(consumer)?;
            }
        }
        Ok(())
    }

    /// Stops on a fatal error a callback set, refreshes the view, re-bases
    /// the clock.
    fn refresh(&mut self, now: Instant) -> anyhow::Result<()> {
        // A fatal error set by a callback stops the run within this period.
        if let Some(e) = crate::sync::lock(&self.ctx.fatal).clone() {
            anyhow::bail!(e);
        }
        refresh_view(&self.ctx.lock().engine, self.view);
        self.clock = Clock::new();
        self.last_view = now;
        Ok(())
    }

    /// Held: a message that still arrives is put back, and once a second the
    /// commit is retried or the state rewound.
    fn while_held(&mut self, consumer: &BaseConsumer<RunContext>) -> anyhow::Result<()> {
        let ctx = self.ctx;
        if !self.was_held {
            // Not serving fresh results while held (`/readyz` 503).
            self.view.set_ready(false);
        }
        self.was_held = true;
        if let Some(Ok(m)) = consumer.poll(POLL_TIMEOUT) {
            ctx.put_back(consumer, &m);
        }
        if self.last_recover.elapsed() < RECOVER_EVERY {
            return Ok(());
        }
        if ctx.txn.is_committing() {
            match ctx.commit(consumer) {
                Ok(_) => {
                    self.view.metrics.runtime.commit("ok");
                    ctx.health.progress();
                }
                Err(TxnError::Fatal(e)) => anyhow::bail!(e),
                Err(e) => crate::io::kafka::logs::warn("commit still not finished", &e),
            }
        } else if ctx.txn.must_abort() {
            ctx.recover(consumer, REWIND_TRANSACTION_FAILED);
        } else {
            ctx.recover(consumer, REWIND_RESTORE_FAILED);
        }
        self.last_recover = Instant::now();
        Ok(())
    }

    /// One consumed message through the engine, its outputs published.
    fn process(&mut self, m: &BorrowedMessage<'_>, received: Instant) -> anyhow::Result<()> {
        let (ctx, view) = (self.ctx, self.view);
        let mut guard = ctx.lock();
        let s = &mut *guard;
        let Some(topic) = s.engine.input_topic(m.topic()) else {
            return Ok(());
        };
        let msg = InputMessage {
            topic,
            partition: m.partition(),
            offset: m.offset(),
            key: m.key(),
            payload: m.payload().unwrap_or(&[]),
            wall_ms: self.clock.wall_ms(received),
        };
        self.out.clear();
        let c = self
            .counters
            .iter()
            .find(|(t, _)| *t == topic)
            .map(|(_, c)| c);
        s.engine.process_each(&msg, &mut self.out, |d| {
            if let Some(c) = c {
                c.count(&view.metrics.input, d);
            }
        });
        s.positions.insert((topic, m.partition()), m.offset() + 1);
        // Input messages only; the internal repartition topic is not input.
        if topic != InputTopic::PaymentsByZone {
            s.summary.consumed += 1;
        }
        let (out, bufs) = (&self.out, &mut self.bufs);
        if publish(&mut s.engine, ctx, view, &mut s.batches, bufs, out)? {
            view.metrics
                .runtime
                .observe_latency(received.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// The engine's tick (idle partitions, heartbeats), pending repartition
    /// batches sent, and a finished background commit settled.
    fn tick(&mut self, consumer: &BaseConsumer<RunContext>, now: Instant) -> anyhow::Result<()> {
        let (ctx, view) = (self.ctx, self.view);
        let mut guard = ctx.lock();
        let s = &mut *guard;
        self.out.clear();
        s.engine.tick(self.clock.wall_ms(now), &mut self.out);
        let (out, bufs) = (&self.out, &mut self.bufs);
        publish(&mut s.engine, ctx, view, &mut s.batches, bufs, out)?;
        if let Err(e) = send_batches(&s.engine, ctx, &mut s.batches) {
            on_send_error(e)?;
        }
        drop(guard);
        if let Some(r) = ctx.settle(false) {
            let r = r.map(|()| Commit::Done);
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
            ctx.commit_in_background(consumer)
        };
        on_commit(ctx, consumer, self.view, r, &mut self.last_recover)?;
        self.last_commit = Instant::now();
        Ok(())
    }
}
