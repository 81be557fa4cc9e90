//! What the HTTP API answers: the view's figures as JSON, for the whole
//! configuration or one district.

use super::{analytics_json, LiveView};
use crate::model::{DistrictInfo, DistrictIx, LotInfo};
use crate::parking::recommend::Candidate;
use serde_json::{json, Value};

impl LiveView {
    /// A district by id, or the first configured when `id` is `None`;
    /// `None` for an id not configured.
    pub fn district_named(&self, id: Option<&str>) -> Option<DistrictIx> {
        match id {
            Some(id) => self.catalog.district(id),
            None => Some(0),
        }
    }

    /// The configured districts, for the page's selector.
    pub fn districts_json(&self) -> Value {
        let c = &self.catalog;
        let count = |d: usize| {
            let zones = c.zones.iter().filter(|z| z.district as usize == d);
            let lots = c.lots.iter().filter(|l| l.district as usize == d);
            (zones.count(), lots.count())
        };
        let list = c.districts.iter().enumerate().map(|(i, d)| {
            let (zones, lots) = count(i);
            json!({"id": d.id, "name": d.name, "zones": zones, "lots": lots})
        });
        Value::Array(list.collect())
    }

    /// A zone as JSON, `None` for an id the configuration does not know. A zone
    /// without data yet shows `null` figures, never a reassuring green.
    pub fn zone_json(&self, id: &str) -> Option<Value> {
        let ix = self.catalog.zone(id)?;
        let known = match &self.shared {
            Some(shared) => shared.get(&format!("zone/{id}")),
            None => self.zones.get(id).map(|z| to_json(&*z)),
        };
        let info = &self.catalog.zones[ix as usize];
        let mut v = known.unwrap_or_else(|| {
            json!({
                "id": info.id, "name": info.name, "area_m2": info.area_m2,
                "people": null, "density": null, "density_raw": null, "level": null,
                "level_since": null, "thresholds": info.thresholds,
                "forecast_red_in_s": null, "observation_date_time": null,
            })
        });
        v["district"] = json!(self.catalog.zone_district(ix).id);
        v["lat"] = json!(info.position.map(|p| p.0));
        v["lon"] = json!(info.position.map(|p| p.1));
        Some(v)
    }

    /// Every zone, or those of one district.
    pub fn zones_json(&self, district: Option<DistrictIx>) -> Value {
        let zones = self.catalog.zones.iter();
        let zones = zones.filter(|z| district.is_none_or(|d| z.district == d));
        Value::Array(zones.filter_map(|z| self.zone_json(&z.id)).collect())
    }

    /// The latest alerts, newest first: all, or one district's.
    pub fn alerts_json(&self, district: Option<DistrictIx>) -> Value {
        let all: Vec<Value> = match &self.shared {
            Some(shared) => shared.alerts(),
            None => {
                let recent = crate::sync::read(&self.recent_alerts);
                recent.iter().rev().map(to_json).collect()
            }
        };
        let Some(d) = district else {
            return Value::Array(all);
        };
        let id = &self.catalog.districts[d as usize].id;
        Value::Array(all.into_iter().filter(|a| a["district"] == *id).collect())
    }

    /// The latest closed payments window of each of a district's zones
    /// (`null` before one has closed), and the district's.
    pub fn sales_json(&self, district: DistrictIx) -> Value {
        let info = &self.catalog.districts[district as usize];
        let zones = self.catalog.zones.iter().filter(|z| z.district == district);
        let zones: Vec<Value> = zones
            .map(|z| {
                let window = match &self.shared {
                    Some(shared) => shared.get(&format!("sales/{}", z.id)),
                    None => self.sales.get(&z.id).map(|p| to_json(&*p)),
                };
                json!({"zone": z.id, "name": z.name, "window": window})
            })
            .collect();
        let (_, payments) = self.kpis(info);
        json!({"zones": zones, "district": payments.unwrap_or(Value::Null)})
    }

