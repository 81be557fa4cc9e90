//! Observability with the real tools (Debian package `prometheus`): the
//! exposition passes `promtool check metrics`, the alert rules pass `promtool
//! check rules` and their unit tests, a real Prometheus server scrapes the
//! engine, and the compose file and the Grafana dashboard refer only to files
//! and metrics that exist.

mod common;

use common::{free_port, http_get, spawn_crowdpark, ChildGuard};
use crowdpark::config::{load_str, DEFAULT_CONFIG};
use crowdpark::engine::Engine;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `promtool` with `args`, `stdin` fed in; (success, stdout + stderr).
fn promtool(args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(repo("."))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "promtool not found ({e}): install the Debian package `prometheus` (.ci/run does)"
            )
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `crowdpark demo` on a free port; the process, its output (kept open: the
/// demo stops when nobody reads its console) and its address.
fn demo() -> (ChildGuard, std::sync::mpsc::Receiver<String>, String) {
    let (child, rx) = spawn_crowdpark(
        &[
            "demo",
            "--duration",
            "120",
            "--speed",
            "60",
            "--listen",
            "127.0.0.1:0",
        ],
        &[("RUST_LOG", "warn")],
    );
    let mut lines = Vec::new();
    let addr = common::http_address(&rx, Duration::from_secs(30), &mut lines);
    (child, rx, addr)
}

/// Every metric family the engine exports (labelled families included before
/// they have series).
fn exported_metrics() -> BTreeSet<String> {
    let config = Arc::new(load_str(DEFAULT_CONFIG, Vec::new()).unwrap());
    let engine = Engine::new(config);
    let view = crowdpark::io::live_view(&engine);
    view.metrics.names().into_iter().collect()
}

/// The `crowdpark_*` metric names a PromQL expression uses; histogram series
/// suffixes are folded into their family.
fn metric_names_in(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("crowdpark_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| f.ends_with("_seconds")))
            .unwrap_or(name);
        names.insert(family.to_string());
        rest = &tail[end..];
    }
    names
}

#[test]
fn the_exposition_passes_promtool_check_metrics() {
    let (_demo, _console, addr) = demo();
    // Let the district produce alerts, windows and car park changes first.
    std::thread::sleep(Duration::from_secs(5));
    let (status, body) = http_get(&addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("crowdpark_event_to_output_seconds_bucket"));
    let (ok, problems) = promtool(&["check", "metrics"], &body);
    assert!(
        ok && problems.trim().is_empty(),
        "promtool check metrics: {problems}"
    );
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let (ok, out) = promtool(&["check", "rules", "config/prometheus/alerts.yml"], "");
    assert!(ok, "{out}");
    assert!(out.contains("SUCCESS: 10 rules found"), "{out}");
    let (ok, out) = promtool(&["test", "rules", "config/prometheus/alerts.test.yml"], "");
    assert!(ok, "{out}");
    // The rules use only metrics the engine exports.
    let exported = exported_metrics();
    let rules: serde_norway::Value = serde_norway::from_str(
        &std::fs::read_to_string(repo("config/prometheus/alerts.yml")).unwrap(),
    )
    .unwrap();
    let runbooks = std::fs::read_to_string(repo("docs/operations.md")).unwrap();
    let mut alerts = BTreeSet::new();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            alerts.insert(rule["alert"].as_str().unwrap().to_string());
            assert!(rule["annotations"]["summary"].is_string());
            assert!(rule["annotations"]["description"].is_string());
            // A runbook for each, a section of docs/operations.md.
            let alert = rule["alert"].as_str().unwrap();
            let url = rule["annotations"]["runbook_url"]
                .as_str()
                .unwrap_or_default();
            assert_eq!(
                url,
                format!(
                    "https://crowdpark.example/docs/operations.md#{}",
                    alert.to_lowercase()
                )
            );
            assert!(
                runbooks.contains(&format!("\n### {alert}\n")),
                "no runbook for {alert}"
            );
            for name in metric_names_in(rule["expr"].as_str().unwrap()) {
                assert!(exported.contains(&name), "rule uses unknown metric {name}");
            }
        }
    }
    for wanted in [
        "CrowdparkZoneRed",
        "CrowdparkZoneYellow",
        "CrowdparkZoneForecastRed",
        "CrowdparkCarParkFull",
        "CrowdparkEngineLagging",
        "CrowdparkEngineNotConsuming",
        "CrowdparkEngineUnhealthy",
        "CrowdparkPartitionStalled",
        "CrowdparkDeadLetterRateHigh",
    ] {
        assert!(alerts.contains(wanted), "missing alert {wanted}");
    }
}

