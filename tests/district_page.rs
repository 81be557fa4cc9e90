//! The district view at `/`, in a real browser (Debian's headless Chromium,
//! driven over the DevTools protocol): after the demo reaches red, the page
//! shows the red zone labelled red on the map and in the zone table, the ten
//! car parks with the free counts `/api/v1/lots` gives, and the alert; it is
//! legible at 1920×1080 and 390×844 (screenshots of both in the test's output
//! folder), and every request it makes goes to the engine on 127.0.0.1.

mod common;

use common::browser::Browser;
use common::{http_get, spawn_crowdpark, wait_for_line};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

fn get_json(addr: &str, path: &str) -> Value {
    let (status, body) = http_get(addr, path).unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The demo run until red and then held still, so the page and the API can
/// be compared exactly. The seeded afternoon has the lakeside promenade red
/// from about 05:32 to 05:54 simulated time; 21 s at 120× stops it at about
/// 05:42, with minutes to spare either side.
fn held_demo() -> (common::ChildGuard, String) {
    let (child, rx) = spawn_crowdpark(
        &[
            "demo",
            "--speed",
            "120",
            "--duration",
            "21",
            "--hold",
            "--quiet",
            "--listen",
            "127.0.0.1:0",
        ],
        &[] as &[(&str, &str)],
    );
    let mut lines = Vec::new();
    let addr = common::http_address(&rx, Duration::from_secs(30), &mut lines);
    wait_for_line(
        &rx,
        "holding the last state",
        Duration::from_secs(90),
        &mut lines,
    )
    .unwrap_or_else(|| panic!("the demo holds its last state: {lines:#?}"));
    (child, addr)
}

fn screenshot(browser: &mut Browser, name: &str) {
    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("district-page");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), png).unwrap();
    eprintln!("screenshot: {}", dir.join(name).display());
}

#[test]
fn the_district_page_shows_what_the_engine_knows() {
    if common::browser::chromium().is_none() && std::env::var_os("CI").is_none() {
        eprintln!("skipped: chromium is not installed (`apt-get install chromium`)");
        return;
    }
    let (_demo, addr) = held_demo();
    let zones = get_json(&addr, "/api/v1/zones");
    let red: Vec<String> = zones
        .as_array()
        .unwrap()
        .iter()
        .filter(|z| z["level"] == "red")
        .map(|z| z["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!red.is_empty(), "the demo reached red: {zones}");
    let lots: BTreeMap<String, String> = get_json(&addr, "/api/v1/lots")
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let id = l["id"].as_str().unwrap().to_string();
            (id, l["availableSpotNumber"].to_string())
        })
        .collect();
    assert_eq!(lots.len(), 10);
    assert!(get_json(&addr, "/api/v1/alerts")
        .as_array()
        .is_some_and(|a| !a.is_empty()));

    let mut b = Browser::start();
    b.call("Network.enable", json!({}));
    b.call("Page.enable", json!({}));
    b.resize(1920, 1080, false);
    b.call("Page.navigate", json!({"url": format!("http://{addr}/")}));
    b.wait_for(
        "the page to show zones, car parks and alerts",
        "document.querySelectorAll('#lots tbody tr').length === 10 \
         && document.querySelectorAll('#zones tbody tr[data-level]').length > 0 \
         && document.querySelectorAll('#alerts li.alert').length > 0",
        Duration::from_secs(30),
    );

    for zone in &red {
        let table = b.eval(&format!(
            "document.querySelector('#zones tr[data-zone=\"{zone}\"] td.level').textContent"
        ));
        assert_eq!(table, json!("red"), "{zone} in the zone table");
        let map = b.eval(&format!(
            "(() => {{ const g = document.querySelector('#map g.zone[data-zone=\"{zone}\"]'); \
             return [g.dataset.level, g.querySelector('.zone-label').textContent, \
             getComputedStyle(g.querySelector('circle')).fill]; }})()"
        ));
        assert_eq!(map[0], json!("red"), "{zone} on the map: {map}");
        assert!(
            map[1].as_str().unwrap().contains("red"),
            "the level is written, not only coloured: {map}"
        );
        assert_eq!(map[2], json!("rgb(198, 40, 40)"), "and coloured red: {map}");
    }
    let shown: BTreeMap<String, String> = serde_json::from_value(b.eval(
        "Object.fromEntries([...document.querySelectorAll('#lots tbody tr')] \
         .map(r => [r.dataset.lot, r.querySelector('td.free').textContent]))",
    ))
    .unwrap();
    assert_eq!(shown, lots, "free spaces on the page and in /api/v1/lots");
    let alert = b.eval("document.querySelector('#alerts li.alert').textContent");
    assert!(alert.as_str().is_some_and(|a| a.contains(':')), "{alert}");
    // Where to park for the first destination, arriving in 15 minutes.
    b.eval("document.querySelector('#recommend button').click()");
    b.wait_for(
        "a recommendation",
        "document.querySelectorAll('#recommendations li[data-lot]').length > 0",
        Duration::from_secs(10),
    );
    let first = b.eval("document.querySelector('#recommendations li[data-lot]').dataset.lot");
    assert!(lots.contains_key(first.as_str().unwrap()), "{first}");
    let age = b.eval("document.querySelector('#data-age').textContent");
    assert!(age.as_str().unwrap().starts_with("data observed"), "{age}");
    screenshot(&mut b, "district-1920x1080.png");

    b.resize(390, 844, true);
    std::thread::sleep(Duration::from_millis(500));
    let width = b.eval("[document.documentElement.scrollWidth, window.innerWidth]");
    assert!(
        width[0].as_u64() <= width[1].as_u64(),
        "no sideways scrolling on a phone: {width}"
    );
    screenshot(&mut b, "district-390x844.png");

    // A zone the engine has no data for is grey and says so, never green.
    let unknown = b.eval(
        "(() => { state.zones = [{id: 'z', name: 'Z', level: null, density: null, lat: 30.26, lon: 120.16, area_m2: 100}]; \
         renderZones(); renderMap(); \
         const cell = document.querySelector('#zones tr[data-zone=\"z\"] td.level'); \
         const dot = document.querySelector('#map g.zone[data-zone=\"z\"] circle'); \
         return [cell.textContent, getComputedStyle(cell).color, getComputedStyle(dot).fill]; })()",
    );
    assert_eq!(
        unknown,
        json!(["no data", "rgb(118, 118, 118)", "rgb(118, 118, 118)"]),
        "a zone without data"
    );

    let urls = b.requested_urls();
    assert!(
        urls.iter().any(|u| u.ends_with("/api/v1/stream")),
        "the live stream: {urls:?}"
    );
    let own = format!("http://{addr}/");
    let foreign: Vec<&String> = urls.iter().filter(|u| !u.starts_with(&own)).collect();
    assert!(
        foreign.is_empty(),
        "requests beyond the engine: {foreign:?}"
    );
    for path in ["/", "/ui/app.js", "/ui/style.css"] {
        let (status, body) = http_get(&addr, path).unwrap();
        assert_eq!(status, 200, "{path}");
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{path} names no other host"
        );
    }
}
