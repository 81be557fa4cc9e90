//! Turns ordered crowd readings into alerts and density windows.

use super::{Ewma, Level, LevelRules, PeopleEstimate, Trend};
use crate::config::{Config, Thresholds};
use crate::model::{Catalog, CrowdEvent, CrowdReading, Event, Reject, ZoneIx, ZoneKeys};
use crate::operator::{Emit, Input, Operator};
use crate::output::{round3, AlertKind, CrowdAlert, DensityRecord, Output};
use crate::state::{read, Cell, Json, KeyMap, Pairs, RestoreError, Stores, ValueFormat};
use crate::time::{format_ts, WindowSpec, WindowStore};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

/// The crowd settings in milliseconds, ready for arithmetic.
#[derive(Debug, Clone)]
pub struct CrowdParams {
    pub source_ttl: i64,
    pub half_life: i64,
    pub hysteresis: f64,
    pub min_dwell: i64,
    pub forecast_horizon: i64,
    pub trend_window: i64,
    pub max_sources: usize,
    pub window: WindowSpec,
    pub lateness: i64,
}

impl CrowdParams {
    pub fn from_config(c: &Config) -> Self {
        let cr = &c.crowd;
        let size = cr.window.as_ms();
        CrowdParams {
            source_ttl: cr.source_ttl.as_ms(),
            half_life: cr.ewma_half_life.as_ms(),
            hysteresis: cr.hysteresis,
            min_dwell: cr.min_dwell.as_ms(),
            forecast_horizon: cr.forecast_horizon.as_ms(),
            trend_window: cr.trend_window.as_ms(),
            max_sources: cr.max_sources_per_zone,
            window: WindowSpec::hopping(size, cr.window_advance.map_or(size, |a| a.as_ms())),
            lateness: c.engine.allowed_lateness.as_ms(),
        }
    }
}

/// A reading waiting for the watermark. Ordered by event time first and then by
/// content, so readings with equal times are applied in the same order however
/// they arrived.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Pending {
    ts: i64,
    zone: ZoneIx,
    source: Box<str>,
    reading: CrowdReading,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ZoneState {
    estimate: PeopleEstimate,
    people: u32,
    density_raw: f64,
    ewma: Ewma,
    trend: Trend,
    level: Level,
    level_since: i64,
    /// A forecast alert was published and has not been cleared since.
    forecast_active: bool,
    /// When the first forecast of the current climb towards red was published;
    /// the red alert reports how long before it the warning came.
    #[serde(default)]
    forecast_since: Option<i64>,
    red_in_s: Option<u32>,
    first_ms: i64,
    updated_ms: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct DensityAgg {
    samples: u32,
    people_sum: u64,
    people_max: u32,
    density_sum: f64,
    density_max: f64,
    level_max: Level,
}

/// A zone's live state, as the HTTP API and the metrics show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ZoneStatus {
    pub id: String,
    pub name: String,
    pub area_m2: f64,
    pub people: u32,
    /// Smoothed people per m²: the figure the level follows.
    pub density: f64,
    /// Unsmoothed people per m² of the latest estimate.
    pub density_raw: f64,
    pub level: Level,
    pub level_since: String,
    pub thresholds: Thresholds,
    /// Seconds until red if the current trend holds and it is within the horizon.
    pub forecast_red_in_s: Option<u32>,
    pub observation_date_time: String,
    #[serde(skip)]
    pub updated_ms: i64,
}

/// The crowd operator of one input partition.
///
/// Readings are buffered until the partition's watermark passes them and then
/// applied in event-time order: smoothing and hysteresis depend on order, and this
/// makes levels and windows identical for any arrival order within the allowed
/// out-of-orderness, at the cost of delaying alerts by that much (5 s by default,
/// small beside how fast a crowd builds).
#[derive(Debug, Clone)]
pub struct CrowdOperator {
    catalog: Arc<Catalog>,
    params: CrowdParams,
    zones: KeyMap<ZoneIx, ZoneState>,
    pending: Cell<BinaryHeap<Reverse<Pending>>>,
    windows: WindowStore<ZoneIx, DensityAgg>,
}

/// The readings waiting for the watermark, logged as one list.
struct PendingList;

impl ValueFormat<BinaryHeap<Reverse<Pending>>> for PendingList {
    fn write(&self, value: &BinaryHeap<Reverse<Pending>>) -> Vec<u8> {
        let pending: Vec<&Pending> = value.iter().map(|r| &r.0).collect();
        serde_json::to_vec(&pending).expect("state types serialise")
    }

    fn read(&self, value: &[u8]) -> Result<BinaryHeap<Reverse<Pending>>, RestoreError> {
        let pending: Vec<Pending> = read("", value)?;
        Ok(pending.into_iter().map(Reverse).collect())
    }
}

