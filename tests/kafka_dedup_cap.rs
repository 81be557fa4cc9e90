//! More fresh ids within the dedup horizon than `engine.dedup_max_ids`:
//! the oldest are forgotten early, and a message resent with such an id is
//! counted again. That used to happen silently; now
//! `crowdpark_dedup_evicted_total{topic}` shows every early eviction, so an
//! operator can see the cap is too small for the feed.

mod common;

use common::engine::{create_topics, start_engine, stop_engine, wait_until};
use common::kafka::{self, Names};
use std::time::Duration;

use crowdpark::testing::T0;

#[test]
fn ids_evicted_before_their_horizon_are_counted() {
    kafka::require_broker();
    let names = Names::new("dedupcap");
    let mut env = names.env("engine", None);
    env.push(("CROWDPARK_ENGINE__DEDUP_MAX_IDS".into(), "100".into()));
    create_topics(&env);
    let p = kafka::producer();
    let payments = names.topic("payments");
    let sale = |i: i64| {
        format!(
            r#"{{"txn_id":"t-{i}","ts":{},"merchant":"m-1001","amount":"1.00"}}"#,
            T0 + i * 10
        )
    };
    // 400 fresh ids within seconds (one merchant, so one partition), then
    // the first 100 again: they were forgotten to make room.
    for i in 0..400 {
        kafka::produce(&p, &payments, "m-1001", &sale(i));
    }
    for i in 0..100 {
        kafka::produce(&p, &payments, "m-1001", &sale(i));
    }
    kafka::flush(&p);

    let (engine, addr) = start_engine(&env);
    wait_until("every payment consumed", Duration::from_secs(60), || {
        kafka::metric_sum(
            &kafka::metrics(&addr),
            "crowdpark_events_consumed_total",
            &payments,
        ) >= 500.0
    });
    let on = |name: &str| {
        let m = kafka::metrics(&addr);
        kafka::metric_sum(&m, name, &format!("topic=\"{payments}\""))
    };
    let counted_again = on("crowdpark_events_accepted_total") - 400.0;
    assert!(counted_again > 0.0, "the cap of 100 ids forgot some of 400");
    // The counter follows the engine's tally within a quarter second.
    wait_until("the evictions shown", Duration::from_secs(10), || {
        on("crowdpark_dedup_evicted_total") >= counted_again
    });
    assert_eq!(
        on("crowdpark_events_duplicate_total") + counted_again,
        100.0
    );
    assert!(stop_engine(engine).success());
}
