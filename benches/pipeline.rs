//! Throughput of the in-process pipeline (decode + dedup + event time + operators)
//! against a baseline that only parses the same messages with serde_json into a
//! `Value`, measured in the same run. The ratio is what matters on a noisy
//! machine; run `cargo bench --bench pipeline` and compare the two events/s.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use crowdpark::config::{load_str, DEFAULT_CONFIG};
use crowdpark::engine::{Engine, InputMessage};
use crowdpark::model::InputTopic;
use crowdpark::partitioner::partition_for;
use crowdpark::sim::{SimOptions, Simulator};
use std::sync::Arc;
use std::time::Duration;

struct Encoded {
    topic: InputTopic,
    partition: i32,
    key: Vec<u8>,
    payload: Vec<u8>,
    wall_ms: i64,
}

/// Twenty simulated minutes of the district at four times the demo's parking and
/// payment traffic: the realistic mix of the three topics.
fn workload() -> Vec<Encoded> {
    let config = load_str(DEFAULT_CONFIG, Vec::new()).unwrap();
    let opts = SimOptions {
        intensity: 4.0,
        ..SimOptions::default()
    };
    let mut sim = Simulator::new(&config, opts.clone());
    sim.advance_to(opts.start_ms + 20 * 60_000)
        .into_iter()
        .map(|m| Encoded {
            topic: m.topic,
            partition: partition_for(m.key.as_bytes(), 3),
            key: m.key.into_bytes(),
            wall_ms: m.deliver_ms,
            payload: m.payload,
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let msgs = workload();
    let bytes: usize = msgs.iter().map(|m| m.payload.len()).sum();
    eprintln!(
        "workload: {} messages, {} bytes, mean {} bytes",
        msgs.len(),
        bytes,
        bytes / msgs.len()
    );
    let config = Arc::new(load_str(DEFAULT_CONFIG, Vec::new()).unwrap());
    let mut group = c.benchmark_group("district_mix");
    group.throughput(Throughput::Elements(msgs.len() as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(15));

    group.bench_function("parse_only_serde_json_value", |b| {
        b.iter(|| {
            let mut fields = 0usize;
            for m in &msgs {
                let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
                fields += v.as_object().map_or(0, |o| o.len());
            }
            fields
        })
    });

    group.bench_function("pipeline_decode_and_operators", |b| {
        b.iter_batched(
            || (Engine::new(config.clone()), Vec::with_capacity(1024)),
            |(mut engine, mut out)| {
                for (i, m) in msgs.iter().enumerate() {
                    let msg = InputMessage {
                        topic: m.topic,
                        partition: m.partition,
                        offset: i as i64,
                        key: Some(&m.key),
                        payload: &m.payload,
                        wall_ms: m.wall_ms,
                    };
                    engine.process(&msg, &mut out);
                    // A sink would take the outputs here; the bench just drops them.
                    out.clear();
                }
                engine
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
