//! Input produced with every compression codec a Kafka producer may choose is
//! consumed, to the last message, against the real broker. A codec the client
//! was built without (zstd, before) stopped its partition for good: librdkafka
//! logged one warning, later messages on that partition were never consumed,
//! and `/healthz` said ok.

mod common;

use common::engine::{create_topics, start_engine, stop_engine, wait_until};
use common::kafka::{self, Names};
use common::scenario::{finish, simulate_with, SETTINGS};
use std::time::Duration;

const MESSAGES: u32 = 3_000;

/// The simulated district's input, produced with `codec`, consumed whole.
fn consumed_whole(codec: &str) {
    kafka::require_broker();
    let names = Names::new(&format!("codec-{codec}"));
    let mut env = names.env("engine", None);
    env.extend(SETTINGS.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    create_topics(&env);
    let sim = simulate_with(
        &names,
        &kafka::brokers(),
        0,
        MESSAGES,
        &[("CROWDPARK_KAFKA__CLIENT__COMPRESSION_TYPE", codec)],
    );
    let summary = finish(sim);
    let (engine, addr) = start_engine(&env);
    let want = summary["sent"].as_f64().unwrap();
    let mut seen = 0.0;
    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(
            &format!("every {codec} message consumed"),
            Duration::from_secs(60),
            || {
                seen = common::engine::consumed(&addr, &names);
                seen >= want
            },
        )
    }));
    let health = common::http_get(&addr, "/healthz");
    assert_eq!(stop_engine(engine).code(), Some(0));
    assert!(
        done.is_ok(),
        "{codec}: consumed {seen} of {want} messages (healthz: {health:?})"
    );
    for (topic, counts) in summary["topics"].as_object().unwrap() {
        assert!(
            counts["sent"].as_u64().unwrap() > 0,
            "{topic}: nothing sent"
        );
    }
    assert_eq!(seen, want, "{codec}: every message consumed once");
}

#[test]
fn zstd_input_is_consumed() {
    consumed_whole("zstd");
}

#[test]
fn snappy_input_is_consumed() {
    consumed_whole("snappy");
}

#[test]
fn gzip_input_is_consumed() {
    consumed_whole("gzip");
}

#[test]
fn lz4_input_is_consumed() {
    consumed_whole("lz4");
}

#[test]
fn uncompressed_input_is_consumed() {
    consumed_whole("none");
}
