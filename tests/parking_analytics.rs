//! Parking analytics from an hour and a half of the simulated afternoon:
//! turnover, average stay (space sensors only), parking index and revenue per
//! space (parking fees that name their car park), in `/api/v1/lots/{id}` and as
//! `crowdpark_lot_*_total` counters; and the district KPIs in `/api/v1/district`.

use crowdpark::config::{load_str, Detection, DEFAULT_CONFIG};
use crowdpark::engine::Engine;
use crowdpark::sim::{SimOptions, Simulator};
use std::sync::Arc;

#[test]
fn analytics_per_car_park_from_the_simulated_afternoon() {
    let config = Arc::new(load_str(DEFAULT_CONFIG, Vec::new()).unwrap());
    let mut engine = Engine::new(config.clone());
    let view = crowdpark::io::live_view(&engine);
    let opts = SimOptions::default();
    let mut sim = Simulator::new(&config, opts.clone());
    let mut out = Vec::new();
    for (offset, m) in sim
        .advance_to(opts.start_ms + 90 * 60_000)
        .iter()
        .enumerate()
    {
        out.clear();
        engine.process(&m.as_input(3, offset as i64), &mut out);
        crowdpark::io::publish_local(&engine, &view, &out);
    }
    crowdpark::io::refresh_view(&engine, &view);

    // `/api/v1/district`: the parking roll-up with the latest district KPIs.
    let district = view.district_json(0);
    assert_eq!(district["parking"]["type"], "ParkingGroup", "{district}");
    assert_eq!(district["id"], "hubin");
    assert_eq!(district["crowd"]["scope"], "crowd", "{district}");
    assert!(district["crowd"]["people"].as_f64().unwrap() > 0.0);
    assert!(district["crowd"]["zones_by_level"]["green"].is_u64());
    assert_eq!(district["payments"]["scope"], "payments", "{district}");
    assert!(district["payments"]["transactions"].as_u64().unwrap() > 0);

    // One naming rule in every answer: crowdpark's own fields snake_case;
    // FIWARE records (`OffStreetParking`, `ParkingGroup`) as published, in
    // that standard's camelCase, everything inside them included.
    for answer in [
        view.districts_json(),
        view.zones_json(None),
        view.lots_json(None),
        district.clone(),
        view.sales_json(0),
        view.alerts_json(None),
    ] {
        assert_naming(&answer, false, &answer);
    }

    let mut revenue_total = 0;
    for lot in &config.lots {
        let json = view.lot_json(&lot.id).expect("configured");
        let a = &json["analytics"];
        let hours = a["observedHours"].as_f64().unwrap();
        assert!((1.4..=1.6).contains(&hours), "{}: {a}", lot.id);
        assert!(a["sessions"].as_u64().unwrap() > 0, "{}: {a}", lot.id);
        let index = a["parkingIndex"].as_f64().unwrap();
        assert!(index > 0.0 && index <= 1.0, "{}: {a}", lot.id);
        assert!(a["turnoverPerSpacePerDay"].as_f64().unwrap() > 0.0);
        match lot.detection {
            // Sensors see each car arrive and leave.
            Detection::SingleSpace => {
                let stay = a["averageStayMinutes"].as_f64().unwrap();
                assert!(stay > 0.0 && stay < 90.0, "{}: {a}", lot.id);
            }
            // Gates count cars, not which car left.
            Detection::Gate => assert!(a["averageStayMinutes"].is_null(), "{}: {a}", lot.id),
        }
        if let Some(fen) = a["revenueFen"].as_i64() {
            revenue_total += fen;
            assert!(a["revenuePerSpace"].is_string());
        }
    }
    assert!(revenue_total > 0, "parking fees name their car parks");

    let text = view.metrics.render();
    for family in [
        "crowdpark_lot_sessions_total",
        "crowdpark_lot_stay_seconds_total",
        "crowdpark_lot_occupied_space_seconds_total",
        "crowdpark_lot_capacity_space_seconds_total",
        "crowdpark_lot_revenue_fen_total",
    ] {
        let sum: f64 = text
            .lines()
            .filter(|l| l.starts_with(family))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum();
        assert!(sum > 0.0, "{family} is still zero");
    }
}

/// Checks every key of `v` (see the caller); `whole` is the answer, for the
/// message.
fn assert_naming(v: &serde_json::Value, fiware: bool, whole: &serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let fiware = fiware
                || matches!(
                    map.get("type").and_then(Value::as_str),
                    Some("OffStreetParking" | "ParkingGroup")
                );
            for (key, inner) in map {
                let snake = key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                let camel = key.starts_with(|c: char| c.is_ascii_lowercase()) && !key.contains('_');
                let ok = if fiware { camel } else { snake };
                assert!(ok, "`{key}` breaks the naming rule in {whole}");
                assert_naming(inner, fiware, whole);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| assert_naming(i, fiware, whole)),
        _ => {}
    }
}
