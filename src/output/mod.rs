//! Output records (contract §3) and the envelope the operators hand to the sinks.
//!
//! Every record carries a deterministic id or key derived from event time and
//! entity, never from wall clock or a counter, so a consumer that sees the same record
//! twice after a restart can tell it is a repeat.

use crate::config::Thresholds;
use serde::Serialize;
use std::collections::BTreeMap;

mod analytics;
mod deadletter;
mod forward;
mod level;
mod tally;

pub use analytics::LotAnalytics;
pub use deadletter::{
    DeadLetter, Origin, DEADLETTER_ERROR_LIMIT, DEADLETTER_KEY_LIMIT, DEADLETTER_PAYLOAD_LIMIT,
};
pub use forward::{ForwardRecord, Forwarded};
pub use level::Level;
pub use tally::Tally;

/// The output topics, by role; the configuration gives their names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OutputTopic {
    CrowdAlerts,
    CrowdDensity,
    ParkingAvailability,
    PaymentsStats,
    DeadLetter,
    /// Internal: payments re-keyed by zone.
    PaymentsByZone,
}

impl OutputTopic {
    pub const ALL: [OutputTopic; 5] = [
        OutputTopic::CrowdAlerts,
        OutputTopic::CrowdDensity,
        OutputTopic::ParkingAvailability,
        OutputTopic::PaymentsStats,
        OutputTopic::DeadLetter,
    ];

    /// The topic's configured name.
    pub fn name_in(self, t: &crate::config::TopicSettings) -> &str {
        match self {
            OutputTopic::CrowdAlerts => &t.crowd_alerts,
            OutputTopic::CrowdDensity => &t.crowd_density,
            OutputTopic::ParkingAvailability => &t.parking_availability,
            OutputTopic::PaymentsStats => &t.payments_stats,
            OutputTopic::DeadLetter => &t.deadletter,
            OutputTopic::PaymentsByZone => &t.payments_by_zone,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    Level,
    Forecast,
}

/// `crowd.alerts`: a level change, or an early warning that red is near.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CrowdAlert {
    pub alert_id: String,
    pub zone: String,
    pub district: String,
    pub kind: AlertKind,
    /// The zone's level when the alert was raised (for a forecast: still below red).
    pub level: Level,
    pub previous: Level,
    pub density: f64,
    pub people: u32,
    pub area_m2: f64,
    pub ts: String,
    pub thresholds: Thresholds,
    /// Forecasts only: seconds until the trend reaches red.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub red_in_s: Option<u32>,
    /// Red level alerts only: seconds since the first forecast alert of this
    /// climb, the warning's lead time; absent when red came unforecast.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast_lead_s: Option<u32>,
    #[serde(skip)]
    pub ts_ms: i64,
}

/// `crowd.density`: one zone, one closed window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DensityRecord {
    pub zone: String,
    pub district: String,
    pub window_start: String,
    pub window_end: String,
    pub samples: u32,
    pub people_avg: f64,
    pub people_max: u32,
    pub density_avg: f64,
    pub density_max: f64,
    /// The highest level the zone was at during the window.
    pub level: Level,
    /// People its counting lines saw entering, for the district's visitors.
    #[serde(skip)]
    pub entered: u64,
    #[serde(skip)]
    pub window_ms: (i64, i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ParkingStatus {
    SpacesAvailable,
    AlmostFull,
    Full,
    Closed,
    /// Most sensors are silent (start-up, outage): free spaces cannot be told.
    Unknown,
}

impl ParkingStatus {
    /// Open and counted: the free-space figure means something.
    pub fn is_known(self) -> bool {
        !matches!(self, ParkingStatus::Closed | ParkingStatus::Unknown)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum OccupancyTrend {
    Increasing,
    Decreasing,
    Stable,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GeoPoint {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// GeoJSON order: longitude, latitude.
    pub coordinates: [f64; 2],
}

impl GeoPoint {
    /// A car park's position as a GeoJSON point, where it is configured.
    pub fn of_lot(info: &crate::model::LotInfo) -> Option<GeoPoint> {
        Some(GeoPoint {
            kind: "Point",
            coordinates: [info.lon?, info.lat?],
        })
    }
}

/// `parking.availability`: FIWARE `OffStreetParking`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Availability {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: String,
    /// The district's id (also the id of its `ParkingGroup`).
    pub district: String,
    pub total_spot_number: u32,
    pub available_spot_number: u32,
    pub occupied_spot_number: u32,
    /// Spaces whose sensor has been silent longer than `slot_ttl` or never reported:
    /// not counted as free (a dead sensor must not send drivers to a full car park).
    pub unknown_spot_number: u32,
    pub occupancy: f64,
    pub status: ParkingStatus,
    pub occupancy_trend: OccupancyTrend,
    pub occupancy_detection_type: &'static str,
    pub observation_date_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<GeoPoint>,
    /// Free spaces expected 15, 30 and 60 minutes after the observation (see
    /// `parking::forecast`); empty while the car park is closed or unknown.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub forecast: Vec<ForecastPoint>,
    /// Not in the FIWARE record: the HTTP API and the metrics show it.
    #[serde(skip)]
    pub analytics: LotAnalytics,
    #[serde(skip)]
    pub observed_ms: i64,
    /// Event time at which the record was published (the partition's clock).
    #[serde(skip)]
    pub emitted_ms: i64,
}

/// One point of a car park's free-space forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForecastPoint {
    pub minutes: u32,
    pub available_spot_number: u32,
}

/// `parking.availability` under the district's key: FIWARE `ParkingGroup`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParkingGroup {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: String,
    pub total_spot_number: u32,
    pub available_spot_number: u32,
    pub occupied_spot_number: u32,
    pub occupancy: f64,
    pub ref_parking_site: Vec<String>,
    pub observation_date_time: String,
    #[serde(skip)]
    pub observed_ms: i64,
}

/// Payment figures of one window, for a zone or one category in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentFigures {
    /// Sales plus refunds.
    pub transactions: u32,
    pub sales: u32,
    pub refunds: u32,
    /// Net amount (sales minus refunds), decimal yuan.
    pub amount: String,
    pub refund_amount: String,
    pub currency: String,
    /// Gross sales over the number of sales; `null` without sales.
    pub avg_ticket: Option<String>,
    /// Net amount per m² of selling area; `null` where no area is configured.
    pub sales_per_m2: Option<String>,
}

/// `payments.stats`: one zone, one closed window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentStats {
    pub zone: String,
    pub district: String,
    pub window_start: String,
    pub window_end: String,
    #[serde(flatten)]
    pub figures: PaymentFigures,
    pub by_category: BTreeMap<String, PaymentFigures>,
    #[serde(skip)]
    pub window_ms: (i64, i64),
    #[serde(skip)]
    pub tally: Tally,
}

