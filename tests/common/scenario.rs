//! A simulated district fed into Kafka and engines run over it with the
//! settings the recovery and fault tests share: alerts within a few simulated
//! minutes, heartbeats off, short sessions. Compare a disturbed run with an
//! uninterrupted one through `engine::assert_same_outputs`.

use super::engine::{
    assert_same_outputs, consumed, create_topics, start_engine, stop_engine, Engine,
};
use super::kafka::{self, Names};
use super::ChildGuard;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Event-time settings that raise alerts within a few simulated minutes, with
/// heartbeats off (their timing follows the wall clock once input ends).
pub const SETTINGS: [(&str, &str); 7] = [
    ("CROWDPARK_PARKING__HEARTBEAT", "1h"),
    ("CROWDPARK_ENGINE__IDLE_TIMEOUT", "3s"),
    ("CROWDPARK_CROWD__THRESHOLDS__YELLOW", "0.9"),
    ("CROWDPARK_CROWD__THRESHOLDS__RED", "1.3"),
    ("CROWDPARK_CROWD__MIN_DWELL", "30s"),
    ("CROWDPARK_KAFKA__COMMIT_INTERVAL", "500ms"),
    // A killed instance leaves the group when its session expires; the
    // broker's minimum keeps the wait for its partitions short.
    ("CROWDPARK_KAFKA__CLIENT__SESSION_TIMEOUT_MS", "6000"),
];

