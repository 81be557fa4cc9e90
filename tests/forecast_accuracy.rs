//! The 30-minute free-space forecast against two baselines on five simulated
//! weeks of gate counts (weekday patterns, a weekday holiday and a holiday week,
//! daily noise, surges): seasonal naive (the value at the same time a week
//! earlier) and the current value carried forward. Three weeks learn; the
//! forecasts of the last two are scored.

use crowdpark::config::{load_str, Detection, DEFAULT_CONFIG};
use crowdpark::engine::Engine;
use crowdpark::output::Output;
use crowdpark::sim::weeks::{parking_weeks, WeeksOptions};
use std::collections::BTreeMap;
use std::sync::Arc;

/// 2026-08-31 00:00 +08:00, a Monday. The embedded configuration's holidays
/// then fall in the scored weeks: Mid-Autumn (Friday 25 September) and National
/// Day week (1–7 October).
const START_MS: i64 = crowdpark::sim::weeks::DEFAULT_WEEKS_START_MS;
const WEEK_MS: i64 = 7 * 86_400_000;
const WEEKS: u32 = 5;
const SCORED_FROM: i64 = START_MS + 3 * WEEK_MS;

/// One published record: when, free spaces, and the 30-minute forecast.
struct Point {
    at: i64,
    free: u32,
    forecast_30: Option<u32>,
}

/// Free spaces at `t`: the last record at or before it.
fn free_at(series: &[Point], t: i64) -> Option<u32> {
    let i = series.partition_point(|p| p.at <= t);
    (i > 0).then(|| series[i - 1].free)
}

#[test]
fn thirty_minute_forecast_beats_seasonal_naive_and_carry_forward() {
    let mut config = load_str(DEFAULT_CONFIG, Vec::new()).unwrap();
    for lot in &mut config.lots {
        lot.detection = Detection::Gate;
        lot.opening_hours = "24h".into();
    }
    let config = Arc::new(config);
    let mut engine = Engine::new(config.clone());
    let catalog = engine.catalog().clone();
    let msgs = parking_weeks(
        &catalog,
        &WeeksOptions {
            start_ms: START_MS,
            weeks: WEEKS,
            seed: 7,
        },
    );
    assert!(msgs.len() > 200_000, "{} messages", msgs.len());

    let mut series: BTreeMap<String, Vec<Point>> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        out.clear();
        engine.process(&m.as_input(3, i as i64), &mut out);
        for o in &out {
            if let Output::Availability(a) = o {
                let forecast_30 = a
                    .forecast
                    .iter()
                    .find(|f| f.minutes == 30)
                    .map(|f| f.available_spot_number);
                series.entry(a.id.clone()).or_default().push(Point {
                    at: a.emitted_ms,
                    free: a.available_spot_number,
                    forecast_30,
                });
            }
        }
    }
    assert_eq!(series.len(), catalog.lots.len(), "every car park published");

    let (mut n, mut ours, mut seasonal, mut carried) = (0u64, 0f64, 0f64, 0f64);
    let mut holiday = (0u64, 0f64, 0f64);
    for points in series.values() {
        for p in points.iter().filter(|p| p.at >= SCORED_FROM) {
            let target = p.at + 30 * 60_000;
            let (Some(actual), Some(last_week), Some(forecast)) = (
                free_at(points, target),
                free_at(points, target - WEEK_MS),
                p.forecast_30,
            ) else {
                continue;
            };
            if target > points.last().map_or(0, |l| l.at) {
                continue;
            }
            let err = |v: u32| (v as f64 - actual as f64).abs();
            n += 1;
            ours += err(forecast);
            seasonal += err(last_week);
            carried += err(p.free);
            if catalog.districts[0].calendar.is_holiday(target) {
                holiday.0 += 1;
                holiday.1 += err(forecast);
                holiday.2 += err(last_week);
            }
        }
    }
    assert!(n > 100_000, "scored {n} forecasts");
    let (ours, seasonal, carried) = (ours / n as f64, seasonal / n as f64, carried / n as f64);
    println!(
        "MAE of the 30-minute forecast over {n} records (free spaces): crowdpark {ours:.2}, seasonal naive {seasonal:.2}, carried forward {carried:.2}"
    );
    println!(
        "on holidays ({} records): crowdpark {:.2}, seasonal naive {:.2}",
        holiday.0,
        holiday.1 / holiday.0 as f64,
        holiday.2 / holiday.0 as f64
    );
    assert!(
        ours < seasonal,
        "crowdpark {ours:.2} against seasonal naive {seasonal:.2}"
    );
    assert!(
        ours < carried,
        "crowdpark {ours:.2} against carried forward {carried:.2}"
    );
}
