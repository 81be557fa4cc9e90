//! Configuration: the district (zones, car parks, merchants) and the engine's knobs.
//!
//! A TOML file is read, then every `CROWDPARK_SECTION__KEY` environment variable is
//! laid over it (so a container can change one threshold without a new file), then
//! the result is deserialised with the path of any bad key kept for the error, and
//! finally checked for the rules serde cannot express (positive areas, yellow below
//! red, unique ids, a dedup horizon longer than lateness...). Every error names the
//! key it is about, because the person reading it is editing that file.

mod duration;
mod load;
pub mod secrets;
mod validate;
pub use validate::{area_to_centi, MAX_CATEGORIES, MAX_DISTRICTS, MAX_LOTS, MAX_ZONES};

pub use duration::{parse_duration, Millis};
pub use load::{load_file, load_str, ConfigError};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The embedded default: the model district, used by `crowdpark demo` and as the
/// fallback when `run` gets no `--config`.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/crowdpark.toml");

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The district, when there is one: `[district]`. Several are
    /// `[[districts]]`; read both through [`Config::districts`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub district: Option<DistrictConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub districts: Vec<DistrictConfig>,
    #[serde(default)]
    pub engine: EngineSettings,
    #[serde(default)]
    pub crowd: CrowdSettings,
    #[serde(default)]
    pub parking: ParkingSettings,
    #[serde(default)]
    pub payments: PaymentSettings,
    #[serde(default)]
    pub http: HttpSettings,
    #[serde(default)]
    pub topics: TopicSettings,
    #[serde(default)]
    pub kafka: KafkaSettings,
    #[serde(default)]
    pub zones: Vec<Zone>,
    #[serde(default)]
    pub lots: Vec<Lot>,
    #[serde(default)]
    pub merchants: Vec<Merchant>,
}

/// A district as configured (`[district]` or one of `[[districts]]`); the
/// engine stage that sums a district is the `district` module.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DistrictConfig {
    /// Key of the district's roll-up records (`ParkingGroup`, district KPIs),
    /// and what its zones and car parks name in their `district`.
    pub id: String,
    pub name: String,
    /// The district's UTC offset, used for opening hours (`"+08:00"`).
    #[serde(default = "default_utc_offset")]
    pub utc_offset: String,
    /// Public holidays (`YYYY-MM-DD`), for the simulator and forecasts.
    #[serde(default)]
    pub holidays: Vec<String>,
}

