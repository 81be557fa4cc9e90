//! Health that tells the truth, signals that are answered and logs that do
//! not flood, against `crowdpark run`:
//! - with no broker at start-up the engine waits for one (it used to exit
//!   after 60 s), `/healthz` turns 503 with the reason after
//!   `unhealthy_after` (it said 200 throughout), the same failure is logged
//!   once per interval (it was ~12 lines a second), and SIGTERM stops it at
//!   once (it was ignored until the start-up attempt gave up);
//! - on the real broker, a checkpoint that cannot complete (an output topic
//!   refusing every record) turns `/healthz` 503 with "no progress", and it
//!   recovers once the topic takes records again.

mod common;

use common::engine::{create_topics, start_engine, stop_engine, wait_until};
use common::kafka::{self, Names};
use common::{free_port, http_get, ChildGuard};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crowdpark::testing::T0;

fn health(addr: &str) -> (u16, String) {
    http_get(addr, "/healthz").unwrap_or((0, String::new()))
}

#[test]
fn no_broker_at_start_up_is_waited_for_reported_and_logged_once() {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_crowdpark"))
        .args(["run", "--listen", "127.0.0.1:0"])
        .env("CROWDPARK_KAFKA__BROKERS", format!("127.0.0.1:{port}"))
        .env("CROWDPARK_KAFKA__UNHEALTHY_AFTER", "2s")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut guard = ChildGuard(Some(child));
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log.lock().unwrap().push(line);
            }
        });
    }
    // Read stdout to the end, so the engine's last line has a reader.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr = common::http_address(&rx, Duration::from_secs(30), &mut Vec::new());

    wait_until(
        "/healthz 503 without a broker",
        Duration::from_secs(30),
        || health(&addr).0 == 503,
    );
    let (_, body) = health(&addr);
    assert!(body.contains("not yet connected to Kafka"), "{body}");
    let metrics = kafka::metrics(&addr);
    assert_eq!(metrics.get("crowdpark_healthy"), Some(&0.0));

    // Twelve more seconds without a broker: still waiting, still quiet.
    let watched = Instant::now();
    let lines_before = log.lock().unwrap().len();
    std::thread::sleep(Duration::from_secs(12));
    let c = guard.0.as_mut().unwrap();
    assert!(
        c.try_wait().unwrap().is_none(),
        "the engine gave up waiting"
    );
    let lines = log.lock().unwrap().len() - lines_before;
    assert!(
        lines <= 12,
        "{lines} log lines in {} s without a broker:\n{}",
        watched.elapsed().as_secs(),
        log.lock().unwrap()[lines_before..].join("\n")
    );

    // SIGTERM is answered now, not when a start-up attempt gives up.
    Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status()
        .unwrap();
    let asked = Instant::now();
    let status = loop {
        if let Some(s) = c.try_wait().unwrap() {
            break s;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(10),
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    guard.0 = None;
    assert!(status.success(), "exit status {status}");
}

#[test]
fn a_checkpoint_that_cannot_complete_turns_health_503_until_it_can() {
    kafka::require_broker();
    let names = Names::new("stall");
    let mut env = names.env("engine", None);
    env.push(("CROWDPARK_KAFKA__UNHEALTHY_AFTER".into(), "3s".into()));
    env.push(("CROWDPARK_KAFKA__COMMIT_INTERVAL".into(), "500ms".into()));
    create_topics(&env);
    let (engine, addr) = start_engine(&env);
    let availability = names.topic("parking.availability");
    kafka::set_max_message_bytes(&availability, true, 100);

    let p = kafka::producer();
    let parking = names.topic("parking.events");
    for i in 0..20 {
        let ts = T0 + i * 1_000;
        let msg = format!(r#"{{"lot":"p09-shangcheng-hotel","ts":{ts},"gate":"entry","count":1}}"#);
        kafka::produce(&p, &parking, "p09-shangcheng-hotel", &msg);
    }
    kafka::flush(&p);
    wait_until(
        "/healthz 503 while no checkpoint commits",
        Duration::from_secs(60),
        || health(&addr).0 == 503,
    );
    let (_, body) = health(&addr);
    assert!(body.contains("no progress"), "{body}");
    assert!(kafka::metrics(&addr)["crowdpark_seconds_since_progress"] > 3.0);

    kafka::set_max_message_bytes(&availability, true, 1_048_588);
    wait_until(
        "/healthz 200 once records are taken",
        Duration::from_secs(60),
        || health(&addr).0 == 200,
    );
    let group = format!("{}-engine", names.prefix);
    wait_until("the input committed", Duration::from_secs(60), || {
        kafka::caught_up(&kafka::brokers(), &group, std::slice::from_ref(&parking))
    });
    assert!(stop_engine(engine).success());
}
