//! Driving `crowdpark run` processes in Kafka tests: start, stop (SIGTERM),
//! crash (SIGKILL), and what a run published, reduced to what must not depend
//! on crashes, restarts or rebalances.

use super::kafka::{self, Names};
use super::{spawn_crowdpark, ChildGuard};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

pub fn create_topics(env: &[(String, String)]) {
    let out = Command::new(env!("CARGO_BIN_EXE_crowdpark"))
        .args(["topics", "create"])
        .envs(env.iter().cloned())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "topics create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The local snapshot files of the group `env` names (`Names::env` puts
/// them under the test's temporary directory).
pub fn snapshot_files(env: &[(String, String)]) -> Vec<std::path::PathBuf> {
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let dir = std::path::Path::new(&get("CROWDPARK_ENGINE__STATE_DIR").expect("a state dir"))
        .join(get("CROWDPARK_KAFKA__GROUP_ID").expect("a group id"));
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "snapshot"))
                .collect()
        })
        .unwrap_or_default()
}

pub struct Engine {
    pub child: ChildGuard,
    pub stdout: std::sync::mpsc::Receiver<String>,
}

impl Engine {
    pub fn pid(&self) -> u32 {
        self.child.0.as_ref().unwrap().id()
    }
}

/// Starts `crowdpark run`; returns the process and its HTTP address.
pub fn start_engine(env: &[(String, String)]) -> (Engine, String) {
    let (child, rx) = spawn_crowdpark(&["run", "--listen", "127.0.0.1:0"], env);
    let mut lines = Vec::new();
    let addr = super::http_address(&rx, Duration::from_secs(60), &mut lines);
    (Engine { child, stdout: rx }, addr)
}

/// SIGTERM; the exit status and the number of messages the run consumed (from
/// its last line, `stopped: consumed N, ...`).
pub fn stop_engine_counting(engine: Engine) -> (std::process::ExitStatus, f64) {
    let status = stop_engine(Engine {
        child: engine.child,
        stdout: std::sync::mpsc::channel().1,
    });
    let consumed = engine
        .stdout
        .try_iter()
        .find_map(|l| {
            l.strip_prefix("stopped: consumed ")
                .and_then(|r| r.split(',').next()?.parse().ok())
        })
        .expect("a `stopped:` line");
    (status, consumed)
}

/// SIGTERM, and the exit status.
pub fn stop_engine(engine: Engine) -> std::process::ExitStatus {
    signal_and_wait(engine, "-TERM")
}

/// SIGKILL: a crash, with no chance to checkpoint or commit.
pub fn kill_engine(engine: Engine) {
    signal_and_wait(engine, "-KILL");
}

