//! How long a restore of N parking space states takes, through the same code
//! path `crowdpark run` uses on partition assignment: read the changelog
//! partition `read_committed` to its end, then rebuild the partition's state.
//!
//! ```sh
//! scripts/kafka.sh start
//! cargo run --release --example restore_bench -- 1000000 127.0.0.1:9092
//! RESTORE_HISTORY=4 RESTORE_ROUNDS=5 cargo run --release --example restore_bench -- 1000000
//! ```
//!
//! It builds a district of N/10,000 car parks with 10,000 sensed spaces each,
//! reports every space once through the engine in process, writes the resulting
//! checkpoint to a fresh changelog topic, and then times restoring it into a
//! new engine two ways, in paired rounds (`RESTORE_ROUNDS`, 3 by default),
//! alternating which goes first: the changelog read whole, and a local
//! snapshot taken at the changelog's end plus the changelog after it (a
//! restart with a fresh snapshot), through the functions `run` uses
//! (`read_changelog_from`, `SnapshotDir`). Medians and the median paired
//! ratio are reported. `RESTORE_HISTORY=k` writes the checkpoint k times, as
//! a state rewritten between compactions leaves the changelog. It also reports how much resident memory the N space
//! states took.

mod common;
use common::{median, resident_bytes};

use crowdpark::config::{load_str, Config, Detection, Lot, DEFAULT_CONFIG};
use crowdpark::engine::{Engine, InputMessage};
use crowdpark::io::kafka::admin::create_topics;
use crowdpark::io::kafka::changelog::{
    apply, changelog_reader, read_changelog_from, ChangelogReader, ReadTo,
};
use crowdpark::io::kafka::sink::KafkaSink;
use crowdpark::io::kafka::snapshot::SnapshotDir;
use crowdpark::model::InputTopic;
use crowdpark::partitioner::partition_for;
use rdkafka::consumer::BaseConsumer;
use std::collections::BTreeMap;
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
    // History: the same checkpoint written `RESTORE_HISTORY` times, as a
    // state rewritten between two compactions of the changelog leaves it.
    let history: u32 = std::env::var("RESTORE_HISTORY").map_or(Ok(1), |r| r.parse())?;
    let checkpoint: Vec<Vec<_>> = (0..partitions)
        .map(|p| engine.checkpoint_partition(InputTopic::ParkingEvents, p))
        .collect();
    for _ in 0..history {
        for (p, records) in (0..partitions).zip(&checkpoint) {
            for r in records {
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
    }
    sink.flush(Duration::from_secs(120))?;
    println!(
        "changelog: {keys} records, {:.1} MB, {:.0} bytes per record",
        bytes as f64 / 1e6,
        bytes as f64 / keys.max(1) as f64
    );
    drop(engine);

    // Restore, as on assignment: the changelog read whole (as before local
    // snapshots), and a fresh local snapshot plus the changelog after its
    // offset (nothing, here: a restart right after a snapshot). Paired
    // rounds, alternating which goes first.
    let snapshots = SnapshotDir::new(
        std::env::temp_dir().join(format!("restore-bench-{}", std::process::id())),
        &config.topics.state,
        partitions,
    );
    let reader = changelog_reader(&config).map_err(anyhow::Error::msg)?;
    let mut snapshot_bytes = 0;
    for p in 0..partitions {
        let mut records = BTreeMap::new();
        let end = match read_changelog_from(&reader, &config.topics.state, p, None, |k, v| {
            apply(&mut records, k, v)
        })? {
            ReadTo::End(e) => e,
            ReadTo::OutOfRange { .. } => anyhow::bail!("changelog partition {p} out of range"),
        };
        let header = snapshots.header(p, end);
        snapshot_bytes += snapshots.write(
            &header,
            records.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
        )?;
    }
    println!("snapshots: {:.1} MB", snapshot_bytes as f64 / 1e6);
    let rounds: u32 = std::env::var("RESTORE_ROUNDS").map_or(Ok(3), |r| r.parse())?;
    let (mut whole, mut snap, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let mut pair = [0.0; 2];
        let order = if round % 2 == 1 {
            [false, true]
        } else {
            [true, false]
        };
        for from_snapshot in order {
            let (total, read_s) = restore(&config, &reader, &snapshots, from_snapshot)?;
            println!(
                "round {round}, {}: restored {spaces} spaces in {total:.2} s (reading {read_s:.2} s, rebuilding {:.2} s)",
                if from_snapshot { "snapshot + tail" } else { "changelog whole" },
                total - read_s
            );
            pair[usize::from(from_snapshot)] = total;
        }
        whole.push(pair[0]);
        snap.push(pair[1]);
        ratios.push(pair[1] / pair[0]);
    }
    let _ = std::fs::remove_dir_all(snapshots.path(0).parent().expect("a directory"));
    println!(
        "median restore: changelog whole {:.2} s, snapshot + tail {:.2} s, paired ratio {:.2} ({rounds} rounds; {} space states, changelog {:.0} MB)",
        median(whole),
        median(snap),
        median(ratios),
        spaces,
        bytes as f64 / 1e6
    );
    Ok(())
}

/// One restore of every partition into a fresh engine: total seconds and
/// the seconds spent reading (changelog, or snapshot and tail).
fn restore(
    config: &Arc<Config>,
    reader: &BaseConsumer<ChangelogReader>,
    snapshots: &SnapshotDir,
    from_snapshot: bool,
) -> anyhow::Result<(f64, f64)> {
    let mut fresh = Engine::new(config.clone());
    fresh.enable_checkpoints();
    let started = Instant::now();
    let mut read_s = 0.0;
    for p in 0..config.topics.input_partitions {
        let t = Instant::now();
        let (mut records, from) = match from_snapshot {
            true => {
                let s = snapshots.read(p)?.expect("a snapshot was written");
                (s.records, Some(s.header.offset))
            }
            false => (BTreeMap::new(), None),
        };
        read_changelog_from(reader, &config.topics.state, p, from, |k, v| {
            apply(&mut records, k, v)
        })?;
        read_s += t.elapsed().as_secs_f64();
        fresh
            .restore_partition(InputTopic::ParkingEvents, p, &records, T0)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok((started.elapsed().as_secs_f64(), read_s))
}
