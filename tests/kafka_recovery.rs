//! Recovery against a real Apache Kafka broker (contract §4): `kill -9` at random
//! points, a second instance dying mid-stream, and the broker itself stopping
//! and coming back. Each run's final outputs are compared with those of an
//! uninterrupted run over the same input topics.

mod common;

use common::engine::{
    assert_same_outputs, consumed, create_topics, kill_engine, start_engine, stop_engine,
    wait_until,
};
use common::kafka::{self, Names};
use common::scenario::{
    engine_env, finish, reference_run, simulate, wait_caught_up, Disturbed, Rng,
};
use common::{free_port, http_get};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

/// The engine's environment with `engine.workers` set.
fn with_workers(mut env: Vec<(String, String)>, workers: usize) -> Vec<(String, String)> {
    env.push(("CROWDPARK_ENGINE__WORKERS".into(), workers.to_string()));
    env
}

/// Six partitions per input topic. Two of the six crowd partitions hold no
/// zone; before the district had a task of its own, one instance published
/// no crowd district record at all, waiting for them. Killed twice
/// mid-stream under exactly_once, the run's district records are all there,
/// each the sum of its zones, equal to an uninterrupted run's, and seen once.
#[test]
fn six_partitions_give_whole_district_records_through_kills() {
    let d = Disturbed::with_partitions("six", "exactly_once", Some(6));
    crash(&d, 2, 10_000, Snapshots::Damaged);
}

/// Every third checkpoint aborted once written (`CROWDPARK_FAULT_ABORT_EVERY`,
/// as a commit that fails on a broker fault), so the engine rewinds to its
/// last checkpoint again and again without a restart: outputs equal an
/// uninterrupted run's, district records included (before the district had a
/// task of its own, rewinds counted district payments twice).
fn forced_rewinds(guarantee: &str) {
    let mut d = Disturbed::new("rewinds", guarantee);
    d.env
        .push(("CROWDPARK_FAULT_ABORT_EVERY".into(), "3".into()));
    d.env = with_workers(std::mem::take(&mut d.env), 2);
    let sim = simulate(&d.input, &d.brokers, 400, 12_000);
    let (engine, addr) = start_engine(&d.env);
    d.wait_consuming(&addr);
    let uninterrupted = d.assert_same_as_uninterrupted(sim);
    let rewinds = kafka::metric_sum(&kafka::metrics(&addr), "crowdpark_rewinds_total", "");
    assert!(rewinds >= 5.0, "only {rewinds} rewinds were forced");
    d.assert_no_duplicates();
    assert_eq!(stop_engine(engine).code(), Some(0));
    assert_eq!(stop_engine(uninterrupted).code(), Some(0));
}

#[test]
fn forced_rewinds_change_no_output_exactly_once() {
    forced_rewinds("exactly_once");
}

#[test]
fn forced_rewinds_lose_nothing_at_least_once() {
    forced_rewinds("at_least_once");
}

fn crash_repeatedly(guarantee: &str, workers: usize) {
    let mut d = Disturbed::new(&format!("crash-w{workers}"), guarantee);
    d.env = with_workers(std::mem::take(&mut d.env), workers);
    crash(&d, 4, 16_000, Snapshots::Kept);
}

/// What the last restart of [`crash`] finds of the local snapshots.
#[derive(PartialEq)]
enum Snapshots {
    /// As the killed instances left them: the restore reads them and only
    /// the changelog records since.
    Kept,
    /// A byte of each flipped: the restore notices and reads the changelog
    /// whole.
    Damaged,
}

/// Flips a byte in the middle of every snapshot file of the group.
fn damage_snapshots(env: &[(String, String)]) -> usize {
    let files = common::engine::snapshot_files(env);
    for f in &files {
        let mut bytes = std::fs::read(f).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x5a;
        std::fs::write(f, bytes).unwrap();
    }
    files.len()
}