impl CrowdOperator {
    pub fn new(catalog: Arc<Catalog>, params: CrowdParams) -> Self {
        let zone_keys = Arc::new(ZoneKeys(catalog.clone()));
        let windows = WindowStore::new(
            params.window,
            params.lateness,
            Arc::new(Pairs(zone_keys.clone())),
        );
        CrowdOperator {
            catalog,
            params,
            zones: KeyMap::new(zone_keys, Arc::new(Json)),
            pending: Cell::new(BinaryHeap::new(), Arc::new(PendingList)),
            windows,
        }
    }

    /// True when every window an event at `ts` would fall in is already final.
    pub fn is_late(&self, ts: i64, watermark: i64) -> bool {
        self.windows.is_late(ts, watermark)
    }

    /// Queues a reading; it takes effect in [`advance`](Self::advance). A
    /// headcount from a new source is refused once its zone has
    /// `max_sources` (readings still waiting for the watermark are not
    /// counted, so the bound is that plus what arrives within the
    /// out-of-orderness).
    pub fn accept(&mut self, ts: i64, event: &CrowdEvent<'_>) -> Result<(), Reject> {
        if let (CrowdReading::Headcount { .. }, Some(z)) =
            (&event.reading, self.zones.get(&event.zone))
        {
            let n = z.estimate.source_count();
            if n >= self.params.max_sources && !z.estimate.knows(&event.source) {
                let shown: String = event.source.chars().take(100).collect();
                return Err(Reject::range(format!(
                    "zone `{}` already has {n} headcount sources heard within source_ttl (crowd.max_sources_per_zone); new source `{shown}` refused",
                    self.catalog.zones[event.zone as usize].id
                )));
            }
        }
        self.pending.get_mut().push(Reverse(Pending {
            ts,
            zone: event.zone,
            source: event.source.as_ref().into(),
            reading: event.reading.clone(),
        }));
        Ok(())
    }

    /// Applies every queued reading at or before `watermark`, then closes the
    /// windows the watermark made final.
    pub fn advance(&mut self, watermark: i64, out: &mut Vec<Output>) {
        while self
            .pending
            .get()
            .peek()
            .is_some_and(|p| p.0.ts <= watermark)
        {
            let Reverse(p) = self.pending.get_mut().pop().expect("peeked");
            self.apply(p, out);
        }
        let catalog = &self.catalog;
        self.windows
            .close_until(watermark, |start, end, zone, agg| {
                let info = &catalog.zones[zone as usize];
                let n = agg.samples.max(1) as f64;
                out.push(Output::Density(DensityRecord {
                    zone: info.id.clone(),
                    window_start: format_ts(start),
                    window_end: format_ts(end),
                    samples: agg.samples,
                    people_avg: (agg.people_sum as f64 / n * 10.0).round() / 10.0,
                    people_max: agg.people_max,
                    density_avg: round3(agg.density_sum / n),
                    density_max: round3(agg.density_max),
                    level: agg.level_max,
                    window_ms: (start, end),
                }));
            });
    }

