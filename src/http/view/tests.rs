//! Unit tests of `view`.

use crate::config::{load_str, DEFAULT_CONFIG};
use crate::engine::Engine;
use std::sync::Arc;

#[test]
fn configured_fields_are_there_before_the_first_reading() {
    let config = Arc::new(load_str(DEFAULT_CONFIG, Vec::<(String, String)>::new()).unwrap());
    let view = crate::io::live_view(&Engine::new(config.clone()));
    let lots = view.lots_json(None);
    let lots = lots.as_array().unwrap();
    assert_eq!(lots.len(), config.lots.len());
    for (lot, configured) in lots.iter().zip(&config.lots) {
        assert!(
            lot["availableSpotNumber"].is_null(),
            "no reading yet: {lot}"
        );
        assert!(lot["occupancyDetectionType"].is_string(), "{lot}");
        if configured.lat.is_some() {
            assert_eq!(lot["location"]["type"], "Point", "{lot}");
            assert_eq!(
                lot["location"]["coordinates"][1].as_f64(),
                configured.lat,
                "{lot}"
            );
        }
    }
}

/// The alerts a page opened late still shows are the newest 50, newest
/// first; the sales kept are one window per configured zone.
#[test]
fn recent_alerts_and_sales_are_bounded() {
    use crate::output::{AlertKind, CrowdAlert, Level, Output, PaymentStats};
    let config = Arc::new(load_str(DEFAULT_CONFIG, Vec::<(String, String)>::new()).unwrap());
    let view = crate::io::live_view(&Engine::new(config.clone()));
    let zone = config.zones[0].id.clone();
    let alert = |i: i64| {
        Output::Alert(CrowdAlert {
            alert_id: format!("{zone}:{i}:red"),
            zone: zone.clone(),
            district: "hubin".into(),
            kind: AlertKind::Level,
            level: Level::Red,
            previous: Level::Yellow,
            density: 3.6,
            people: 1440,
            area_m2: 400.0,
            ts: crate::time::format_ts(i),
            thresholds: config.crowd.thresholds,
            red_in_s: None,
            forecast_lead_s: None,
            ts_ms: i,
        })
    };
    view.publish(&(0..60).map(alert).collect::<Vec<_>>());
    let alerts = view.alerts_json(None);
    let ids: Vec<&str> = alerts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["alert_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), super::RECENT_ALERTS);
    assert_eq!(ids[0], format!("{zone}:59:red"), "newest first");
    assert_eq!(ids[49], format!("{zone}:10:red"));

    let window = |start: i64| {
        Output::Payments(PaymentStats {
            zone: zone.clone(),
            district: "hubin".into(),
            window_start: crate::time::format_ts(start),
            window_end: crate::time::format_ts(start + 300_000),
            figures: crate::output::Tally::default().figures("CNY", 0),
            by_category: Default::default(),
            window_ms: (start, start + 300_000),
            tally: Default::default(),
        })
    };
    view.publish(&[window(0), window(300_000)]);
    let sales = view.sales_json(0);
    let zones = sales["zones"].as_array().unwrap();
    assert_eq!(zones.len(), config.zones.len());
    assert_eq!(
        zones[0]["window"]["window_start"],
        crate::time::format_ts(300_000)
    );
    assert!(zones[1]["window"].is_null(), "no window yet: {}", zones[1]);
}
