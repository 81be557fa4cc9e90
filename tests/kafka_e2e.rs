//! `crowdpark run` against a real Apache Kafka broker: scripted input to exact
//! outputs, the accounting identity under bad input, and a restart that skips
//! nothing and double-counts nothing.

mod common;

use common::engine::{
    assert_same_outputs, consumed, create_topics, start_engine, stop_engine, stop_engine_counting,
    wait_until,
};
use common::kafka::{self, Names};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use crowdpark::testing::T0;

/// Fast event-time settings so a short script closes its windows quickly; the
/// semantics are the same as with the defaults.
fn quick_settings() -> Vec<(String, String)> {
    [
        ("CROWDPARK_CROWD__EWMA_HALF_LIFE", "1ms"),
        ("CROWDPARK_CROWD__MIN_DWELL", "10s"),
        ("CROWDPARK_ENGINE__MAX_OUT_OF_ORDERNESS", "1s"),
        ("CROWDPARK_ENGINE__ALLOWED_LATENESS", "2s"),
        ("CROWDPARK_ENGINE__IDLE_TIMEOUT", "2s"),
        ("CROWDPARK_PAYMENTS__WINDOW", "1m"),
        ("CROWDPARK_KAFKA__COMMIT_INTERVAL", "500ms"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[test]
fn scripted_input_gives_the_exact_outputs() {
    kafka::require_broker();
    let names = Names::new("e2e");
    let mut env = names.env("engine", None);
    env.extend(quick_settings());
    create_topics(&env);

    let p = kafka::producer();
    let crowd = names.topic("crowd.counts");
    // lakeside-promenade, 400 m²: 1.0 → 2.1 (yellow) → 3.6 (red) → 3.5 → 1.0
    // (green: 15 s in red ≥ the 10 s dwell, and below 0.85 × 2.0).
    for (s, people) in [
        (0, 400),
        (5, 840),
        (10, 1440),
        (20, 1400),
        (25, 400),
        (30, 400),
    ] {
        let ts = T0 + s * 1000;
        kafka::produce(
            &p,
            &crowd,
            "lakeside-promenade",
            &format!(
                r#"{{"zone":"lakeside-promenade","ts":{ts},"source":"cam-1","people":{people}}}"#
            ),
        );
    }
    // p09-shangcheng-hotel, 150 spaces, counted by gates: fills up.
    let parking = names.topic("parking.events");
    for (s, count) in [(1, 100), (3, 40), (5, 10)] {
        let ts = T0 + s * 1000;
        kafka::produce(
            &p,
            &parking,
            "p09-shangcheng-hotel",
            &format!(
                r#"{{"lot":"p09-shangcheng-hotel","ts":{ts},"gate":"entry","count":{count}}}"#
            ),
        );
    }
    // Two sales and a refund in in77-atrium, in one one-minute window.
    let payments = names.topic("payments");
    for (i, amount) in ["10.10", "20.20", "-5.00"].iter().enumerate() {
        // Late in the window, so idle advance closes it within seconds.
        let ts = T0 + 55_000 + i as i64 * 1000;
        kafka::produce(
            &p,
            &payments,
            "m-e2e",
            &format!(
                r#"{{"txn_id":"e2e-{i}","ts":{ts},"merchant":"m-e2e","zone":"in77-atrium","category":"food","amount":"{amount}","currency":"CNY"}}"#
            ),
        );
    }
    kafka::flush(&p);

    let (engine, addr) = start_engine(&env);
    let alerts = kafka::read_until(&names.topic("crowd.alerts"), Duration::from_secs(60), |r| {
        r.len() >= 3
    });
    // The zone's window record and the district's. The district's comes
    // only after the by-zone partitions that hold zones but see no payment
    // here are written off as empty, `max(idle_timeout, 60 s)` after they
    // started: a partition still catching up looks the same for a while.
    // (Read for 60 s, the test failed in CI and in 3 of 4 local runs.)
    let stats = kafka::read_until(
        &names.topic("payments.stats"),
        Duration::from_secs(120),
        |r| r.len() >= 2,
    );
    let availability = kafka::read_until(
        &names.topic("parking.availability"),
        Duration::from_secs(30),
        |r| {
            kafka::latest_per_key(r)
                .get("p09-shangcheng-hotel")
                .is_some_and(|v| v["status"] == "full")
        },
    );

    let ids: Vec<&str> = alerts
        .iter()
        .map(|r| r.value["alert_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![
            format!("lakeside-promenade:{}:yellow", T0 + 5_000),
            format!("lakeside-promenade:{}:red", T0 + 10_000),
            format!("lakeside-promenade:{}:green", T0 + 25_000),
        ]
    );
    let expected = [
        ("yellow", "green", 2.1, 840),
        ("red", "yellow", 3.6, 1440),
        ("green", "red", 1.0, 400),
    ];
    for (r, (level, previous, density, people)) in alerts.iter().zip(expected) {
        assert_eq!(r.key, "lakeside-promenade");
        assert_eq!(r.value["kind"], "level");
        assert_eq!(r.value["level"], level);
        assert_eq!(r.value["previous"], previous);
        assert_eq!(r.value["density"], json!(density));
        assert_eq!(r.value["people"], json!(people));
        assert_eq!(r.value["area_m2"], json!(400.0));
        assert_eq!(r.value["thresholds"], json!({"yellow": 2.0, "red": 3.5}));
    }

    // The zone's window, and the district's record of the same window.
    let (district, stats): (Vec<_>, Vec<_>) = stats
        .into_iter()
        .partition(|r| r.value["type"] == "district");
    assert_eq!(district.len(), 1, "{district:?}");
    assert_eq!(district[0].key, "hubin");
    assert_eq!(district[0].value["scope"], "payments");
    assert_eq!(district[0].value["window_start"], "2026-10-01T06:00:00Z");
    assert_eq!(district[0].value["transactions"], 3);
    assert_eq!(district[0].value["amount"], "25.30");
    assert_eq!(stats.len(), 1, "{stats:?}");
    assert_eq!(stats[0].key, "in77-atrium");
    // Selling areas from config/crowdpark.toml: in77-atrium 1038.5 m², of which
    // food 218 m²; 25.30 yuan net → 2.44 fen/m² and 11.61 fen/m².
    let figures = |amount_per_m2: &str| {
        json!({"transactions": 3, "sales": 2, "refunds": 1, "amount": "25.30", "refund_amount": "5.00",
               "currency": "CNY", "avg_ticket": "15.15", "sales_per_m2": amount_per_m2})
    };
    let mut want = figures("0.02");
    want["zone"] = json!("in77-atrium");
    want["district"] = json!("hubin");
    want["window_start"] = json!("2026-10-01T06:00:00Z");
    want["window_end"] = json!("2026-10-01T06:01:00Z");
    want["by_category"] = json!({"food": figures("0.12")});
    assert_eq!(stats[0].value, want);

    let latest = kafka::latest_per_key(&availability);
    let lot = &latest["p09-shangcheng-hotel"];
    assert_eq!(lot["type"], "OffStreetParking");
    assert_eq!(lot["totalSpotNumber"], 150);
    assert_eq!(lot["availableSpotNumber"], 0);
    assert_eq!(lot["occupiedSpotNumber"], 150);
    assert_eq!(lot["status"], "full");
    assert_eq!(lot["occupancyDetectionType"], "balancing");
    assert_eq!(latest["hubin"]["type"], "ParkingGroup");

    // Nothing was rejected, and the accounting adds up.
    let m = kafka::metrics(&addr);
    let sum = |name: &str| names.sum_over_inputs(&m, name);
    assert_eq!(sum("crowdpark_events_consumed_total"), 12.0);
    assert_eq!(sum("crowdpark_events_accepted_total"), 12.0);
    assert_eq!(
        stop_engine(engine).code(),
        Some(0),
        "SIGTERM must stop the engine cleanly"
    );
}

#[test]
fn bad_input_is_accounted_for_and_dead_lettered_with_its_reason() {
    kafka::require_broker();
    let names = Names::new("acct");
    let env = names.env("engine", None);
    create_topics(&env);
    let sim = Command::new(env!("CARGO_BIN_EXE_crowdpark"))
        .args([
            "simulate",
            "--brokers",
            &kafka::brokers(),
            "--rate",
            "0",
            "--messages",
            "8000",
            "--bad-ratio",
            "0.05",
            "--duplicate-ratio",
            "0.01",
        ])
        .envs(env.iter().cloned())
        .output()
        .unwrap();
    assert!(
        sim.status.success(),
        "{}",
        String::from_utf8_lossy(&sim.stderr)
    );
    let summary: Value = serde_json::from_slice(&sim.stdout).unwrap();
    let sent = summary["sent"].as_f64().unwrap();
    assert_eq!(sent, 8000.0);

    let (engine, addr) = start_engine(&env);
    wait_until("every message consumed", Duration::from_secs(90), || {
        kafka::metric_sum(
            &kafka::metrics(&addr),
            "crowdpark_events_consumed_total",
            "",
        ) >= sent
    });
    let m = kafka::metrics(&addr);
    let mut expected_dead: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (topic, counts) in summary["topics"].as_object().unwrap() {
        let label = format!("topic=\"{topic}\"");
        let consumed = kafka::metric_sum(&m, "crowdpark_events_consumed_total", &label);
        let accepted = kafka::metric_sum(&m, "crowdpark_events_accepted_total", &label);
        let rejected = kafka::metric_sum(&m, "crowdpark_events_rejected_total", &label);
        let duplicates = kafka::metric_sum(&m, "crowdpark_events_duplicate_total", &label);
        assert_eq!(
            consumed,
            accepted + rejected + duplicates,
            "{topic}: the identity"
        );
        assert_eq!(
            consumed,
            counts["sent"].as_f64().unwrap(),
            "{topic}: consumed"
        );
        assert_eq!(
            accepted,
            counts["accept"].as_f64().unwrap(),
            "{topic}: accepted"
        );
        assert_eq!(
            duplicates,
            counts["duplicate"].as_f64().unwrap(),
            "{topic}: duplicates"
        );
        for (reason, n) in counts["reject"].as_object().unwrap() {
            let per_reason = kafka::metric_sum(
                &m,
                "crowdpark_events_rejected_total",
                &format!("reason=\"{reason}\",{label}"),
            );
            assert_eq!(per_reason, n.as_f64().unwrap(), "{topic}/{reason}");
            expected_dead.insert((topic.clone(), reason.clone()), n.as_u64().unwrap());
        }
    }
    let total_dead: u64 = expected_dead.values().sum();
    assert!(
        total_dead > 200,
        "about 5 % of 8000 should be bad, got {total_dead}"
    );
    let dead = kafka::read_until(
        &names.topic("crowdpark.deadletter"),
        Duration::from_secs(60),
        |r| r.len() as u64 >= total_dead,
    );
    let mut got: BTreeMap<(String, String), u64> = BTreeMap::new();
    for r in &dead {
        let v = &r.value;
        assert!(!v["error"].as_str().unwrap().is_empty());
        assert!(v["payload"].is_string() && v["offset"].is_i64() && v["partition"].is_i64());
        *got.entry((
            v["topic"].as_str().unwrap().to_string(),
            v["reason"].as_str().unwrap().to_string(),
        ))
        .or_insert(0) += 1;
    }
    assert_eq!(
        got, expected_dead,
        "every bad message is dead-lettered once, with the reason it was made bad for"
    );
    assert_eq!(stop_engine(engine).code(), Some(0));
}

#[test]
fn restart_mid_stream_skips_nothing_and_counts_nothing_twice() {
    kafka::require_broker();
    let input = Names::new("restart-in");
    let reference = Names::new("restart-ref");
    let restarted = Names::new("restart-run");
    // Heartbeats off for the test: their timing follows the wall clock once the
    // input ends, and would make the two runs' last records differ in timing only.
    // Lower thresholds so a few simulated minutes already raise alerts.
    let settings = [
        ("CROWDPARK_PARKING__HEARTBEAT", "1h"),
        ("CROWDPARK_ENGINE__IDLE_TIMEOUT", "3s"),
        ("CROWDPARK_CROWD__THRESHOLDS__YELLOW", "0.9"),
        ("CROWDPARK_CROWD__THRESHOLDS__RED", "1.3"),
        ("CROWDPARK_CROWD__MIN_DWELL", "30s"),
    ];
    let env_for = |names: &Names| {
        let mut env = names.env("engine", Some(&input));
        env.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    };
    let input_env = input.env("sim", None);
    create_topics(&input_env);
    create_topics(&env_for(&reference));
    create_topics(&env_for(&restarted));

    // Input arrives over ~8 s while the engine under test runs, is stopped and
    // starts again.
    let total = 12_000.0;
    let mut sim = Command::new(env!("CARGO_BIN_EXE_crowdpark"))
        .args([
            "simulate",
            "--brokers",
            &kafka::brokers(),
            "--rate",
            "1500",
            "--messages",
            "12000",
            "--duplicate-ratio",
            "0.01",
        ])
        .envs(input_env.iter().cloned())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (first, addr) = start_engine(&env_for(&restarted));
    wait_until("some input processed", Duration::from_secs(60), || {
        consumed(&addr, &input) >= 2_500.0
    });
    let (status, consumed_first) = stop_engine_counting(first);
    assert_eq!(status.code(), Some(0));
    assert!(consumed_first < total, "stopped mid-stream");
    let (second, addr2) = start_engine(&env_for(&restarted));
    assert!(sim.wait().unwrap().success());

    let (uninterrupted, ref_addr) = start_engine(&env_for(&reference));
    wait_until(
        "the reference run to process all input",
        Duration::from_secs(90),
        || consumed(&ref_addr, &input) >= total,
    );
    // The restarted engine resumes at its checkpoint: together its two runs
    // consume every message, and one more message than that would have been
    // consumed twice.
    let mut consumed_second = 0.0;
    wait_until(
        "the restarted run to process the rest",
        Duration::from_secs(90),
        || {
            consumed_second = consumed(&addr2, &input);
            consumed_first + consumed_second >= total
        },
    );
    let consumed_second = consumed(&addr2, &input);
    assert!(
        consumed_first + consumed_second >= total,
        "input skipped: {consumed_first} + {consumed_second} < {total}"
    );
    assert_same_outputs(
        &kafka::brokers(),
        &reference,
        &restarted,
        Duration::from_secs(60),
    );
    assert_eq!(stop_engine(second).code(), Some(0));
    assert_eq!(stop_engine(uninterrupted).code(), Some(0));
}
