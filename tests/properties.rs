//! Properties of the engine that must hold for any input: exact level changes with
//! hysteresis and dwell, order-independence within the out-of-orderness, late and
//! duplicate events without effect, exact money, car parks within capacity.

use crowdpark::crowd::Level;
use crowdpark::engine::Disposition;
use crowdpark::model::{format_fen, InputTopic, RejectReason};
use crowdpark::output::{AlertKind, Output};
use crowdpark::testing::{config_with as config, TestDriver, T0};
use proptest::prelude::*;

/// A message for partition 0 at wall time = its event time.
struct Msg {
    topic: InputTopic,
    ts: i64,
    payload: String,
}

fn crowd(zone: &str, source: &str, ts: i64, people: u32) -> Msg {
    Msg {
        topic: InputTopic::CrowdCounts,
        ts,
        payload: format!(
            r#"{{"zone":"{zone}","ts":{ts},"source":"{source}","people":{people},"event_id":"{zone}-{source}-{ts}"}}"#
        ),
    }
}

fn payment(id: &str, ts: i64, merchant: &str, amount: &str) -> Msg {
    Msg {
        topic: InputTopic::Payments,
        ts,
        payload: format!(
            r#"{{"txn_id":"{id}","ts":{ts},"merchant":"{merchant}","amount":"{amount}","currency":"CNY"}}"#
        ),
    }
}

