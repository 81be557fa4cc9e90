//! Runs the benchmark workload through the pipeline in a loop, for `perf record`.
use crowdpark::config::{load_str, DEFAULT_CONFIG};
use crowdpark::engine::Engine;
use crowdpark::sim::{SimOptions, Simulator};
use std::sync::Arc;

fn main() {
    let config = Arc::new(load_str(DEFAULT_CONFIG, Vec::new()).unwrap());
    let opts = SimOptions {
        intensity: 4.0,
        ..SimOptions::default()
    };
    let msgs = Simulator::new(&config, opts.clone()).advance_to(opts.start_ms + 20 * 60_000);
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let started = std::time::Instant::now();
    for _ in 0..rounds {
        let mut engine = Engine::new(config.clone());
        let mut out = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            engine.process(&m.as_input(3, i as i64), &mut out);
            out.clear();
        }
    }
    let n = (msgs.len() * rounds) as f64;
    println!("{:.0} events/s", n / started.elapsed().as_secs_f64());
}