/// Input arrives at 400 messages/s (`messages` of it: 16,000 is ~40 s);
/// the engine is killed `kills` times while it does, each time a random
/// 0–2 s after it started processing (in the middle of a message, an output,
/// a checkpoint transaction: wherever the kill lands). Each restart waits for
/// the killed instance's session to expire (6 s). Then the run must equal an
/// uninterrupted one, and in exactly-once mode show no duplicate.
///
/// Every restart restores from the local snapshots the killed instances
/// left (a restore writes one at once; the keeper catches up every 5 s in
/// the tests) and the changelog since; with `Snapshots::Damaged`, the last
/// one finds them damaged and must read the changelog whole, to the same
/// outputs.
fn crash(d: &Disturbed, kills: u32, messages: u32, snapshots: Snapshots) {
    let sim = simulate(&d.input, &d.brokers, 400, messages);
    let mut rng = Rng::from_env_or_clock();
    let mut kills_mid_stream = 0;
    for _ in 0..kills {
        let (engine, addr) = start_engine(&d.env);
        d.wait_consuming(&addr);
        std::thread::sleep(Duration::from_millis(rng.below(2000)));
        if consumed(&addr, &d.input) > 0.0 {
            kills_mid_stream += 1;
        }
        kill_engine(engine);
    }
    assert!(
        kills_mid_stream >= kills / 2,
        "only {kills_mid_stream} kills landed mid-stream"
    );
    let damaged = match snapshots {
        Snapshots::Damaged => damage_snapshots(&d.env),
        Snapshots::Kept => 0,
    };
    let (last, addr) = start_engine(&d.env);
    let uninterrupted = d.assert_same_as_uninterrupted(sim);
    d.assert_no_duplicates();
    let m = kafka::metrics(&addr);
    let restored = |from: &str| {
        kafka::metric_sum(
            &m,
            "crowdpark_state_restores_total",
            &format!("from=\"{from}\""),
        )
    };
    match snapshots {
        Snapshots::Kept => assert!(
            restored("snapshot") >= 1.0,
            "the last restart read no local snapshot ({} changelog partitions read whole)",
            restored("changelog")
        ),
        Snapshots::Damaged => {
            assert!(damaged >= 1, "no snapshot was left to damage");
            assert_eq!(restored("snapshot"), 0.0, "a damaged snapshot was used");
            assert!(restored("changelog") >= 1.0);
        }
    }
    assert_eq!(stop_engine(last).code(), Some(0));
    assert_eq!(stop_engine(uninterrupted).code(), Some(0));
}

#[test]
fn kill_9_at_random_points_loses_and_double_counts_nothing_at_least_once_one_worker() {
    crash_repeatedly("at_least_once", 1);
}

#[test]
fn kill_9_at_random_points_loses_and_double_counts_nothing_at_least_once_two_workers() {
    crash_repeatedly("at_least_once", 2);
}

#[test]
fn kill_9_at_random_points_exactly_once_shows_no_duplicate_one_worker() {
    crash_repeatedly("exactly_once", 1);
}

#[test]
fn kill_9_at_random_points_exactly_once_shows_no_duplicate_two_workers() {
    crash_repeatedly("exactly_once", 2);
}

#[test]
fn survivor_of_two_takes_over_the_killed_instances_partitions_one_worker() {
    survivor_takes_over(1);
}

#[test]
fn survivor_of_two_takes_over_the_killed_instances_partitions_two_workers() {
    survivor_takes_over(2);
}

