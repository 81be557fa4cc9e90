//! `GET /api/v1/lots/recommend` over HTTP on 127.0.0.1, fed by the engine: the
//! car park nearest the destination fills fast and is forecast full by the time
//! the driver arrives, so one with room comes first, with the reason.

mod common;

use common::{free_port, http_get};
use crowdpark::model::InputTopic;
use crowdpark::sim::DEFAULT_START_MS;
use crowdpark::testing::TestDriver;
use serde_json::Value;

fn gate(driver: &mut TestDriver, view: &crowdpark::http::LiveView, lot: &str, ts: i64, count: u32) {
    let payload = format!(
        r#"{{"lot":"{lot}","ts":{ts},"gate":"entry","count":{count},"event_id":"{lot}-{ts}"}}"#
    );
    driver.set_now(ts);
    driver.send(InputTopic::ParkingEvents, lot, payload.as_bytes());
    let out = driver.take();
    crowdpark::io::publish_local(driver.engine(), view, &out);
}

#[test]
fn the_nearest_car_park_forecast_full_is_passed_over_for_one_with_room() {
    let mut driver = TestDriver::new();
    let view = crowdpark::io::live_view(driver.engine());
    let t0 = DEFAULT_START_MS;
    // p02 (380 spaces, gates) fills at 15 cars a minute; the other gate car
    // parks hold steady with plenty of room.
    let steady = [
        "p04-hubin-yintai",
        "p05-xihu-culture-square",
        "p09-shangcheng-hotel",
    ];
    for minute in 0..=6 {
        let ts = t0 + minute * 60_000;
        let first = minute == 0;
        gate(
            &mut driver,
            &view,
            "p02-in77-d",
            ts,
            if first { 200 } else { 15 },
        );
        for lot in steady {
            gate(&mut driver, &view, lot, ts, if first { 60 } else { 1 });
        }
    }

    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = {
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(&addr))
            .expect("bind 127.0.0.1");
        let view = view.clone();
        rt.spawn(crowdpark::http::serve(
            listener,
            view,
            crowdpark::http::ServerSettings::plain(crowdpark::http::Limits {
                max_connections: 64,
                header_timeout: std::time::Duration::from_secs(10),
            }),
            async {
                let _ = stopped.await;
            },
        ))
    };

    let get = |path: &str| -> (u16, Value) {
        let (status, body) = http_get(&addr, path).expect("HTTP GET");
        (status, serde_json::from_str(&body).expect("JSON body"))
    };

    // Arriving now, p02 still has room and is nearest.
    let (status, now) = get("/api/v1/lots/recommend?near=p02-in77-d&arrive_in=0");
    assert_eq!(status, 200, "{now}");
    assert_eq!(now["recommendations"][0]["id"], "p02-in77-d", "{now}");

    // In 30 minutes it is forecast full: another car park with room leads.
    let (status, later) = get("/api/v1/lots/recommend?near=p02-in77-d&arrive_in=30");
    assert_eq!(status, 200, "{later}");
    let list = later["recommendations"].as_array().unwrap();
    let first = &list[0];
    assert_ne!(first["id"], "p02-in77-d", "{later}");
    assert_eq!(first["has_room"], true, "{later}");
    assert!(
        first["expected_free_at_arrival"].as_u64().unwrap() >= 10,
        "{later}"
    );
    assert!(
        first["reason"]
            .as_str()
            .unwrap()
            .contains("the nearest, `p02-in77-d`, is expected full"),
        "{later}"
    );
    // Among those with room, the nearest: p04 is about 400 m from p02.
    assert_eq!(first["id"], "p04-hubin-yintai", "{later}");
    let p02 = list.iter().find(|r| r["id"] == "p02-in77-d").unwrap();
    assert_eq!(p02["has_room"], false, "{later}");
    assert_eq!(p02["distance_m"], 0, "{later}");

    // The forecast is in the car park's own record too.
    let (_, lot) = get("/api/v1/lots/p02-in77-d");
    let forecast = lot["forecast"].as_array().expect("forecast array");
    assert_eq!(forecast.len(), 3, "{lot}");
    assert_eq!(forecast[1]["minutes"], 30);
    assert_eq!(forecast[1]["availableSpotNumber"], 0, "{lot}");

    // A position works as well as a car park id; bad input is a clear 400.
    let (status, by_point) = get("/api/v1/lots/recommend?near=30.2562,120.1651&arrive_in=30");
    assert_eq!(status, 200);
    assert_eq!(by_point["recommendations"][0]["id"], "p04-hubin-yintai");
    for bad in [
        "/api/v1/lots/recommend",
        "/api/v1/lots/recommend?near=nowhere",
        "/api/v1/lots/recommend?near=p02-in77-d&arrive_in=-5",
        "/api/v1/lots/recommend?near=p02-in77-d&arrive_in=999",
    ] {
        let (status, body) = get(bad);
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
    }

    let _ = stop.send(());
    rt.block_on(server).unwrap().unwrap();
}
