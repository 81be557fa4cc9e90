//! The live state the HTTP API reads: written by the pipeline, read by handlers.
//!
//! The pipeline thread owns the engine; it copies zone and car park snapshots here
//! a few times a second and broadcasts alerts and availability changes as they
//! happen. Handlers only ever read, so they never contend with processing.

use crate::crowd::ZoneStatus;
use crate::metrics::Metrics;
use crate::model::Catalog;
use crate::output::{
    Availability, CrowdAlert, DistrictRecord, DistrictScope, Output, ParkingGroup, PaymentStats,
};
use crate::parking::recommend::Candidate;
use crate::parking::LotAnalytics;
use dashmap::DashMap;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::broadcast;

use super::shared::{self, SharedView};

/// One server-sent event for `/api/v1/stream`.
#[derive(Debug, Clone)]
pub struct StreamEvent {
    pub event: &'static str,
    pub data: String,
}

pub use super::shared::RECENT_ALERTS;

pub struct LiveView {
    pub catalog: Arc<Catalog>,
    pub metrics: Arc<Metrics>,
    zones: DashMap<String, ZoneStatus>,
    lots: DashMap<String, Availability>,
    /// Net parking revenue in fen per car park, from payments naming it.
    lot_revenue: DashMap<String, i64>,
    district: RwLock<Option<ParkingGroup>>,
    /// The latest district KPI records: crowd window, payments window.
    district_kpis: RwLock<(Option<DistrictRecord>, Option<DistrictRecord>)>,
    stream: broadcast::Sender<StreamEvent>,
    /// The latest alerts, newest last, at most `RECENT_ALERTS`.
    recent_alerts: RwLock<VecDeque<CrowdAlert>>,
    /// The latest closed payments window of each zone.
    sales: DashMap<String, PaymentStats>,
    ready: AtomicBool,
    healthy: AtomicBool,
    unhealthy_reason: RwLock<String>,
    /// Several instances (the Kafka runner): the API, stream and page answer
    /// from the shared view, for the whole district. `None` in one process
    /// that has it all (the demo).
    shared: Option<SharedView>,
}

impl LiveView {
    pub fn new(catalog: Arc<Catalog>, metrics: Arc<Metrics>) -> Self {
        LiveView {
            catalog,
            metrics,
            zones: DashMap::new(),
            lots: DashMap::new(),
            lot_revenue: DashMap::new(),
            district: RwLock::new(None),
            district_kpis: RwLock::new((None, None)),
            stream: broadcast::channel(4096).0,
            recent_alerts: RwLock::new(VecDeque::with_capacity(RECENT_ALERTS)),
            sales: DashMap::new(),
            ready: AtomicBool::new(false),
            healthy: AtomicBool::new(true),
            unhealthy_reason: RwLock::new(String::new()),
            shared: None,
        }
    }

    /// Answers from the shared view (`http::shared`) rather than from what
    /// this process computes itself.
    pub fn with_shared_view(mut self) -> Self {
        self.shared = Some(SharedView::default());
        self
    }

    pub fn shared(&self) -> Option<&SharedView> {
        self.shared.as_ref()
    }

    /// A record of the shared view, applied and streamed to subscribers.
    pub fn apply_shared(&self, key: &str, value: Option<Value>) {
        let Some(shared) = &self.shared else {
            return;
        };
        if let (Some(event), Some(v)) = (shared::event_of(key), &value) {
            if self.stream.receiver_count() > 0 {
                let _ = self.stream.send(StreamEvent {
                    event,
                    data: v.to_string(),
                });
            }
        }
        shared.apply(key, value);
    }

    /// The local zones, car parks' latest records, sales windows, district
    /// records and alerts, for the shared view's writer.
    pub fn local_sales(&self) -> Vec<PaymentStats> {
        self.sales.iter().map(|s| s.clone()).collect()
    }

    pub fn local_district_kpis(&self) -> (Option<DistrictRecord>, Option<DistrictRecord>) {
        crate::sync::read(&self.district_kpis).clone()
    }

