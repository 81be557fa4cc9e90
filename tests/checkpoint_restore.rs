//! A checkpoint taken at any point and restored into a fresh engine continues
//! exactly as if the engine had never stopped: same outputs, byte for byte.

use crowdpark::config::{load_str, DEFAULT_CONFIG};
use crowdpark::engine::{Disposition, Engine};
use crowdpark::output::Output;
use crowdpark::sim::{SimMessage, SimOptions, Simulator};
use crowdpark::state::StateRecord;
use std::collections::BTreeMap;
use std::sync::Arc;

fn feed(engine: &mut Engine, msgs: &[SimMessage], first_offset: usize) -> Vec<Output> {
    let mut out = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        engine.process(&m.as_input(3, (first_offset + i) as i64), &mut out);
    }
    out
}

/// What a compacted topic keeps: the latest value per key, tombstones remove.
fn compact(changelog: &mut BTreeMap<String, Vec<u8>>, records: Vec<StateRecord>) {
    for r in records {
        match r.value {
            Some(v) => changelog.insert(r.key, v),
            None => changelog.remove(&r.key),
        };
    }
}

/// An engine restored from `changelog` for every partition `like` has.
fn restored(
    config: &Arc<crowdpark::config::Config>,
    changelog: &BTreeMap<String, Vec<u8>>,
    like: &Engine,
    wall_ms: i64,
) -> Engine {
    let mut e = Engine::new(config.clone());
    e.enable_checkpoints();
    for (topic, p) in like.partitions() {
        e.restore_partition(topic, p, changelog, wall_ms).unwrap();
    }
    e
}

#[test]
fn restored_engine_continues_identically() {
    let config = Arc::new(load_str(DEFAULT_CONFIG, Vec::new()).unwrap());
    let opts = SimOptions {
        bad_ratio: 0.02,
        duplicate_ratio: 0.02,
        ..SimOptions::default()
    };
    let msgs = Simulator::new(&config, opts.clone()).advance_to(opts.start_ms + 45 * 60_000);
    let to_json = |o: &Output| String::from_utf8(o.to_json()).unwrap();
    // The district roll-up and KPI records span partitions and are not part of
    // any partition's checkpoint: a restored engine publishes the roll-up once
    // more on its first change, and a window's KPIs with what it has seen.
    // Everything else must match exactly.
    // Records are compared as sets per topic: each partition's order is fixed,
    // but partitions (and the repartitioned payment stage) close windows at
    // their own pace, so the interleaving may differ.
    let own = |out: Vec<Output>| -> Vec<(crowdpark::output::OutputTopic, String)> {
        let mut r: Vec<_> = out
            .iter()
            .filter(|o| !matches!(o, Output::Group(_) | Output::District(_)))
            .map(|o| (o.topic(), to_json(o)))
            .collect();
        r.sort();
        r
    };

    // Checkpoints at several points, including mid-window and while readings wait
    // for the watermark.
    for split in [msgs.len() / 7, msgs.len() / 3, msgs.len() / 2 + 13] {
        let mut reference = Engine::new(config.clone());
        feed(&mut reference, &msgs[..split], 0);
        let expected = own(feed(&mut reference, &msgs[split..], split));

        let mut first = Engine::new(config.clone());
        first.enable_checkpoints();
        let mut changelog = BTreeMap::new();
        // Checkpoint every 500 messages, as the Kafka runner does on its interval.
        for (n, chunk) in msgs[..split].chunks(500).enumerate() {
            feed(&mut first, chunk, n * 500);
            for (topic, p) in first.partitions() {
                compact(&mut changelog, first.checkpoint_partition(topic, p));
            }
        }
        assert!(
            changelog.keys().any(|k| k.contains("/slot/")),
            "space states are checkpointed"
        );
        assert!(
            changelog.keys().any(|k| k.contains("/ids/")),
            "dedup ids are checkpointed"
        );
        assert!(
            changelog.len() < split,
            "ids go in chunks, not one record each: {} records for {split} messages",
            changelog.len()
        );

        let mut second = restored(&config, &changelog, &first, msgs[split].deliver_ms);
        // Every message already taken is known after the restore: sent again
        // (as after a crash), each is a duplicate or rejected as before, never
        // counted twice.
        let mut replay = restored(&config, &changelog, &first, msgs[split].deliver_ms);
        let mut out = Vec::new();
        let delivered = &msgs[split.saturating_sub(200)..split];
        for (i, m) in delivered.iter().enumerate() {
            let d = replay.process(
                &m.as_input(3, (split - delivered.len() + i) as i64),
                &mut out,
            );
            assert_ne!(
                d,
                Disposition::Accepted,
                "split at {split}: a replayed message was taken again"
            );
        }

        let after = feed(&mut second, &msgs[split..], split);
        let first_group = after.iter().find_map(|o| match o {
            Output::Group(g) => Some(g.total_spot_number),
            _ => None,
        });
        assert_eq!(
            first_group,
            Some(2413),
            "the first roll-up after restore covers every car park"
        );
        let got = own(after);
        if let Some(k) = (0..got.len().min(expected.len())).find(|k| got[*k] != expected[*k]) {
            panic!(
                "split at {split}: record {k} differs:\n got  {:?}\n want {:?}",
                got[k], expected[k]
            );
        }
        assert_eq!(got.len(), expected.len(), "split at {split}");
        assert_eq!(got, expected, "split at {split}");
    }
}