    /// A district's latest crowd and payments records.
    fn kpis(&self, d: &DistrictInfo) -> (Option<Value>, Option<Value>) {
        match &self.shared {
            Some(shared) => (
                shared.get(&format!("district/{}/crowd", d.id)),
                shared.get(&format!("district/{}/payments", d.id)),
            ),
            None => {
                let kpis = crate::sync::read(&self.district_kpis);
                match kpis.get(&d.id) {
                    Some((c, p)) => (c.as_ref().map(to_json), p.as_ref().map(to_json)),
                    None => (None, None),
                }
            }
        }
    }

    /// A car park as its `parking.availability` record; before any data, the
    /// record says nothing is known.
    pub fn lot_json(&self, id: &str) -> Option<Value> {
        let ix = self.catalog.lot(id)?;
        let info = &self.catalog.lots[ix as usize];
        let district = &self.catalog.lot_district(ix).id;
        if let Some(shared) = &self.shared {
            let revenue = shared.revenue(id);
            return Some(match shared.get(&format!("lot/{id}")) {
                Some(mut v) => {
                    v["analytics"]["revenueFen"] = json!(revenue);
                    v["analytics"]["revenuePerSpace"] =
                        json!(revenue_per_space(revenue, info.spaces));
                    v
                }
                None => lot_placeholder(info, district, revenue),
            });
        }
        let revenue = self.lot_revenue.get(id).map(|r| *r);
        Some(match self.lots.get(id) {
            Some(a) => {
                let mut v = to_json(&*a);
                v["analytics"] = analytics_json(&a.analytics, info.spaces, revenue);
                v
            }
            None => lot_placeholder(info, district, revenue),
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

    /// Every car park, or those of one district.
    pub fn lots_json(&self, district: Option<DistrictIx>) -> Value {
        let lots = self.catalog.lots.iter();
        let lots = lots.filter(|l| district.is_none_or(|d| l.district == d));
        Value::Array(lots.filter_map(|l| self.lot_json(&l.id)).collect())
    }

    /// A district: its id, name and clock; its parking roll-up under
    /// `parking` (the FIWARE `ParkingGroup` record as published, whose fields
    /// are camelCase by that standard); its KPIs of the latest closed crowd
    /// and payments windows under `crowd` and `payments` (`null` until one
    /// has closed); and, under `view`, how fresh the shared view is. Every
    /// field crowdpark itself names is snake_case.
    pub fn district_json(&self, district: DistrictIx) -> Value {
        let info = &self.catalog.districts[district as usize];
        let group = match &self.shared {
            Some(shared) => shared.get(&format!("district/{}/parking", info.id)),
            None => crate::sync::read(&self.districts)
                .get(&info.id)
                .map(to_json),
        };
        let (crowd, payments) = self.kpis(info);
        let view = match &self.shared {
            Some(shared) => shared.freshness(crate::time::now_ms()),
            None => json!({"shared": false}),
        };
        json!({
            "id": info.id,
            "name": info.name,
            // For clients that show times as the district's clock shows them.
            "utc_offset_s": info.utc_offset.seconds,
            "parking": group,
            "crowd": crowd,
            "payments": payments,
            "view": view,
        })
    }
}

fn to_json<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).expect("serialisable")
}

/// A car park before any record: nothing is known.
fn lot_placeholder(info: &LotInfo, district: &str, revenue: Option<i64>) -> Value {
    json!({
        "id": info.id, "type": "OffStreetParking", "name": info.name,
        "district": district,
        "totalSpotNumber": info.spaces, "availableSpotNumber": null,
        "occupiedSpotNumber": null, "unknownSpotNumber": info.spaces,
        "occupancy": null, "status": null, "occupancyTrend": null,
        "observationDateTime": null,
        "occupancyDetectionType": info.detection_type(),
        "location": crate::output::GeoPoint::of_lot(info),
        "analytics": analytics_json(&Default::default(), info.spaces, revenue),
    })
}

pub(super) fn revenue_per_space(revenue_fen: Option<i64>, spaces: u32) -> Option<String> {
    revenue_fen.map(|r| crate::model::format_fen(r / spaces.max(1) as i64))
}
