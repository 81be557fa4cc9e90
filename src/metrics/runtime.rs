//! The engine at work: outputs, latency, lag, watermarks, commits, health.

use super::registrar::Registrar;
use crate::output::Output;
use prometheus::{Gauge, GaugeVec, Histogram, IntCounterVec, IntGauge, IntGaugeVec};

/// The `reason` of a rewind after a failed checkpoint transaction.
pub const REWIND_TRANSACTION_FAILED: &str = "transaction failed";
/// The `reason` of a rewind that retries a failed restore or seek.
pub const REWIND_RESTORE_FAILED: &str = "restore or seek failed";

pub struct RuntimeMetrics {
    outputs: IntCounterVec,
    event_to_output: Histogram,
    consumer_lag: IntGaugeVec,
    partition_stalled: IntGaugeVec,
    watermark: GaugeVec,
    delivery_errors: IntCounterVec,
    commits: IntCounterVec,
    rewinds: IntCounterVec,
    broker_reachable: IntGauge,
    healthy: IntGauge,
    seconds_since_progress: Gauge,
    partitions_assigned: IntGauge,
    restore_seconds: GaugeVec,
    state_reads: IntCounterVec,
}

/// The `from` of a changelog partition's restore: a local snapshot and the
/// changelog's tail, or the changelog whole.
pub const RESTORED_FROM_SNAPSHOT: &str = "snapshot";
pub const RESTORED_FROM_CHANGELOG: &str = "changelog";

fn restore_seconds(r: &Registrar) -> GaugeVec {
    r.gauges(
        "restore_seconds",
        "Time the last state restore of the input partition took.",
        &["topic", "partition"],
    )
}

fn state_reads(r: &Registrar) -> IntCounterVec {
    let c = r.counters(
        "state_restores_total",
        "Changelog partitions read back for a restore (assignment or rewind), by \
         where they were read from: `snapshot` (a local snapshot and the changelog \
         records since) or `changelog` (the changelog whole).",
        &["from"],
    );
    for from in [RESTORED_FROM_SNAPSHOT, RESTORED_FROM_CHANGELOG] {
        c.with_label_values(&[from]);
    }
    c
}

const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

impl RuntimeMetrics {
    pub(super) fn new(r: &Registrar) -> Self {
        let partition = &["topic", "partition"];
        let m = RuntimeMetrics {
            outputs: r.counters(
                "outputs_total",
                "Records published, by output topic.",
                &["topic"],
            ),
            event_to_output: r.histogram(
                "event_to_output_seconds",
                "Wall time from receiving a message to publishing the outputs it caused.",
                LATENCY_BUCKETS.to_vec(),
            ),
            consumer_lag: r.int_gauges(
                "consumer_lag",
                "Messages between the consumed position and the end of the partition.",
                partition,
            ),
            partition_stalled: r.int_gauges(
                "partition_stalled",
                "1 while the input partition cannot be consumed (records waiting, or the client failing on it) and has not advanced for kafka.unhealthy_after (/healthz names it and why).",
                partition,
            ),
            watermark: r.gauges(
                "watermark_seconds",
                "Event-time watermark of the input partition, in Unix seconds.",
                partition,
            ),
            delivery_errors: r.counters(
                "delivery_errors_total",
                "Output records whose delivery failed and were queued to be sent again.",
                &["topic"],
            ),
            commits: r.counters(
                "commits_total",
                "Checkpoint-and-commit rounds, by outcome.",
                &["outcome"],
            ),
            rewinds: r.counters(
                "rewinds_total",
                "Times the state was rewound to the last committed checkpoint after a \
                 transaction failed (the input since then is processed again).",
                &["reason"],
            ),
            broker_reachable: r.int_gauge(
                "broker_reachable",
                "1 while the consumer has a connection to at least one broker.",
            ),
            healthy: r.int_gauge(
                "healthy",
                "1 while /healthz answers 200; 0 while it answers 503 (its body says why).",
            ),
            seconds_since_progress: r.gauge(
                "seconds_since_progress",
                "Kafka mode: seconds since a checkpoint was last committed, or since \
                 there was last nothing to commit.",
            ),
            partitions_assigned: r.int_gauge(
                "partitions_assigned",
                "Input partitions (all input topics, and the internal repartition \
                 topic) this instance owns.",
            ),
            restore_seconds: restore_seconds(r),
            state_reads: state_reads(r),
        };
        m.healthy.set(1);
        for outcome in ["ok", "deferred", "retry", "aborted"] {
            m.commits.with_label_values(&[outcome]);
        }
        for reason in [REWIND_TRANSACTION_FAILED, REWIND_RESTORE_FAILED] {
            m.rewinds.with_label_values(&[reason]);
        }
        m
    }

    /// Counts published records by topic (and alerts, in `crowd`).
    pub fn count_outputs<'a>(
        &self,
        crowd: &super::CrowdMetrics,
        outputs: &[Output],
        topic_name: impl Fn(&Output) -> &'a str,
    ) {
        for o in outputs {
            self.outputs.with_label_values(&[topic_name(o)]).inc();
            if let Output::Alert(a) = o {
                crowd.count_alert(a);
            }
        }
    }

    pub fn observe_latency(&self, seconds: f64) {
        self.event_to_output.observe(seconds);
    }

    pub fn set_watermark(&self, topic: &str, partition: i32, watermark_ms: i64) {
        self.watermark
            .with_label_values(&[topic, &partition.to_string()])
            .set(watermark_ms as f64 / 1000.0);
    }

    pub fn set_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.consumer_lag
            .with_label_values(&[topic, &partition.to_string()])
            .set(lag);
    }

    pub fn set_partition_stalled(&self, topic: &str, partition: i32, stalled: bool) {
        self.partition_stalled
            .with_label_values(&[topic, &partition.to_string()])
            .set(i64::from(stalled));
    }

    /// Drops a partition's stall series (the partition left the watch).
    pub fn forget_stalled(&self, topic: &str, partition: i32) {
        let _ = self
            .partition_stalled
            .remove_label_values(&[topic, &partition.to_string()]);
    }

    pub fn delivery_error(&self, topic: &str) {
        self.delivery_errors.with_label_values(&[topic]).inc();
    }

    /// `outcome`: `ok`, `deferred` (outputs not yet acknowledged; retried on the
    /// next interval) or `aborted` (the transaction failed; state is rewound).
    pub fn commit(&self, outcome: &str) {
        self.commits.with_label_values(&[outcome]).inc();
    }

    pub fn state_restored(&self, from: &str) {
        self.state_reads.with_label_values(&[from]).inc();
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

    pub fn set_partitions_assigned(&self, n: usize) {
        self.partitions_assigned.set(n as i64);
    }

    pub fn set_restore_time(&self, topic: &str, partition: i32, seconds: f64) {
        self.restore_seconds
            .with_label_values(&[topic, &partition.to_string()])
            .set(seconds);
    }

    /// Drops the per-partition series of a partition this instance no longer
    /// owns, so dashboards do not show another instance's partition as stuck.
    pub fn forget_partition(&self, topic: &str, partition: i32) {
        let labels = [topic, &partition.to_string()];
        let _ = self.restore_seconds.remove_label_values(&labels);
        let _ = self.consumer_lag.remove_label_values(&labels);
        let _ = self.partition_stalled.remove_label_values(&labels);
        let _ = self.watermark.remove_label_values(&labels);
    }
}
