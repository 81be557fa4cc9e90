//! Prometheus metrics (contract §7).
//!
//! Labels are only ever zone, car park, category, topic, partition, reason and
//! level, all bounded by the configuration: a space or transaction id never
//! becomes a label, so the series count is fixed by the district, not the traffic.

use crate::crowd::ZoneStatus;
use crate::engine::Disposition;
use crate::model::{Catalog, CategoryIx, InputTopic, RejectReason, ZoneIx};
use crate::output::{AlertKind, Availability, Output};
use crate::parking::LotAnalytics;
use crate::payments::Tally;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::collections::BTreeMap;

pub struct Metrics {
    registry: Registry,
    zone_people: IntGaugeVec,
    zone_density: GaugeVec,
    zone_alert_level: IntGaugeVec,
    lot_spaces: IntGaugeVec,
    lot_spaces_available: IntGaugeVec,
    lot_occupancy_ratio: GaugeVec,
    lot_sessions: IntCounterVec,
    lot_stays: IntCounterVec,
    lot_stay_seconds: IntCounterVec,
    lot_occupied_space_seconds: IntCounterVec,
    lot_capacity_space_seconds: IntCounterVec,
    lot_revenue_fen: IntCounterVec,
    last_lot: std::sync::Mutex<BTreeMap<String, (LotAnalytics, i64)>>,
    payments_total: IntCounterVec,
    payments_amount_fen_total: IntCounterVec,
    refunds_total: IntCounterVec,
    refunds_amount_fen_total: IntCounterVec,
    alerts_total: IntCounterVec,
    forecasts_total: IntCounterVec,
    consumed: IntCounterVec,
    accepted: IntCounterVec,
    rejected: IntCounterVec,
    duplicates: IntCounterVec,
    dedup_evicted: IntCounterVec,
    /// The engine's running totals last seen by `set_dedup_evicted`.
    dedup_evicted_seen: std::sync::Mutex<BTreeMap<String, u64>>,
    outputs: IntCounterVec,
    event_to_output: Histogram,
    forecast_lead: Histogram,
    consumer_lag: IntGaugeVec,
    watermark: GaugeVec,
    delivery_errors: IntCounterVec,
    commits: IntCounterVec,
    rewinds: IntCounterVec,
    broker_reachable: prometheus::IntGauge,
    healthy: prometheus::IntGauge,
    seconds_since_progress: prometheus::Gauge,
    partitions_assigned: prometheus::IntGauge,
    restore_seconds: GaugeVec,
    last_totals: std::sync::Mutex<BTreeMap<(ZoneIx, CategoryIx), Tally>>,
}

/// See [`Metrics::input_counters`].
#[derive(Clone)]
pub struct InputCounters {
    topic: String,
    consumed: IntCounter,
    accepted: IntCounter,
    duplicates: IntCounter,
}

impl InputCounters {
    pub fn count(&self, metrics: &Metrics, d: Disposition) {
        self.consumed.inc();
        match d {
            Disposition::Accepted => self.accepted.inc(),
            Disposition::Duplicate => self.duplicates.inc(),
            // Rare: the label lookup is fine here.
            Disposition::Rejected(r) => metrics
                .rejected
                .with_label_values(&[&self.topic, r.as_str()])
                .inc(),
        }
    }
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace("crowdpark")
}

/// The `reason` of a rewind after a failed checkpoint transaction.
pub const REWIND_TRANSACTION_FAILED: &str = "transaction failed";
/// The `reason` of a rewind that retries a failed restore or seek.
pub const REWIND_RESTORE_FAILED: &str = "restore or seek failed";

/// Registers a metric built in place (whose definition is a literal, so valid).
fn registered<C: prometheus::core::Collector + Clone + 'static>(
    r: &Registry,
    metric: prometheus::Result<C>,
) -> C {
    let m = metric.expect("valid metric definition");
    r.register(Box::new(m.clone()))
        .expect("metric registered once");
    m
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    registered(
        r,
        Histogram::with_opts(
            HistogramOpts::new(name, help)
                .namespace("crowdpark")
                .buckets(buckets),
        ),
    )
}

macro_rules! register {
    ($registry:expr, $kind:ident, $name:expr, $help:expr, $labels:expr) => {
        registered(&$registry, $kind::new(opts($name, $help), $labels))
    };
}

