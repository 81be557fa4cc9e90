//! Sensors with wrong clocks against `crowdpark run` on the real broker. One
//! message per topic whose event time is 59 minutes ahead (within the one-hour
//! bound) used to move its partition's watermark 59 minutes on, so the next
//! correct messages of every other zone, car park and merchant there were
//! dead-lettered `late`; and since the bound was measured from the partition's
//! newest event, each fast message let the next go an hour further.

mod common;

use common::engine::{create_topics, start_engine, stop_engine, wait_until};
use common::kafka::{self, Names};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const ZONES: [&str; 5] = [
    "music-fountain-plaza",
    "hubin-pedestrian-street",
    "in77-atrium",
    "qingnian-road",
    "east-pier-queue",
];
const SPACE_LOTS: [&str; 4] = [
    "p03-hubin88",
    "p06-longxiang-bridge",
    "p07-qingnian-road",
    "p08-hubin-road",
];
const MERCHANTS: [&str; 5] = ["m-1002", "m-1003", "m-1004", "m-1005", "m-1006"];

#[test]
fn one_sensor_an_hour_ahead_closes_nobody_elses_windows() {
    kafka::require_broker();
    let names = Names::new("skew");
    let mut env = names.env("engine", None);
    // One partition: every entity shares the runaway's watermark.
    env.push(("CROWDPARK_TOPICS__INPUT_PARTITIONS".into(), "1".into()));
    create_topics(&env);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let ahead = now + 59 * 60_000;
    let p = kafka::producer();
    let (crowd, parking, payments) = (
        names.topic("crowd.counts"),
        names.topic("parking.events"),
        names.topic("payments"),
    );
    let reading = |zone: &str, ts: i64, cam: &str| {
        format!(r#"{{"zone":"{zone}","ts":{ts},"source":"{cam}","people":50}}"#)
    };
    let space = |lot: &str, ts: i64, slot: &str| {
        format!(r#"{{"lot":"{lot}","ts":{ts},"slot":"{slot}","state":"occupied"}}"#)
    };
    let sale = |m: &str, ts: i64, id: &str| {
        format!(r#"{{"txn_id":"{id}","ts":{ts},"merchant":"{m}","amount":"10.00"}}"#)
    };
    // The runaways, each 59 minutes ahead: accepted.
    kafka::produce(
        &p,
        &crowd,
        "lakeside-promenade",
        &reading("lakeside-promenade", ahead, "cam-fast"),
    );
    kafka::produce(
        &p,
        &parking,
        "p01-in77-a",
        &space("p01-in77-a", ahead, "A-001"),
    );
    kafka::produce(&p, &payments, "m-1001", &sale("m-1001", ahead, "fast-1"));
    // The others, on time, after them.
    let mut on_time = 0;
    for round in 0..2 {
        let ts = now + round * 1_000;
        for z in ZONES {
            kafka::produce(&p, &crowd, z, &reading(z, ts, &format!("cam-{round}")));
            on_time += 1;
        }
        for l in SPACE_LOTS {
            kafka::produce(&p, &parking, l, &space(l, ts, &format!("S-{round}")));
            on_time += 1;
        }
        for m in MERCHANTS {
            kafka::produce(&p, &payments, m, &sale(m, ts, &format!("{m}-{round}")));
            on_time += 1;
        }
    }
    // The same sensor again, 59 minutes past its last: over an hour ahead of
    // the clock, so refused, not a ratchet.
    kafka::produce(
        &p,
        &crowd,
        "lakeside-promenade",
        &reading("lakeside-promenade", ahead + 59 * 60_000, "cam-fast"),
    );
    kafka::flush(&p);

    let (engine, addr) = start_engine(&env);
    let total = (on_time + 4) as f64;
    let inputs = names.input_topics();
    wait_until("every message consumed", Duration::from_secs(60), || {
        names.sum_over_inputs(&kafka::metrics(&addr), "crowdpark_events_consumed_total") >= total
    });
    let m = kafka::metrics(&addr);
    let late = kafka::metric_sum(&m, "crowdpark_events_rejected_total", "reason=\"late\"");
    assert_eq!(late, 0.0, "on-time messages dead-lettered late");
    let accepted = names.sum_over_inputs(&m, "crowdpark_events_accepted_total");
    assert_eq!(accepted, (on_time + 3) as f64, "{inputs:?}");
    assert_eq!(
        kafka::metric_sum(
            &m,
            "crowdpark_events_rejected_total",
            "reason=\"out_of_range\""
        ),
        1.0,
        "the second runaway is over an hour ahead of the clock"
    );
    assert!(stop_engine(engine).success());
}