fn signal_and_wait(engine: Engine, signal: &str) -> std::process::ExitStatus {
    let mut child = engine.child;
    let c = child.0.as_mut().unwrap();
    Command::new("kill")
        .args([signal, &c.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = c.try_wait().unwrap() {
            child.0 = None;
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "engine did not stop within 60 s of {signal}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Messages consumed from the three input topics of `input` (not the internal
/// repartition topic), by the engine at `addr`.
pub fn consumed(addr: &str, input: &Names) -> f64 {
    input.sum_over_inputs(&kafka::metrics(addr), "crowdpark_events_consumed_total")
}

/// Everything a run published, reduced to what must not depend on restarts:
/// the distinct alert ids of each zone in the order they first appeared, every
/// window record, and the last availability record of each car park.
#[derive(Debug, PartialEq)]
pub struct Published {
    pub alerts: BTreeMap<String, Vec<String>>,
    pub availability: BTreeMap<String, Value>,
    pub stats: BTreeMap<(String, String), Value>,
    pub density: BTreeMap<(String, String), Value>,
    /// The district records of each window, by district, scope and window
    /// start.
    pub district: BTreeMap<(String, String, String), Value>,
}

pub fn published(names: &Names) -> Published {
    published_on(&kafka::brokers(), names)
}

pub fn published_on(brokers: &str, names: &Names) -> Published {
    let read = |base: &str| kafka::read_all_on(brokers, &names.topic(base));
    let windowed = |records: Vec<kafka::Record>| {
        let mut map: BTreeMap<(String, String), Value> = BTreeMap::new();
        // The district's records are compared on their own (`district`).
        for r in records
            .into_iter()
            .filter(|r| r.value["type"] != "district")
        {
            let key = (
                r.key.clone(),
                r.value["window_start"].as_str().unwrap().to_string(),
            );
            if let Some(old) = map.get(&key) {
                assert_eq!(old, &r.value, "a repeated window record must be identical");
            }
            map.insert(key, r.value);
        }
        map
    };
    let mut alerts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in read("crowd.alerts") {
        let ids = alerts.entry(r.key.clone()).or_default();
        let id = r.value["alert_id"].as_str().unwrap().to_string();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Published {
        alerts,
        // Car parks only: the district roll-up publishes by the wall clock.
        availability: kafka::latest_per_key(&read("parking.availability"))
            .into_iter()
            .filter(|(_, v)| v["type"] == "OffStreetParking")
            .collect(),
        district: district_records(&[read("payments.stats"), read("crowd.density")]),
        stats: windowed(read("payments.stats")),
        density: windowed(read("crowd.density")),
    }
}

/// The district records among `topics`, by district, scope and window
/// start; a window published twice must be published the same.
fn district_records(topics: &[Vec<kafka::Record>]) -> BTreeMap<(String, String, String), Value> {
    let mut map = BTreeMap::new();
    for r in topics
        .iter()
        .flatten()
        .filter(|r| r.value["type"] == "district")
    {
        let text = |field: &str| r.value[field].as_str().unwrap_or_default().to_string();
        let key = (text("district"), text("scope"), text("window_start"));
        let value = r.value.clone();
        if let Some(old) = map.get(&key) {
            assert_eq!(old, &value, "a repeated district record must be identical");
        }
        map.insert(key, value);
    }
    map
}

/// Records that a `read_committed` consumer of the output topics sees more
/// than once: an alert id, a window, or an identical availability record.
pub fn duplicates(brokers: &str, names: &Names) -> Vec<String> {
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for base in [
        "crowd.alerts",
        "crowd.density",
        "payments.stats",
        "parking.availability",
    ] {
        for r in kafka::read_all_on(brokers, &names.topic(base)) {
            // The car parks' roll-up may publish the same figures again by
            // design (its heartbeat), so identical records are not repeats.
            if r.value["type"] == "ParkingGroup" {
                continue;
            }
            let id = match base {
                "crowd.alerts" => r.value["alert_id"].to_string(),
                "crowd.density" | "payments.stats" => {
                    format!("{} {} {}", r.key, r.value["scope"], r.value["window_start"])
                }
                _ => format!("{} {}", r.key, r.value),
            };
            *seen.entry(format!("{base}: {id}")).or_insert(0) += 1;
        }
    }
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(k, n)| format!("{k} ×{n}"))
        .collect()
}

/// Waits until `run` published the same as `reference` on `brokers` (idle
/// partitions close their last windows only after the idle timeout), and shows
/// the difference if it never does.
pub fn assert_same_outputs(brokers: &str, reference: &Names, run: &Names, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let (a, b) = (published_on(brokers, reference), published_on(brokers, run));
        let missing = windows_without_district(&a);
        if a == b && missing.is_empty() {
            assert!(
                !a.alerts.is_empty()
                    && !a.stats.is_empty()
                    && !a.density.is_empty()
                    && !a.district.is_empty(),
                "the script must produce alerts and windows to compare"
            );
            assert_district_sums(&a);
            return;
        }
        if Instant::now() > deadline {
            let mut diff = Vec::new();
            diff.extend(differences("alerts", &a.alerts, &b.alerts));
            diff.extend(differences("payments.stats", &a.stats, &b.stats));
            diff.extend(differences("crowd.density", &a.density, &b.density));
            diff.extend(differences("district", &a.district, &b.district));
            diff.extend(
                missing
                    .iter()
                    .map(|w| format!("no district record for {w}")),
            );
            diff.extend(differences(
                "parking.availability",
                &a.availability,
                &b.availability,
            ));
            panic!(
                "outputs differ from the uninterrupted run ({} differences; first 10):\n{}\ndead letters (input partition, reason: count), uninterrupted: {:?}\nthis run: {:?}",
                diff.len(),
                diff.iter().take(10).cloned().collect::<Vec<_>>().join("\n"),
                dead_letters(brokers, reference),
                dead_letters(brokers, run),
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// A run's dead letters, each input message once, counted by input
/// partition and reason: a run that refused what the other took shows here.
fn dead_letters(brokers: &str, names: &Names) -> BTreeMap<String, usize> {
    let mut seen = std::collections::BTreeSet::new();
    let mut counts = BTreeMap::new();
    for r in kafka::read_all_on(brokers, &names.topic("crowdpark.deadletter")) {
        let v = &r.value;
        if seen.insert((
            v["topic"].to_string(),
            v["partition"].as_i64(),
            v["offset"].as_i64(),
        )) {
            let at = format!("{}[{}] {}", v["topic"], v["partition"], v["reason"]);
            *counts.entry(at).or_insert(0) += 1;
        }
    }
    counts
}

fn differences<K: Ord + std::fmt::Debug, V: PartialEq + std::fmt::Debug>(
    what: &str,
    reference: &BTreeMap<K, V>,
    run: &BTreeMap<K, V>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in reference {
        match run.get(k) {
            None => out.push(format!("{what} {k:?}: missing")),
            Some(w) if w != v => out.push(format!("{what} {k:?}: {w:?}, expected {v:?}")),
            _ => {}
        }
    }
    for k in run.keys().filter(|k| !reference.contains_key(k)) {
        out.push(format!("{what} {k:?}: not in the uninterrupted run"));
    }
    out
}

/// The zone windows (district, crowd or payments, start) that no district
/// record sums: a district window must close once its zones' have.
pub fn windows_without_district(p: &Published) -> Vec<String> {
    let mut missing = std::collections::BTreeSet::new();
    for (scope, zones) in [("crowd", &p.density), ("payments", &p.stats)] {
        for ((_, start), z) in zones {
            let district = z["district"].as_str().unwrap_or_default().to_string();
            let key = (district, scope.to_string(), start.clone());
            if !p.district.contains_key(&key) {
                missing.insert(format!("{} {scope} {start}", key.0));
            }
        }
    }
    missing.into_iter().collect()
}

/// Every district record equals the sum of its zones' records of the same
/// window: the people (in tenths, as published), the zones by level, the
/// transactions and the net amount (in fen).
pub fn assert_district_sums(p: &Published) {
    let fen = |v: &Value| -> i64 {
        let text = v.as_str().unwrap_or("0");
        let (whole, frac) = text.split_once('.').unwrap_or((text, "0"));
        let sign = if whole.starts_with('-') { -1 } else { 1 };
        whole.parse::<i64>().unwrap() * 100
            + sign * format!("{frac:0<2}")[..2].parse::<i64>().unwrap()
    };
    for ((district, scope, start), d) in &p.district {
        let zones: Vec<&Value> = match scope.as_str() {
            "crowd" => &p.density,
            _ => &p.stats,
        }
        .iter()
        .filter(|((_, s), v)| s == start && v["district"] == district.as_str())
        .map(|(_, v)| v)
        .collect();
        assert!(
            !zones.is_empty(),
            "district {district} {scope} {start} without zone records"
        );
        if scope == "crowd" {
            let tenths: i64 = zones
                .iter()
                .map(|z| (z["people_avg"].as_f64().unwrap() * 10.0).round() as i64)
                .sum();
            let district = (d["people"].as_f64().unwrap() * 10.0).round() as i64;
            assert_eq!(district, tenths, "district crowd {start}: people\n{d}");
            let levels: u64 = d["zones_by_level"]
                .as_object()
                .unwrap()
                .values()
                .map(|n| n.as_u64().unwrap())
                .sum();
            assert_eq!(
                levels,
                zones.len() as u64,
                "district crowd {start}: zones\n{d}"
            );
        } else {
            let n: u64 = zones
                .iter()
                .map(|z| z["transactions"].as_u64().unwrap())
                .sum();
            assert_eq!(
                d["transactions"].as_u64(),
                Some(n),
                "district payments {start}\n{d}"
            );
            let amount: i64 = zones.iter().map(|z| fen(&z["amount"])).sum();
            assert_eq!(
                fen(&d["amount"]),
                amount,
                "district payments {start}: amount\n{d}"
            );
        }
    }
}
