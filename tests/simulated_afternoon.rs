//! The simulated holiday afternoon through the in-process engine: the demo's story
//! (a zone reaches red, car parks fill, payments flow) holds, and the accounting
//! identity holds with bad and duplicate messages mixed in.

mod common;

use crowdpark::config::{load_str, Config, DEFAULT_CONFIG};
use crowdpark::crowd::Level;
use crowdpark::engine::Disposition;
use crowdpark::model::InputTopic;
use crowdpark::output::{AlertKind, Output, ParkingStatus};
use crowdpark::sim::{Expect, SimOptions, Simulator};
use crowdpark::testing::TestDriver;
use std::collections::HashMap;
use std::sync::Arc;

type Counts = HashMap<(InputTopic, &'static str), u64>;

fn run(minutes: i64, opts: SimOptions) -> (Vec<Output>, Counts) {
    run_on(load_str(DEFAULT_CONFIG, Vec::new()).unwrap(), minutes, opts)
}

fn run_on(config: Config, minutes: i64, opts: SimOptions) -> (Vec<Output>, Counts) {
    let config = Arc::new(config);
    let mut driver = TestDriver::with_config(config.clone());
    let mut sim = Simulator::new(&config, opts.clone());
    let mut counts = HashMap::new();
    for second in 1..=minutes * 60 {
        let now = opts.start_ms + second * 1000;
        driver.set_now(now);
        for m in sim.advance_to(now) {
            let d = driver.send(m.topic, &m.key, &m.payload);
            let got = match d {
                Disposition::Accepted => "accepted",
                Disposition::Duplicate => "duplicate",
                Disposition::Rejected(_) => "rejected",
            };
            let want = match m.expect {
                Expect::Accept => "accepted",
                Expect::Duplicate => "duplicate",
                Expect::Reject(r) => {
                    assert_eq!(
                        d,
                        Disposition::Rejected(r),
                        "{}",
                        String::from_utf8_lossy(&m.payload)
                    );
                    "rejected"
                }
            };
            assert_eq!(got, want, "{}", String::from_utf8_lossy(&m.payload));
            *counts.entry((m.topic, got)).or_insert(0) += 1;
        }
        driver.tick_at(now);
    }
    (driver.take(), counts)
}

#[test]
fn afternoon_reaches_red_fills_car_parks_and_sells() {
    let (out, _) = run(60, SimOptions::default());
    let reds: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Alert(a) if a.kind == AlertKind::Level && a.level == Level::Red => Some(a),
            _ => None,
        })
        .collect();
    assert!(!reds.is_empty(), "no zone reached red");
    assert!(reds.iter().any(|a| a.zone == "lakeside-promenade"));
    let forecasts = out
        .iter()
        .filter(|o| matches!(o, Output::Alert(a) if a.kind == AlertKind::Forecast))
        .count();
    assert!(forecasts >= 1, "red came without an early warning");
    assert!(out.iter().any(|o| matches!(o, Output::Availability(a)
        if matches!(a.status, ParkingStatus::Full | ParkingStatus::AlmostFull))));
    let sales: u32 = out
        .iter()
        .filter_map(|o| match o {
            Output::Payments(p) => Some(p.figures.transactions),
            _ => None,
        })
        .sum();
    assert!(sales > 100, "only {sales} payments in windows");
    assert!(out.iter().any(|o| matches!(o, Output::Density(_))));
    assert!(out.iter().any(|o| matches!(o, Output::Group(_))));
    // Every availability record is within capacity.
    for o in &out {
        if let Output::Availability(a) = o {
            assert!(a.available_spot_number <= a.total_spot_number);
            assert_eq!(
                a.available_spot_number + a.occupied_spot_number + a.unknown_spot_number,
                a.total_spot_number
            );
        }
    }
}

#[test]
fn bad_and_duplicate_messages_are_classified_as_the_simulator_meant() {
    let opts = SimOptions {
        bad_ratio: 0.05,
        duplicate_ratio: 0.01,
        ..SimOptions::default()
    };
    // `run` checks every message's fate against the simulator's expectation,
    // over more than 100,000 of them: parking fees from a merchant that is
    // not configured among them (the contract's one rule for unknown
    // merchants).
    let (out, counts) = run(170, opts);
    let total: u64 = counts.values().sum();
    assert!(total > 100_000, "{total} messages");
    let dead = out
        .iter()
        .filter(|o| matches!(o, Output::DeadLetter(_)))
        .count() as u64;
    let rejected: u64 = counts
        .iter()
        .filter(|(k, _)| k.1 == "rejected")
        .map(|(_, v)| v)
        .sum();
    assert_eq!(
        dead, rejected,
        "every rejection has exactly one dead letter"
    );
    for topic in InputTopic::ALL {
        assert!(
            counts.get(&(topic, "rejected")).copied().unwrap_or(0) > 0,
            "{topic:?}"
        );
        assert!(
            counts.get(&(topic, "duplicate")).copied().unwrap_or(0) > 0,
            "{topic:?}"
        );
    }
}

