//! Payments through batched repartition records give the same statistics as
//! payments routed in process, and a bad line in a batch is dead-lettered alone
//! while the rest of its batch counts.

use crowdpark::config::{load_str, DEFAULT_CONFIG};
use crowdpark::engine::{Disposition, Engine, InputMessage};
use crowdpark::io::kafka::repartition::RepartitionBatches;
use crowdpark::model::{InputTopic, RejectReason};
use crowdpark::output::Output;
use crowdpark::sim::{SimOptions, Simulator};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Feeds the batches due to `engine` as the repartition topic would deliver
/// them, one message per batch, and tallies the dispositions of their lines.
fn deliver(
    engine: &mut Engine,
    batches: Vec<(i32, Vec<u8>)>,
    offsets: &mut BTreeMap<i32, i64>,
    wall_ms: i64,
    out: &mut Vec<Output>,
    tally: &mut BTreeMap<&'static str, u64>,
) {
    for (p, payload) in batches {
        let offset = offsets.entry(p).or_insert(0);
        let msg = InputMessage {
            topic: InputTopic::PaymentsByZone,
            partition: p,
            offset: *offset,
            key: None,
            payload: &payload,
            wall_ms,
        };
        *offset += 1;
        engine.process_each(&msg, out, |d| {
            let k = match d {
                Disposition::Accepted => "accepted",
                Disposition::Duplicate => "duplicate",
                Disposition::Rejected(_) => "rejected",
            };
            *tally.entry(k).or_default() += 1;
        });
    }
}

/// The runner's publish: takes the re-keyed payments the engine made into
/// their batches; returns the batches that filled, and counts the payments
/// (not heartbeats) in `forwarded`.
fn batch_forwarded(
    engine: &mut Engine,
    batches: &mut RepartitionBatches,
    forwarded: &mut u64,
) -> Vec<(i32, Vec<u8>)> {
    let (mut full, mut made) = (Vec::new(), Vec::new());
    engine.take_forwarded_into(&mut made);
    for f in &made {
        *forwarded += u64::from(f.record.txn_id.is_some());
        full.extend(batches.add(f));
    }
    full
}

fn payments_stats(out: &[Output]) -> Vec<String> {
    let mut v: Vec<String> = out
        .iter()
        .filter(|o| matches!(o, Output::Payments(_)))
        .map(|o| String::from_utf8(o.to_json()).unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn batched_repartition_matches_in_process_routing() {
    let config = Arc::new(load_str(DEFAULT_CONFIG, Vec::new()).unwrap());
    let partitions = config.topics.input_partitions;
    let opts = SimOptions {
        bad_ratio: 0.0,
        duplicate_ratio: 0.0,
        intensity: 8.0,
        ..SimOptions::default()
    };
    let mut inline = Engine::new(config.clone());
    let mut batched = Engine::new(config.clone());
    batched.repartition_through_kafka();
    let mut batches = RepartitionBatches::new(partitions);
    let mut sim = Simulator::new(&config, opts.clone());
    let (mut out_inline, mut out_batched) = (Vec::new(), Vec::new());
    let mut repartition_offsets = BTreeMap::new();
    let mut tally = BTreeMap::new();
    let mut forwarded = 0u64;
    let mut input_offset = 0;
    let mut end = 0;
    let seconds = 20 * 60;
    for second in 1..=seconds {
        let now = opts.start_ms + second * 1000;
        end = now;
        for m in sim.advance_to(now) {
            if m.topic != InputTopic::Payments {
                continue;
            }
            input_offset += 1;
            let msg = m.as_input(partitions, input_offset);
            inline.process(&msg, &mut out_inline);
            batched.process(&msg, &mut out_batched);
            let full = batch_forwarded(&mut batched, &mut batches, &mut forwarded);
            deliver(
                &mut batched,
                full,
                &mut repartition_offsets,
                now,
                &mut out_batched,
                &mut tally,
            );
        }
        inline.tick(now, &mut out_inline);
        batched.tick(now, &mut out_batched);
        let mut pending = batch_forwarded(&mut batched, &mut batches, &mut forwarded);
        // The runner sends what is pending on every tick.
        pending.extend(batches.drain());
        deliver(
            &mut batched,
            pending,
            &mut repartition_offsets,
            now,
            &mut out_batched,
            &mut tally,
        );
    }
    let close = end + 3_600_000;
    inline.advance_all(close, &mut out_inline);
    batched.advance_all(close, &mut out_batched);

    assert!(forwarded > 1_000, "{forwarded} payments forwarded");
    // Below a full batch per tick, a partition gets one record per tick
    // however many payments (and heartbeats) it is sent.
    let records: i64 = repartition_offsets.values().sum();
    assert!(
        records <= seconds * i64::from(partitions) && (records as u64) < forwarded / 2,
        "{records} repartition records for {forwarded} payments in {seconds} ticks"
    );
    // Heartbeats are lines too; every payment line was accepted once.
    assert!(tally["accepted"] >= forwarded, "{tally:?}");
    assert_eq!(tally.get("rejected"), None, "{tally:?}");
    let (a, b) = (payments_stats(&out_inline), payments_stats(&out_batched));
    assert!(a.len() > 10, "{} payment windows", a.len());
    assert_eq!(a, b);
}

/// Processes one message of the repartition topic's partition 0.
fn repartition_message(
    engine: &mut Engine,
    offset: i64,
    payload: &[u8],
) -> (Vec<Disposition>, Vec<Output>) {
    let (mut got, mut out) = (Vec::new(), Vec::new());
    let msg = InputMessage {
        topic: InputTopic::PaymentsByZone,
        partition: 0,
        offset,
        key: None,
        payload,
        wall_ms: 1_790_834_580_000,
    };
    engine.process_each(&msg, &mut out, |d| got.push(d));
    (got, out)
}

#[test]
fn a_bad_line_is_dead_lettered_alone_and_a_replayed_line_is_a_duplicate() {
    let config = Arc::new(load_str(DEFAULT_CONFIG, Vec::new()).unwrap());
    let mut engine = Engine::new(config.clone());
    engine.repartition_through_kafka();
    let zone = &config.zones[0].id;
    let category = &config.merchants[0].category;
    let line = |txn: &str| {
        format!(
            r#"{{"txn_id":"{txn}","ts":1790834580000,"zone":"{zone}","category":"{category}","amount_fen":1250,"upstream":0,"wm":1790834579000}}"#
        )
    };
    let payload = [
        line("a"),
        r#"{"txn_id":"b","ts":"not a time"}"#.to_string(),
        line("c"),
        line("a"),
    ]
    .join("\n");
    let (got, out) = repartition_message(&mut engine, 41, payload.as_bytes());
    assert_eq!(
        got,
        [
            Disposition::Accepted,
            Disposition::Rejected(RejectReason::InvalidField),
            Disposition::Accepted,
            Disposition::Duplicate,
        ]
    );
    let dead: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::DeadLetter(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].offset, 41);
    assert_eq!(dead[0].payload, r#"{"txn_id":"b","ts":"not a time"}"#);
    assert_eq!(engine.next_offset(InputTopic::PaymentsByZone, 0), Some(42));

    // A message with no line at all is not dropped: it is dead-lettered whole.
    let (got, out) = repartition_message(&mut engine, 42, b"\n");
    assert_eq!(got.len(), 1);
    assert!(matches!(got[0], Disposition::Rejected(_)));
    assert!(matches!(out[..], [Output::DeadLetter(_)]));
}
