//! In-process scaling of partition-parallel workers (issue 18), no broker:
//!
//! ```sh
//! cargo run --release --example worker_scaling -- [rounds (10)] [partitions (3)] [simulated minutes (120)]
//! ```
//!
//! The simulator's messages are generated and partitioned before timing. Each
//! round runs them through 1 worker and through 2 (alternating which goes
//! first) as `crowdpark run` schedules its workers: every input partition a
//! slot with its own engine, claimed by one worker at a time for a batch of
//! 256 messages; payments re-keyed to a partition of the repartition topic
//! wait in that partition's inbox (the topic's place) for its slot. The
//! district partials (a few per closed window) are taken and dropped: the
//! district's task is one more slot with little to do. Reported: events/s
//! of each and the median of the per-round ratios.

mod common;
use common::median;

use crowdpark::config::{load_str, Config, DEFAULT_CONFIG};
use crowdpark::engine::{Engine, InputMessage};
use crowdpark::model::{Catalog, InputTopic};
use crowdpark::output::Forwarded;
use crowdpark::sim::{SimOptions, Simulator};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
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

fn workload(config: &Config, minutes: i64) -> Vec<Msg> {
    let opts = SimOptions {
        intensity: 4.0,
        ..SimOptions::default()
    };
    let msgs = Simulator::new(config, opts.clone()).advance_to(opts.start_ms + minutes * 60_000);
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

/// One input partition as `crowdpark run` holds it: its engine and its
/// messages, claimed by one worker at a time.
struct Slot<'m> {
    engine: Engine,
    input: &'m [&'m Msg],
    next: usize,
    /// Slots of the repartition topic take forwarded payments from here.
    inbox: Option<usize>,
}

/// What the workers share: the slots, one inbox per
/// partition of the repartition topic, and how much work is left.
struct Shared<'m> {
    slots: Vec<Mutex<Slot<'m>>>,
    inboxes: Vec<Mutex<Vec<Forwarded>>>,
    /// Input messages not yet processed plus forwarded records not yet taken.
    left: AtomicUsize,
}

const BATCH: usize = 256;

/// Claims slots with work until none is left anywhere.
fn worker(config: &Config, me: usize, shared: &Shared, start: &Barrier) {
    let partitions = config.topics.input_partitions;
    let (mut out, mut forwarded, mut partials, mut taken) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut outbox: Vec<Vec<Forwarded>> = vec![Vec::new(); partitions as usize];
    let mut next = me;
    start.wait();
    while shared.left.load(Ordering::Acquire) > 0 {
        let n = shared.slots.len();
        for i in 0..n {
            let k = (next + i) % n;
            let Ok(mut slot) = shared.slots[k].try_lock() else {
                continue;
            };
            let slot = &mut *slot;
            let mut done = 0;
            if let Some(ix) = slot.inbox {
                std::mem::swap(&mut taken, &mut *shared.inboxes[ix].lock().unwrap());
            }
            let wall = slot.input.get(slot.next).map_or(0, |m| m.wall_ms);
            for f in taken.drain(..) {
                slot.engine.process_forwarded(&f, wall, &mut out);
                done += 1;
            }
            while done < BATCH && slot.next < slot.input.len() {
                let m = slot.input[slot.next];
                slot.next += 1;
                let msg = InputMessage {
                    topic: m.topic,
                    partition: m.partition,
                    offset: m.offset,
                    key: Some(m.key.as_bytes()),
                    payload: &m.payload,
                    wall_ms: m.wall_ms,
                };
                slot.engine.process(&msg, &mut out);
                // What a sink would do with the outputs.
                slot.engine.take_forwarded_into(&mut forwarded);
                for f in forwarded.drain(..) {
                    let p = f.target_partition(partitions) as usize;
                    outbox[p].push(f);
                }
                slot.engine.take_partials_into(&mut partials);
                out.clear();
                done += 1;
            }
            // Handed over once per batch, as the runner sends its batches.
            for (p, records) in outbox.iter_mut().enumerate() {
                if !records.is_empty() {
                    shared.left.fetch_add(records.len(), Ordering::AcqRel);
                    shared.inboxes[p].lock().unwrap().append(records);
                }
            }
            if done > 0 {
                shared.left.fetch_sub(done, Ordering::AcqRel);
                next = k + 1;
                break;
            }
        }
    }
}

/// Events/s of the whole workload through `workers` workers.
fn run(config: &Arc<Config>, msgs: &[Msg], workers: usize) -> f64 {
    let catalog = Arc::new(Catalog::new(config));
    let mut keys: BTreeMap<(InputTopic, i32), Vec<&Msg>> = BTreeMap::new();
    for m in msgs {
        keys.entry((m.topic, m.partition)).or_default().push(m);
    }
    for p in 0..config.topics.input_partitions {
        keys.entry((InputTopic::PaymentsByZone, p)).or_default();
    }
    let slots = keys
        .iter()
        .map(|((topic, p), input)| {
            let mut engine = Engine::with_catalog(config.clone(), catalog.clone());
            engine.repartition_through_kafka();
            Mutex::new(Slot {
                engine,
                input,
                next: 0,
                inbox: (*topic == InputTopic::PaymentsByZone).then_some(*p as usize),
            })
        })
        .collect();
    let shared = Shared {
        slots,
        inboxes: (0..config.topics.input_partitions)
            .map(|_| Mutex::new(Vec::new()))
            .collect(),
        left: AtomicUsize::new(msgs.len()),
    };
    let start = Barrier::new(workers + 1);
    let elapsed = std::thread::scope(|s| {
        for w in 0..workers {
            let (shared, start) = (&shared, &start);
            s.spawn(move || worker(config, w, shared, start));
        }
        start.wait();
        // The scope joins every worker before returning.
        Instant::now()
    })
    .elapsed();
    msgs.len() as f64 / elapsed.as_secs_f64()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let partitions: i32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let minutes: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(120);
    let mut config = load_str(DEFAULT_CONFIG, Vec::new()).expect("embedded config");
    config.topics.input_partitions = partitions;
    let config = Arc::new(config);
    let msgs = workload(&config, minutes);
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
        "{} messages over {partitions} partitions x {rounds} rounds; medians: 1 worker {:.0} events/s, 2 workers {:.0} events/s, per-round ratio {:.2} (range {:.2}-{:.2})",
        msgs.len(),
        median(one),
        median(two),
        median(ratio.clone()),
        ratio.iter().copied().fold(f64::INFINITY, f64::min),
        ratio.iter().copied().fold(0.0, f64::max),
    );
}
