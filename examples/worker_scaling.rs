//! In-process scaling of partition-parallel workers (issue 18), no broker:
//!
//! ```sh
//! cargo run --release --example worker_scaling -- [rounds (10)] [partitions (4)]
//! ```
//!
//! The simulator's messages are generated and partitioned before timing. Each
//! round runs them through 1 worker and through 2 (alternating which goes
//! first), as `crowdpark run` runs its workers: each worker an engine owning
//! the partitions [`worker_of`] gives it, payments re-keyed to another
//! worker's partition handed over through that worker's mailbox (the
//! repartition topic's place), and one shared district stage fed under its
//! lock. Reported: events/s of each and the median of the per-round ratios.

mod common;
use common::median;

use crowdpark::config::{load_str, Config, DEFAULT_CONFIG};
use crowdpark::engine::{worker_of, District, Engine, InputMessage};
use crowdpark::model::InputTopic;
use crowdpark::output::Forwarded;
use crowdpark::sim::{SimOptions, Simulator};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Instant;

/// A message partitioned as Kafka would, owned.
struct Msg {
    topic: InputTopic,
    partition: i32,
    offset: i64,
    key: String,
    payload: Vec<u8>,
    wall_ms: i64,
}

fn workload(config: &Config) -> Vec<Msg> {
    let opts = SimOptions {
        intensity: 4.0,
        ..SimOptions::default()
    };
    let msgs = Simulator::new(config, opts.clone()).advance_to(opts.start_ms + 20 * 60_000);
    let n = config.topics.input_partitions;
    msgs.iter()
        .enumerate()
        .map(|(i, m)| {
            let input = m.as_input(n, i as i64);
            Msg {
                topic: input.topic,
                partition: input.partition,
                offset: input.offset,
                key: m.key.clone(),
                payload: m.payload.clone(),
                wall_ms: m.deliver_ms,
            }
        })
        .collect()
}

/// What the workers share: the district stage and one mailbox each.
struct Shared {
    district: Mutex<District>,
    mailboxes: Vec<Mutex<Vec<Forwarded>>>,
}

/// One worker: its partitions' messages through its engine.
fn worker(config: &Arc<Config>, me: usize, mine: &[&Msg], shared: &Shared, start: &Barrier, end: &Barrier) {
    let workers = shared.mailboxes.len();
    let partitions = config.topics.input_partitions;
    let mut engine = Engine::new(config.clone());
    engine.detach_district();
    engine.repartition_through_kafka();
    let (mut out, mut forwarded, mut inputs, mut taken) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut district_out = Vec::new();
    start.wait();
    let mut feed = |engine: &mut Engine, out: &mut Vec<_>| {
        engine.take_forwarded_into(&mut forwarded);
        for f in forwarded.drain(..) {
            let owner = worker_of(f.target_partition(partitions), workers);
            if owner == me {
                engine.process_forwarded(&f, 0, out);
            } else {
                shared.mailboxes[owner].lock().unwrap().push(f);
            }
        }
        engine.take_district_inputs_into(&mut inputs);
        if !inputs.is_empty() {
            shared
                .district
                .lock()
                .unwrap()
                .absorb(&mut inputs, &mut district_out);
            district_out.clear();
        }
        // A sink would take the outputs here.
        out.clear();
    };
    for chunk in mine.chunks(256) {
        for m in chunk {
            let msg = InputMessage {
                topic: m.topic,
                partition: m.partition,
                offset: m.offset,
                key: Some(m.key.as_bytes()),
                payload: &m.payload,
                wall_ms: m.wall_ms,
            };
            engine.process(&msg, &mut out);
            feed(&mut engine, &mut out);
        }
        std::mem::swap(&mut taken, &mut *shared.mailboxes[me].lock().unwrap());
        for f in taken.drain(..) {
            let wall = chunk.last().map_or(0, |m| m.wall_ms);
            engine.process_forwarded(&f, wall, &mut out);
            feed(&mut engine, &mut out);
        }
    }
    // Every worker is done with its input: what is left in the mailbox is all.
    end.wait();
    let last = mine.last().map_or(0, |m| m.wall_ms);
    std::mem::swap(&mut taken, &mut *shared.mailboxes[me].lock().unwrap());
    for f in taken.drain(..) {
        engine.process_forwarded(&f, last, &mut out);
        feed(&mut engine, &mut out);
    }
    std::hint::black_box(engine);
}

/// Events/s of the whole workload through `workers` workers.
fn run(config: &Arc<Config>, msgs: &[Msg], workers: usize) -> f64 {
    let shared = Shared {
        district: Mutex::new(District::new(config, Arc::new(crowdpark::model::Catalog::new(config)))),
        mailboxes: (0..workers).map(|_| Mutex::new(Vec::new())).collect(),
    };
    let (start, end) = (Barrier::new(workers + 1), Barrier::new(workers));
    let by_worker: Vec<Vec<&Msg>> = (0..workers)
        .map(|w| {
            msgs.iter()
                .filter(|m| worker_of(m.partition, workers) == w)
                .collect()
        })
        .collect();
    std::thread::scope(|s| {
        for (w, mine) in by_worker.iter().enumerate() {
            let (shared, start, end) = (&shared, &start, &end);
            s.spawn(move || worker(config, w, mine, shared, start, end));
        }
        start.wait();
        let began = Instant::now();
        // The scope joins every worker before returning.
        began
    })
    .elapsed()
    .as_secs_f64()
    .recip()
        * msgs.len() as f64
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let partitions: i32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(4);
    let mut config = load_str(DEFAULT_CONFIG, Vec::new()).expect("embedded config");
    config.topics.input_partitions = partitions;
    let config = Arc::new(config);
    let msgs = workload(&config);
    if std::env::var("SHOW").is_ok() { distribution(&msgs); return; }
    let share: Vec<usize> = (0..2)
        .map(|w| msgs.iter().filter(|m| worker_of(m.partition, 2) == w).count())
        .collect();
    // Warm caches and the allocator once, unmeasured.
    run(&config, &msgs, 1);
    run(&config, &msgs, 2);
    let (mut one, mut two, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (a, b) = if round % 2 == 0 {
            let a = run(&config, &msgs, 1);
            (a, run(&config, &msgs, 2))
        } else {
            let b = run(&config, &msgs, 2);
            (run(&config, &msgs, 1), b)
        };
        one.push(a);
        two.push(b);
        ratio.push(b / a);
    }
    println!(
        "{} messages over {partitions} partitions (2 workers take {} and {}) x {rounds} rounds; medians: 1 worker {:.0} events/s, 2 workers {:.0} events/s, per-round ratio {:.2} (range {:.2}-{:.2})",
        msgs.len(),
        share[0],
        share[1],
        median(one),
        median(two),
        median(ratio.clone()),
        ratio.iter().copied().fold(f64::INFINITY, f64::min),
        ratio.iter().copied().fold(0.0, f64::max),
    );
}

#[allow(dead_code)]
fn distribution(msgs: &[Msg]) {
    let mut m = std::collections::BTreeMap::new();
    for x in msgs {
        *m.entry((x.partition, format!("{:?}", x.topic))).or_insert(0usize) += 1;
    }
    eprintln!("{m:?}");
}
