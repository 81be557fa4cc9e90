use super::state::DistrictState;
use super::*;
use crate::config::{load_str, DEFAULT_CONFIG};
use crate::model::Catalog;
use crate::operator::{Emit, Input, Operator};
use crate::output::{DistrictRecord, DistrictScope, Output};
use std::sync::Arc;

const MIN: i64 = 60_000;
// Two zones of the default district.
const A: &str = "lakeside-promenade";
const B: &str = "music-fountain-plaza";

fn crowd(zone: &str, start: i64, tenths: i64, level: u8) -> Partial {
    Partial::Crowd {
        zone: zone.into(),
        start,
        end: start + MIN,
        people_tenths: tenths,
        level,
        entered: 10,
    }
}

fn sales(zone: &str, start: i64, sales: u32, fen: i64) -> Partial {
    Partial::Sales {
        zone: zone.into(),
        start,
        end: start + 5 * MIN,
        sales,
        sales_fen: fen,
        refunds: 0,
        refund_fen: 0,
    }
}

fn operator() -> DistrictOperator {
    let config = load_str(DEFAULT_CONFIG, Vec::<(String, String)>::new()).unwrap();
    let catalog = Arc::new(Catalog::new(&config));
    DistrictOperator::new(&config, catalog)
}

/// Feeds `partials` then moves the watermark to `wm`; the district records.
fn run(op: &mut DistrictOperator, partials: &[Partial], wm: i64) -> Vec<DistrictRecord> {
    let (mut records, mut forwarded) = (Vec::new(), Vec::new());
    let mut out = Emit {
        records: &mut records,
        forwarded: &mut forwarded,
    };
    for p in partials {
        let input = Input {
            peers: (),
            ts: 0,
            event: p,
            id: None,
            watermark: 0,
        };
        op.accept(&input, &mut out).unwrap();
    }
    op.advance(wm, &mut out);
    records
        .into_iter()
        .filter_map(|o| match o {
            Output::District(d) => Some(d),
            _ => None,
        })
        .collect()
}

#[test]
fn a_window_sums_each_zone_once_however_often_it_is_sent() {
    let mut op = operator();
    let lateness = 60_000 * 2; // above the default allowed lateness
    let parts = [
        crowd(A, 0, 1234, 0),
        crowd(B, 0, 100, 2),
        // Replayed after a rewind: the same zone and window again.
        crowd(A, 0, 1234, 0),
        sales(A, 0, 3, 30_000),
        sales(A, 0, 3, 30_000),
        sales(B, 0, 1, 5),
    ];
    let got = run(&mut op, &parts, 5 * MIN + lateness);
    assert_eq!(got.len(), 2, "{got:?}");
    let c = got
        .iter()
        .find(|d| d.scope == DistrictScope::Crowd)
        .unwrap();
    assert_eq!(c.people, Some(133.4));
    let levels = c.zones_by_level.as_ref().unwrap();
    assert_eq!((levels["green"], levels["red"]), (1, 1));
    let p = got
        .iter()
        .find(|d| d.scope == DistrictScope::Payments)
        .unwrap();
    assert_eq!(p.transactions, Some(4));
    assert_eq!(p.amount.as_deref(), Some("300.05"));
    assert_eq!(p.entries, Some(20), "both zones' counting lines");
}