/// Two instances share the group; one is killed. The survivor must take its
/// partitions, restore their state from the changelog and finish the job as if
/// one instance had done it all.
fn survivor_takes_over(workers: usize) {
    kafka::require_broker();
    let brokers = kafka::brokers();
    let input = Names::new(&format!("rebal-in-w{workers}"));
    let reference = Names::new(&format!("rebal-ref-w{workers}"));
    let pair = Names::new(&format!("rebal-run-w{workers}"));
    create_topics(&input.env("sim", None));
    let env_a = with_workers(
        engine_env(&pair, &input, "engine", "a", "at_least_once"),
        workers,
    );
    let env_b = with_workers(
        engine_env(&pair, &input, "engine", "b", "at_least_once"),
        workers,
    );
    create_topics(&env_a);

    let sim = simulate(&input, &brokers, 1500, 15_000);
    let (a, addr_a) = start_engine(&env_a);
    let (b, addr_b) = start_engine(&env_b);
    wait_until("both instances processing", Duration::from_secs(60), || {
        consumed(&addr_a, &input) > 300.0 && consumed(&addr_b, &input) > 300.0
    });
    let owned = |addr: &str| {
        kafka::metrics(addr)
            .get("crowdpark_partitions_assigned")
            .copied()
            .unwrap_or(0.0)
    };
    let restored = |addr: &str| {
        kafka::metrics(addr)
            .keys()
            .filter(|k| k.starts_with("crowdpark_restore_seconds{"))
            .count()
    };
    let (a_owns, b_owns) = (owned(&addr_a), owned(&addr_b));
    // Three partitions of every consumed topic, the internal ones included.
    let all = (crowdpark::model::InputTopic::CONSUMED.len() * 3) as f64;
    assert!(
        a_owns > 0.0 && b_owns > 0.0 && a_owns + b_owns == all,
        "the {all} partitions are split: A owns {a_owns}, B {b_owns}"
    );
    kill_engine(b);
    finish(sim);
    let uninterrupted = reference_run(&input, &reference, "at_least_once");
    wait_until(
        &format!("the survivor to own and restore all {all} partitions"),
        Duration::from_secs(60),
        || owned(&addr_a) == all && restored(&addr_a) as f64 == all,
    );
    wait_caught_up(&brokers, &[&pair, &reference], &input);
    assert_same_outputs(&brokers, &reference, &pair, Duration::from_secs(60));
    assert_eq!(stop_engine(a).code(), Some(0));
    assert_eq!(stop_engine(uninterrupted).code(), Some(0));
}

/// A broker of this test's own (the shared one must stay up for the others),
/// on free ports, stopped and its data deleted when dropped.
struct OwnBroker {
    run_dir: std::path::PathBuf,
    port: u16,
    controller_port: u16,
}

