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
use crate::parking::LotAnalytics;
use dashmap::DashMap;
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
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

/// A district's latest closed crowd and payments windows.
type Kpis = (Option<DistrictRecord>, Option<DistrictRecord>);

pub struct LiveView {
    pub catalog: Arc<Catalog>,
    pub metrics: Arc<Metrics>,
    zones: DashMap<String, ZoneStatus>,
    lots: DashMap<String, Availability>,
    /// Net parking revenue in fen per car park, from payments naming it.
    lot_revenue: DashMap<String, i64>,
    /// Each district's car park roll-up, by district id.
    districts: RwLock<BTreeMap<String, ParkingGroup>>,
    /// Each district's latest KPI records: crowd window, payments window.
    district_kpis: RwLock<BTreeMap<String, Kpis>>,
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
            districts: RwLock::new(BTreeMap::new()),
            district_kpis: RwLock::new(BTreeMap::new()),
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

    /// Each district's latest crowd and payments records published here.
    pub fn local_district_kpis(&self) -> Vec<DistrictRecord> {
        let kpis = crate::sync::read(&self.district_kpis);
        let each = kpis.values().flat_map(|(c, p)| [c, p]);
        each.filter_map(|r| r.clone()).collect()
    }

    /// The newest alert of each zone seen here.
    pub fn local_latest_alerts(&self) -> Vec<CrowdAlert> {
        let recent = crate::sync::read(&self.recent_alerts);
        let mut latest: BTreeMap<&str, &CrowdAlert> = Default::default();
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
                let mut kpis = crate::sync::write(&self.district_kpis);
                let k = kpis.entry(d.district.clone()).or_default();
                match d.scope {
                    DistrictScope::Crowd => k.0 = Some(d.clone()),
                    DistrictScope::Payments => k.1 = Some(d.clone()),
                }
            }
            if let Output::Group(g) = o {
                let mut groups = crate::sync::write(&self.districts);
                groups.insert(g.id.clone(), g.clone());
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

    /// The districts' car park roll-ups as the engines hold them now.
    pub fn update_districts(&self, groups: Vec<ParkingGroup>) {
        let by_id = groups.into_iter().map(|g| (g.id.clone(), g)).collect();
        *crate::sync::write(&self.districts) = by_id;
    }
}

use queries::revenue_per_space;

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

mod queries;
#[cfg(test)]
mod tests;