#[test]
fn a_part_for_a_window_already_published_changes_nothing() {
    let mut op = operator();
    let first = run(&mut op, &[crowd(A, 0, 10, 0)], 10 * MIN);
    assert_eq!(first.len(), 1);
    // A partition replayed from an older checkpoint sends it again, and a
    // zone whose part came after the window closed is not published twice.
    let again = run(&mut op, &[crowd(A, 0, 10, 0), crowd(B, 0, 20, 1)], 20 * MIN);
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn nothing_is_published_before_the_watermark_passes_the_window() {
    let mut op = operator();
    let got = run(&mut op, &[crowd(A, 0, 10, 0)], MIN);
    assert!(got.is_empty(), "the allowed lateness is not over: {got:?}");
}

#[test]
fn free_spaces_are_the_car_parks_last_figures_at_the_window_end() {
    let mut s = DistrictState::default();
    let lot = |id: &str, at: i64, available: u32| Partial::Free {
        lot: id.into(),
        at,
        available,
    };
    for p in [
        lot("p1", 10, 50),
        lot("p1", 50, 40),
        lot("p1", 70, 30),
        lot("p2", 20, 7),
    ] {
        s.take(&p);
    }
    assert_eq!(s.free_at(60), Some(47));
    assert_eq!(s.free_at(80), Some(37));
    assert_eq!(s.free_at(5), None, "no car park reported yet then");
}

#[test]
fn the_state_comes_back_from_its_checkpoint_whole() {
    let mut op = operator();
    run(&mut op, &[crowd(A, 0, 10, 0), sales(A, 0, 1, 100)], 0);
    let mut records = Vec::new();
    crate::state::flush_all("d/0/", op.stores(), &mut records);
    let mut restored = operator();
    {
        let mut stores = restored.stores();
        for r in &records {
            let key = r.key.strip_prefix("d/0/").unwrap();
            crate::state::restore_into(&mut stores, key, r.value.as_deref().unwrap()).unwrap();
        }
    }
    let a = run(&mut op, &[crowd(B, 0, 5, 0)], 20 * MIN);
    let b = run(&mut restored, &[crowd(B, 0, 5, 0)], 20 * MIN);
    assert_eq!(a, b);
    assert_eq!(a.len(), 2);
}

/// One task holding two districts (both hash to its partition here) keeps
/// them apart: each district's record sums its own zones, car parks and
/// selling area only.
#[test]
fn two_districts_in_one_task_sum_their_own_zones() {
    let mut config = load_str(DEFAULT_CONFIG, Vec::<(String, String)>::new()).unwrap();
    let mut hubin = config.district.take().unwrap();
    let wulin = crate::config::DistrictConfig {
        id: "wulin".into(),
        name: "Wulin".into(),
        ..hubin.clone()
    };
    hubin.name = "Hubin".into();
    for z in &mut config.zones {
        let id = if z.id == B { "wulin" } else { "hubin" };
        z.district = Some(id.into());
    }
    for l in &mut config.lots {
        l.district = Some("hubin".into());
    }
    config.districts = vec![hubin, wulin];
    let catalog = Arc::new(Catalog::new(&config));
    let mut op = DistrictOperator::new(&config, catalog.clone());
    let lateness = 60_000 * 2;
    let got = run(
        &mut op,
        &[
            crowd(A, 0, 1234, 0),
            crowd(B, 0, 100, 2),
            sales(A, 0, 3, 30_000),
            sales(B, 0, 1, 5),
        ],
        5 * MIN + lateness,
    );
    let find = |district: &str, scope: DistrictScope| {
        got.iter()
            .find(|d| d.district == district && d.scope == scope)
            .unwrap_or_else(|| panic!("no {district} {scope:?} record in {got:?}"))
    };
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(find("hubin", DistrictScope::Crowd).people, Some(123.4));
    assert_eq!(find("wulin", DistrictScope::Crowd).people, Some(10.0));
    assert_eq!(
        find("wulin", DistrictScope::Crowd)
            .zones_by_level
            .as_ref()
            .unwrap()["red"],
        1
    );
    assert_eq!(find("hubin", DistrictScope::Payments).transactions, Some(3));
    assert_eq!(find("wulin", DistrictScope::Payments).transactions, Some(1));
    assert_eq!(
        find("wulin", DistrictScope::Payments).amount.as_deref(),
        Some("0.05")
    );
    // Sales per m² over each district's own selling area.
    let b = catalog.zone(B).unwrap();
    assert_eq!(
        catalog.district_selling_area_centi(1),
        catalog.zone_selling_area_centi(b)
    );
}
