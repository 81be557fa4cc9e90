//! How long a restore of N parking space states takes, through the same code
//! path `crowdpark run` uses on partition assignment: read the changelog
//! partition `read_committed` to its end, then rebuild the partition's state.
//!
//! ```sh
//! scripts/kafka.sh start
//! cargo run --release --example restore_bench -- 1000000 127.0.0.1:9092
//! ```
//!
//! It builds a district of N/10,000 car parks with 10,000 sensed spaces each,
//! reports every space once through the engine in process, writes the resulting
//! checkpoint to a fresh changelog topic, and then times reading it back and
//! restoring it into a new engine, three rounds (median reported). It also
//! reports how much resident memory the N space states took.

mod common;
use common::{median, resident_bytes};

use crowdpark::config::{load_str, Config, Detection, Lot, DEFAULT_CONFIG};
use crowdpark::engine::{Engine, InputMessage};
use crowdpark::io::kafka::admin::create_topics;
use crowdpark::io::kafka::changelog::{changelog_reader, read_changelog};
use crowdpark::io::kafka::sink::KafkaSink;
use crowdpark::model::InputTopic;
use crowdpark::partitioner::partition_for;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SPACES_PER_LOT: u32 = 10_000;
use crowdpark::testing::T0;

fn district(spaces: u32, brokers: &str) -> Config {
    let mut c = load_str(DEFAULT_CONFIG, Vec::new()).expect("embedded config");
    let lots = spaces.div_ceil(SPACES_PER_LOT);
    c.lots = (0..lots)
        .map(|i| Lot {
            id: format!("bench-{i:04}"),
            name: format!("bench car park {i}"),
            spaces: SPACES_PER_LOT,
            detection: Detection::SingleSpace,
            opening_hours: "24h".into(),
            lat: None,
            lon: None,
            district: None,
        })
        .collect();
    let run = std::process::id();
    c.topics.state = format!("restore-bench-{run}.state");
    c.topics.crowd_counts = format!("restore-bench-{run}.crowd.counts");
    c.topics.parking_events = format!("restore-bench-{run}.parking.events");
    c.topics.payments = format!("restore-bench-{run}.payments");
    c.topics.payments_by_zone = format!("restore-bench-{run}.payments-by-zone");
    c.kafka.brokers = brokers.to_string();
    c.kafka.group_id = format!("restore-bench-{run}");
    c
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let spaces: u32 = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let brokers = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let config = Arc::new(district(spaces, &brokers));
    let partitions = config.topics.input_partitions;

    // Every space reported occupied once, in process.
    let rss_before = resident_bytes();
    let started = Instant::now();
    let mut engine = Engine::new(config.clone());
    engine.enable_checkpoints();
    let mut offsets = vec![0i64; partitions as usize];
    let mut out = Vec::new();
    for lot in &config.lots {
        let p = partition_for(lot.id.as_bytes(), partitions);
        for s in 0..lot.spaces {
            let payload = format!(
                r#"{{"lot":"{}","ts":{},"slot":"S{s:05}","state":"occupied","event_id":"{}-{s}"}}"#,
                lot.id,
                T0 + i64::from(s),
                lot.id
            );
            out.clear();
            engine.process(
                &InputMessage {
                    topic: InputTopic::ParkingEvents,
                    partition: p,
                    offset: offsets[p as usize],
                    key: Some(lot.id.as_bytes()),
                    payload: payload.as_bytes(),
                    wall_ms: T0 + i64::from(s),
                },
                &mut out,
            );
            offsets[p as usize] += 1;
        }
    }
    println!(
        "processed {} space events in {:.1} s",
        offsets.iter().sum::<i64>(),
        started.elapsed().as_secs_f64()
    );
    let grown = resident_bytes().saturating_sub(rss_before);
    println!(
        "resident memory grew {:.1} MB: {:.0} bytes per space state (dedup ids for the \
         same events included)",
        grown as f64 / 1e6,
        grown as f64 / f64::from(spaces)
    );

    // The checkpoint, written to a fresh changelog.
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(create_topics(&config))?;
    let sink = KafkaSink::new(&config, None)?;
    let (mut keys, mut bytes) = (0usize, 0usize);
    for p in 0..partitions {
        for r in engine.checkpoint_partition(InputTopic::ParkingEvents, p) {
            keys += 1;
            bytes += r.key.len() + r.value.as_ref().map_or(0, Vec::len);
            sink.send(
                &config.topics.state,
                Some(p),
                Some(r.key.as_bytes()),
                r.value.as_deref(),
            )?;
        }
    }
    sink.flush(Duration::from_secs(120))?;
    println!(
        "changelog: {keys} records, {:.1} MB, {:.0} bytes per record",
        bytes as f64 / 1e6,
        bytes as f64 / keys.max(1) as f64
    );
    drop(engine);

    // Restore, as on assignment, three rounds.
    let mut rounds = Vec::new();
    for round in 1..=3 {
        let reader = changelog_reader(&config).map_err(anyhow::Error::msg)?;
        let mut fresh = Engine::new(config.clone());
        fresh.enable_checkpoints();
        let started = Instant::now();
        let mut read_s = 0.0;
        for p in 0..partitions {
            let t = Instant::now();
            let records =
                read_changelog(&reader, &config.topics.state, p).map_err(anyhow::Error::msg)?;
            read_s += t.elapsed().as_secs_f64();
            fresh
                .restore_partition(InputTopic::ParkingEvents, p, &records, T0)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        let total = started.elapsed().as_secs_f64();
        println!(
            "round {round}: restored {spaces} spaces in {total:.2} s \
             (reading {read_s:.2} s, rebuilding {:.2} s)",
            total - read_s
        );
        rounds.push(total);
    }
    let median_s = median(rounds);
    println!(
        "median restore: {median_s:.2} s for {spaces} space states ({:.0} states/s)",
        f64::from(spaces) / median_s
    );
    Ok(())
}
