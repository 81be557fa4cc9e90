//! Turns ordered crowd readings into alerts and density windows.

use super::alerts::{Step, ZoneState};
pub use super::params::CrowdParams;
use super::Level;
use crate::config::Thresholds;
use crate::model::{Catalog, CrowdEvent, CrowdReading, Reject, ZoneIx, ZoneKeys};
use crate::operator::{Emit, Input, Operator, StoreName};
use crate::output::{round3, DensityRecord, Output};
use crate::state::{read, Cell, Json, KeyMap, Pairs, RestoreError, Stores, ValueFormat};
use crate::time::{format_ts, WindowStore};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct DensityAgg {
    samples: u32,
    people_sum: u64,
    people_max: u32,
    density_sum: f64,
    density_max: f64,
    level_max: Level,
    /// People counting lines saw entering (state written before it had none).
    #[serde(default)]
    entered: u64,
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

/// Each zone's live state, for the HTTP API and the metrics.
pub(crate) const ZONES: StoreName<CrowdOperator, KeyMap<ZoneIx, ZoneState>> =
    StoreName::new("zone", |op| &op.zones);

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
                    district: catalog.districts[info.district as usize].id.clone(),
                    window_start: format_ts(start),
                    window_end: format_ts(end),
                    samples: agg.samples,
                    people_avg: (agg.people_sum as f64 / n * 10.0).round() / 10.0,
                    people_max: agg.people_max,
                    density_avg: round3(agg.density_sum / n),
                    density_max: round3(agg.density_max),
                    level: agg.level_max,
                    entered: agg.entered,
                    window_ms: (start, end),
                }));
            });
    }

    fn apply(&mut self, p: Pending, out: &mut Vec<Output>) {
        let info = &self.catalog.zones[p.zone as usize];
        let params = &self.params;
        let z = self
            .zones
            .get_or_insert_with(p.zone, || ZoneState::new(info, params, p.ts));
        let entered = match p.reading {
            CrowdReading::Line { entered, .. } => entered as u64,
            CrowdReading::Headcount { .. } => 0,
        };
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
        let step = Step {
            info,
            district: &self.catalog.districts[info.district as usize].id,
            params,
            ts: p.ts,
            density,
        };
        step.level(z, out);
        step.forecast(z, out);

        let (people, density_raw, level) = (z.people, z.density_raw, z.level);
        self.windows.update(p.ts, &p.zone, |a| {
            a.samples += 1;
            a.people_sum += people as u64;
            a.people_max = a.people_max.max(people);
            a.density_sum += density_raw;
            a.density_max = a.density_max.max(density_raw);
            a.level_max = a.level_max.max(level);
            a.entered += entered;
        });
    }

    /// Live state of every zone in `zones` (this operator's [`ZONES`]).
    pub(crate) fn zone_statuses(&self, zones: &KeyMap<ZoneIx, ZoneState>) -> Vec<ZoneStatus> {
        zones
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
    type Event<'a> = CrowdEvent<'a>;
    type Peers<'a> = ();

    fn is_late(&self, ts: i64, watermark: i64) -> bool {
        CrowdOperator::is_late(self, ts, watermark)
    }

    fn accept(
        &mut self,
        input: &Input<'_, CrowdEvent<'_>>,
        _out: &mut Emit<'_>,
    ) -> Result<(), Reject> {
        CrowdOperator::accept(self, input.ts, input.event)
    }

    fn advance(&mut self, watermark: i64, out: &mut Emit<'_>) {
        CrowdOperator::advance(self, watermark, out.records)
    }

    fn stores(&mut self) -> Stores<'_> {
        vec![
            (ZONES.name, &mut self.zones),
            ("win", &mut self.windows),
            ("pending", &mut self.pending),
        ]
    }
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
        assert_eq!(op.zone_statuses(ZONES.of(&op))[0].people, 30);
    }
}