    /// The newest alert of each zone seen here.
    pub fn local_latest_alerts(&self) -> Vec<CrowdAlert> {
        let recent = crate::sync::read(&self.recent_alerts);
        let mut latest: std::collections::BTreeMap<&str, &CrowdAlert> = Default::default();
        for a in recent.iter() {
            latest.insert(&a.zone, a);
        }
        latest.into_values().cloned().collect()
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn set_health(&self, healthy: bool, reason: &str) {
        self.healthy.store(healthy, Ordering::Release);
        self.metrics.runtime.set_healthy(healthy);
        *crate::sync::write(&self.unhealthy_reason) = reason.to_string();
    }

    pub fn health(&self) -> (bool, String) {
        (
            self.healthy.load(Ordering::Acquire),
            crate::sync::read(&self.unhealthy_reason).clone(),
        )
    }

    pub fn subscribe(&self) -> broadcast::Receiver<StreamEvent> {
        self.stream.subscribe()
    }

    /// Broadcasts what subscribers of the stream want: alerts and availability.
    pub fn publish(&self, outputs: &[Output]) {
        for o in outputs {
            let event = match o {
                Output::Alert(a) => {
                    let mut recent = crate::sync::write(&self.recent_alerts);
                    if recent.len() == RECENT_ALERTS {
                        recent.pop_front();
                    }
                    recent.push_back(a.clone());
                    "alert"
                }
                Output::Availability(_) | Output::Group(_) => "availability",
                Output::District(_) => "district",
                Output::Payments(p) => {
                    self.sales.insert(p.zone.clone(), p.clone());
                    "sales"
                }
                _ => continue,
            };
            if let Output::Availability(a) = o {
                self.lots.insert(a.id.clone(), a.clone());
            }
            if let Output::District(d) = o {
                let mut k = crate::sync::write(&self.district_kpis);
                match d.scope {
                    DistrictScope::Crowd => k.0 = Some(d.clone()),
                    DistrictScope::Payments => k.1 = Some(d.clone()),
                }
            }
            if let Output::Group(g) = o {
                *crate::sync::write(&self.district) = Some(g.clone());
            }
            // No subscriber is not an error; nor worth serialising for. With
            // a shared view, the stream carries what the view reads instead.
            if self.stream.receiver_count() == 0 || self.shared.is_some() {
                continue;
            }
            let _ = self.stream.send(StreamEvent {
                event,
                data: String::from_utf8(o.to_json()).expect("JSON is UTF-8"),
            });
        }
    }

    pub fn update_zone(&self, z: ZoneStatus) {
        self.metrics.crowd.set_zone(&z);
        self.zones.insert(z.id.clone(), z);
    }

    pub fn update_lot_revenue(&self, id: &str, net_fen: i64) {
        self.lot_revenue.insert(id.to_string(), net_fen);
    }

    pub fn update_lot(&self, a: Availability) {
        self.metrics.parking.set_lot(&a);
        let revenue = self.lot_revenue.get(&a.id).map(|r| *r);
        self.metrics
            .parking
            .set_lot_analytics(&a.id, &a.analytics, revenue);
        self.lots.insert(a.id.clone(), a);
    }

    pub fn update_district(&self, g: Option<ParkingGroup>) {
        *crate::sync::write(&self.district) = g;
    }

    /// A zone as JSON, `None` for an id the configuration does not know. A zone
    /// without data yet shows `null` figures, never a reassuring green.
    pub fn zone_json(&self, id: &str) -> Option<Value> {
        let ix = self.catalog.zone(id)?;
        let known = match &self.shared {
            Some(shared) => shared.get(&format!("zone/{id}")),
            None => self
                .zones
                .get(id)
                .map(|z| serde_json::to_value(&*z).expect("serialisable")),
        };
        let mut v = known.unwrap_or_else(|| {
            let info = &self.catalog.zones[ix as usize];
            json!({
                "id": info.id, "name": info.name, "area_m2": info.area_m2,
                "people": null, "density": null, "density_raw": null, "level": null,
                "level_since": null, "thresholds": info.thresholds,
                "forecast_red_in_s": null, "observation_date_time": null,
            })
        });
        let position = self.catalog.zones[ix as usize].position;
        v["lat"] = json!(position.map(|p| p.0));
        v["lon"] = json!(position.map(|p| p.1));
        Some(v)
    }

    /// The latest alerts, newest first.
    pub fn alerts_json(&self) -> Value {
        if let Some(shared) = &self.shared {
            return shared.alerts();
        }
        let recent = crate::sync::read(&self.recent_alerts);
        Value::Array(
            recent
                .iter()
                .rev()
                .map(|a| serde_json::to_value(a).expect("serialisable"))
                .collect(),
        )
    }

    /// The latest closed payments window of every configured zone (`null`
    /// before one has closed), and the district's.
    pub fn sales_json(&self) -> Value {
        let zones: Vec<Value> = self
            .catalog
            .zones
            .iter()
            .map(|z| {
                let window = match &self.shared {
                    Some(shared) => shared.get(&format!("sales/{}", z.id)),
                    None => self
                        .sales
                        .get(&z.id)
                        .map(|p| serde_json::to_value(&*p).expect("serialisable")),
                };
                json!({"zone": z.id, "name": z.name, "window": window})
            })
            .collect();
        let district = match &self.shared {
            Some(shared) => shared.get("district/payments"),
            None => {
                let k = crate::sync::read(&self.district_kpis).1.clone();
                k.map(|d| serde_json::to_value(d).expect("serialisable"))
            }
        };
        json!({"zones": zones, "district": district})
    }

    pub fn zones_json(&self) -> Value {
        Value::Array(
            self.catalog
                .zones
                .iter()
                .filter_map(|z| self.zone_json(&z.id))
                .collect(),
        )
    }

    /// A car park as its `parking.availability` record; before any data, the
    /// record says nothing is known.
    pub fn lot_json(&self, id: &str) -> Option<Value> {
        let ix = self.catalog.lot(id)?;
        let info = &self.catalog.lots[ix as usize];
        if let Some(shared) = &self.shared {
            let revenue = shared.revenue(id);
            return Some(match shared.get(&format!("lot/{id}")) {
                Some(mut v) => {
                    v["analytics"]["revenueFen"] = json!(revenue);
                    v["analytics"]["revenuePerSpace"] =
                        json!(revenue_per_space(revenue, info.spaces));
                    v
                }
                None => lot_placeholder(info, revenue),
            });
        }
        let revenue = self.lot_revenue.get(id).map(|r| *r);
        Some(match self.lots.get(id) {
            Some(a) => {
                let mut v = serde_json::to_value(&*a).expect("serialisable");
                v["analytics"] = analytics_json(&a.analytics, info.spaces, revenue);
                v
            }
            None => lot_placeholder(info, revenue),
        })
    }

    /// Every configured car park with its latest record, for recommendations.
    pub fn candidates(&self) -> Vec<Candidate> {
        self.catalog
            .lots
            .iter()
            .map(|l| Candidate {
                id: l.id.clone(),
                name: l.name.clone(),
                spaces: l.spaces,
                position: l.lat.zip(l.lon),
                latest: match &self.shared {
                    Some(shared) => shared
                        .get(&format!("lot/{}", l.id))
                        .and_then(|v| serde_json::from_value(v).ok()),
                    None => self.lots.get(&l.id).map(|a| (&*a).into()),
                },
            })
            .collect()
    }

    pub fn lots_json(&self) -> Value {
        Value::Array(
            self.catalog
                .lots
                .iter()
                .filter_map(|l| self.lot_json(&l.id))
                .collect(),
        )
    }

    /// The parking roll-up (FIWARE `ParkingGroup`) with the district KPIs of
    /// the latest closed crowd and payments windows under `crowd` and
    /// `payments` (`null` until one has closed).
    pub fn district_json(&self) -> Value {
        let (group, crowd, payments) = match &self.shared {
            Some(shared) => (
                shared.get("district/parking"),
                shared.get("district/crowd"),
                shared.get("district/payments"),
            ),
            None => {
                let g = crate::sync::read(&self.district).clone();
                let k = crate::sync::read(&self.district_kpis).clone();
                (g.map(to_json), k.0.map(to_json), k.1.map(to_json))
            }
        };
        let mut v = group.unwrap_or_else(|| {
            json!({"id": self.catalog.district_id, "type": "ParkingGroup", "availableSpotNumber": null})
        });
        v["crowd"] = crowd.unwrap_or(Value::Null);
        v["payments"] = payments.unwrap_or(Value::Null);
        v["view"] = match &self.shared {
            Some(shared) => shared.freshness(crate::time::now_ms()),
            None => json!({"shared": false}),
        };
        // For clients that show times as the district's clock shows them.
        v["utc_offset_s"] = json!(self.catalog.utc_offset.seconds);
        v
    }
}

fn to_json<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).expect("serialisable")
}

