//! Replay, supported: an hour of the district is processed, then processed
//! again after a reset, and the second pass publishes what the first did.
//! Before, `kafka-consumer-groups --reset-offsets` was silently overridden
//! once a checkpoint existed (restore resumes from the checkpoint's offsets),
//! and there was no way to reprocess.

mod common;

use common::engine::{create_topics, published, start_engine, stop_engine, wait_until};
use common::kafka::{self, Names};
use common::scenario::{engine_env, finish, simulate, wait_caught_up};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::process::Command;
use std::time::Duration;

/// The simulated district's first hour or so (40,000 messages).
const MESSAGES: u32 = 40_000;

/// An engine environment whose outputs go to `outputs`' topics while its
/// group, changelog and repartition topic stay `run`'s.
fn env_with_outputs(run: &Names, input: &Names, outputs: &Names) -> Vec<(String, String)> {
    let mut env = engine_env(run, input, "engine", "a", "exactly_once");
    for (key, base) in [
        ("CROWD_ALERTS", "crowd.alerts"),
        ("CROWD_DENSITY", "crowd.density"),
        ("PARKING_AVAILABILITY", "parking.availability"),
        ("PAYMENTS_STATS", "payments.stats"),
        ("DEADLETTER", "crowdpark.deadletter"),
    ] {
        env.push((format!("CROWDPARK_TOPICS__{key}"), outputs.topic(base)));
    }
    env
}

/// Processes the input to its end with `env`, waits for the idle timeout to
/// close what it can (3 s), then stops.
fn process_all(env: &[(String, String)], run: &Names, input: &Names) {
    let (engine, _) = start_engine(env);
    wait_caught_up(&kafka::brokers(), &[run], input);
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(stop_engine(engine).code(), Some(0));
}

fn crowdpark(args: &[&str], env: &[(String, String)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_crowdpark"))
        .args(args)
        .envs(env.iter().cloned())
        .output()
        .unwrap()
}

/// The first pass, published to `first`'s outputs; returns the run's names.
fn first_pass(kind: &str, first: &Names) -> (Names, Names) {
    kafka::require_broker();
    let input = Names::new(&format!("{kind}-in"));
    let run = Names::new(&format!("{kind}-run"));
    create_topics(&input.env("sim", None));
    let sim = simulate(&input, &kafka::brokers(), 0, MESSAGES);
    finish(sim);
    let env = env_with_outputs(&run, &input, first);
    create_topics(&env);
    process_all(&env, &run, &input);
    (run, input)
}

/// Waits until the second pass published what the first did.
fn assert_second_equals_first(first: &Names, second: &Names) {
    let want = published(first);
    assert!(!want.stats.is_empty() && !want.density.is_empty() && !want.alerts.is_empty());
    let mut got = published(second);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while got != want && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(1));
        got = published(second);
    }
    assert_eq!(
        got.stats.len(),
        want.stats.len(),
        "payments windows: {} reprocessed, {} first",
        got.stats.len(),
        want.stats.len()
    );
    assert!(
        got == want,
        "the reprocessed outputs differ from the first pass's"
    );
}

/// `crowdpark reset --to-earliest`: refused while an instance runs; with it
/// stopped, the checkpoint is deleted and the offsets set, and the second pass
/// equals the first.
#[test]
fn reset_to_earliest_reprocesses_the_hour_as_the_first_pass() {
    let (first, second) = (Names::new("reset-out1"), Names::new("reset-out2"));
    let (run, input) = first_pass("reset", &first);
    let env = env_with_outputs(&run, &input, &second);
    create_topics(&env);

    let (running, addr) = start_engine(&env);
    // A member of the group once its partitions are assigned.
    wait_until(
        "the instance to join the group",
        Duration::from_secs(60),
        || matches!(common::http_get(&addr, "/readyz"), Ok((200, _))),
    );
    let refused = crowdpark(&["reset", "--to-earliest"], &env);
    assert!(!refused.status.success(), "a reset while an instance runs");
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("stop every `crowdpark run`"), "{why}");
    assert_eq!(stop_engine(running).code(), Some(0));

    let out = crowdpark(&["reset", "--to-earliest"], &env);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("checkpoint deleted"), "{said}");
    assert!(
        said.contains(&format!("{}[0] -> 0", input.topic("payments"))),
        "{said}"
    );
    process_all(&env, &run, &input);
    assert_second_equals_first(&first, &second);
}

