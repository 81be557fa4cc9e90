//! The early warning: a zone whose crowd rises steadily gets its forecast alert
//! at least three minutes before the red level alert (and the red alert says by
//! how much); a zone that climbs slowly and levels off at yellow gets none.
//! Camera counts carry 4 % noise, as the simulator's do.

use crowdpark::model::InputTopic;
use crowdpark::output::{AlertKind, CrowdAlert, Output};
use crowdpark::sim::{Rng, DEFAULT_START_MS};
use crowdpark::testing::TestDriver;

const ZONE: &str = "lakeside-promenade";

/// Feeds a zone whose density follows `density(minute)`, two cameras each
/// counting half every 10 s, and returns its alerts.
fn run(seed: u64, minutes: i64, density: impl Fn(f64) -> f64) -> Vec<CrowdAlert> {
    let mut driver = TestDriver::new();
    let area = {
        let c = driver.engine().catalog();
        c.zones[c.zone(ZONE).unwrap() as usize].area_m2
    };
    let mut rng = Rng::new(seed);
    let mut alerts = Vec::new();
    for step in 0..minutes * 6 {
        let ts = DEFAULT_START_MS + step * 10_000;
        let people = density(step as f64 / 6.0) * area;
        driver.set_now(ts + 500);
        for cam in ["cam-a", "cam-b"] {
            let seen = (people / 2.0 * (1.0 + 0.04 * rng.normal()))
                .round()
                .max(0.0);
            let payload = format!(
                r#"{{"zone":"{ZONE}","ts":{ts},"source":"{cam}","people":{seen},"event_id":"{cam}-{ts}"}}"#
            );
            driver.send(InputTopic::CrowdCounts, ZONE, payload.as_bytes());
            alerts.extend(driver.take().into_iter().filter_map(|o| match o {
                Output::Alert(a) if a.zone == ZONE => Some(a),
                _ => None,
            }));
        }
    }
    alerts
}

fn thresholds() -> (f64, f64) {
    let mut driver = TestDriver::new();
    let c = driver.engine().catalog();
    let t = c.zones[c.zone(ZONE).unwrap() as usize].thresholds;
    (t.yellow, t.red)
}

#[test]
fn a_steady_rise_is_forecast_at_least_three_minutes_before_red() {
    let (yellow, red) = thresholds();
    // Five quiet minutes, then a straight climb from half of yellow to well
    // past red in 30 minutes.
    let start = yellow / 2.0;
    let top = red * 1.2;
    for seed in 1..=8 {
        let alerts = run(seed, 45, |m| {
            if m < 5.0 {
                start
            } else {
                start + (top - start) * ((m - 5.0) / 30.0).min(1.0)
            }
        });
        let forecast = alerts
            .iter()
            .find(|a| a.kind == AlertKind::Forecast)
            .expect("a forecast alert");
        let red_alert = alerts
            .iter()
            .find(|a| a.kind == AlertKind::Level && a.level.as_str() == "red")
            .expect("a red alert");
        let lead_s = (red_alert.ts_ms - forecast.ts_ms) / 1000;
        println!(
            "seed {seed}: forecast at {}, red at {}: lead {lead_s} s (forecast said red in {:?} s)",
            forecast.ts, red_alert.ts, forecast.red_in_s
        );
        assert!(lead_s >= 180, "seed {seed}: lead {lead_s} s");
        assert_eq!(red_alert.forecast_lead_s, Some(lead_s as u32));
        assert!(forecast.red_in_s.is_some_and(|s| s > 0));
    }
}

#[test]
fn a_zone_that_levels_off_at_yellow_gets_no_forecast() {
    let (yellow, red) = thresholds();
    // A climb into yellow that eases off and settles halfway to red: at its
    // steepest the trend would reach red in about 17 minutes, beyond the
    // 10-minute horizon, and it flattens from there.
    let start = yellow / 2.0;
    let plateau = yellow + (red - yellow) * 0.5;
    for seed in 1..=8 {
        let alerts = run(seed, 60, |m| {
            let x = ((m - 5.0) / 30.0).clamp(0.0, 1.0);
            start + (plateau - start) * (1.0 - (std::f64::consts::PI * x).cos()) / 2.0
        });
        assert!(
            alerts
                .iter()
                .any(|a| a.kind == AlertKind::Level && a.level.as_str() == "yellow"),
            "seed {seed}: the zone does reach yellow: {alerts:?}"
        );
        let forecasts: Vec<_> = alerts
            .iter()
            .filter(|a| a.kind == AlertKind::Forecast)
            .collect();
        assert!(
            forecasts.is_empty(),
            "seed {seed}: unexpected forecasts: {forecasts:?}"
        );
        assert!(!alerts.iter().any(|a| a.level.as_str() == "red"));
    }
}
