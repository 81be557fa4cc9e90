//! Resident memory per crowd zone (issue 6), in process, no broker needed:
//!
//! ```sh
//! cargo run --release --example zone_memory -- [zones (100000)]
//! ```
//!
//! Adds `zones` zones to the model district's configuration, then feeds each
//! ten minutes of traffic (a camera headcount and a counting-line report every
//! 30 s) so that every part of a zone's state is in use: its sources, the
//! trend's samples, the open density windows, its level. Reports what the
//! configuration and catalogue cost per zone, and what the state adds. The
//! messages carry no `event_id`, so no dedup memory is in the figure (that grows
//! with the event rate, not with the zones: see `restore_bench`).

mod common;
use common::resident_bytes;

use crowdpark::config::{load_str, DEFAULT_CONFIG};
use crowdpark::engine::{Engine, InputMessage};
use crowdpark::model::InputTopic;
use crowdpark::partitioner::partition_for;
use std::sync::Arc;
use std::time::Instant;

use crowdpark::testing::T0;

fn main() -> anyhow::Result<()> {
    let zones: usize = std::env::args().nth(1).map_or(Ok(100_000), |a| a.parse())?;
    let rss_start = resident_bytes();
    let mut config = load_str(DEFAULT_CONFIG, Vec::new())?;
    let template = config.zones[0].clone();
    let first_new = config.zones.len();
    for i in 0..zones {
        let mut z = template.clone();
        z.id = format!("bench-zone-{i:06}");
        z.name = format!("Bench zone {i}");
        config.zones.push(z);
    }
    let config = Arc::new(config);
    let mut engine = Engine::new(config.clone());
    engine.enable_checkpoints();
    let rss_configured = resident_bytes();
    let partitions = config.topics.input_partitions;

    let started = Instant::now();
    let mut offsets = vec![0i64; partitions as usize];
    let mut out = Vec::new();
    let mut sent = 0u64;
    // Time-major, as the streams would interleave the zones.
    for step in 0..20i64 {
        let ts = T0 + step * 30_000;
        for (i, z) in config.zones[first_new..].iter().enumerate() {
            let p = partition_for(z.id.as_bytes(), partitions);
            let people = 200 + (i as i64 * 7 + step * 13) % 400;
            let headcount = format!(
                r#"{{"zone":"{}","ts":{ts},"source":"cam-1","people":{people}}}"#,
                z.id
            );
            let line = format!(
                r#"{{"zone":"{}","ts":{},"source":"gate-1","entered":{},"exited":{}}}"#,
                z.id,
                ts + 1,
                12 + step % 5,
                9 + step % 3
            );
            for payload in [headcount, line] {
                out.clear();
                engine.process(
                    &InputMessage {
                        topic: InputTopic::CrowdCounts,
                        partition: p,
                        offset: offsets[p as usize],
                        key: Some(z.id.as_bytes()),
                        payload: payload.as_bytes(),
                        wall_ms: ts + 1,
                    },
                    &mut out,
                );
                offsets[p as usize] += 1;
                sent += 1;
            }
        }
    }
    let statuses = engine.zone_statuses().len();
    anyhow::ensure!(
        statuses >= zones,
        "only {statuses} of {zones} zones have state"
    );
    let rss_fed = resident_bytes();
    println!(
        "{sent} crowd messages for {zones} zones in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let per = |bytes: u64| bytes as f64 / zones as f64;
    println!(
        "configuration and catalogue: {:.0} bytes per zone; zone state: {:.0} bytes per zone \
         (resident {:.1} MB at start, {:.1} MB configured, {:.1} MB fed)",
        per(rss_configured.saturating_sub(rss_start)),
        per(rss_fed.saturating_sub(rss_configured)),
        rss_start as f64 / 1e6,
        rss_configured as f64 / 1e6,
        rss_fed as f64 / 1e6,
    );
    Ok(())
}
