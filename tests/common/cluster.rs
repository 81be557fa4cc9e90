//! The 3-node cluster of `scripts/kafka.sh start --cluster` (replication factor
//! 3, min.insync.replicas 2), started by the test binary that uses it, on ports
//! of its own, and stopped when the binary's last test is done. A test binary
//! calls [`use_cluster`] first; from then on every helper in `kafka` and
//! `engine` talks to this cluster. Its tests take turns ([`turn`]): each
//! disturbs the whole cluster.

use rdkafka::consumer::{BaseConsumer, Consumer};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

pub struct Cluster {
    run: PathBuf,
    port: u16,
}

static CHOSEN: OnceLock<Cluster> = OnceLock::new();
static TURN: Mutex<()> = Mutex::new(());

pub fn chosen() -> Option<&'static Cluster> {
    CHOSEN.get()
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// One test at a time on the cluster.
pub fn turn() -> MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts the cluster (once per test binary) and points every helper at it.
pub fn use_cluster() -> &'static Cluster {
    CHOSEN.get_or_init(|| {
        let cluster = Cluster {
            run: root().join(".cache/kafka-cluster-test-run"),
            port: std::env::var("CROWDPARK_TEST_CLUSTER_PORT")
                .ok()
                .and_then(|p| p.parse().ok())
                .unwrap_or(9290),
        };
        let _ = cluster.script(&["stop"]);
        let out = cluster.script(&["start"]);
        assert!(
            out.status.success(),
            "starting the 3-node cluster: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Stopped when the test binary exits, however its tests ended.
        extern "C" fn stop_at_exit() {
            if let Some(c) = CHOSEN.get() {
                let _ = c.script(&["stop"]);
            }
        }
        unsafe { libc::atexit(stop_at_exit) };
        cluster
    })
}

impl Cluster {
    fn script(&self, args: &[&str]) -> std::process::Output {
        let mut all = args.to_vec();
        all.push("--cluster");
        Command::new(root().join("scripts/kafka.sh"))
            .args(&all)
            .env("CROWDPARK_KAFKA_CLUSTER_RUN", &self.run)
            .env("KAFKA_CLUSTER_PORT", self.port.to_string())
            .output()
            .expect("scripts/kafka.sh runs")
    }

    /// Runs a node command (`kill`, `launch`, `restart`, `pause`, `resume`).
    pub fn node(&self, command: &str, node: i32) {
        eprintln!("cluster: {command} node {node}");
        let out = self.script(&[command, &node.to_string()]);
        assert!(
            out.status.success(),
            "{command} {node}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn brokers(&self) -> String {
        (1..=3)
            .map(|n| format!("127.0.0.1:{}", self.port + n))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node leading the most partitions of `topics`.
    pub fn busiest_leader(&self, topics: &[String]) -> i32 {
        let consumer: BaseConsumer = super::kafka::client_on(&self.brokers()).create().unwrap();
        let md = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .unwrap();
        let mut led = [0u32; 4];
        for t in md
            .topics()
            .iter()
            .filter(|t| topics.iter().any(|n| n == t.name()))
        {
            for p in t.partitions() {
                if (1..=3).contains(&p.leader()) {
                    led[p.leader() as usize] += 1;
                }
            }
        }
        eprintln!("partitions led per node: {:?}", &led[1..]);
        (1..=3).max_by_key(|n| led[*n as usize]).unwrap()
    }

    /// The node coordinating `transactional_id`'s transactions: the leader of
    /// its `__transaction_state` partition (`abs(hashCode) % 5` in Java, 5 the
    /// partition count `scripts/kafka/cluster.sh` sets).
    pub fn transaction_coordinator(&self, transactional_id: &str) -> i32 {
        let hash = transactional_id
            .encode_utf16()
            .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32));
        // Kafka's Utils.abs: Math.abs, with i32::MIN mapped to 0.
        let partition = if hash == i32::MIN { 0 } else { hash.abs() } % 5;
        let consumer: BaseConsumer = super::kafka::client_on(&self.brokers()).create().unwrap();
        let md = consumer
            .fetch_metadata(Some("__transaction_state"), Duration::from_secs(10))
            .unwrap();
        md.topics()[0]
            .partitions()
            .iter()
            .find(|p| p.id() == partition)
            .map(|p| p.leader())
            .expect("the transaction state partition")
    }
}
