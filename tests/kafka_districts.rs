//! Two districts in one deployment, end to end against a real broker: the
//! model district split into Hubin and Wulin in one configuration, fed by
//! the simulator and run under exactly_once. Every zone and car park record
//! names its district; each district has its own crowd and payments records,
//! each the sum of its own zones; the API answers per district
//! (`?district=`); and the page (Chromium) shows the chosen district's car
//! parks, with a selector to switch.

mod common;

use common::browser::Browser;
use common::districts::{two_districts, two_districts_file, WULIN};
use common::engine::{
    assert_district_sums, consumed, create_topics, published, stop_engine, wait_until,
    windows_without_district, Engine,
};
use common::kafka::{self, Names};
use common::scenario::engine_env;
use common::{http_address, http_get, spawn_crowdpark, ChildGuard};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

fn get_json(addr: &str, path: &str) -> Value {
    match http_get(addr, path) {
        Ok((200, body)) => serde_json::from_str(&body).unwrap(),
        other => panic!("{path}: {other:?}"),
    }
}

fn ids(list: &Value) -> BTreeSet<String> {
    let list = list.as_array().unwrap();
    list.iter()
        .map(|x| x["id"].as_str().unwrap().into())
        .collect()
}

#[test]
fn two_districts_in_one_deployment_each_sum_their_own_zones() {
    kafka::require_broker();
    let brokers = kafka::brokers();
    let config = two_districts();
    let file = two_districts_file("districts");
    let path = file.to_str().unwrap();
    let district_of: BTreeMap<String, String> = config
        .zones
        .iter()
        .map(|z| (z.id.clone(), z.district.clone().unwrap()))
        .chain(
            config
                .lots
                .iter()
                .map(|l| (l.id.clone(), l.district.clone().unwrap())),
        )
        .collect();

    let input = Names::new("districts-in");
    let run = Names::new("districts-run");
    create_topics(&input.env("sim", None));
    let env = engine_env(&run, &input, "engine", "a", "exactly_once");
    create_topics(&env);
    let sim = std::process::Command::new(env!("CARGO_BIN_EXE_crowdpark"))
        .args(["simulate", "--config", path, "--brokers", &brokers])
        .args(["--rate", "400", "--messages", "8000"])
        .envs(input.env("sim", None))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut sim = ChildGuard(Some(sim));
    let (child, rx) = spawn_crowdpark(&["run", "--config", path, "--listen", "127.0.0.1:0"], &env);
    let addr = http_address(&rx, Duration::from_secs(60), &mut Vec::new());
    let engine = Engine { child, stdout: rx };
    assert!(sim.0.take().unwrap().wait().unwrap().success());
    wait_until("the input consumed", Duration::from_secs(60), || {
        consumed(&addr, &input) >= 8_000.0
    });

    // Both districts' windows close, each zone window summed by its own
    // district's record.
    let mut out = published(&run);
    wait_until(
        "every zone window summed by its district",
        Duration::from_secs(60),
        || {
            out = published(&run);
            let has =
                |d: &str, scope: &str| out.district.keys().any(|(x, s, _)| x == d && s == scope);
            let both = ["hubin", WULIN]
                .iter()
                .all(|d| has(d, "crowd") && has(d, "payments"));
            both && windows_without_district(&out).is_empty()
        },
    );
    assert_district_sums(&out);
    let zone_records = out.density.values().chain(out.stats.values());
    let lot_records = out.availability.values();
    for r in zone_records.chain(lot_records) {
        let id = r["zone"].as_str().or(r["id"].as_str()).unwrap();
        assert_eq!(r["district"], district_of[id].as_str(), "{r}");
    }
    let alerts = kafka::read_all(&run.topic("crowd.alerts"));
    assert!(!alerts.is_empty());
    for a in &alerts {
        assert_eq!(
            a.value["district"],
            district_of[&a.key].as_str(),
            "{}",
            a.value
        );
    }
    // Each district's car parks roll up under its own id, with its own spaces.
    let groups = kafka::latest_per_key(&kafka::read_all(&run.topic("parking.availability")));
    for d in ["hubin", WULIN] {
        let spaces: u64 = config
            .lots
            .iter()
            .filter(|l| l.district.as_deref() == Some(d))
            .map(|l| l.spaces as u64)
            .sum();
        assert_eq!(groups[d]["type"], "ParkingGroup");
        assert_eq!(groups[d]["totalSpotNumber"], spaces, "{}", groups[d]);
        assert_eq!(ids_of(&groups[d]["refParkingSite"]), in_lots(&config, d));
    }

    // The API, per district.
    let districts = get_json(&addr, "/api/v1/districts");
    assert_eq!(
        ids(&districts),
        BTreeSet::from(["hubin".into(), WULIN.into()])
    );
    let wulin = get_json(&addr, &format!("/api/v1/district?district={WULIN}"));
    assert_eq!(wulin["id"], WULIN);
    assert_eq!(wulin["crowd"]["district"], WULIN, "{wulin}");
    assert_eq!(wulin["payments"]["district"], WULIN, "{wulin}");
    assert_eq!(
        get_json(&addr, "/api/v1/district")["id"],
        "hubin",
        "the first by default"
    );
    let lots = get_json(&addr, &format!("/api/v1/lots?district={WULIN}"));
    assert_eq!(ids(&lots), in_lots(&config, WULIN));
    let zones = get_json(&addr, "/api/v1/zones?district=hubin");
    let hubin_zones: BTreeSet<String> = config
        .zones
        .iter()
        .filter(|z| z.district.as_deref() == Some("hubin"))
        .map(|z| z.id.clone())
        .collect();
    assert_eq!(ids(&zones), hubin_zones);
    assert_eq!(ids(&get_json(&addr, "/api/v1/lots")).len(), 10);
    let sales = get_json(&addr, &format!("/api/v1/sales?district={WULIN}"));
    assert_eq!(sales["zones"].as_array().unwrap().len(), 4);
    match http_get(&addr, "/api/v1/district?district=xihu") {
        Ok((404, body)) => assert!(body.contains("hubin, wulin"), "{body}"),
        other => panic!("an unknown district: {other:?}"),
    }

    // The page: the chosen district's car parks, and a selector to switch.
    let mut b = Browser::start();
    b.call("Page.enable", json!({}));
    let url = format!("http://{addr}/?district={WULIN}");
    b.call("Page.navigate", json!({ "url": url }));
    let rows = "document.querySelectorAll('#lots tbody tr').length";
    b.wait_for(
        "Wulin's 4 car parks",
        &format!("{rows} === 4"),
        Duration::from_secs(30),
    );
    let shown = b.eval(
        "[document.querySelector('#district-name').textContent, \
          document.querySelector('#district').hidden, \
          document.querySelector('#district').options.length, \
          [...document.querySelectorAll('#lots tbody tr')].map(r => r.dataset.lot).sort()]",
    );
    assert_eq!(shown[0], config.districts[1].name.as_str(), "{shown}");
    assert_eq!(shown[1], false, "the selector shows with two districts");
    assert_eq!(shown[2], 2);
    let page_lots: BTreeSet<String> = serde_json::from_value(shown[3].clone()).unwrap();
    assert_eq!(page_lots, in_lots(&config, WULIN));
    b.eval(
        "(() => { const s = document.querySelector('#district'); s.value = 'hubin'; \
          s.dispatchEvent(new Event('change')); })()",
    );
    b.wait_for(
        "Hubin's 6 car parks",
        &format!("{rows} === 6"),
        Duration::from_secs(30),
    );
    let title = b.eval("document.querySelector('#district-name').textContent");
    assert_eq!(title, config.districts[0].name.as_str());
    drop(b);
    assert_eq!(stop_engine(engine).code(), Some(0));
    let _ = std::fs::remove_file(&file);
}

fn in_lots(config: &crowdpark::config::Config, district: &str) -> BTreeSet<String> {
    let lots = config.lots.iter();
    let lots = lots.filter(|l| l.district.as_deref() == Some(district));
    lots.map(|l| l.id.clone()).collect()
}

fn ids_of(list: &Value) -> BTreeSet<String> {
    let list = list.as_array().unwrap();
    list.iter().map(|x| x.as_str().unwrap().into()).collect()
}