/// Something for a sink to publish.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Alert(CrowdAlert),
    Density(DensityRecord),
    Availability(Availability),
    Group(ParkingGroup),
    Payments(PaymentStats),
    DeadLetter(DeadLetter),
    /// District KPIs for a closed window, on `crowd.density` or `payments.stats`.
    District(DistrictRecord),
}

/// Which window a district record sums up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DistrictScope {
    Crowd,
    Payments,
}

/// The district roll-up of one closed window (issue 7): on `crowd.density`
/// with the crowd's figures, on `payments.stats` with the sales', both keyed by
/// the district id. One task sums the whole district from what every
/// partition sends it (`district`), wherever the partitions are processed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DistrictRecord {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub district: String,
    pub scope: DistrictScope,
    pub window_start: String,
    pub window_end: String,
    /// Crowd: mean people summed over zones, and zones by their highest level.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub people: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zones_by_level: Option<BTreeMap<&'static str, u32>>,
    /// Free spaces across the district's car parks when the window closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_spot_number: Option<u32>,
    /// Payments: district sales, per m² of selling area, and per visitor
    /// counted entering through counting lines in the same window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transactions: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sales_per_m2: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transactions_per_visitor: Option<f64>,
    #[serde(skip)]
    pub window_ms: (i64, i64),
}

impl Output {
    pub fn topic(&self) -> OutputTopic {
        match self {
            Output::Alert(_) => OutputTopic::CrowdAlerts,
            Output::Density(_) => OutputTopic::CrowdDensity,
            Output::Availability(_) | Output::Group(_) => OutputTopic::ParkingAvailability,
            Output::Payments(_) => OutputTopic::PaymentsStats,
            Output::DeadLetter(_) => OutputTopic::DeadLetter,
            Output::District(d) => match d.scope {
                DistrictScope::Crowd => OutputTopic::CrowdDensity,
                DistrictScope::Payments => OutputTopic::PaymentsStats,
            },
        }
    }

    /// The message key: the entity the record is about.
    pub fn key(&self) -> &str {
        match self {
            Output::Alert(a) => &a.zone,
            Output::Density(d) => &d.zone,
            Output::Availability(a) => &a.id,
            Output::Group(g) => &g.id,
            Output::Payments(p) => &p.zone,
            Output::DeadLetter(d) => d.key.as_deref().unwrap_or(&d.topic),
            Output::District(d) => &d.district,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut json = Vec::new();
        self.write_json(&mut json);
        json
    }

    /// Appends the record's JSON to `buf`, so a sink can reuse one buffer.
    pub fn write_json(&self, buf: &mut Vec<u8>) {
        let w = &mut *buf;
        let r = match self {
            Output::Alert(a) => serde_json::to_writer(w, a),
            Output::Density(d) => serde_json::to_writer(w, d),
            Output::Availability(a) => serde_json::to_writer(w, a),
            Output::Group(g) => serde_json::to_writer(w, g),
            Output::Payments(p) => serde_json::to_writer(w, p),
            Output::DeadLetter(d) => serde_json::to_writer(w, d),
            Output::District(d) => serde_json::to_writer(w, d),
        };
        r.expect("output records contain only serialisable fields")
    }
}

/// Rounds for publication: densities and ratios do not need 17 digits.
pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