impl Metrics {
    /// Creates every metric and the series for every configured entity, so
    /// dashboards and alert rules see zeros rather than gaps before traffic.
    pub fn new(catalog: &Catalog, topic_names: &[(InputTopic, String)]) -> Self {
        let r = Registry::new();
        let m = Metrics {
            zone_people: register!(
                r,
                IntGaugeVec,
                "zone_people",
                "Estimated people in the zone.",
                &["zone"]
            ),
            zone_density: register!(
                r,
                GaugeVec,
                "zone_density",
                "Smoothed people per square metre of net walkable area.",
                &["zone"]
            ),
            zone_alert_level: register!(
                r,
                IntGaugeVec,
                "zone_alert_level",
                "Crowd level of the zone: 0 green, 1 yellow, 2 red.",
                &["zone"]
            ),
            lot_spaces: register!(
                r,
                IntGaugeVec,
                "lot_spaces",
                "Total spaces of the car park.",
                &["lot"]
            ),
            lot_spaces_available: register!(
                r,
                IntGaugeVec,
                "lot_spaces_available",
                "Spaces known to be free (silent sensors count as not free).",
                &["lot"]
            ),
            lot_occupancy_ratio: register!(
                r,
                GaugeVec,
                "lot_occupancy_ratio",
                "Share of spaces not known to be free, 0 to 1.",
                &["lot"]
            ),
            lot_sessions: register!(
                r,
                IntCounterVec,
                "lot_sessions_total",
                "Arrivals: a space turning taken, or cars through an entry gate (turnover = increase / spaces / days).",
                &["lot"]
            ),
            lot_stays: register!(
                r,
                IntCounterVec,
                "lot_stays_total",
                "Departures whose arrival a space sensor saw, so whose stay is known.",
                &["lot"]
            ),
            lot_stay_seconds: register!(
                r,
                IntCounterVec,
                "lot_stay_seconds_total",
                "Sum of the measured stays (average stay = increase / increase of lot_stays_total).",
                &["lot"]
            ),
            lot_occupied_space_seconds: register!(
                r,
                IntCounterVec,
                "lot_occupied_space_seconds_total",
                "Event-time integral of spaces in use.",
                &["lot"]
            ),
            lot_capacity_space_seconds: register!(
                r,
                IntCounterVec,
                "lot_capacity_space_seconds_total",
                "Event-time integral of spaces (parking index = occupied / capacity).",
                &["lot"]
            ),
            lot_revenue_fen: register!(
                r,
                IntCounterVec,
                "lot_revenue_fen_total",
                "Net parking revenue in fen from payments that name the car park (refunds subtracted).",
                &["lot"]
            ),
            last_lot: std::sync::Mutex::new(BTreeMap::new()),
            payments_total: register!(
                r,
                IntCounterVec,
                "payments_total",
                "Accepted sales (refunds excluded).",
                &["zone", "category"]
            ),
            payments_amount_fen_total: register!(
                r,
                IntCounterVec,
                "payments_amount_fen_total",
                "Gross amount of accepted sales, in fen.",
                &["zone", "category"]
            ),
            refunds_total: register!(
                r,
                IntCounterVec,
                "refunds_total",
                "Accepted refunds.",
                &["zone", "category"]
            ),
            refunds_amount_fen_total: register!(
                r,
                IntCounterVec,
                "refunds_amount_fen_total",
                "Amount of accepted refunds, in fen (a positive number).",
                &["zone", "category"]
            ),
            alerts_total: register!(
                r,
                IntCounterVec,
                "alerts_total",
                "Level-change alerts published, by the level entered.",
                &["zone", "level"]
            ),
            forecasts_total: register!(
                r,
                IntCounterVec,
                "forecast_alerts_total",
                "Early warnings published that red is expected within the horizon.",
                &["zone"]
            ),
            consumed: register!(
                r,
                IntCounterVec,
                "events_consumed_total",
                "Input messages consumed; equals accepted + rejected + duplicate.",
                &["topic"]
            ),
            accepted: register!(
                r,
                IntCounterVec,
                "events_accepted_total",
                "Input messages that took effect.",
                &["topic"]
            ),
            rejected: register!(
                r,
                IntCounterVec,
                "events_rejected_total",
                "Input messages sent to the dead-letter topic, by reason.",
                &["topic", "reason"]
            ),
            duplicates: register!(
                r,
                IntCounterVec,
                "events_duplicate_total",
                "Input messages whose id was already seen within the dedup horizon.",
                &["topic"]
            ),
            dedup_evicted: register!(
                r,
                IntCounterVec,
                "dedup_evicted_total",
                "Remembered ids dropped before their dedup horizon because dedup_max_ids was reached; a resent message with such an id is counted again.",
                &["topic"]
            ),
            dedup_evicted_seen: Default::default(),
            outputs: register!(
                r,
                IntCounterVec,
                "outputs_total",
                "Records published, by output topic.",
                &["topic"]
            ),
            forecast_lead: histogram(
                &r,
                "forecast_lead_seconds",
                "Event time from a zone's first forecast alert to its red level alert.",
                vec![0.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0],
            ),
            event_to_output: histogram(
                &r,
                "event_to_output_seconds",
                "Wall time from receiving a message to publishing the outputs it caused.",
                vec![
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    0.5, 1.0, 2.5, 5.0, 10.0,
                ],
            ),
            consumer_lag: register!(
                r,
                IntGaugeVec,
                "consumer_lag",
                "Messages between the consumed position and the end of the partition.",
                &["topic", "partition"]
            ),
            watermark: register!(
                r,
                GaugeVec,
                "watermark_seconds",
                "Event-time watermark of the input partition, in Unix seconds.",
                &["topic", "partition"]
            ),
            delivery_errors: register!(
                r,
                IntCounterVec,
                "delivery_errors_total",
                "Output records whose delivery failed and were queued to be sent again.",
                &["topic"]
            ),
            commits: register!(
                r,
                IntCounterVec,
                "commits_total",
                "Checkpoint-and-commit rounds, by outcome.",
                &["outcome"]
            ),
            rewinds: register!(
                r,
                IntCounterVec,
                "rewinds_total",
                "Times the state was rewound to the last committed checkpoint after a \
                 transaction failed (the input since then is processed again).",
                &["reason"]
            ),
            broker_reachable: registered(&r, prometheus::IntGauge::with_opts(opts(
                    "broker_reachable",
                    "1 while the consumer has a connection to at least one broker.",
                ))),
            healthy: {
                let g = registered(&r, prometheus::IntGauge::with_opts(opts(
                    "healthy",
                    "1 while /healthz answers 200; 0 while it answers 503 (its body says why).",
                )));
                g.set(1);
                g
            },
            seconds_since_progress: registered(&r, prometheus::Gauge::with_opts(opts(
                    "seconds_since_progress",
                    "Kafka mode: seconds since a checkpoint was last committed, or since \
                     there was last nothing to commit.",
                ))),
            partitions_assigned: registered(&r, prometheus::IntGauge::with_opts(opts(
                    "partitions_assigned",
                    "Input partitions (all input topics, and the internal repartition \
                     topic) this instance owns.",
                ))),
            restore_seconds: register!(
                r,
                GaugeVec,
                "restore_seconds",
                "Time the last state restore of the input partition took.",
                &["topic", "partition"]
            ),
            last_totals: Default::default(),
            registry: r,
        };
        let build = register!(
            m.registry,
            IntGaugeVec,
            "build_info",
            "Always 1; labels say which build is running.",
            &["version"]
        );
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        for outcome in ["ok", "deferred", "retry", "aborted"] {
            m.commits.with_label_values(&[outcome]);
        }
        for reason in [REWIND_TRANSACTION_FAILED, REWIND_RESTORE_FAILED] {
            m.rewinds.with_label_values(&[reason]);
        }

        for z in &catalog.zones {
            m.zone_people.with_label_values(&[&z.id]).set(0);
            m.zone_density.with_label_values(&[&z.id]).set(0.0);
            m.zone_alert_level.with_label_values(&[&z.id]).set(0);
            m.forecasts_total.with_label_values(&[&z.id]);
            for level in ["green", "yellow", "red"] {
                m.alerts_total.with_label_values(&[&z.id, level]);
            }
        }
        for l in &catalog.lots {
            m.lot_spaces
                .with_label_values(&[&l.id])
                .set(l.spaces as i64);
            m.set_lot_analytics(&l.id, &LotAnalytics::default(), Some(0));
        }
        for (_, name) in topic_names {
            m.consumed.with_label_values(&[name]);
            m.accepted.with_label_values(&[name]);
            m.duplicates.with_label_values(&[name]);
            m.dedup_evicted.with_label_values(&[name]);
            for reason in RejectReason::ALL {
                m.rejected.with_label_values(&[name, reason.as_str()]);
            }
        }
        m
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding into memory cannot fail");
        String::from_utf8(buf).expect("exposition is UTF-8")
    }