pub fn engine_env(
    names: &Names,
    input: &Names,
    group: &str,
    instance: &str,
    guarantee: &str,
) -> Vec<(String, String)> {
    let mut env = names.env(group, Some(input));
    env.extend(SETTINGS.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env.push((
        "CROWDPARK_KAFKA__INSTANCE_ID".into(),
        format!("{}-{instance}", names.prefix),
    ));
    env.push((
        "CROWDPARK_KAFKA__PROCESSING_GUARANTEE".into(),
        guarantee.into(),
    ));
    env
}

/// Starts `crowdpark simulate` filling `input` at `rate` messages/s.
pub fn simulate(input: &Names, brokers: &str, rate: u32, messages: u32) -> ChildGuard {
    simulate_with(input, brokers, rate, messages, &[])
}

/// [`simulate`] with extra environment for the simulator (its producer takes
/// librdkafka's settings from `kafka.client`, as every client does).
pub fn simulate_with(
    input: &Names,
    brokers: &str,
    rate: u32,
    messages: u32,
    extra: &[(&str, &str)],
) -> ChildGuard {
    // The brokers come from the configuration (here its environment
    // override), as for every command.
    let child = Command::new(env!("CARGO_BIN_EXE_crowdpark"))
        .args([
            "simulate",
            "--rate",
            &rate.to_string(),
            "--messages",
            &messages.to_string(),
            "--duplicate-ratio",
            "0.01",
            "--bad-ratio",
            "0.01",
        ])
        .envs(input.env("sim", None))
        .env("CROWDPARK_KAFKA__BROKERS", brokers)
        .envs(extra.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    ChildGuard(Some(child))
}

/// Waits for the simulator; its summary (what it sent, per topic).
pub fn finish(mut sim: ChildGuard) -> Value {
    let child = sim.0.take().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "simulate failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A small deterministic generator (the seed is printed, so a failing run can
/// be repeated with `CROWDPARK_TEST_SEED`).
pub struct Rng(u64);

impl Rng {
    pub fn from_env_or_clock() -> Self {
        let seed = std::env::var("CROWDPARK_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("kill points from CROWDPARK_TEST_SEED={seed}");
        Rng(seed | 1)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// Waits until each run's consumer group has committed the end of every input
/// partition.
pub fn wait_caught_up(brokers: &str, runs: &[&Names], input: &Names) {
    for run in runs {
        let group = format!("{}-engine", run.prefix);
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let behind = kafka::behind(brokers, &group, &input.input_topics());
            match behind {
                Some(b) if b.is_empty() => break,
                _ if std::time::Instant::now() > deadline => {
                    panic!("timed out waiting for every input offset committed: {behind:?}")
                }
                _ => std::thread::sleep(Duration::from_millis(250)),
            }
        }
    }
}

/// Runs the reference engine over `input` to the end.
pub fn reference_run(input: &Names, reference: &Names, guarantee: &str) -> Engine {
    let env = engine_env(reference, input, "engine", "ref", guarantee);
    create_topics(&env);
    start_engine(&env).0
}

/// A run that is disturbed (killed, starved of its outputs, ...) over the
/// simulated district, and what it is compared with: the same input topics
/// read by an uninterrupted reference engine.
pub struct Disturbed {
    pub brokers: String,
    pub input: Names,
    pub reference: Names,
    pub run: Names,
    /// The disturbed engine's environment (instance `a`).
    pub env: Vec<(String, String)>,
    pub guarantee: String,
}

impl Disturbed {
    /// Names and topics for a disturbed run called `kind`.
    pub fn new(kind: &str, guarantee: &str) -> Self {
        Self::with_partitions(kind, guarantee, None)
    }

    /// [`new`](Self::new) with `partitions` per topic instead of the
    /// configured 3.
    pub fn with_partitions(kind: &str, guarantee: &str, partitions: Option<i32>) -> Self {
        kafka::require_broker();
        let names = |role: &str| {
            let n = Names::new(&format!("{kind}-{role}-{guarantee}"));
            match partitions {
                Some(p) => n.with_partitions(p),
                None => n,
            }
        };
        let (input, reference, run) = (names("in"), names("ref"), names("run"));
        create_topics(&input.env("sim", None));
        let env = engine_env(&run, &input, "engine", "a", guarantee);
        create_topics(&env);
        Disturbed {
            brokers: kafka::brokers(),
            input,
            reference,
            run,
            env,
            guarantee: guarantee.to_string(),
        }
    }

    /// Waits, at most 15 s, until the engine at `addr` has consumed input.
    pub fn wait_consuming(&self, addr: &str) {
        let started = std::time::Instant::now();
        while consumed(addr, &self.input) == 0.0 && started.elapsed() < Duration::from_secs(15) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Three times, at a random point while the engine (`env`) consumes,
    /// calls `disturb` (with the round), which returns when the disturbance
    /// is over. An engine that stopped on it is started again, as a supervisor
    /// would. Then the run must equal an uninterrupted one, and both stop
    /// cleanly.
    pub fn disturb_three_times(
        &self,
        env: &[(String, String)],
        sim: ChildGuard,
        rng: &mut Rng,
        disturb: impl FnMut(&mut Rng, usize),
    ) {
        self.disturb_rounds(3, env, sim, rng, disturb);
    }

    /// [`disturb_three_times`](Self::disturb_three_times) with `rounds`
    /// disturbances.
    pub fn disturb_rounds(
        &self,
        rounds: usize,
        env: &[(String, String)],
        sim: ChildGuard,
        rng: &mut Rng,
        mut disturb: impl FnMut(&mut Rng, usize),
    ) {
        let mut engine: Option<(Engine, String)> = None;
        let mut stopped = 0;
        for round in 0..rounds {
            let (mut e, addr) = engine.take().unwrap_or_else(|| start_engine(env));
            self.wait_consuming(&addr);
            std::thread::sleep(Duration::from_millis(500 + rng.below(2500)));
            disturb(rng, round);
            match e.child.0.as_mut().unwrap().try_wait().unwrap() {
                Some(status) => {
                    eprintln!("the engine stopped: {status}");
                    e.child.0 = None;
                    stopped += 1;
                }
                None => engine = Some((e, addr)),
            }
        }
        eprintln!("{stopped} of {rounds} disturbances stopped the engine");
        let last = engine.map_or_else(|| start_engine(env).0, |(e, _)| e);
        let uninterrupted = self.assert_same_as_uninterrupted(sim);
        assert_eq!(stop_engine(last).code(), Some(0));
        assert_eq!(stop_engine(uninterrupted).code(), Some(0));
    }

    /// Under exactly_once, a read_committed consumer of the run's outputs
    /// sees no record twice.
    pub fn assert_no_duplicates(&self) {
        if self.guarantee == "exactly_once" {
            let dups = super::engine::duplicates(&self.brokers, &self.run);
            assert!(
                dups.is_empty(),
                "a read_committed consumer saw duplicates: {dups:?}"
            );
        }
    }

    /// Once the simulator is done, runs the reference to the end and asserts
    /// that the disturbed run published the same; returns the reference.
    pub fn assert_same_as_uninterrupted(&self, sim: ChildGuard) -> Engine {
        let uninterrupted = self.start_uninterrupted(sim);
        self.assert_same_as_started(&uninterrupted);
        uninterrupted
    }

    /// Once the simulator is done, starts the reference over the same input.
    /// Start it right away: the last windows close only by the wall clock
    /// (idle advance) once the input ends, so a reference started long after
    /// the disturbed run went idle is that much behind it, and the
    /// comparison's minute may end before it catches up (seen when two
    /// comparisons ran one after the other, the second reference starting
    /// 35 s late).
    pub fn start_uninterrupted(&self, sim: ChildGuard) -> Engine {
        finish(sim);
        reference_run(&self.input, &self.reference, &self.guarantee)
    }

    /// Asserts that the disturbed run published what the reference started
    /// by [`start_uninterrupted`](Self::start_uninterrupted) does.
    pub fn assert_same_as_started(&self, _uninterrupted: &Engine) {
        wait_caught_up(&self.brokers, &[&self.run, &self.reference], &self.input);
        assert_same_outputs(
            &self.brokers,
            &self.reference,
            &self.run,
            Duration::from_secs(60),
        );
    }
}
