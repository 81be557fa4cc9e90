//! Hostile input against `crowdpark run` on the real broker: a message whose
//! dead letter would be too large for the dead-letter topic, and a message
//! keyed by another entity than the one it is about. The engine must keep
//! processing, dead-letter each with its reason, and commit nothing it did not
//! deliver.

mod common;

use common::engine::{create_topics, start_engine, stop_engine, wait_until};
use common::kafka::{self, Names};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};
use std::time::Duration;

use crowdpark::testing::T0;

fn big_producer() -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", kafka::brokers())
        .set("message.max.bytes", "4000000")
        .set("linger.ms", "5")
        .create()
        .unwrap()
}

fn quick(env: &mut Vec<(String, String)>, guarantee: &str) {
    for (k, v) in [
        ("CROWDPARK_ENGINE__MAX_OUT_OF_ORDERNESS", "1s"),
        ("CROWDPARK_ENGINE__IDLE_TIMEOUT", "2s"),
        ("CROWDPARK_KAFKA__COMMIT_INTERVAL", "500ms"),
        ("CROWDPARK_KAFKA__PROCESSING_GUARANTEE", guarantee),
    ] {
        env.push((k.into(), v.into()));
    }
}

/// A dead letter echoes the input's key and its bad field; a 1 MB key or a
/// 1 MB field made one larger than the topic takes. At least once the engine
/// exited and, on the way out, committed past the message; exactly once it
/// aborted and rewound forever. Now the echo is cut and the record says so.
fn oversized_dead_letters(guarantee: &str) {
    kafka::require_broker();
    let names = Names::new(&format!("poison-{guarantee}"));
    let mut env = names.env("engine", None);
    quick(&mut env, guarantee);
    create_topics(&env);

    let p = big_producer();
    let crowd = names.topic("crowd.counts");
    let huge_ts = format!(
        r#"{{"zone":"lakeside-promenade","source":"cam-1","people":5,"ts":"{}"}}"#,
        "9".repeat(1_040_000)
    );
    let big_key = "k".repeat(1_000_000);
    p.send(
        BaseRecord::to(&crowd)
            .key("lakeside-promenade")
            .payload(&huge_ts),
    )
    .map_err(|(e, _)| e)
    .unwrap();
    p.send(BaseRecord::to(&crowd).key(&big_key).payload("{"))
        .map_err(|(e, _)| e)
        .unwrap();
    // A good message after them: the partition must move on.
    kafka::produce(
        &p,
        &crowd,
        "lakeside-promenade",
        &format!(r#"{{"zone":"lakeside-promenade","ts":{T0},"source":"cam-1","people":400}}"#),
    );
    kafka::flush(&p);

    let (mut engine, addr) = start_engine(&env);
    let dead = names.topic("crowdpark.deadletter");
    let letters = kafka::read_until(&dead, Duration::from_secs(60), |r| r.len() >= 2);
    let alive = engine
        .child
        .0
        .as_mut()
        .unwrap()
        .try_wait()
        .unwrap()
        .is_none();
    assert!(alive, "the engine exited on an oversized dead letter");
    assert_eq!(letters.len(), 2, "both poison messages dead-lettered once");
    for l in &letters {
        let v = &l.value;
        let size = serde_json::to_vec(v).unwrap().len() + l.key.len();
        assert!(size < 200_000, "dead letter of {size} bytes");
        let cut: Vec<&str> = v["truncated"]
            .as_array()
            .expect("`truncated` names the fields cut")
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        assert!(!cut.is_empty(), "{v}");
        assert!(v["payload_bytes"].as_u64().unwrap() >= 1);
    }
    let by_reason: Vec<&str> = letters
        .iter()
        .map(|l| l.value["reason"].as_str().unwrap())
        .collect();
    assert!(by_reason.contains(&"invalid_field"), "{by_reason:?}");
    assert!(by_reason.contains(&"malformed_json"), "{by_reason:?}");
    let group = format!("{}-engine", names.prefix);
    wait_until(
        "the good message's offset committed",
        Duration::from_secs(60),
        || kafka::caught_up(&kafka::brokers(), &group, std::slice::from_ref(&crowd)),
    );
    let m = kafka::metrics(&addr);
    assert_eq!(
        kafka::metric_sum(&m, "crowdpark_events_consumed_total", &crowd),
        3.0,
        "each message consumed once (no rewind loop)"
    );
    assert_eq!(kafka::metric_sum(&m, "crowdpark_rewinds_total", ""), 0.0);
    assert!(stop_engine(engine).success());
}

#[test]
fn oversized_dead_letters_are_cut_at_least_once() {
    oversized_dead_letters("at_least_once");
}

#[test]
fn oversized_dead_letters_are_cut_exactly_once() {
    oversized_dead_letters("exactly_once");
}

/// A message keyed by another entity than the one it is about, or not keyed,
/// lands on a partition that does not hold that entity's state: a crowd message
/// for one zone keyed by another raised a red alert from half the cameras, and
/// parking messages keyed otherwise gave a car park more spaces than it has.
/// Each is dead-lettered `key_mismatch`, and the correctly keyed ones count.
#[test]
fn messages_keyed_by_another_entity_are_dead_lettered() {
    kafka::require_broker();
    let names = Names::new("miskeyed");
    let mut env = names.env("engine", None);
    quick(&mut env, "at_least_once");
    create_topics(&env);
    let p = kafka::producer();
    let crowd = names.topic("crowd.counts");
    let parking = names.topic("parking.events");
    let payments = names.topic("payments");
    let zone_msg = |people: u32| {
        format!(r#"{{"zone":"lakeside-promenade","ts":{T0},"source":"cam-1","people":{people}}}"#)
    };
    kafka::produce(&p, &crowd, "east-pier-queue", &zone_msg(1500));
    kafka::produce(&p, &crowd, "lakeside-promenade", &zone_msg(400));
    let space = format!(r#"{{"lot":"p01-in77-a","ts":{T0},"slot":"A-001","state":"occupied"}}"#);
    kafka::produce(&p, &parking, "p02-in77-d", &space);
    p.send(BaseRecord::<str, str>::to(&parking).payload(&space))
        .map_err(|(e, _)| e)
        .unwrap();
    let sale = format!(r#"{{"txn_id":"wx-1","ts":{T0},"merchant":"m-1001","amount":"10.00"}}"#);
    kafka::produce(&p, &payments, "m-1002", &sale);
    kafka::flush(&p);

    let (engine, addr) = start_engine(&env);
    let dead = names.topic("crowdpark.deadletter");
    let letters = kafka::read_until(&dead, Duration::from_secs(60), |r| r.len() >= 4);
    assert_eq!(letters.len(), 4, "{letters:?}");
    for l in &letters {
        assert_eq!(l.value["reason"], "key_mismatch", "{}", l.value);
    }
    let errors: Vec<&str> = letters
        .iter()
        .map(|l| l.value["error"].as_str().unwrap())
        .collect();
    assert!(errors
        .iter()
        .any(|e| e.contains("keyed `east-pier-queue`") && e.contains("zone `lakeside-promenade`")));
    assert!(errors.iter().any(|e| e.contains("no key")));
    let m = kafka::metrics(&addr);
    assert_eq!(
        kafka::metric_sum(
            &m,
            "crowdpark_events_rejected_total",
            "reason=\"key_mismatch\""
        ),
        4.0
    );
    assert_eq!(
        kafka::metric_sum(&m, "crowdpark_events_accepted_total", &crowd),
        1.0,
        "the correctly keyed reading counts"
    );
    assert!(stop_engine(engine).success());
}