/// A car park before any record: nothing is known.
fn lot_placeholder(info: &crate::model::LotInfo, revenue: Option<i64>) -> Value {
    json!({
        "id": info.id, "type": "OffStreetParking", "name": info.name,
        "totalSpotNumber": info.spaces, "availableSpotNumber": null,
        "occupiedSpotNumber": null, "unknownSpotNumber": info.spaces,
        "occupancy": null, "status": null, "occupancyTrend": null,
        "observationDateTime": null,
        "occupancyDetectionType": info.detection_type(),
        "location": crate::output::GeoPoint::of_lot(info),
        "analytics": analytics_json(&Default::default(), info.spaces, revenue),
    })
}

fn revenue_per_space(revenue_fen: Option<i64>, spaces: u32) -> Option<String> {
    revenue_fen.map(|r| crate::model::format_fen(r / spaces.max(1) as i64))
}

/// A car park's analytics since it was first heard of (turnover,
/// average stay, parking index, revenue per space). Windows of any length come
/// from the `crowdpark_lot_*_total` counters.
pub fn analytics_json(a: &LotAnalytics, spaces: u32, revenue_fen: Option<i64>) -> Value {
    let round = |v: f64| (v * 1000.0).round() / 1000.0;
    json!({
        "observedHours": round(a.capacity_space_ms as f64 / spaces.max(1) as f64 / 3_600_000.0),
        "sessions": a.sessions,
        "turnoverPerSpacePerDay": a.turnover_per_day(spaces).map(round),
        "averageStayMinutes": a.average_stay_ms().map(|ms| round(ms as f64 / 60_000.0)),
        "measuredStays": a.stays,
        "parkingIndex": a.parking_index().map(round),
        "revenueFen": revenue_fen,
        "revenuePerSpace": revenue_per_space(revenue_fen, spaces),
    })
}

#[cfg(test)]
mod tests;
