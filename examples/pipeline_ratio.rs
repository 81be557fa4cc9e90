//! The in-process pipeline against serde_json parse-only, in paired rounds:
//!
//! ```sh
//! cargo run --release --example pipeline_ratio -- [rounds (30)]
//! ```
//!
//! `cargo bench --bench pipeline` measures the two one after the other, each
//! for 15 s; on a noisy 2-core machine their throughputs moved by ±30 % between
//! runs, and so did the ratio (0.51 and 0.80 on one afternoon). Here each round
//! times both over the same workload back to back, in alternating order, and
//! the median of the per-round ratios is reported: noise that lasts longer
//! than a round hits both sides of it.

mod common;
use common::median;

use crowdpark::config::{load_str, DEFAULT_CONFIG};
use crowdpark::engine::Engine;
use crowdpark::sim::{SimMessage, SimOptions, Simulator};
use std::sync::Arc;
use std::time::Instant;

/// The criterion bench's workload: twenty simulated minutes at four times the
/// demo's parking and payment traffic.
fn workload(config: &crowdpark::config::Config) -> Vec<SimMessage> {
    let opts = SimOptions {
        intensity: 4.0,
        ..SimOptions::default()
    };
    Simulator::new(config, opts.clone()).advance_to(opts.start_ms + 20 * 60_000)
}

/// Events/s parsing every payload into a `serde_json::Value`.
fn parse_only(msgs: &[SimMessage]) -> f64 {
    let started = Instant::now();
    let mut fields = 0usize;
    for m in msgs {
        let v: serde_json::Value = serde_json::from_slice(&m.payload).expect("simulated JSON");
        fields += v.as_object().map_or(0, |o| o.len());
    }
    std::hint::black_box(fields);
    msgs.len() as f64 / started.elapsed().as_secs_f64()
}

/// Events/s through decode, dedup, event time and the operators of a fresh engine.
fn pipeline(config: &Arc<crowdpark::config::Config>, msgs: &[SimMessage]) -> f64 {
    let mut engine = Engine::new(config.clone());
    let mut out = Vec::with_capacity(1024);
    let started = Instant::now();
    for (i, m) in msgs.iter().enumerate() {
        engine.process(
            &m.as_input(config.topics.input_partitions, i as i64),
            &mut out,
        );
        // A sink would take the outputs here.
        out.clear();
    }
    let rate = msgs.len() as f64 / started.elapsed().as_secs_f64();
    std::hint::black_box(engine);
    rate
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(30);
    let config = Arc::new(load_str(DEFAULT_CONFIG, Vec::new()).expect("embedded config"));
    let msgs = workload(&config);
    // Warm caches and the allocator once, unmeasured.
    parse_only(&msgs);
    pipeline(&config, &msgs);
    let (mut parse, mut pipe, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (a, b) = if round % 2 == 0 {
            let a = parse_only(&msgs);
            (a, pipeline(&config, &msgs))
        } else {
            let b = pipeline(&config, &msgs);
            (parse_only(&msgs), b)
        };
        parse.push(a);
        pipe.push(b);
        ratio.push(b / a);
    }
    println!(
        "{} messages x {rounds} rounds; medians: parse-only {:.0} events/s, pipeline {:.0} events/s, per-round ratio {:.2} (range {:.2}-{:.2})",
        msgs.len(),
        median(parse),
        median(pipe),
        median(ratio.clone()),
        ratio.iter().copied().fold(f64::INFINITY, f64::min),
        ratio.iter().copied().fold(0.0, f64::max),
    );
}
