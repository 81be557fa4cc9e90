//! A zone's state and what one reading does to its level and forecast: the
//! alerts of contract §2.

use super::params::CrowdParams;
use super::{Ewma, Level, LevelRules, PeopleEstimate, Trend};
use crate::model::ZoneInfo;
use crate::output::{round3, AlertKind, CrowdAlert, Output};
use crate::time::format_ts;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ZoneState {
    pub(super) estimate: PeopleEstimate,
    pub(super) people: u32,
    pub(super) density_raw: f64,
    pub(super) ewma: Ewma,
    pub(super) trend: Trend,
    pub(super) level: Level,
    pub(super) level_since: i64,
    /// A forecast alert was published and has not been cleared since.
    pub(super) forecast_active: bool,
    /// When the first forecast of the current climb towards red was published;
    /// the red alert reports how long before it the warning came.
    #[serde(default)]
    pub(super) forecast_since: Option<i64>,
    pub(super) red_in_s: Option<u32>,
    pub(super) first_ms: i64,
    pub(super) updated_ms: i64,
}

impl ZoneState {
    pub(super) fn new(info: &ZoneInfo, params: &CrowdParams, ts: i64) -> Self {
        ZoneState {
            estimate: PeopleEstimate::with_baseline(info.baseline),
            people: 0,
            density_raw: 0.0,
            ewma: Ewma::new(params.half_life),
            trend: Trend::new(params.trend_window),
            level: Level::Green,
            level_since: ts,
            forecast_active: false,
            forecast_since: None,
            red_in_s: None,
            first_ms: ts,
            updated_ms: ts,
        }
    }
}

/// One reading applied to a zone, at event time `ts`, leaving its smoothed
/// density at `density`.
pub(super) struct Step<'a> {
    pub info: &'a ZoneInfo,
    /// The zone's district's id.
    pub district: &'a str,
    pub params: &'a CrowdParams,
    pub ts: i64,
    pub density: f64,
}

impl Step<'_> {
    fn alert(&self, z: &ZoneState, kind: AlertKind, level: Level, previous: Level) -> CrowdAlert {
        let tag = match kind {
            AlertKind::Level => level.as_str(),
            AlertKind::Forecast => "forecast",
        };
        let info = self.info;
        CrowdAlert {
            alert_id: format!("{}:{}:{}", info.id, self.ts, tag),
            zone: info.id.clone(),
            district: self.district.to_string(),
            kind,
            level,
            previous,
            density: round3(self.density),
            people: z.people,
            area_m2: info.area_m2,
            ts: format_ts(self.ts),
            thresholds: info.thresholds,
            red_in_s: None,
            forecast_lead_s: None,
            ts_ms: self.ts,
        }
    }

    /// Moves the zone to the level its density calls for, with an alert.
    pub(super) fn level(&self, z: &mut ZoneState, out: &mut Vec<Output>) {
        let rules = LevelRules {
            thresholds: self.info.thresholds,
            hysteresis: self.params.hysteresis,
            min_dwell_ms: self.params.min_dwell,
        };
        let Some(next) = rules.next(z.level, z.level_since, self.density, self.ts) else {
            return;
        };
        let lead_s = match next {
            Level::Red => z
                .forecast_since
                .take()
                .map(|since| ((self.ts - since).max(0) / 1000) as u32),
            // Falling back ends the climb its forecast was about.
            _ if next < z.level => {
                z.forecast_since = None;
                None
            }
            _ => None,
        };
        let mut alert = self.alert(z, AlertKind::Level, next, z.level);
        alert.forecast_lead_s = lead_s;
        out.push(Output::Alert(alert));
        z.level = next;
        z.level_since = self.ts;
        // A new level allows a new forecast (contract §2).
        z.forecast_active = false;
    }

    /// Raises a forecast alert when red is expected within the horizon, once
    /// per climb.
    pub(super) fn forecast(&self, z: &mut ZoneState, out: &mut Vec<Output>) {
        let params = self.params;
        // Right after a zone is first seen its cameras trickle in one by one and the
        // average is still catching up: a rising line there is start-up, not crowd.
        let warm = self.ts - z.first_ms >= params.trend_window.max(2 * params.half_life);
        let etas = if warm {
            red_eta_s(&z.trend, self.density, self.info.thresholds.red, z.level)
        } else {
            None
        };
        z.red_in_s = etas.map(|e| e.0);
        let horizon_s = params.forecast_horizon as f64 / 1000.0;
        let sure = etas.and_then(|e| e.1);
        match z.red_in_s {
            Some(eta)
                if (eta as f64) <= horizon_s && sure.is_some_and(|s| s as f64 <= horizon_s) =>
            {
                if !z.forecast_active {
                    z.forecast_active = true;
                    z.forecast_since.get_or_insert(self.ts);
                    let mut alert = self.alert(z, AlertKind::Forecast, z.level, z.level);
                    alert.red_in_s = Some(eta);
                    out.push(Output::Alert(alert));
                }
            }
            // Clear only well beyond the horizon, so a forecast hovering at the
            // horizon does not repeat.
            Some(eta) if (eta as f64) <= 1.5 * horizon_s => {}
            // At red the climb is over; anything else means the trend turned.
            _ if z.level == Level::Red => z.forecast_active = false,
            _ => {
                z.forecast_active = false;
                z.forecast_since = None;
            }
        }
        if z.red_in_s.is_some_and(|eta| eta as f64 > horizon_s) {
            z.red_in_s = None;
        }
    }
}

/// How many standard errors below its fitted value the slope must still reach
/// red within the horizon before a forecast alert goes out, so that a line
/// tilted by camera noise alone does not raise one. (The samples are smoothed,
/// hence correlated, and the textbook error understates the spread; the
/// margin is deliberately wide. A steady climb still gets its warning 8–11
/// minutes ahead of red in `tests/crowd_forecast.rs`.)
const FORECAST_CONFIDENCE_SE: f64 = 2.0;

/// Seconds until the fitted trend of the smoothed density reaches `red`, when the
/// zone is below red and the density is rising: (as fitted, as the slope's
/// lower bound allows). The first is what zones report; the second decides
/// whether an alert goes out, so noise that merely tilts the line does not.
fn red_eta_s(trend: &Trend, density: f64, red: f64, level: Level) -> Option<(u32, Option<u32>)> {
    if level == Level::Red || density >= red {
        return None;
    }
    let fit = trend.fit()?;
    let eta = |slope: f64| {
        let eta = (red - density) / slope;
        (slope > 1e-9 && eta.is_finite() && eta < u32::MAX as f64).then(|| eta.ceil() as u32)
    };
    Some((
        eta(fit.slope)?,
        eta(fit.slope - FORECAST_CONFIDENCE_SE * fit.slope_se),
    ))
}
