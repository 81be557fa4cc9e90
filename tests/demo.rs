//! `crowdpark demo` as a user runs it: a bounded run of the binary must tell the
//! whole story (red alert, a car park filling, payments) and serve the contract's HTTP
//! API and metric names while it runs.

mod common;

use common::{http_get, spawn_crowdpark, wait_for_line};
use std::time::Duration;

#[test]
fn demo_tells_the_story_and_serves_the_api() {
    let (mut child, rx) = spawn_crowdpark(
        &[
            "demo",
            "--duration",
            "30",
            "--speed",
            "135",
            "--listen",
            "127.0.0.1:0",
        ],
        &[] as &[(&str, &str)],
    );
    let mut lines = Vec::new();
    let addr = common::http_address(&rx, Duration::from_secs(30), &mut lines);

    // Let the afternoon build up, then look at the API while it runs.
    wait_for_line(&rx, "RED ", Duration::from_secs(40), &mut lines)
        .expect("a red alert within 40 s of wall time");

    // Gauges of other entities refresh a few times a second; give them a moment.
    std::thread::sleep(Duration::from_millis(600));
    let (status, metrics) = http_get(&addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    for name in [
        "crowdpark_zone_people{zone=\"lakeside-promenade\"}",
        "crowdpark_zone_density{zone=",
        "crowdpark_zone_alert_level{zone=\"lakeside-promenade\"} 2",
        "crowdpark_lot_spaces{lot=\"p03-hubin88\"} 260",
        "crowdpark_lot_spaces_available{lot=",
        "crowdpark_lot_occupancy_ratio{lot=",
        "crowdpark_payments_total{category=",
        "crowdpark_payments_amount_fen_total{category=",
        "crowdpark_alerts_total{level=\"red\",zone=\"lakeside-promenade\"} 1",
        "crowdpark_events_consumed_total{topic=\"crowd.counts\"}",
        "crowdpark_events_rejected_total{reason=\"late\",topic=\"payments\"}",
        "crowdpark_events_duplicate_total{topic=\"parking.events\"}",
        "crowdpark_event_to_output_seconds_bucket",
        "crowdpark_watermark_seconds{partition=",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}");
    }

    let (status, lots) = http_get(&addr, "/api/v1/lots").unwrap();
    assert_eq!(status, 200);
    let lots: serde_json::Value = serde_json::from_str(&lots).unwrap();
    let lots = lots.as_array().unwrap();
    assert_eq!(lots.len(), 10);
    let total: u64 = lots
        .iter()
        .map(|l| l["totalSpotNumber"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 2413);
    for l in lots {
        for field in [
            "id",
            "type",
            "availableSpotNumber",
            "occupancy",
            "status",
            "occupancyTrend",
            "observationDateTime",
        ] {
            assert!(l.get(field).is_some(), "lot record lacks {field}: {l}");
        }
    }
    let (status, one) = http_get(&addr, "/api/v1/lots/p03-hubin88").unwrap();
    assert_eq!(status, 200);
    assert!(one.contains("\"type\":\"OffStreetParking\""));
    let (status, missing) = http_get(&addr, "/api/v1/lots/p99-nowhere").unwrap();
    assert_eq!(status, 404);
    assert!(missing.contains("\"error\""));
    let (status, zone) = http_get(&addr, "/api/v1/zones/lakeside-promenade").unwrap();
    assert_eq!(status, 200);
    assert!(zone.contains("\"level\":\"red\""), "{zone}");
    assert_eq!(http_get(&addr, "/api/v1/zones/atlantis").unwrap().0, 404);
    assert_eq!(http_get(&addr, "/healthz").unwrap().0, 200);
    assert_eq!(http_get(&addr, "/readyz").unwrap().0, 200);

    // The live stream carries availability changes and alerts as SSE events.
    let stream = common::read_stream(&addr, "/api/v1/stream", Duration::from_secs(5)).unwrap();
    assert!(
        stream.contains("event: availability\ndata: {"),
        "no availability events on the stream:\n{stream}"
    );

    // Let it finish by itself.
    let status = child.0.as_mut().unwrap().wait().unwrap();
    assert!(status.success());
    lines.extend(rx.try_iter());
    let text = lines.join("\n");
    assert!(
        text.lines()
            .any(|l| l.contains("PARKING") && (l.contains(" full ") || l.contains(" almostFull "))),
        "no car park filled:\n{text}"
    );
    let sales: Vec<u64> = text
        .lines()
        .filter(|l| l.contains("SALES"))
        .filter_map(|l| {
            l.split("  ")
                .find(|p| p.contains(" transactions"))
                .and_then(|p| p.split_whitespace().next()?.parse().ok())
        })
        .collect();
    assert!(
        !sales.is_empty() && sales.iter().all(|n| *n > 0),
        "no payment windows:\n{text}"
    );
    assert!(text.contains("summary:"), "no summary line");

    // The README's sample is what the demo prints with its default seed:
    // each sample line, exactly, in this run's output.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let sample: Vec<&str> = readme
        .lines()
        .filter(|l| l.len() > 10 && l.as_bytes()[2] == b':' && l.as_bytes()[5] == b':')
        .filter(|l| l[8..].starts_with("  "))
        .collect();
    assert!(sample.len() >= 5, "the README's sample: {sample:?}");
    for line in sample {
        assert!(
            text.lines().any(|l| l == line),
            "the README's sample line is not what the demo prints:\n{line}\n\nthe demo printed:\n{text}"
        );
    }
}

#[test]
fn check_config_names_the_bad_key_and_exits_2() {
    let dir = std::env::temp_dir().join(format!("crowdpark-cc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(&good, crowdpark::config::DEFAULT_CONFIG).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crowdpark"))
        .args(["check-config", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("10 car parks, 2413 spaces"), "{stdout}");

    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        crowdpark::config::DEFAULT_CONFIG.replace(
            "thresholds = { yellow = 2.0, red = 3.5 }",
            "thresholds = { yellow = 4.0, red = 3.5 }",
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crowdpark"))
        .args(["check-config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("crowd.thresholds") && stderr.contains("yellow"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Ctrl-C and SIGTERM (docker stop, systemd) both stop the demo cleanly,
/// with its summary. SIGTERM used to kill it: exit 143, no summary.
fn signal_stops_the_demo_cleanly(signal: &str) {
    let (mut child, rx) = spawn_crowdpark(
        &["demo", "--listen", "127.0.0.1:0", "--quiet"],
        &[] as &[(&str, &str)],
    );
    let mut lines = Vec::new();
    wait_for_line(&rx, "HTTP on http://", Duration::from_secs(30), &mut lines).expect("banner");
    std::thread::sleep(Duration::from_secs(2));
    let pid = child.0.as_ref().unwrap().id().to_string();
    assert!(std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap()
        .success());
    let status = child.0.as_mut().unwrap().wait().unwrap();
    assert!(status.success(), "demo exited with {status} on {signal}");
    let summary = wait_for_line(&rx, "summary:", Duration::from_secs(5), &mut lines)
        .unwrap_or_else(|| panic!("summary after {signal}"));
    assert!(summary.contains("consumed"), "{summary}");
}

#[test]
fn ctrl_c_stops_the_demo_cleanly() {
    signal_stops_the_demo_cleanly("-INT");
}

#[test]
fn sigterm_stops_the_demo_cleanly() {
    signal_stops_the_demo_cleanly("-TERM");
}
