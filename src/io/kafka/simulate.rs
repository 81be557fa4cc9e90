//! `crowdpark simulate`: the district simulator producing to the input topics, at
//! a paced rate, with a share of bad and duplicate messages. It is also the load
//! generator for the benchmarks.

use super::sink::KafkaSink;
use crate::config::Config;
use crate::model::{Catalog, InputTopic};
use crate::sim::weeks::{parking_weeks, WeeksOptions};
use crate::sim::{Expect, SimMessage, SimOptions, Simulator};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// Messages per second; 0 sends as fast as the producer takes them.
    pub rate: f64,
    pub duration: Duration,
    /// Stop after this many messages (whichever of duration and count is first).
    pub max_messages: Option<u64>,
    pub sim: SimOptions,
    /// Print progress lines to stderr once a second.
    pub progress: bool,
    /// Multi-week mode: this many weeks of gate counts for every car park
    /// (`sim::weeks`) from `sim.start_ms`, instead of the afternoon.
    pub weeks: Option<u32>,
}

/// What was sent, and what the engine must make of it: the accounting that a
/// test compares with the engine's metrics and dead-letter topic.
#[derive(Debug, Default, Clone, Serialize)]
pub struct TopicCounts {
    pub sent: u64,
    pub accept: u64,
    pub duplicate: u64,
    pub reject: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct SimulateSummary {
    pub sent: u64,
    pub seconds: f64,
    pub rate: f64,
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
    pub topics: BTreeMap<String, TopicCounts>,
}

impl SimulateSummary {
    /// Counts a message sent, by what the engine should make of it.
    fn record(&mut self, topic: &str, m: &SimMessage) {
        self.sent += 1;
        self.first_ts = Some(self.first_ts.map_or(m.ts_ms, |t| t.min(m.ts_ms)));
        self.last_ts = Some(self.last_ts.map_or(m.ts_ms, |t| t.max(m.ts_ms)));
        let c = self.topics.entry(topic.to_string()).or_default();
        c.sent += 1;
        match m.expect {
            Expect::Accept => c.accept += 1,
            Expect::Duplicate => c.duplicate += 1,
            Expect::Reject(r) => *c.reject.entry(r.as_str().to_string()).or_insert(0) += 1,
        }
    }
}

pub fn simulate(config: &Config, opts: &SimulateOptions) -> anyhow::Result<SimulateSummary> {
    let sink = KafkaSink::new(config, None)?;
    let name = |t: InputTopic| t.name_in(&config.topics);
    let mut summary = SimulateSummary::default();
    let started = Instant::now();
    let mut last_progress = Instant::now();
    // Sends one message; false once the duration or count is reached.
    let mut send = |m: SimMessage| -> anyhow::Result<bool> {
        let elapsed = started.elapsed();
        if elapsed >= opts.duration || opts.max_messages.is_some_and(|n| summary.sent >= n) {
            return Ok(false);
        }
        if opts.rate > 0.0 {
            // Pace to the rate: sleep while ahead of schedule.
            let due = Duration::from_secs_f64(summary.sent as f64 / opts.rate);
            if due > elapsed {
                std::thread::sleep(due - elapsed);
            }
        }
        sink.send(
            name(m.topic),
            None,
            Some(m.key.as_bytes()),
            Some(&m.payload),
        )?;
        summary.record(name(m.topic), &m);
        if opts.progress && last_progress.elapsed() >= Duration::from_secs(1) {
            let secs = started.elapsed().as_secs_f64();
            let _ = writeln!(
                std::io::stderr(),
                "simulate: {} sent in {:.0} s ({:.0}/s)",
                summary.sent,
                secs,
                summary.sent as f64 / secs
            );
            last_progress = Instant::now();
        }
        Ok(true)
    };
    if let Some(weeks) = opts.weeks {
        let catalog = Catalog::new(config);
        let msgs = parking_weeks(
            &catalog,
            &WeeksOptions {
                start_ms: opts.sim.start_ms,
                weeks,
                seed: opts.sim.seed,
            },
        );
        for m in msgs {
            if !send(m)? {
                break;
            }
        }
    } else {
        let mut sim = Simulator::new(config, opts.sim.clone());
        let mut sim_clock = opts.sim.start_ms;
        'outer: loop {
            sim_clock += 1_000;
            for m in sim.advance_to(sim_clock) {
                if !send(m)? {
                    break 'outer;
                }
            }
        }
    }
    sink.flush(Duration::from_secs(60))?;
    summary.seconds = started.elapsed().as_secs_f64();
    summary.rate = summary.sent as f64 / summary.seconds.max(1e-9);
    Ok(summary)
}
