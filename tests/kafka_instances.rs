//! One district served by several instances, against a real broker. Three
//! instances share six partitions per input; one is killed with `kill -9`
//! mid-stream and a fourth started. Under exactly_once the outputs, district
//! records included (each the sum of its zones), equal an uninterrupted
//! run's, with no duplicate. And each live instance answers for the whole
//! district: `/api/v1/lots`, `/api/v1/zones` and `/api/v1/district` are the
//! same on every one once the shared view has caught up, and the page on any
//! of them shows every car park with its free spaces (Chromium). Before,
//! each instance showed only the zones and car parks of its own partitions.

mod common;

use common::browser::Browser;
use common::engine::{kill_engine, start_engine, stop_engine, Engine};
use common::http_get;
use common::scenario::{engine_env, simulate, Disturbed};
use serde_json::{json, Value};
use std::time::Duration;

fn get_json(addr: &str, path: &str) -> Value {
    match http_get(addr, path) {
        Ok((200, body)) => serde_json::from_str(&body).unwrap(),
        other => panic!("{path} on {addr}: {other:?}"),
    }
}

/// What an instance answers for the whole district; the district record
/// without its `view` freshness, which is the instance's own.
fn answers(addr: &str) -> Value {
    let mut district = get_json(addr, "/api/v1/district");
    district.as_object_mut().unwrap().remove("view");
    json!({
        "lots": get_json(addr, "/api/v1/lots"),
        "zones": get_json(addr, "/api/v1/zones"),
        "district": district,
    })
}

/// Where the first instance's answer differs from another's, or what is
/// missing from it.
fn first_difference(answers: &[Value]) -> String {
    for (i, other) in answers.iter().enumerate().skip(1) {
        for part in ["lots", "zones"] {
            let (a, b) = (
                answers[0][part].as_array().unwrap(),
                other[part].as_array().unwrap(),
            );
            for (x, y) in a.iter().zip(b) {
                if x != y {
                    return format!("{part}: instance 0 says {x}, instance {i} says {y}");
                }
            }
        }
        if answers[0]["district"] != other["district"] {
            return format!(
                "district: {} and {}",
                answers[0]["district"], other["district"]
            );
        }
    }
    format!("lots without a record: {}", answers[0]["lots"])
}

#[test]
fn three_instances_on_six_partitions_one_killed_a_fourth_started_serve_one_district() {
    let d = Disturbed::with_partitions("many", "exactly_once", Some(6));
    let env = |instance: &str| engine_env(&d.run, &d.input, "engine", instance, "exactly_once");
    let sim = simulate(&d.input, &d.brokers, 400, 16_000);
    let mut live: Vec<(Engine, String)> = ["a", "b", "c"]
        .iter()
        .map(|i| start_engine(&env(i)))
        .collect();
    d.wait_consuming(&live[0].1);
    std::thread::sleep(Duration::from_secs(8));
    let (killed, _) = live.remove(1);
    kill_engine(killed);
    std::thread::sleep(Duration::from_secs(4));
    live.push(start_engine(&env("d")));

    let uninterrupted = d.assert_same_as_uninterrupted(sim);
    d.assert_no_duplicates();

    // Every live instance answers the same, for all 10 car parks.
    let addrs: Vec<String> = live.iter().map(|(_, a)| a.clone()).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let last = loop {
        let last: Vec<Value> = addrs.iter().map(|a| answers(a)).collect();
        let lots = last[0]["lots"].as_array().unwrap();
        if last.iter().all(|x| x == &last[0])
            && lots.len() == 10
            && lots.iter().all(|l| l["availableSpotNumber"].is_u64())
        {
            break last;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the instances still answer differently 60 s after the end: {}",
            first_difference(&last)
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    for (i, addr) in addrs.iter().enumerate() {
        let view = &get_json(addr, "/api/v1/district")["view"];
        assert_eq!(view["shared"], true, "instance {i}: {view}");
        assert!(
            view["as_of"].is_string(),
            "instance {i} has read the view: {view}"
        );
    }
    let district = &last[0]["district"];
    assert!(
        district["parking"]["availableSpotNumber"].is_u64(),
        "{district}"
    );
    assert!(district["crowd"]["window_start"].is_string(), "{district}");

    // The page of the newest instance shows every car park's free spaces as
    // its API gives them, and says how fresh the shared view is.
    let addr = &addrs[addrs.len() - 1];
    let lots: std::collections::BTreeMap<String, String> = last[0]["lots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["id"].as_str().unwrap().to_string(),
                l["availableSpotNumber"].to_string(),
            )
        })
        .collect();
    let mut b = Browser::start();
    b.call("Page.enable", json!({}));
    b.call("Page.navigate", json!({"url": format!("http://{addr}/")}));
    b.wait_for(
        "the page to show all 10 car parks with their free spaces",
        "[...document.querySelectorAll('#lots tbody tr')] \
         .filter(r => /^[0-9]+$/.test(r.querySelector('td.free').textContent)).length === 10",
        Duration::from_secs(30),
    );
    let shown: std::collections::BTreeMap<String, String> = serde_json::from_value(b.eval(
        "Object.fromEntries([...document.querySelectorAll('#lots tbody tr')] \
         .map(r => [r.dataset.lot, r.querySelector('td.free').textContent]))",
    ))
    .unwrap();
    assert_eq!(shown, lots, "free spaces on the page and in /api/v1/lots");
    let age = b.eval("document.querySelector('#view-age').textContent");
    assert!(
        age.as_str()
            .unwrap()
            .starts_with("shared view of all instances as of"),
        "{age}"
    );
    drop(b);

    for (engine, _) in live {
        assert_eq!(stop_engine(engine).code(), Some(0));
    }
    assert_eq!(stop_engine(uninterrupted).code(), Some(0));
}