/// An operator's `kafka-consumer-groups --reset-offsets --all-topics
/// --to-earliest` (here the same commit through a client, with the engine
/// stopped) is honoured, not overridden by the checkpoint: the second pass
/// equals the first.
#[test]
fn an_operators_offset_reset_is_honoured() {
    let (first, second) = (Names::new("opreset-out1"), Names::new("opreset-out2"));
    let (run, input) = first_pass("opreset", &first);
    let env = env_with_outputs(&run, &input, &second);
    create_topics(&env);

    let group = format!("{}-engine", run.prefix);
    let client: BaseConsumer = kafka::client_on(&kafka::brokers())
        .set("group.id", &group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    let mut topics = input.input_topics();
    topics.push(run.topic("crowdpark.payments-by-zone"));
    topics.push(run.topic("crowdpark.partials-by-district"));
    for t in &topics {
        for p in 0..3 {
            tpl.add_partition_offset(t, p, Offset::Offset(0)).unwrap();
        }
    }
    client.commit(&tpl, CommitMode::Sync).unwrap();
    drop(client);

    let (engine, addr) = start_engine(&env);
    wait_until(
        "the reset partitions to be reprocessed",
        Duration::from_secs(60),
        || common::engine::consumed(&addr, &input) >= f64::from(MESSAGES),
    );
    wait_caught_up(&kafka::brokers(), &[&run], &input);
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(stop_engine(engine).code(), Some(0));
    assert_second_equals_first(&first, &second);
}

/// `--to-datetime`: each input partition resumes at its first record at or
/// after the time, as the broker's time index says (the records' timestamps:
/// the event time where producers set it; the simulator's are when it sent).
#[test]
fn reset_to_a_time_picks_the_first_record_at_or_after_it() {
    let first = Names::new("timereset-out1");
    let (run, input) = first_pass("timereset", &first);
    let env = env_with_outputs(&run, &input, &first);
    // The time of a record half-way through one partition.
    let payments = input.topic("payments");
    let client: BaseConsumer = kafka::client_on(&kafka::brokers())
        .set("group.id", format!("{}-look", run.prefix))
        .create()
        .unwrap();
    let (_, high) = client
        .fetch_watermarks(&payments, 0, Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&payments, 0, Offset::Offset(high / 2))
        .unwrap();
    client.assign(&tpl).unwrap();
    let ms = match client.poll(Duration::from_secs(10)) {
        Some(Ok(m)) => rdkafka::Message::timestamp(&m).to_millis().unwrap(),
        Some(Err(e)) => panic!("{e}"),
        None => panic!("no record at offset {}", high / 2),
    };
    let at = chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let out = crowdpark(&["reset", "--to-datetime", &at], &env);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut resumed_inside = 0;
    for t in input.input_topics() {
        let mut tpl = TopicPartitionList::new();
        for p in 0..3 {
            tpl.add_partition_offset(&t, p, Offset::Offset(ms)).unwrap();
        }
        let found = client
            .offsets_for_times(tpl, Duration::from_secs(30))
            .unwrap();
        for e in found.elements() {
            let o = match e.offset() {
                Offset::Offset(o) => o,
                _ => {
                    client
                        .fetch_watermarks(&t, e.partition(), Duration::from_secs(10))
                        .unwrap()
                        .1
                }
            };
            resumed_inside += usize::from(o > 0);
            assert!(
                said.contains(&format!("{t}[{}] -> {o}\n", e.partition())),
                "{t}[{}] should resume at {o}: {said}",
                e.partition()
            );
        }
    }
    assert!(resumed_inside > 0, "the time lies inside the input: {said}");
}