    fn apply(&mut self, p: Pending, out: &mut Vec<Output>) {
        let info = &self.catalog.zones[p.zone as usize];
        let params = &self.params;
        let z = self.zones.get_or_insert_with(p.zone, || ZoneState {
            estimate: PeopleEstimate::with_baseline(info.baseline),
            people: 0,
            density_raw: 0.0,
            ewma: Ewma::new(params.half_life),
            trend: Trend::new(params.trend_window),
            level: Level::Green,
            level_since: p.ts,
            forecast_active: false,
            forecast_since: None,
            red_in_s: None,
            first_ms: p.ts,
            updated_ms: p.ts,
        });
        z.people = match p.reading {
            CrowdReading::Headcount { people } => {
                z.estimate
                    .headcount(&p.source, p.ts, people, params.source_ttl)
            }
            CrowdReading::Line { entered, exited } => z.estimate.line(entered, exited),
        };
        z.updated_ms = z.updated_ms.max(p.ts);
        z.density_raw = z.people as f64 / info.area_m2;
        let density = z.ewma.update(p.ts, z.density_raw);
        z.trend.push(p.ts, density);

        let rules = LevelRules {
            thresholds: info.thresholds,
            hysteresis: params.hysteresis,
            min_dwell_ms: params.min_dwell,
        };
        let alert = |kind: AlertKind,
                     level: Level,
                     previous: Level,
                     red_in_s: Option<u32>,
                     lead_s: Option<u32>,
                     people: u32| {
            let tag = match kind {
                AlertKind::Level => level.as_str(),
                AlertKind::Forecast => "forecast",
            };
            Output::Alert(CrowdAlert {
                alert_id: format!("{}:{}:{}", info.id, p.ts, tag),
                zone: info.id.clone(),
                kind,
                level,
                previous,
                density: round3(density),
                people,
                area_m2: info.area_m2,
                ts: format_ts(p.ts),
                thresholds: info.thresholds,
                red_in_s,
                forecast_lead_s: lead_s,
                ts_ms: p.ts,
            })
        };
        if let Some(next) = rules.next(z.level, z.level_since, density, p.ts) {
            let lead_s = match next {
                Level::Red => z
                    .forecast_since
                    .take()
                    .map(|since| ((p.ts - since).max(0) / 1000) as u32),
                // Falling back ends the climb its forecast was about.
                _ if next < z.level => {
                    z.forecast_since = None;
                    None
                }
                _ => None,
            };
            out.push(alert(
                AlertKind::Level,
                next,
                z.level,
                None,
                lead_s,
                z.people,
            ));
            z.level = next;
            z.level_since = p.ts;
            // A new level allows a new forecast (contract §2).
            z.forecast_active = false;
        }

        // Right after a zone is first seen its cameras trickle in one by one and the
        // average is still catching up: a rising line there is start-up, not crowd.
        let warm = p.ts - z.first_ms >= params.trend_window.max(2 * params.half_life);
        let etas = if warm {
            red_eta_s(&z.trend, density, info.thresholds.red, z.level)
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
                    z.forecast_since.get_or_insert(p.ts);
                    out.push(alert(
                        AlertKind::Forecast,
                        z.level,
                        z.level,
                        Some(eta),
                        None,
                        z.people,
                    ));
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

        let (people, density_raw, level) = (z.people, z.density_raw, z.level);
        self.windows.update(p.ts, &p.zone, |a| {
            a.samples += 1;
            a.people_sum += people as u64;
            a.people_max = a.people_max.max(people);
            a.density_sum += density_raw;
            a.density_max = a.density_max.max(density_raw);
            a.level_max = a.level_max.max(level);
        });
    }

    /// Live state of every zone this operator has seen.
    pub fn zone_statuses(&self) -> Vec<ZoneStatus> {
        self.zones
            .iter()
            .map(|(ix, z)| {
                let info = &self.catalog.zones[*ix as usize];
                ZoneStatus {
                    id: info.id.clone(),
                    name: info.name.clone(),
                    area_m2: info.area_m2,
                    people: z.people,
                    density: round3(z.ewma.value().unwrap_or(0.0)),
                    density_raw: round3(z.density_raw),
                    level: z.level,
                    level_since: format_ts(z.level_since),
                    thresholds: info.thresholds,
                    forecast_red_in_s: z.red_in_s,
                    observation_date_time: format_ts(z.updated_ms),
                    updated_ms: z.updated_ms,
                }
            })
            .collect()
    }
}

impl Operator for CrowdOperator {
    fn is_late(&self, ts: i64, watermark: i64) -> bool {
        CrowdOperator::is_late(self, ts, watermark)
    }

    fn accept(&mut self, input: &Input<'_, '_>, _out: &mut Emit<'_>) -> Result<(), Reject> {
        match input.event {
            Event::Crowd(e) => CrowdOperator::accept(self, input.ts, e),
            _ => Err(Reject::invalid("event type does not belong to this topic")),
        }
    }

    fn advance(&mut self, watermark: i64, out: &mut Emit<'_>) {
        CrowdOperator::advance(self, watermark, out.records)
    }

    fn stores(&mut self) -> Stores<'_> {
        vec![
            ("zone", &mut self.zones),
            ("win", &mut self.windows),
            ("pending", &mut self.pending),
        ]
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_str, DEFAULT_CONFIG};
    use crate::model::RejectReason;

    /// A zone keeps at most `max_sources_per_zone` cameras; a new one past
    /// that is refused with a reason, a known one is still heard.
    #[test]
    fn cameras_past_the_cap_are_refused() {
        let env = vec![(
            "CROWDPARK_CROWD__MAX_SOURCES_PER_ZONE".to_string(),
            "3".to_string(),
        )];
        let config = load_str(DEFAULT_CONFIG, env).unwrap();
        let catalog = Arc::new(Catalog::new(&config));
        let mut op = CrowdOperator::new(catalog.clone(), CrowdParams::from_config(&config));
        let zone = catalog.zone("lakeside-promenade").unwrap();
        let reading = |cam: &str| CrowdEvent {
            zone,
            source: cam.to_string().into(),
            reading: CrowdReading::Headcount { people: 10 },
        };
        let t0 = 1_790_834_400_000;
        for cam in ["cam-1", "cam-2", "cam-3"] {
            op.accept(t0, &reading(cam)).unwrap();
        }
        op.advance(t0, &mut Vec::new());
        let refused = op.accept(t0 + 1_000, &reading("cam-4")).unwrap_err();
        assert_eq!(refused.reason, RejectReason::OutOfRange);
        assert!(
            refused.error.contains("max_sources_per_zone"),
            "{}",
            refused.error
        );
        op.accept(t0 + 1_000, &reading("cam-2")).unwrap();
        op.advance(t0 + 1_000, &mut Vec::new());
        assert_eq!(op.zone_statuses()[0].people, 30);
    }
}
