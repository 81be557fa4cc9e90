//! A worker: claims a task with messages waiting, processes a batch of them
//! through the task's engine and publishes what they caused; sleeps when no
//! task has any, until a queue wakes it. While processing must hold it leaves
//! the messages in their queues.

use super::tasks::{Input, TaskList};
use super::*;
use std::thread::JoinHandle;

/// Messages one claim processes before the worker lets go of the task: short
/// enough that the barrier waits little, long enough that claiming is cheap.
const BATCH: usize = 256;
/// How long an idle worker sleeps when no queue wakes it first.
const IDLE: Duration = Duration::from_millis(100);

pub(super) fn spawn(
    ctx: &Arc<RunContext>,
    view: &Arc<LiveView>,
    n: usize,
) -> anyhow::Result<JoinHandle<()>> {
    let (ctx, view) = (ctx.clone(), view.clone());
    let handle = std::thread::Builder::new()
        .name(format!("crowdpark-w{n}"))
        .spawn(move || {
            let mut w = Worker::new(&ctx, &view, n);
            // A worker that stops, however, stops the run: its tasks would
            // otherwise wait for good behind a healthy-looking coordinator.
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.run())) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => ctx.set_fatal(format!("{e:#}")),
                Err(_) => ctx.set_fatal(format!("worker {n} panicked")),
            }
        })?;
    Ok(handle)
}

struct Worker<'a> {
    ctx: &'a RunContext,
    view: &'a LiveView,
    counters: Vec<(InputTopic, InputCounters)>,
    clock: Clock,
    out: Vec<Output>,
    bufs: Buffers,
    /// Where the next claim starts looking, so tasks take turns.
    next: usize,
}

impl<'a> Worker<'a> {
    fn new(ctx: &'a RunContext, view: &'a LiveView, n: usize) -> Self {
        let counters = InputTopic::CONSUMED
            .map(|t| (t, view.metrics.input.counters(ctx.topic_name(t))))
            .into();
        Worker {
            ctx,
            view,
            counters,
            clock: Clock::new(),
            out: Vec::new(),
            bufs: Buffers::default(),
            next: n,
        }
    }

    fn run(&mut self) -> anyhow::Result<()> {
        self.ctx.tasks.register(std::thread::current());
        while !self.ctx.tasks.stop.load(Ordering::Relaxed) {
            // Held: the messages wait in their queues (bounded by the
            // consumer's buffer) until the coordinator has recovered.
            let done = if self.ctx.paused() {
                0
            } else {
                let tasks = self.ctx.tasks.read();
                // Again once in: the coordinator may have paused the run
                // while this worker waited for the barrier to let go.
                if self.ctx.paused() {
                    0
                } else {
                    self.claim_or_fail(&tasks)?
                }
            };
            if done == 0 {
                std::thread::park_timeout(IDLE);
            }
        }
        Ok(())
    }

    /// [`claim`](Self::claim); an error or panic marks the run failed before
    /// the barrier is let go. A checkpoint taken in between would commit the
    /// failed message's position, and the outputs it never sent would be
    /// lost for good: payments missing from their windows after a revoked
    /// Write grant.
    fn claim_or_fail(&mut self, tasks: &TaskList) -> anyhow::Result<usize> {
        let claimed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.claim(tasks)));
        let failed = match &claimed {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(format!("{e:#}")),
            Err(_) => Some("a worker panicked".to_string()),
        };
        if let Some(e) = failed {
            self.ctx.mark_failed(e);
        }
        match claimed {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// One batch from the first free task with messages, from `next` on;
    /// how many messages it processed.
    fn claim(&mut self, tasks: &TaskList) -> anyhow::Result<usize> {
        for i in 0..tasks.len() {
            let k = (self.next + i) % tasks.len();
            let Ok(mut task) = tasks[k].try_lock() else {
                continue;
            };
            let done = self.batch(&mut task)?;
            if done > 0 {
                self.next = k + 1;
                return Ok(done);
            }
        }
        Ok(0)
    }

    /// Up to [`BATCH`] messages of a task, its inputs taking turns: the
    /// batch starts with the input after the one the last batch started
    /// with, and moves on when an input has nothing waiting, so a busy input
    /// cannot keep the partition's others waiting.
    fn batch(&mut self, task: &mut Task) -> anyhow::Result<usize> {
        let n = task.inputs.len();
        let first = task.next_input % n.max(1);
        task.next_input = first + 1;
        let mut done = 0;
        for i in 0..n {
            let k = (first + i) % n;
            if done >= BATCH || !self.ctx.processing.load(Ordering::Acquire) {
                break;
            }
            done += self.input_batch(task, k, BATCH - done)?;
        }
        Ok(done)
    }

    /// Up to `limit` messages of the task's input `k`.
    fn input_batch(&mut self, task: &mut Task, k: usize, limit: usize) -> anyhow::Result<usize> {
        let Task {
            partition,
            engine,
            inputs,
            batches,
            ..
        } = task;
        let Input {
            topic,
            queue,
            position,
            ..
        } = &mut inputs[k];
        let Some(queue) = queue else {
            return Ok(0);
        };
        let mut done = 0;
        // A send failed (or the run stops): the rest of the batch would only
        // be rewound.
        while done < limit && self.ctx.processing.load(Ordering::Acquire) {
            let m = match queue.poll(Duration::ZERO) {
                None => break,
                Some(Ok(m)) => m,
                Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                    anyhow::bail!("the consumer failed for good: {code}");
                }
                Some(Err(e)) => {
                    // From this partition's own queue: the error is its own
                    // (the client's error carries no partition).
                    crate::io::kafka::logs::warn("consumer error", &e);
                    let key = self.ctx.stall_key(*topic, *partition);
                    self.ctx
                        .health
                        .stalls()
                        .error(&key, e.to_string(), Instant::now());
                    break;
                }
            };
            let received = Instant::now();
            let msg = InputMessage {
                topic: *topic,
                partition: *partition,
                offset: m.offset(),
                key: m.key(),
                payload: m.payload().unwrap_or(&[]),
                wall_ms: self.clock.wall_ms(received),
            };
            self.out.clear();
            let c = self
                .counters
                .iter()
                .find(|(t, _)| t == topic)
                .map(|(_, c)| c);
            let input = &self.view.metrics.input;
            engine.process_each(&msg, &mut self.out, |d| {
                if let Some(c) = c {
                    c.count(input, d);
                }
            });
            *position = Some(m.offset() + 1);
            // Input messages only; the internal repartition topics are not input.
            if !topic.is_internal() {
                self.ctx.consumed.fetch_add(1, Ordering::Relaxed);
            }
            let (ctx, view, out) = (self.ctx, self.view, &self.out);
            if publish(engine, batches, ctx, view, &mut self.bufs, out)? {
                view.metrics
                    .runtime
                    .observe_latency(received.elapsed().as_secs_f64());
            }
            done += 1;
        }
        Ok(done)
    }
}