#[test]
fn a_real_prometheus_scrapes_every_zone_level() {
    let (_demo, _console, addr) = demo();
    let dir = std::env::temp_dir().join(format!(
        "crowdpark-prom-{}-{}",
        std::process::id(),
        free_port()
    ));
    let (_server, web) = common::tools::prometheus(
        &dir,
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: crowdpark\n    static_configs:\n      - targets: [\"{addr}\"]\n"
        ),
    );

    let zones: BTreeSet<String> = load_str(DEFAULT_CONFIG, Vec::new())
        .unwrap()
        .zones
        .iter()
        .map(|z| z.id.clone())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let seen = loop {
        let seen: BTreeSet<String> =
            http_get(&web, "/api/v1/query?query=crowdpark_zone_alert_level")
                .ok()
                .and_then(|(status, body)| (status == 200).then_some(body))
                .and_then(|body| serde_json::from_str::<Value>(&body).ok())
                .map(|v| {
                    v["data"]["result"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|r| r["metric"]["job"] == "crowdpark")
                        .filter_map(|r| r["metric"]["zone"].as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
        if seen == zones || Instant::now() > deadline {
            break seen;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        seen, zones,
        "Prometheus has crowdpark_zone_alert_level for every zone"
    );
}

#[test]
fn the_dashboard_queries_only_exported_metrics() {
    let exported = exported_metrics();
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo("config/grafana/dashboards/crowdpark.json")).unwrap(),
    )
    .unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    let rows: Vec<&str> = panels
        .iter()
        .filter(|p| p["type"] == "row")
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(rows, ["District overview", "Parking", "Payments", "Engine"]);
    let mut used = BTreeSet::new();
    for p in panels.iter().filter(|p| p["type"] != "row") {
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has no query", p["title"]);
        for t in targets {
            // The datasource and the instances are the viewer's choice.
            assert_eq!(t["datasource"]["uid"], "${datasource}");
            let expr = t["expr"].as_str().unwrap();
            let names = metric_names_in(expr);
            assert_eq!(
                expr.matches("crowdpark_").count(),
                expr.matches("instance=~\"$instance\"").count(),
                "every metric of `{expr}` is filtered by instance"
            );
            assert!(
                !names.is_empty(),
                "{} queries no crowdpark metric",
                p["title"]
            );
            used.extend(names);
        }
    }
    let variables: Vec<(&str, &str)> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        variables,
        [
            ("datasource", "datasource"),
            ("instance", "query"),
            ("zone", "query")
        ]
    );
    let unknown: Vec<&String> = used.iter().filter(|n| !exported.contains(*n)).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries metrics the engine does not export: {unknown:?}"
    );
    // The provisioned datasource is the one the panels name.
    let ds = std::fs::read_to_string(repo(
        "config/grafana/provisioning/datasources/prometheus.yml",
    ))
    .unwrap();
    let ds: serde_norway::Value = serde_norway::from_str(&ds).unwrap();
    assert_eq!(ds["datasources"][0]["uid"].as_str(), Some("prometheus"));
}

/// The compose stack's Alertmanager configuration passes `amtool
/// check-config`, with the receiver and inhibitions it is meant to have, and
/// Prometheus notifies it.
#[test]
fn the_alertmanager_configuration_passes_amtool() {
    let out = Command::new("amtool")
        .args(["check-config", "config/alertmanager/alertmanager.yml"])
        .current_dir(repo(""))
        .output()
        .unwrap_or_else(|e| {
            panic!("amtool not found ({e}): install the Debian package `prometheus-alertmanager` (.ci/run does)")
        });
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "amtool check-config: {text}");
    assert!(text.contains("SUCCESS"), "{text}");
    assert!(
        text.contains("1 receivers") && text.contains("2 inhibit rules"),
        "{text}"
    );
    let prometheus: serde_norway::Value = serde_norway::from_str(
        &std::fs::read_to_string(repo("config/prometheus/prometheus.yml")).unwrap(),
    )
    .unwrap();
    let target = &prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0];
    assert_eq!(target.as_str(), Some("alertmanager:9093"));
}

