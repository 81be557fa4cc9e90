//! Output records (contract §3) and the envelope the operators hand to the sinks.
//!
//! Every record carries a deterministic id or key derived from event time and
//! entity, never from wall clock or a counter, so a consumer that sees the same record
//! twice after a restart can tell it is a repeat.

use crate::config::Thresholds;
use crate::crowd::Level;
use serde::Serialize;
use std::collections::BTreeMap;

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
    pub window_start: String,
    pub window_end: String,
    pub samples: u32,
    pub people_avg: f64,
    pub people_max: u32,
    pub density_avg: f64,
    pub density_max: f64,
    /// The highest level the zone was at during the window.
    pub level: Level,
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

/// `parking.availability`: FIWARE `OffStreetParking`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Availability {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: String,
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
    pub analytics: crate::parking::LotAnalytics,
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
    pub window_start: String,
    pub window_end: String,
    #[serde(flatten)]
    pub figures: PaymentFigures,
    pub by_category: BTreeMap<String, PaymentFigures>,
    #[serde(skip)]
    pub window_ms: (i64, i64),
    #[serde(skip)]
    pub tally: crate::payments::Tally,
}

/// `crowdpark.deadletter`: a rejected input and why.
///
/// Every echoed part of the input is cut to a bounded size, so a dead letter
/// always fits the topic whatever the input was: a 1 MB key, or a 1 MB field
/// quoted in the error, once made a dead letter the broker refused, and the
/// engine could neither publish it nor move past the message. `truncated`
/// names what was cut; `payload_bytes` is the input's whole size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub reason: crate::model::RejectReason,
    pub error: String,
    pub payload: String,
    pub payload_bytes: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub truncated: Vec<&'static str>,
}

/// Dead letters keep at most this much of the original payload.
pub const DEADLETTER_PAYLOAD_LIMIT: usize = 64 * 1024;
/// ... of the input's key (ids are short; anything longer is not one).
pub const DEADLETTER_KEY_LIMIT: usize = 1024;
/// ... of the error text (which may quote the offending field).
pub const DEADLETTER_ERROR_LIMIT: usize = 2048;

/// Where a dead-lettered input came from.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
}

impl DeadLetter {
    pub fn new(origin: Origin<'_>, reject: crate::model::Reject, payload: &[u8]) -> Self {
        let mut truncated = Vec::new();
        let mut cut = |field: &'static str, bytes: &[u8], limit: usize| {
            let (text, was_cut) = bounded_text(bytes, limit);
            if was_cut {
                truncated.push(field);
            }
            text
        };
        let key = origin.key.map(|k| cut("key", k, DEADLETTER_KEY_LIMIT));
        let error = cut("error", reject.error.as_bytes(), DEADLETTER_ERROR_LIMIT);
        let payload_text = cut("payload", payload, DEADLETTER_PAYLOAD_LIMIT);
        DeadLetter {
            topic: origin.topic.to_string(),
            partition: origin.partition,
            offset: origin.offset,
            key,
            reason: reject.reason,
            error,
            payload: payload_text,
            payload_bytes: payload.len(),
            truncated,
        }
    }
}

/// `bytes` as text (invalid UTF-8 replaced), cut to at most `limit` bytes on a
/// character boundary, with an ellipsis when cut; and whether it was cut.
fn bounded_text(bytes: &[u8], limit: usize) -> (String, bool) {
    let mut text = String::from_utf8_lossy(&bytes[..bytes.len().min(limit)]).into_owned();
    let cut = bytes.len() > limit || text.len() > limit;
    if cut {
        let mut end = limit.saturating_sub('…'.len_utf8()).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    (text, cut)
}

/// An accepted payment on its way to the partition that owns its zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    pub key: String,
    /// Set for watermark heartbeats, which go to every partition; payments are
    /// placed by their key.
    pub partition: Option<i32>,
    pub record: ForwardRecord,
}

impl Forwarded {
    /// The repartition partition it goes to: its own for a heartbeat, else the
    /// one Kafka's murmur2 partitioner gives its key, so in-process routing and
    /// batched records land where a record keyed by zone would.
    pub fn target_partition(&self, partitions: i32) -> i32 {
        self.partition
            .unwrap_or_else(|| crate::partitioner::partition_for(self.key.as_bytes(), partitions))
    }

    /// The record as the repartition topic carries it.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.record).expect("forwarded records serialise")
    }
}

/// The repartition topic's record: a payment in configured ids and fen, or (no
/// `txn_id`) a watermark heartbeat. Serialised only when it goes through Kafka;
/// in process the typed payment is handed over as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForwardRecord {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txn_id: Option<String>,
    pub ts: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount_fen: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lot: Option<String>,
    pub upstream: i32,
    pub wm: i64,
    #[serde(skip)]
    pub payment: Option<crate::model::Payment>,
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
/// the district id. Each instance sums the partitions it owns (as the parking
/// roll-up does); with one instance that is the whole district.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Reject;

    fn letter(key: &[u8], error: String, payload: &[u8]) -> DeadLetter {
        let origin = Origin {
            topic: "crowd.counts",
            partition: 1,
            offset: 7,
            key: Some(key),
        };
        DeadLetter::new(origin, Reject::invalid(error), payload)
    }

    #[test]
    fn a_dead_letter_is_bounded_whatever_the_input() {
        let huge = "é".repeat(600_000);
        let d = letter(
            huge.as_bytes(),
            format!("field `ts`: {huge}"),
            huge.as_bytes(),
        );
        let json = Output::DeadLetter(d.clone()).to_json();
        assert!(
            json.len() < 2 * DEADLETTER_PAYLOAD_LIMIT,
            "{} bytes",
            json.len()
        );
        assert!(d.key.as_ref().unwrap().len() <= DEADLETTER_KEY_LIMIT);
        assert!(d.error.len() <= DEADLETTER_ERROR_LIMIT);
        assert!(d.error.starts_with("field `ts`: é") && d.error.ends_with('…'));
        assert_eq!(d.truncated, ["key", "error", "payload"]);
        assert_eq!(d.payload_bytes, huge.len());
    }

    #[test]
    fn a_small_dead_letter_is_kept_whole_and_says_nothing_was_cut() {
        let d = letter(
            b"east-pier-queue",
            "field `people` must not be negative".into(),
            b"{}",
        );
        assert_eq!(d.key.as_deref(), Some("east-pier-queue"));
        assert_eq!(d.payload, "{}");
        let json = String::from_utf8(Output::DeadLetter(d).to_json()).unwrap();
        assert!(!json.contains("truncated"), "{json}");
        assert!(json.contains(r#""payload_bytes":2"#), "{json}");
    }
}