fn default_utc_offset() -> String {
    "+08:00".into()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSettings {
    /// Watermark = highest event time seen on a partition minus this.
    pub max_out_of_orderness: Millis,
    /// A partition silent this long advances its watermark by wall clock.
    pub idle_timeout: Millis,
    /// A window stays open this long after its end for late events.
    pub allowed_lateness: Millis,
    /// How long an `event_id`/`txn_id` is remembered. Must exceed out-of-orderness
    /// plus lateness, so that anything older than the horizon is late anyway.
    pub dedup_horizon: Millis,
    /// Upper bound on remembered ids per partition (memory guard).
    pub dedup_max_ids: usize,
    /// Messages larger than this are dead-lettered without being parsed.
    pub max_message_bytes: usize,
    /// Events further than this ahead of both the wall clock and the partition's
    /// newest event are out of range: one bad clock must not end everyone's windows.
    pub max_future_skew: Millis,
    /// Threads processing partitions in `run` (each partition on one at a
    /// time); absent: one per core. More than the owned partitions idle.
    pub workers: Option<usize>,
    /// Where `run` keeps local snapshots of the state changelog (under a
    /// directory named after the group id); absent: the system's temporary
    /// directory.
    pub state_dir: Option<String>,
    /// How often the snapshots catch up with the changelog; `0s`: no
    /// snapshots, every restore reads the changelog whole.
    pub snapshot_interval: Millis,
    /// A snapshot older than this is not used: it must stay under the
    /// changelog's `delete.retention.ms` (24 h by default), or a deletion
    /// since could be missed.
    pub snapshot_max_age: Millis,
}

/// Most worker threads `engine.workers` takes.
pub const MAX_WORKERS: usize = 256;

impl EngineSettings {
    /// `workers`, or one per core.
    pub fn worker_count(&self) -> usize {
        self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            max_out_of_orderness: Millis::from_secs(5),
            idle_timeout: Millis::from_secs(30),
            allowed_lateness: Millis::from_secs(10),
            dedup_horizon: Millis::from_secs(600),
            dedup_max_ids: 1_000_000,
            max_message_bytes: 1 << 20,
            max_future_skew: Millis::from_secs(3600),
            workers: None,
            state_dir: None,
            snapshot_interval: Millis::from_secs(60),
            snapshot_max_age: Millis::from_secs(12 * 3600),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// People per m² from which the level is yellow.
    pub yellow: f64,
    /// People per m² from which the level is red.
    pub red: f64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrowdSettings {
    pub source_ttl: Millis,
    /// Headcount sources (cameras) a zone keeps at most; a reading from a new
    /// one past this is refused (`out_of_range`), so memory stays bounded
    /// whatever ids a feed invents.
    pub max_sources_per_zone: usize,
    pub ewma_half_life: Millis,
    /// A level is left only below this fraction of its threshold.
    pub hysteresis: f64,
    pub min_dwell: Millis,
    pub forecast_horizon: Millis,
    /// Span of smoothed density the trend line is fitted over.
    pub trend_window: Millis,
    /// `crowd.density` window size, and its advance (equal to size: tumbling).
    pub window: Millis,
    pub window_advance: Option<Millis>,
    pub thresholds: Thresholds,
}

impl Default for CrowdSettings {
    fn default() -> Self {
        CrowdSettings {
            source_ttl: Millis::from_secs(120),
            max_sources_per_zone: 10_000,
            ewma_half_life: Millis::from_secs(60),
            hysteresis: 0.85,
            min_dwell: Millis::from_secs(120),
            forecast_horizon: Millis::from_secs(600),
            trend_window: Millis::from_secs(180),
            window: Millis::from_secs(60),
            window_advance: None,
            thresholds: Thresholds {
                yellow: 2.0,
                red: 3.5,
            },
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ParkingSettings {
    pub slot_ttl: Millis,
    /// Occupancy from which a car park is `almostFull`.
    pub almost_full: f64,
    pub min_emit_interval: Millis,
    pub heartbeat: Millis,
}

impl Default for ParkingSettings {
    fn default() -> Self {
        ParkingSettings {
            slot_ttl: Millis::from_secs(1800),
            almost_full: 0.85,
            min_emit_interval: Millis::from_secs(1),
            heartbeat: Millis::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentSettings {
    pub window: Millis,
    pub window_advance: Option<Millis>,
    pub currency: String,
    /// The categories metrics and records may carry; anything else is rejected so a
    /// typo in a message cannot mint a new metric series.
    pub categories: Vec<String>,
}

impl Default for PaymentSettings {
    fn default() -> Self {
        PaymentSettings {
            window: Millis::from_secs(300),
            window_advance: None,
            currency: "CNY".into(),
            categories: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    pub listen: String,
    /// Connections open at once. Past it, the oldest connection that has not
    /// yet sent a whole request is closed to make room; if every one has, the
    /// new connection is refused.
    pub max_connections: usize,
    /// Time a client has to send a request's headers, and to start the next
    /// request on a kept-alive connection; then the connection is closed.
    pub header_timeout: Millis,
    /// TLS for the HTTP API (PEM files), as Prometheus exporters'
    /// `--web.config.file` has it; both or neither.
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
    /// When set, every request needs HTTP basic authentication by one of
    /// these users, each with a bcrypt hash of its password.
    pub basic_auth_users: BTreeMap<String, String>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            listen: "127.0.0.1:9898".into(),
            max_connections: 1024,
            header_timeout: Millis::from_secs(10),
            tls_cert_file: None,
            tls_key_file: None,
            basic_auth_users: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicSettings {
    pub crowd_counts: String,
    pub parking_events: String,
    pub payments: String,
    pub crowd_alerts: String,
    pub crowd_density: String,
    pub parking_availability: String,
    pub payments_stats: String,
    pub deadletter: String,
    /// Compacted changelog of checkpointed operator state.
    pub state: String,
    /// Internal repartition topic: accepted payments keyed by zone.
    pub payments_by_zone: String,
    /// Internal repartition topic: what each partition tells its district
    /// (closed zone windows, car park figures, watermarks), keyed by district.
    pub partials_by_district: String,
    /// Internal, compacted: every instance's latest figures (zones, car
    /// parks, district, sales, alerts), read whole by every instance so each
    /// answers for the whole district.
    pub view: String,
    /// Partitions of each input topic (and of the demo's in-process source).
    pub input_partitions: i32,
    pub output_partitions: i32,
    /// Copies of every topic `topics create` makes (3 in production).
    pub replication_factor: i32,
    /// The topics' `min.insync.replicas`: with `acks=all`, a write succeeds
    /// only once this many copies have it (2 in production, with 3 copies).
    pub min_insync_replicas: i32,
}

impl Default for TopicSettings {
    fn default() -> Self {
        TopicSettings {
            crowd_counts: "crowd.counts".into(),
            parking_events: "parking.events".into(),
            payments: "payments".into(),
            crowd_alerts: "crowd.alerts".into(),
            crowd_density: "crowd.density".into(),
            parking_availability: "parking.availability".into(),
            payments_stats: "payments.stats".into(),
            deadletter: "crowdpark.deadletter".into(),
            state: "crowdpark.state".into(),
            payments_by_zone: "crowdpark.payments-by-zone".into(),
            partials_by_district: "crowdpark.partials-by-district".into(),
            view: "crowdpark.view".into(),
            input_partitions: 3,
            output_partitions: 3,
            replication_factor: 1,
            min_insync_replicas: 1,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSettings {
    pub brokers: String,
    pub group_id: String,
    /// librdkafka properties passed through unchanged (SASL, TLS, tuning).
    pub client: BTreeMap<String, String>,
    /// How often processed input is checkpointed and its offsets committed.
    pub commit_interval: Millis,
    /// What outputs promise (state and offsets are exactly-once in both modes).
    pub processing_guarantee: ProcessingGuarantee,
    /// Names this instance's transactional producer. It must stay the same when
    /// the instance restarts (so the restart fences its crashed predecessor and
    /// aborts its open transaction at once) and differ between instances that run
    /// at the same time. Empty: `<group_id>-<hostname>`.
    pub instance_id: String,
    /// `/healthz` reports unhealthy once no broker has been reachable this long.
    pub unhealthy_after: Millis,
    /// Memory budget for records waiting for the broker (per producer); when it is
    /// full, processing waits instead of growing or dropping.
    pub max_buffered_mb: u32,
}

/// contract §4 `processing.guarantee`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProcessingGuarantee {
    /// Outputs are sent at once; after a crash the records since the last commit
    /// are sent again (same ids, same content).
    AtLeastOnce,
    /// Outputs, changelog and offsets are committed in one Kafka transaction per
    /// `commit_interval`; `read_committed` consumers never see a duplicate.
    ExactlyOnce,
}

impl KafkaSettings {
    /// `max_buffered_mb` in the unit librdkafka's queue limits take.
    pub fn buffer_kbytes(&self) -> u64 {
        u64::from(self.max_buffered_mb) * 1024
    }

    /// `instance_id`, or the default built from the group and the host name.
    pub fn transactional_id(&self) -> String {
        if !self.instance_id.trim().is_empty() {
            return self.instance_id.trim().to_string();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        format!("{}-{host}", self.group_id)
    }
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            brokers: "127.0.0.1:9092".into(),
            group_id: "crowdpark".into(),
            client: BTreeMap::new(),
            commit_interval: Millis::from_secs(1),
            processing_guarantee: ProcessingGuarantee::AtLeastOnce,
            instance_id: String::new(),
            unhealthy_after: Millis::from_secs(30),
            max_buffered_mb: 64,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ZoneKind {
    /// A moving crowd: the contract's default thresholds apply.
    Walkway,
    /// People standing in a queue tolerate less before it turns dangerous.
    Queue,
    /// A plaza where people stand and mill about.
    Plaza,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    pub id: String,
    pub name: String,
    /// Net walkable area in m².
    pub area_m2: f64,
    #[serde(default = "default_zone_kind")]
    pub kind: ZoneKind,
    /// Overrides `crowd.thresholds` for this zone.
    pub thresholds: Option<Thresholds>,
    /// Starting occupancy for zones counted only by gates.
    #[serde(default)]
    pub baseline: u32,
    /// The district's id; needed only when there are several.
    pub district: Option<String>,
    /// Where the zone is (its centre, in degrees), for the district map and
    /// as a destination for car park recommendations.
    pub lat: Option<f64>,
    pub lon: Option<f64>,
}

fn default_zone_kind() -> ZoneKind {
    ZoneKind::Walkway
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Detection {
    /// One sensor per space reports `occupied`/`vacant`.
    SingleSpace,
    /// Entry and exit barriers count cars in and out.
    Gate,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Lot {
    pub id: String,
    pub name: String,
    pub spaces: u32,
    pub detection: Detection,
    /// `"HH:MM-HH:MM"` in district time, or `"24h"`.
    #[serde(default = "default_hours")]
    pub opening_hours: String,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    /// The district's id; needed only when there are several.
    pub district: Option<String>,
}

fn default_hours() -> String {
    "24h".into()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Merchant {
    pub id: String,
    /// The zone it trades in; the merchant is in that zone's district.
    pub zone: String,
    pub category: String,
    /// Selling area in m², at most two decimals (kept in hundredths, see `Catalog`).
    pub selling_area_m2: f64,
}

impl Config {
    /// The districts: `[district]` or every `[[districts]]`, in order. The
    /// first is the one the API and the page show by default.
    pub fn districts(&self) -> impl Iterator<Item = &DistrictConfig> {
        self.district.iter().chain(self.districts.iter())
    }

    /// The district a zone or car park naming `named` belongs to: the one
    /// named, or the only one (validation makes sure it is one of them).
    pub fn district_of(&self, named: Option<&str>) -> Option<&DistrictConfig> {
        match named {
            Some(id) => self.districts().find(|d| d.id == id),
            None => self.districts().next(),
        }
    }

    /// The thresholds in force for a zone: its own, or the district default.
    pub fn thresholds_for(&self, zone: &Zone) -> Thresholds {
        zone.thresholds.unwrap_or(self.crowd.thresholds)
    }

    /// Total spaces over all car parks.
    pub fn total_spaces(&self) -> u64 {
        self.lots.iter().map(|l| l.spaces as u64).sum()
    }
}
