//! A valid but fast crowd feed against `crowdpark run` on the real broker:
//! 40,000 cameras reporting into one zone within seconds. The readings waiting
//! for the watermark and the zone's camera table each make state larger than
//! one Kafka record may be; the checkpoint must still go through (state split
//! across records), processing must reach the end of the feed without a single
//! rewind, and a restart must restore the same zone.

mod common;

use common::engine::{create_topics, start_engine, stop_engine, wait_until};
use common::kafka::{self, Names};
use serde_json::Value;
use std::time::Duration;

use crowdpark::testing::T0;
const CAMERAS: i64 = 40_000;

fn zone_people(addr: &str) -> Option<u64> {
    let (status, body) = common::http_get(addr, "/api/v1/zones/lakeside-promenade").ok()?;
    if status != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&body).ok()?;
    v["people"].as_u64()
}

#[test]
fn forty_thousand_cameras_in_one_zone_checkpoint_without_a_stall() {
    kafka::require_broker();
    let names = Names::new("fastfeed");
    let mut env = names.env("engine", None);
    for (k, v) in [
        ("CROWDPARK_ENGINE__MAX_OUT_OF_ORDERNESS", "1s"),
        ("CROWDPARK_ENGINE__IDLE_TIMEOUT", "2s"),
        ("CROWDPARK_KAFKA__COMMIT_INTERVAL", "500ms"),
        // Above the 40,000 cameras (the default keeps 10,000 per zone).
        ("CROWDPARK_CROWD__MAX_SOURCES_PER_ZONE", "50000"),
    ] {
        env.push((k.into(), v.into()));
    }
    create_topics(&env);
    let p = kafka::producer();
    let crowd = names.topic("crowd.counts");
    for i in 0..CAMERAS {
        // All within 4 s of event time: most wait for the watermark together.
        let ts = T0 + i / 10;
        kafka::produce(
            &p,
            &crowd,
            "lakeside-promenade",
            &format!(
                r#"{{"zone":"lakeside-promenade","ts":{ts},"source":"camera-{i:06}","people":1}}"#
            ),
        );
    }
    // Two cameras again 75 s later: the watermark (which follows what two
    // sensors agree on) passes the first minute's window and its lateness,
    // so the window closes.
    let later = T0 + 75_000;
    for cam in ["camera-000000", "camera-000001"] {
        kafka::produce(
            &p,
            &crowd,
            "lakeside-promenade",
            &format!(r#"{{"zone":"lakeside-promenade","ts":{later},"source":"{cam}","people":1}}"#),
        );
    }
    kafka::flush(&p);

    let (engine, addr) = start_engine(&env);
    let group = format!("{}-engine", names.prefix);
    wait_until(
        "the end of the feed committed",
        Duration::from_secs(180),
        || kafka::caught_up(&kafka::brokers(), &group, std::slice::from_ref(&crowd)),
    );
    wait_until("every camera applied", Duration::from_secs(60), || {
        zone_people(&addr) == Some(CAMERAS as u64)
    });
    let m = kafka::metrics(&addr);
    assert_eq!(
        kafka::metric_sum(&m, "crowdpark_events_consumed_total", &crowd),
        (CAMERAS + 2) as f64,
        "each reading consumed once"
    );
    assert_eq!(kafka::metric_sum(&m, "crowdpark_rewinds_total", ""), 0.0);
    assert_eq!(
        kafka::metric_sum(&m, "crowdpark_commits_total", "aborted"),
        0.0
    );
    let density = kafka::read_until(
        &names.topic("crowd.density"),
        Duration::from_secs(60),
        |r| r.iter().any(|r| r.value["zone"] == "lakeside-promenade"),
    );
    assert!(
        density
            .iter()
            .any(|r| r.value["zone"] == "lakeside-promenade"),
        "a density window for the zone"
    );
    assert!(stop_engine(engine).success());

    // The state split across records reads back whole.
    let (engine, addr) = start_engine(&env);
    wait_until("the zone restored", Duration::from_secs(60), || {
        zone_people(&addr).is_some()
    });
    assert_eq!(zone_people(&addr), Some(CAMERAS as u64));
    assert!(stop_engine(engine).success());
}