fn space(lot: &str, slot: &str, ts: i64, occupied: bool) -> Msg {
    let state = if occupied { "occupied" } else { "vacant" };
    Msg {
        topic: InputTopic::ParkingEvents,
        ts,
        payload: format!(r#"{{"lot":"{lot}","ts":{ts},"slot":"{slot}","state":"{state}"}}"#),
    }
}

fn gate(lot: &str, ts: i64, entry: bool, count: u32, id: usize) -> Msg {
    let gate = if entry { "entry" } else { "exit" };
    Msg {
        topic: InputTopic::ParkingEvents,
        ts,
        payload: format!(
            r#"{{"lot":"{lot}","ts":{ts},"gate":"{gate}","count":{count},"event_id":"g{id}"}}"#
        ),
    }
}

/// Feeds messages in the given order, each on partition 0 and received at
/// its event time; returns outputs and dispositions.
fn feed(driver: &mut TestDriver, msgs: &[Msg], close_all: bool) -> (Vec<Output>, Vec<Disposition>) {
    let mut ds = Vec::new();
    for m in msgs {
        driver.set_now(m.ts);
        ds.push(driver.send_to(m.topic, 0, None, m.payload.as_bytes()));
    }
    if close_all {
        driver.advance_watermark(i64::MAX / 2);
    }
    (driver.take(), ds)
}

fn level_changes(out: &[Output]) -> Vec<(i64, Level, Level)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Alert(a) if a.kind == AlertKind::Level => {
                Some((a.ts_ms - T0, a.previous, a.level))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn zone_through_thresholds_gives_exactly_the_expected_changes() {
    // No smoothing, so the script's densities are the densities judged.
    let mut driver = TestDriver::with_config(config(&[("CROWD__EWMA_HALF_LIFE", "1ms")]));
    // lakeside-promenade: 400 m², yellow 2.0, red 3.5, leave below 0.85×, dwell 120 s.
    let script: &[(i64, f64)] = &[
        (0, 1.0),
        (10, 2.05), // up to yellow at once
        (20, 1.95), // inside the band: stay
        (30, 1.69), // below 1.7 but only 20 s in yellow: stay
        (40, 1.99),
        (50, 2.01),
        (60, 1.99),
        (70, 2.01), // hovering at the threshold: no flapping
        (130, 1.6), // 120 s in yellow and below the band: green
        (140, 2.0), // yellow
        (150, 3.6), // red
        (160, 3.0), // 3.0 ≥ 2.975: stay red
        (170, 2.9), // below the band, too soon: stay
        (280, 2.9), // 130 s in red: down to yellow (2.9 ≥ 1.7)
        (290, 3.5), // red again
        (420, 1.0), // 130 s in red, far below: straight to green
        (430, 1.9),
    ];
    let msgs: Vec<Msg> = script
        .iter()
        .map(|(s, d)| {
            crowd(
                "lakeside-promenade",
                "cam-1",
                T0 + s * 1000,
                (d * 400.0).round() as u32,
            )
        })
        .collect();
    let (out, _) = feed(&mut driver, &msgs, true);
    use Level::*;
    assert_eq!(
        level_changes(&out),
        vec![
            (10_000, Green, Yellow),
            (130_000, Yellow, Green),
            (140_000, Green, Yellow),
            (150_000, Yellow, Red),
            (280_000, Red, Yellow),
            (290_000, Yellow, Red),
            (420_000, Red, Green),
        ]
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// For any density walk: ups are justified, downs respect the band and the
    /// dwell, and the changes chain (each starts where the previous ended).
    #[test]
    fn level_changes_obey_hysteresis_and_dwell(steps in prop::collection::vec((1i64..60, 0u32..2000), 1..120)) {
        let mut driver = TestDriver::with_config(config(&[("CROWD__EWMA_HALF_LIFE", "1ms")]));
        let mut ts = T0;
        let mut msgs = Vec::new();
        let mut density_at = std::collections::HashMap::new();
        for (dt, people) in steps {
            ts += dt * 1000;
            msgs.push(crowd("lakeside-promenade", "cam-1", ts, people));
            density_at.insert(ts - T0, people as f64 / 400.0);
        }
        let (out, _) = feed(&mut driver, &msgs, true);
        let changes = level_changes(&out);
        let mut level = Level::Green;
        let mut since = 0i64;
        for (t, prev, next) in changes {
            prop_assert_eq!(prev, level);
            let d = density_at[&t];
            let threshold = |l: Level| match l { Level::Green => 0.0, Level::Yellow => 2.0, Level::Red => 3.5 };
            if next > prev {
                prop_assert!(d >= threshold(next), "up to {next} at {d}");
            } else {
                prop_assert!(d < 0.85 * threshold(prev), "down from {prev} at {d}");
                prop_assert!(t - since >= 120_000, "down after only {} ms", t - since);
            }
            level = next;
            since = t;
        }
    }

    /// Any delivery order within the out-of-orderness gives the same alerts,
    /// density windows and payment windows as event-time order.
    #[test]
    fn disorder_within_bounds_changes_no_result(seed in any::<u64>(), n in 50usize..400) {
        let mut rng = crowdpark::sim::Rng::new(seed);
        let zones = ["lakeside-promenade", "east-pier-queue", "in77-atrium"];
        let merchants = ["m-1001", "m-1009", "m-1012", "m-1030"];
        let mut msgs = Vec::new();
        let mut ts = T0;
        for i in 0..n {
            // Strictly increasing times: equal (zone, camera, time) would be the
            // same event id, a genuine duplicate.
            ts += rng.range(1, 4_000) as i64;
            if rng.chance(0.5) {
                let z = zones[rng.range(0, 3) as usize];
                msgs.push(crowd(z, &format!("cam-{}", rng.range(0, 3)), ts, rng.range(0, 1800) as u32));
            } else {
                let m = merchants[rng.range(0, 4) as usize];
                let fen = rng.range(1, 100_000) as i64 * if rng.chance(0.1) { -1 } else { 1 };
                msgs.push(payment(&format!("t{i}"), ts, m, &format_fen(fen)));
            }
        }
        // Delivery = event time + a delay below the 5 s out-of-orderness.
        let mut delivered: Vec<(i64, usize)> = msgs.iter().enumerate().map(|(i, m)| (m.ts + rng.range(0, 4_999) as i64, i)).collect();
        delivered.sort();
        let shuffled: Vec<Msg> = delivered.iter().map(|(_, i)| Msg { topic: msgs[*i].topic, ts: msgs[*i].ts, payload: msgs[*i].payload.clone() }).collect();

        let cfg = config(&[]);
        let (ordered_out, _) = feed(&mut TestDriver::with_config(cfg.clone()), &msgs, true);
        let (shuffled_out, ds) = feed(&mut TestDriver::with_config(cfg), &shuffled, true);
        for (d, m) in ds.iter().zip(shuffled.iter()) {
            prop_assert_eq!(*d, Disposition::Accepted, "{}", m.payload);
        }
        // The same records per output topic: each partition's records come in a
        // fixed order, but partitions (and the repartitioned payment stage)
        // interleave as arrival dictates, as they would in Kafka.
        let results = |out: &[Output]| -> Vec<(crowdpark::output::OutputTopic, String)> {
            let mut r: Vec<_> = out.iter()
                .filter(|o| matches!(o, Output::Alert(_) | Output::Density(_) | Output::Payments(_)))
                .map(|o| (o.topic(), String::from_utf8(o.to_json()).unwrap()))
                .collect();
            r.sort();
            r
        };
        let (a, b) = (results(&ordered_out), results(&shuffled_out));
        prop_assert!(!a.is_empty());
        prop_assert_eq!(a, b);
    }

    /// Duplicates and late events are counted and dead-lettered (late) but change
    /// no result.
    #[test]
    fn late_and_duplicate_events_change_nothing(seed in any::<u64>()) {
        let mut rng = crowdpark::sim::Rng::new(seed);
        let mut msgs = Vec::new();
        let mut ts = T0;
        for i in 0..200 {
            ts += rng.range(100, 3_000) as i64;
            msgs.push(match i % 3 {
                0 => crowd("lakeside-promenade", "cam-1", ts, rng.range(0, 1800) as u32),
                1 => payment(&format!("t{i}"), ts, "m-1001", &format_fen(rng.range(1, 50_000) as i64)),
                _ => gate("p02-in77-d", ts, rng.chance(0.6), 1 + rng.range(0, 3) as u32, i),
            });
        }
        let mut noisy = Vec::new();
        let (mut dups, mut lates) = (0, 0);
        for (i, m) in msgs.iter().enumerate() {
            noisy.push(Msg { topic: m.topic, ts: m.ts, payload: m.payload.clone() });
            if i > 20 && rng.chance(0.1) {
                // A redelivery of an earlier message with an id.
                let j = i - rng.range(1, 10) as usize;
                if msgs[j].payload.contains("_id\"") {
                    noisy.push(Msg { topic: msgs[j].topic, ts: m.ts, payload: msgs[j].payload.clone() });
                    dups += 1;
                }
            }
            if i > 50 && rng.chance(0.05) {
                // An event from ten minutes ago: its windows are final.
                let old = m.ts - 600_000;
                noisy.push(match m.topic {
                    InputTopic::CrowdCounts => crowd("lakeside-promenade", "cam-9", old, 5000),
                    InputTopic::ParkingEvents => gate("p02-in77-d", old, true, 100, 10_000 + i),
                    _ => payment(&format!("late{i}"), old, "m-1001", "9999.99"),
                });
                lates += 1;
            }
        }
        let cfg = config(&[]);
        let (clean, _) = feed(&mut TestDriver::with_config(cfg.clone()), &msgs, true);
        let (dirty, ds) = feed(&mut TestDriver::with_config(cfg), &noisy, true);
        let effective: Vec<&Output> = dirty.iter().filter(|o| !matches!(o, Output::DeadLetter(_))).collect();
        let clean_refs: Vec<&Output> = clean.iter().collect();
        prop_assert_eq!(effective, clean_refs);
        prop_assert_eq!(ds.iter().filter(|d| **d == Disposition::Duplicate).count(), dups);
        prop_assert_eq!(ds.iter().filter(|d| **d == Disposition::Rejected(RejectReason::Late)).count(), lates);
        let dead: Vec<_> = dirty.iter().filter_map(|o| match o { Output::DeadLetter(d) => Some(d), _ => None }).collect();
        prop_assert_eq!(dead.len(), lates);
        prop_assert!(dead.iter().all(|d| d.reason == RejectReason::Late && d.error.contains("watermark")));
    }

    /// Window sums equal the exact sum of the decimal amounts.
    #[test]
    fn money_sums_are_exact(amounts in prop::collection::vec((0u64..100_000_000, 0u8..3, any::<bool>()), 1..200)) {
        let mut msgs = Vec::new();
        let mut expected_fen: i64 = 0;
        for (i, (raw, decimals, refund)) in amounts.iter().enumerate() {
            // Write the amount with 0, 1 or 2 decimals, as payment systems do.
            let fen = match decimals { 0 => (*raw as i64 / 100) * 100, 1 => (*raw as i64 / 10) * 10, _ => *raw as i64 };
            let yuan = fen / 100;
            let text = match decimals { 0 => format!("{yuan}"), 1 => format!("{yuan}.{}", (fen % 100) / 10), _ => format!("{yuan}.{:02}", fen % 100) };
            let (text, signed) = if *refund { (format!("-{text}"), -fen) } else { (text, fen) };
            expected_fen += signed;
            msgs.push(payment(&format!("t{i}"), T0 + i as i64, "m-1012", &text));
        }
        let (out, ds) = feed(&mut TestDriver::with_config(config(&[])), &msgs, true);
        prop_assert!(ds.iter().all(|d| *d == Disposition::Accepted));
        let stats: Vec<_> = out.iter().filter_map(|o| match o { Output::Payments(p) => Some(p), _ => None }).collect();
        prop_assert_eq!(stats.len(), 1);
        prop_assert_eq!(&stats[0].figures.amount, &format_fen(expected_fen));
        prop_assert_eq!(stats[0].figures.transactions as usize, amounts.len());
        let by_cat: Vec<_> = stats[0].by_category.values().collect();
        prop_assert_eq!(&by_cat[0].amount, &format_fen(expected_fen));
    }

    /// Whatever sensors and gates report, a car park shows between 0 and its
    /// capacity free, and free + occupied + unknown = total.
    #[test]
    fn car_parks_stay_within_capacity(events in prop::collection::vec((0u8..4, 0u32..200, 1u32..400, 0i64..3_000_000), 1..300)) {
        let mut msgs = Vec::new();
        for (i, (kind, slot, count, dt)) in events.iter().enumerate() {
            let ts = T0 + dt;
            msgs.push(match kind {
                0 => space("p08-hubin-road", &format!("S{slot}"), ts, true),
                1 => space("p08-hubin-road", &format!("S{slot}"), ts, false),
                2 => gate("p09-shangcheng-hotel", ts, true, *count, i),
                _ => gate("p09-shangcheng-hotel", ts, false, *count, i),
            });
        }
        msgs.sort_by_key(|m| m.ts);
        let mut driver = TestDriver::with_config(config(&[]));
        let (out, ds) = feed(&mut driver, &msgs, true);
        let records = out.iter().filter_map(|o| match o { Output::Availability(a) => Some(a.clone()), _ => None });
        for a in records.chain(driver.engine().lot_snapshots()) {
            prop_assert!(a.available_spot_number <= a.total_spot_number, "{:?}", a);
            prop_assert_eq!(a.available_spot_number + a.occupied_spot_number + a.unknown_spot_number, a.total_spot_number);
            prop_assert!((0.0..=1.0).contains(&a.occupancy));
        }
        // p08 has 96 spaces: slots beyond that are refused as out of range, never counted.
        let refused = ds.iter().filter(|d| **d == Disposition::Rejected(RejectReason::OutOfRange)).count();
        let distinct: std::collections::BTreeSet<_> = events.iter().filter(|e| e.0 < 2).map(|e| e.1).collect();
        if distinct.len() <= 96 {
            prop_assert_eq!(refused, 0);
        }
    }
}