impl OwnBroker {
    fn start() -> Self {
        let run_dir = std::env::temp_dir().join(format!(
            "crowdpark-own-broker-{}-{}",
            std::process::id(),
            free_port()
        ));
        let b = OwnBroker {
            run_dir,
            port: free_port(),
            controller_port: free_port(),
        };
        b.script("start");
        b
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn script(&self, command: &str) {
        let status = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka.sh"))
            .arg(command)
            .env("CROWDPARK_KAFKA_RUN", &self.run_dir)
            .env("KAFKA_PORT", self.port.to_string())
            .env("KAFKA_CONTROLLER_PORT", self.controller_port.to_string())
            .env("KAFKA_HEAP_OPTS", "-Xms128m -Xmx512m")
            .status()
            .unwrap();
        assert!(status.success(), "kafka.sh {command}");
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka.sh"))
            .arg("stop")
            .env("CROWDPARK_KAFKA_RUN", &self.run_dir)
            .env("KAFKA_PORT", self.port.to_string())
            .status();
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

fn on_broker(mut env: Vec<(String, String)>, brokers: &str) -> Vec<(String, String)> {
    env.retain(|(k, _)| k != "CROWDPARK_KAFKA__BROKERS");
    env.push(("CROWDPARK_KAFKA__BROKERS".into(), brokers.into()));
    env
}

fn health(addr: &str) -> (u16, String) {
    http_get(addr, "/healthz").unwrap_or((0, String::new()))
}

/// The broker stops mid-stream and comes back: the engine keeps running, says
/// it is unhealthy while the broker is away, resumes, and every message is
/// accounted for with the same final outputs as an uninterrupted run.
#[test]
fn broker_restart_mid_stream_loses_nothing_one_worker() {
    broker_restart_mid_stream(1);
}

#[test]
fn broker_restart_mid_stream_loses_nothing_two_workers() {
    broker_restart_mid_stream(2);
}

fn broker_restart_mid_stream(workers: usize) {
    let broker = OwnBroker::start();
    let brokers = broker.addr();
    let input = Names::new(&format!("outage-in-w{workers}"));
    let run = Names::new(&format!("outage-run-w{workers}"));
    let reference = Names::new(&format!("outage-ref-w{workers}"));
    create_topics(&on_broker(input.env("sim", None), &brokers));
    let mut env = with_workers(
        on_broker(
            engine_env(&run, &input, "engine", "a", "at_least_once"),
            &brokers,
        ),
        workers,
    );
    env.push(("CROWDPARK_KAFKA__UNHEALTHY_AFTER".into(), "3s".into()));
    create_topics(&env);

    let sim = simulate(&input, &brokers, 1500, 15_000);
    let (engine, addr) = start_engine(&env);
    wait_until("input flowing", Duration::from_secs(60), || {
        consumed(&addr, &input) > 3000.0
    });
    assert_eq!(health(&addr).0, 200);
    broker.script("halt");
    // While the broker shuts down (seconds, on a busy machine) its
    // connections still look up and commits already stall: 503 says "no
    // progress" first, truthfully. Once it is gone, the outage is the reason.
    wait_until(
        "/healthz to report the outage",
        Duration::from_secs(30),
        || {
            let (code, why) = health(&addr);
            code == 503 && why.contains("no Kafka broker reachable")
        },
    );
    let (_, why) = health(&addr);
    let away: u64 = why
        .split("no Kafka broker reachable for ")
        .nth(1)
        .and_then(|r| r.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("unexpected reason: {why}"));
    assert!(
        away >= 3,
        "unhealthy only after kafka.unhealthy_after: {why}"
    );
    // The probes an orchestrator uses: not ready, and still alive (a
    // liveness probe on /healthz would restart every instance now).
    assert!(
        matches!(http_get(&addr, "/readyz"), Ok((503, body)) if body.contains("no Kafka broker reachable")),
        "{:?}",
        http_get(&addr, "/readyz")
    );
    assert!(
        matches!(http_get(&addr, "/livez"), Ok((200, _))),
        "/livez during the outage: {:?}",
        http_get(&addr, "/livez")
    );
    broker.script("resume");
    wait_until("/healthz to recover", Duration::from_secs(60), || {
        health(&addr).0 == 200
    });
    let summary = finish(sim);
    wait_caught_up(&brokers, &[&run], &input);

    // The accounting identity, per input topic, and every message seen.
    let m = kafka::metrics(&addr);
    let mut bad: BTreeMap<String, f64> = BTreeMap::new();
    for (topic, counts) in summary["topics"].as_object().unwrap() {
        let label = format!("topic=\"{topic}\"");
        let sum = |name: &str| kafka::metric_sum(&m, name, &label);
        let consumed = sum("crowdpark_events_consumed_total");
        assert_eq!(
            consumed,
            sum("crowdpark_events_accepted_total")
                + sum("crowdpark_events_rejected_total")
                + sum("crowdpark_events_duplicate_total"),
            "{topic}: consumed = accepted + dead-lettered + duplicates"
        );
        assert!(
            consumed >= counts["sent"].as_f64().unwrap(),
            "{topic}: consumed {consumed} of {}",
            counts["sent"]
        );
        let rejects: f64 = counts["reject"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_f64().unwrap())
            .sum();
        bad.insert(topic.clone(), rejects);
    }
    // Every bad message reached the dead-letter topic (a replay after a
    // rewind may repeat one; it is the same input offset).
    let mut dead: BTreeMap<String, BTreeSet<(i64, i64)>> = BTreeMap::new();
    for r in kafka::read_all_on(&brokers, &run.topic("crowdpark.deadletter")) {
        dead.entry(r.value["topic"].as_str().unwrap().to_string())
            .or_default()
            .insert((
                r.value["partition"].as_i64().unwrap(),
                r.value["offset"].as_i64().unwrap(),
            ));
    }
    for (topic, n) in &bad {
        let got = dead.get(topic).map_or(0, |s| s.len()) as f64;
        assert_eq!(got, *n, "{topic}: dead-lettered messages");
    }

    let ref_env = on_broker(
        engine_env(&reference, &input, "engine", "ref", "at_least_once"),
        &brokers,
    );
    create_topics(&ref_env);
    let (uninterrupted, _) = start_engine(&ref_env);
    assert_same_outputs(&brokers, &reference, &run, Duration::from_secs(90));
    assert_eq!(stop_engine(engine).code(), Some(0));
    assert_eq!(stop_engine(uninterrupted).code(), Some(0));
}