    /// Messages consumed from `topic` so far, without rendering the exposition.
    pub fn consumed(&self, topic: &str) -> u64 {
        self.consumed.with_label_values(&[topic]).get()
    }

    /// Counts a message by what became of it.
    pub fn count_input(&self, topic: &str, d: Disposition) {
        self.input_counters(topic).count(self, d);
    }

    /// Brings `dedup_evicted_total{topic}` up to the engine's running total.
    pub fn set_dedup_evicted(&self, topic: &str, total: u64) {
        let mut seen = self
            .dedup_evicted_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let last = seen.entry(topic.to_string()).or_insert(0);
        if total > *last {
            self.dedup_evicted
                .with_label_values(&[topic])
                .inc_by(total - *last);
            *last = total;
        }
    }

    /// One input topic's counters, looked up once, so counting a message on the
    /// hot path is an atomic add rather than hashing a label.
    pub fn input_counters(&self, topic: &str) -> InputCounters {
        InputCounters {
            topic: topic.to_string(),
            consumed: self.consumed.with_label_values(&[topic]),
            accepted: self.accepted.with_label_values(&[topic]),
            duplicates: self.duplicates.with_label_values(&[topic]),
        }
    }

    /// Counts published records and alerts.
    pub fn count_outputs<'a>(&self, outputs: &[Output], topic_name: impl Fn(&Output) -> &'a str) {
        for o in outputs {
            self.outputs.with_label_values(&[&topic_name(o)]).inc();
            if let Output::Alert(a) = o {
                if let Some(lead) = a.forecast_lead_s {
                    self.forecast_lead.observe(lead as f64);
                }
                match a.kind {
                    AlertKind::Level => self
                        .alerts_total
                        .with_label_values(&[&a.zone, a.level.as_str()])
                        .inc(),
                    AlertKind::Forecast => self.forecasts_total.with_label_values(&[&a.zone]).inc(),
                }
            }
        }
    }

    pub fn observe_latency(&self, seconds: f64) {
        self.event_to_output.observe(seconds);
    }

    pub fn set_zone(&self, z: &ZoneStatus) {
        self.zone_people
            .with_label_values(&[&z.id])
            .set(z.people as i64);
        self.zone_density.with_label_values(&[&z.id]).set(z.density);
        self.zone_alert_level
            .with_label_values(&[&z.id])
            .set(z.level.as_number());
    }

    /// Moves the car park's analytics counters up to the running totals in
    /// `a` and `revenue_fen` (a total that went down, as when a partition
    /// moved to another instance, adds nothing).
    pub fn set_lot_analytics(&self, id: &str, a: &LotAnalytics, revenue_fen: Option<i64>) {
        let mut last = self.last_lot.lock().unwrap_or_else(|e| e.into_inner());
        let (before, before_rev) = last.get(id).copied().unwrap_or_default();
        let up = |now: i64, then: i64| (now - then).max(0) as u64;
        let l = [id];
        self.lot_sessions
            .with_label_values(&l)
            .inc_by(up(a.sessions as i64, before.sessions as i64));
        self.lot_stays
            .with_label_values(&l)
            .inc_by(up(a.stays as i64, before.stays as i64));
        self.lot_stay_seconds
            .with_label_values(&l)
            .inc_by(up(a.stay_ms / 1000, before.stay_ms / 1000));
        self.lot_occupied_space_seconds
            .with_label_values(&l)
            .inc_by(up(
                a.occupied_space_ms / 1000,
                before.occupied_space_ms / 1000,
            ));
        self.lot_capacity_space_seconds
            .with_label_values(&l)
            .inc_by(up(
                a.capacity_space_ms / 1000,
                before.capacity_space_ms / 1000,
            ));
        let revenue = revenue_fen.unwrap_or(before_rev);
        self.lot_revenue_fen
            .with_label_values(&l)
            .inc_by(up(revenue, before_rev));
        last.insert(id.to_string(), (*a, revenue));
    }

    pub fn set_lot(&self, a: &Availability) {
        self.lot_spaces
            .with_label_values(&[&a.id])
            .set(a.total_spot_number as i64);
        self.lot_spaces_available
            .with_label_values(&[&a.id])
            .set(a.available_spot_number as i64);
        self.lot_occupancy_ratio
            .with_label_values(&[&a.id])
            .set(a.occupancy);
    }

    /// Brings the payment counters up to the engine's running totals.
    pub fn set_payment_totals(
        &self,
        catalog: &Catalog,
        totals: &BTreeMap<(ZoneIx, CategoryIx), Tally>,
    ) {
        let mut last_totals = self.last_totals.lock().unwrap_or_else(|e| e.into_inner());
        for (key, t) in totals {
            let last = last_totals.get(key).copied().unwrap_or_default();
            let labels = [
                &*catalog.zones[key.0 as usize].id,
                &*catalog.categories[key.1 as usize],
            ];
            let delta = |now: i64, before: i64| (now - before).max(0) as u64;
            self.payments_total
                .with_label_values(&labels)
                .inc_by(delta(t.sales as i64, last.sales as i64));
            self.payments_amount_fen_total
                .with_label_values(&labels)
                .inc_by(delta(t.sales_fen, last.sales_fen));
            self.refunds_total
                .with_label_values(&labels)
                .inc_by(delta(t.refunds as i64, last.refunds as i64));
            self.refunds_amount_fen_total
                .with_label_values(&labels)
                .inc_by(delta(t.refund_fen, last.refund_fen));
            last_totals.insert(*key, *t);
        }
    }

    pub fn set_watermark(&self, topic: &str, partition: i32, watermark_ms: i64) {
        self.watermark
            .with_label_values(&[topic, &partition.to_string()])
            .set(watermark_ms as f64 / 1000.0);
    }

    pub fn delivery_error(&self, topic: &str) {
        self.delivery_errors.with_label_values(&[topic]).inc();
    }

    /// `outcome`: `ok`, `deferred` (outputs not yet acknowledged; retried on the
    /// next interval) or `aborted` (the transaction failed; state is rewound).
    pub fn commit(&self, outcome: &str) {
        self.commits.with_label_values(&[outcome]).inc();
    }

    pub fn rewind(&self, reason: &str) {
        self.rewinds.with_label_values(&[reason]).inc();
    }

    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.set(i64::from(healthy));
    }

    pub fn set_seconds_since_progress(&self, seconds: f64) {
        self.seconds_since_progress.set(seconds);
    }

    pub fn set_broker_reachable(&self, up: bool) {
        self.broker_reachable.set(i64::from(up));
    }

    pub fn set_restore_time(&self, topic: &str, partition: i32, seconds: f64) {
        self.restore_seconds
            .with_label_values(&[topic, &partition.to_string()])
            .set(seconds);
    }

    /// Every metric family this exports, whether or not it has series yet
    /// (labelled families appear in `/metrics` only once used), for checking
    /// dashboards and alert rules against.
    pub fn names(&self) -> Vec<String> {
        use prometheus::core::Collector;
        let collectors: [&dyn Collector; 36] = [
            &self.zone_people,
            &self.zone_density,
            &self.zone_alert_level,
            &self.lot_spaces,
            &self.lot_spaces_available,
            &self.lot_occupancy_ratio,
            &self.lot_sessions,
            &self.lot_stays,
            &self.lot_stay_seconds,
            &self.lot_occupied_space_seconds,
            &self.lot_capacity_space_seconds,
            &self.lot_revenue_fen,
            &self.payments_total,
            &self.payments_amount_fen_total,
            &self.refunds_total,
            &self.refunds_amount_fen_total,
            &self.alerts_total,
            &self.forecasts_total,
            &self.consumed,
            &self.accepted,
            &self.rejected,
            &self.duplicates,
            &self.dedup_evicted,
            &self.outputs,
            &self.event_to_output,
            &self.forecast_lead,
            &self.consumer_lag,
            &self.watermark,
            &self.delivery_errors,
            &self.commits,
            &self.rewinds,
            &self.broker_reachable,
            &self.healthy,
            &self.seconds_since_progress,
            &self.partitions_assigned,
            &self.restore_seconds,
        ];
        let mut names: Vec<String> = collectors
            .iter()
            .flat_map(|c| c.desc())
            .map(|d| d.fq_name.clone())
            .chain(std::iter::once("crowdpark_build_info".to_string()))
            .collect();
        names.sort();
        names
    }

    pub fn set_partitions_assigned(&self, n: usize) {
        self.partitions_assigned.set(n as i64);
    }

    /// Drops the per-partition series of a partition this instance no longer
    /// owns, so dashboards do not show another instance's partition as stuck.
    pub fn forget_partition(&self, topic: &str, partition: i32) {
        let labels = [topic, &partition.to_string()];
        let _ = self.restore_seconds.remove_label_values(&labels);
        let _ = self.consumer_lag.remove_label_values(&labels);
        let _ = self.watermark.remove_label_values(&labels);
    }

    pub fn set_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.consumer_lag
            .with_label_values(&[topic, &partition.to_string()])
            .set(lag);
    }
}
