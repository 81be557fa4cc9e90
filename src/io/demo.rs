//! `crowdpark demo`: the simulator feeding the engine in process, no Kafka.

use super::console::ConsolePrinter;
use crate::config::Config;
use crate::engine::{Disposition, Engine, InputMessage};
use crate::http::LiveView;
use crate::model::InputTopic;
use crate::output::Output;
use crate::partitioner::partition_for;
use crate::sim::{SimOptions, Simulator};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Simulated seconds per wall-clock second.
    pub speed: f64,
    /// Wall-clock run time; `None` runs until interrupted.
    pub duration: Option<Duration>,
    pub sim: SimOptions,
    /// Print nothing but the banner and the summary.
    pub quiet: bool,
}

/// What a demo run did, for its closing lines and for tests.
#[derive(Debug, Default, Clone)]
pub struct DemoSummary {
    pub consumed: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub duplicates: u64,
    pub outputs_by_topic: HashMap<String, u64>,
    pub simulated_minutes: f64,
}

/// How often the loop wakes: fine enough for smooth output at high speed.
const TICK: Duration = Duration::from_millis(50);
/// How often the HTTP view and gauges are refreshed from the engine.
const VIEW_REFRESH: Duration = Duration::from_millis(250);

/// Runs the simulated district until `duration` passes or `shutdown` completes.
pub async fn run(
    config: Arc<Config>,
    view: Arc<LiveView>,
    mut engine: Engine,
    opts: DemoOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<DemoSummary> {
    let mut sim = Simulator::new(&config, opts.sim.clone());
    let mut printer = ConsolePrinter::new(std::io::stdout(), engine.catalog());
    let partitions = config.topics.input_partitions;
    let mut offsets: HashMap<(InputTopic, i32), i64> = HashMap::new();
    let mut summary = DemoSummary::default();
    let mut out = Vec::new();
    let started = Instant::now();
    let mut last_refresh = Instant::now();
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tokio::pin!(shutdown);
    view.set_ready(true);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = ticker.tick() => {}
        }
        let elapsed = started.elapsed();
        if opts.duration.is_some_and(|d| elapsed >= d) {
            break;
        }
        let sim_now = opts.sim.start_ms + (elapsed.as_secs_f64() * opts.speed * 1000.0) as i64;
        for m in sim.advance_to(sim_now) {
            let partition = partition_for(m.key.as_bytes(), partitions);
            let offset = offsets.entry((m.topic, partition)).or_insert(0);
            let msg = InputMessage {
                topic: m.topic,
                partition,
                offset: *offset,
                key: Some(m.key.as_bytes()),
                payload: &m.payload,
                wall_ms: sim_now,
            };
            *offset += 1;
            let received = Instant::now();
            out.clear();
            let d = engine.process(&msg, &mut out);
            summary.consumed += 1;
            match d {
                Disposition::Accepted => summary.accepted += 1,
                Disposition::Duplicate => summary.duplicates += 1,
                Disposition::Rejected(_) => summary.rejected += 1,
            }
            view.metrics.input.count(engine.topic_name(m.topic), d);
            emit(&engine, &view, &mut printer, &mut summary, &out, opts.quiet)?;
            if !out.is_empty() {
                view.metrics
                    .runtime
                    .observe_latency(received.elapsed().as_secs_f64());
            }
        }
        out.clear();
        engine.tick(sim_now, &mut out);
        emit(&engine, &view, &mut printer, &mut summary, &out, opts.quiet)?;
        if !opts.quiet {
            let settle = config.engine.max_out_of_orderness.as_ms()
                + config.engine.allowed_lateness.as_ms()
                + 5_000;
            printer.flush_sales(sim_now, settle)?;
        }
        if last_refresh.elapsed() >= VIEW_REFRESH {
            super::refresh_view(&engine, &view);
            last_refresh = Instant::now();
        }
        summary.simulated_minutes = (sim_now - opts.sim.start_ms) as f64 / 60_000.0;
    }
    super::refresh_view(&engine, &view);
    if !opts.quiet {
        printer.finish()?;
    }
    Ok(summary)
}

fn emit(
    engine: &Engine,
    view: &LiveView,
    printer: &mut ConsolePrinter<std::io::Stdout>,
    summary: &mut DemoSummary,
    out: &[Output],
    quiet: bool,
) -> std::io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    super::publish_local(engine, view, out);
    for o in out {
        *summary
            .outputs_by_topic
            .entry(engine.output_topic_name(o.topic()).to_string())
            .or_insert(0) += 1;
    }
    if !quiet {
        printer.print(out)?;
    }
    Ok(())
}