#[test]
fn the_compose_file_parses_and_refers_to_files_that_exist() {
    let text = std::fs::read_to_string(repo("docker-compose.yml")).unwrap();
    let compose: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let services = compose["services"].as_mapping().unwrap();
    let names: BTreeSet<&str> = services.keys().filter_map(|k| k.as_str()).collect();
    for wanted in [
        "kafka",
        "topics",
        "crowdpark",
        "simulator",
        "prometheus",
        "grafana",
        "alertmanager",
        "alert-log",
    ] {
        assert!(names.contains(wanted), "service {wanted} missing");
    }
    assert!(compose["services"]["kafka"]["image"]
        .as_str()
        .unwrap()
        .starts_with("apache/kafka:"));
    for built in ["topics", "crowdpark", "simulator"] {
        assert_eq!(compose["services"][built]["build"].as_str(), Some("."));
    }
    // Every bind mount exists, every named volume is declared, and every
    // depends_on names a service.
    for (name, service) in services {
        let name = name.as_str().unwrap();
        for v in service["volumes"].as_sequence().into_iter().flatten() {
            let host = v.as_str().unwrap().split(':').next().unwrap();
            if host.starts_with('.') || host.starts_with('/') {
                assert!(repo(host).exists(), "{name}: {host} does not exist");
            } else {
                assert!(
                    compose["volumes"].get(host).is_some(),
                    "{name}: volume {host} is not declared"
                );
            }
        }
        let deps: Vec<&str> = match &service["depends_on"] {
            serde_norway::Value::Sequence(s) => s.iter().filter_map(|d| d.as_str()).collect(),
            serde_norway::Value::Mapping(m) => m.keys().filter_map(|d| d.as_str()).collect(),
            _ => Vec::new(),
        };
        for d in deps {
            assert!(names.contains(d), "{name} depends on unknown {d}");
        }
    }
    // Prometheus scrapes the crowdpark service where it listens.
    let prom: serde_norway::Value = serde_norway::from_str(
        &std::fs::read_to_string(repo("config/prometheus/prometheus.yml")).unwrap(),
    )
    .unwrap();
    let target = prom["scrape_configs"][0]["static_configs"][0]["targets"][0]
        .as_str()
        .unwrap();
    let listen = compose["services"]["crowdpark"]["environment"]["CROWDPARK_HTTP__LISTEN"]
        .as_str()
        .unwrap();
    assert_eq!(target.split(':').next_back(), listen.split(':').next_back());
    assert!(target.starts_with("crowdpark:"));
    // Published on loopback only: the API has no authentication by default.
    for (name, service) in compose["services"].as_mapping().unwrap() {
        for port in service["ports"].as_sequence().into_iter().flatten() {
            let port = port.as_str().unwrap();
            assert!(
                port.starts_with("127.0.0.1:"),
                "{name:?} publishes {port} beyond loopback"
            );
        }
    }
    // The simulator's and the engine's arguments are ones the binary takes.
    for built in ["crowdpark", "simulator", "topics"] {
        let args: Vec<&str> = compose["services"][built]["command"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let sub = args[0];
        let help = Command::new(env!("CARGO_BIN_EXE_crowdpark"))
            .args([sub, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&help.stdout);
        for flag in args.iter().filter(|a| a.starts_with("--")) {
            assert!(help.contains(flag), "`crowdpark {sub}` has no {flag}");
        }
    }
    // The image: multi-stage, non-root.
    let dockerfile = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    assert!(
        dockerfile.matches("\nFROM ").count() + usize::from(dockerfile.starts_with("FROM ")) >= 2
    );
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    assert!(
        !user.starts_with("root") && !user.starts_with('0'),
        "runs as {user}"
    );
}