/// The district KPI records sum their window's zone records exactly, each
/// window once, and relate sales to the visitors counted entering: with one
/// district, and with two in one configuration, where each district's
/// records sum its own zones only.
#[test]
fn district_records_sum_each_closed_window() {
    let one = load_str(DEFAULT_CONFIG, Vec::new()).unwrap();
    check_districts(&one);
    let two = common::districts::two_districts();
    let outputs = check_districts(&two);
    // Every record names the district its zone or car park is in.
    let zone_district: HashMap<&str, &str> = two
        .zones
        .iter()
        .map(|z| (z.id.as_str(), z.district.as_deref().unwrap()))
        .collect();
    let lot_district: HashMap<&str, &str> = two
        .lots
        .iter()
        .map(|l| (l.id.as_str(), l.district.as_deref().unwrap()))
        .collect();
    let mut named = 0;
    for o in &outputs {
        let (id, district, of) = match o {
            Output::Density(d) => (&d.zone, &d.district, &zone_district),
            Output::Payments(p) => (&p.zone, &p.district, &zone_district),
            Output::Alert(a) => (&a.zone, &a.district, &zone_district),
            Output::Availability(a) => (&a.id, &a.district, &lot_district),
            _ => continue,
        };
        assert_eq!(of[id.as_str()], district, "{o:?}");
        named += 1;
    }
    assert!(named > 1000, "{named} records");
}

/// Runs 40 minutes of the afternoon on `config` and checks every district's
/// records against its zones'; the outputs.
fn check_districts(config: &Config) -> Vec<Output> {
    use crowdpark::output::DistrictScope;
    use std::collections::BTreeMap;
    let (out, _) = run_on(config.clone(), 40, SimOptions::default());
    let mut zone_people: BTreeMap<(&str, i64), (f64, u32)> = BTreeMap::new();
    let mut zone_sales: BTreeMap<(&str, i64), u32> = BTreeMap::new();
    for o in &out {
        match o {
            Output::Density(d) => {
                let e = zone_people.entry((&d.district, d.window_ms.0)).or_default();
                e.0 += d.people_avg;
                e.1 += 1;
            }
            Output::Payments(p) => {
                *zone_sales.entry((&p.district, p.window_ms.0)).or_default() +=
                    p.figures.transactions
            }
            _ => {}
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for district in config.districts() {
        let id = district.id.as_str();
        let spaces: u32 = config
            .lots
            .iter()
            .filter(|l| config.district_of(l.district.as_deref()).unwrap().id == id)
            .map(|l| l.spaces)
            .sum();
        let records: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                Output::District(d) if d.district == id => Some(d),
                _ => None,
            })
            .collect();
        let crowd: Vec<_> = records
            .iter()
            .filter(|d| d.scope == DistrictScope::Crowd)
            .collect();
        let payments: Vec<_> = records
            .iter()
            .filter(|d| d.scope == DistrictScope::Payments)
            .collect();
        assert!(crowd.len() >= 30, "{id}: {} crowd records", crowd.len());
        assert!(
            payments.len() >= 6,
            "{id}: {} payments records",
            payments.len()
        );
        for d in &crowd {
            assert!(
                seen.insert((id, "crowd", d.window_ms.0)),
                "one record per window"
            );
            let (people, zones) = zone_people[&(id, d.window_ms.0)];
            assert!((d.people.unwrap() - people).abs() < 0.11, "{d:?}");
            let levels = d.zones_by_level.as_ref().unwrap();
            assert_eq!(levels.values().sum::<u32>(), zones, "{d:?}");
            assert!(
                d.available_spot_number.is_some_and(|n| n <= spaces),
                "{d:?}"
            );
        }
        for d in &payments {
            assert!(
                seen.insert((id, "payments", d.window_ms.0)),
                "one record per window"
            );
            let zones = zone_sales[&(id, d.window_ms.0)];
            assert_eq!(d.transactions, Some(zones), "{d:?}");
            assert!(d.sales_per_m2.is_some());
        }
    }
    let districts: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::District(d) => Some(d),
            _ => None,
        })
        .collect();
    assert!(
        districts
            .iter()
            .any(|d| d.zones_by_level.as_ref().is_some_and(|l| l["red"] > 0)),
        "the afternoon's red shows in a district"
    );
    assert!(
        districts
            .iter()
            .any(|d| d.entries.is_some_and(|e| e > 0) && d.transactions_per_visitor.is_some()),
        "counting lines give visitors to relate sales to"
    );
    out
}
