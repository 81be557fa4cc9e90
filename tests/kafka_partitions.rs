//! Partition counts checked, against a real broker. Growing an input topic
//! while the engine ran corrupted it silently: a zone's records moved to a new
//! partition whose task started empty, 23 % of payments were dead-lettered
//! `late` and four car parks ended with wrong free counts, with `/healthz` 200.
//! Now the engine refuses: `/readyz` and `/healthz` 503 with the topics and
//! their counts, an ERROR saying the same, and nothing processed, at once
//! while it runs and again at start; the documented way to grow (docs/operations.md) (stop, grow
//! every topic, reset, set `topics.input_partitions`) then runs.

mod common;

use common::engine::{consumed, create_topics, stop_engine, wait_until, Engine};
use common::kafka::{self, Names};
use common::scenario::{engine_env, finish, simulate};
use common::{http_address, http_get, spawn_crowdpark_logged};
use std::path::Path;
use std::time::Duration;

fn start_logged(env: &[(String, String)], log: &Path) -> (Engine, String) {
    let (child, rx) = spawn_crowdpark_logged(log, &["run", "--listen", "127.0.0.1:0"], env);
    let addr = http_address(&rx, Duration::from_secs(60), &mut Vec::new());
    (Engine { child, stdout: rx }, addr)
}

/// `/readyz` and `/healthz` both 503, the body naming the grown topic and
/// its count; the last body.
fn wait_refused(addr: &str, grown: &str) -> String {
    let says = format!("{grown} has 6");
    let mut last = String::new();
    wait_until(
        "the engine to refuse the grown topic",
        Duration::from_secs(60),
        || {
            let ready = http_get(addr, "/readyz");
            let health = http_get(addr, "/healthz");
            last = format!("{ready:?} {health:?}");
            matches!((&ready, &health), (Ok((503, r)), Ok((503, h))) if r.contains(&says) && h.contains(&says))
        },
    );
    last
}

fn crowdpark(args: &[&str], env: &[(String, String)]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_crowdpark"))
        .args(args)
        .envs(env.iter().cloned())
        .output()
        .unwrap()
}

#[test]
fn a_topic_grown_while_the_engine_runs_is_refused_until_the_documented_reset() {
    kafka::require_broker();
    let brokers = kafka::brokers();
    let input = Names::new("grow-in");
    let run = Names::new("grow-run");
    create_topics(&input.env("sim", None));
    let env = engine_env(&run, &input, "engine", "a", "exactly_once");
    create_topics(&env);
    let log = std::env::temp_dir().join(format!("{}.log", run.prefix));
    let sim = simulate(&input, &brokers, 400, 16_000);
    let (engine, addr) = start_logged(&env, &log);
    wait_until("input consumed", Duration::from_secs(30), || {
        consumed(&addr, &input) > 0.0
    });

    // Grown while the engine runs: refused within seconds, not at the
    // client's next metadata refresh (5 minutes).
    let grown = input.topic("crowd.counts");
    kafka::grow_topic(&grown, 6);
    let body = wait_refused(&addr, &grown);
    for other in ["parking.events", "payments"] {
        assert!(
            body.contains(&input.topic(other)),
            "names every topic: {body}"
        );
    }
    assert!(body.contains("topics.input_partitions = 3"), "{body}");
    // Nothing processed while refused, though input keeps arriving.
    let held = consumed(&addr, &input);
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(consumed(&addr, &input), held, "processed while refused");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged
            .lines()
            .any(|l| l.contains("ERROR") && l.contains(&format!("{grown} has 6"))),
        "an ERROR names the topic and its count"
    );
    assert_eq!(stop_engine(engine).code(), Some(0));
    finish(sim);

    // Refused at start too, before joining the group.
    let (engine, addr) = start_logged(&env, &log);
    wait_refused(&addr, &grown);
    assert_eq!(consumed(&addr, &input), 0.0);
    assert_eq!(stop_engine(engine).code(), Some(0));

    // The documented way: every topic grown, the checkpoint reset, the setting
    // changed. The engine then runs on six partitions.
    for base in [
        "parking.events",
        "payments",
        "crowdpark.payments-by-zone",
        "crowdpark.partials-by-district",
        "crowdpark.state",
    ] {
        let owner = if ["parking.events", "payments"].contains(&base) {
            &input
        } else {
            &run
        };
        kafka::grow_topic(&owner.topic(base), 6);
    }
    let mut six = env.clone();
    six.push(("CROWDPARK_TOPICS__INPUT_PARTITIONS".into(), "6".into()));
    let reset = crowdpark(&["reset", "--to-latest"], &six);
    assert!(
        reset.status.success(),
        "reset: {}",
        String::from_utf8_lossy(&reset.stderr)
    );
    let (engine, addr) = start_logged(&six, &log);
    wait_until("ready on six partitions", Duration::from_secs(60), || {
        matches!(http_get(&addr, "/readyz"), Ok((200, _)))
    });
    let sim = simulate(&input, &brokers, 400, 2_000);
    wait_until("new input consumed", Duration::from_secs(60), || {
        consumed(&addr, &input) >= 2_000.0
    });
    finish(sim);
    assert!(matches!(http_get(&addr, "/healthz"), Ok((200, _))));
    assert_eq!(stop_engine(engine).code(), Some(0));
    let _ = std::fs::remove_file(&log);
}
