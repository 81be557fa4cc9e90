//! Prometheus metrics (contract §7), registered in groups, one per part of
//! the engine, all under the one prefix `crowdpark_`.
//!
//! Labels are only ever zone, car park, category, topic, partition, reason and
//! level, all bounded by the configuration: a space or transaction id never
//! becomes a label, so the series count is fixed by the district, not the traffic.

mod crowd;
mod input;
mod parking;
mod payments;
mod process;
mod registrar;
mod runtime;

pub use crowd::CrowdMetrics;
pub use input::{InputCounters, InputMetrics};
pub use parking::ParkingMetrics;
pub use payments::PaymentMetrics;
pub use runtime::{
    RuntimeMetrics, RESTORED_FROM_CHANGELOG, RESTORED_FROM_SNAPSHOT, REWIND_RESTORE_FAILED,
    REWIND_TRANSACTION_FAILED,
};

use crate::model::{Catalog, InputTopic};
use prometheus::{Encoder, Registry, TextEncoder};
use registrar::Registrar;

/// Every metric name starts with this and an underscore.
pub const PREFIX: &str = "crowdpark";

pub struct Metrics {
    registry: Registry,
    /// Every family registered, labelled or not (see [`names`](Self::names)).
    names: Vec<String>,
    pub crowd: CrowdMetrics,
    pub parking: ParkingMetrics,
    pub payments: PaymentMetrics,
    pub input: InputMetrics,
    pub runtime: RuntimeMetrics,
}

impl Metrics {
    /// Creates every metric and the series for every configured entity, so
    /// dashboards and alert rules see zeros rather than gaps before traffic.
    pub fn new(catalog: &Catalog, topic_names: &[(InputTopic, String)]) -> Self {
        let r = Registrar::new(PREFIX);
        let build = r.int_gauges(
            "build_info",
            "Always 1; labels say which build is running.",
            &["version", "revision", "build_date"],
        );
        let b = crate::BUILD;
        build
            .with_label_values(&[b.version, b.revision, b.date])
            .set(1);
        let crowd = CrowdMetrics::new(&r, catalog);
        let parking = ParkingMetrics::new(&r, catalog);
        let payments = PaymentMetrics::new(&r);
        let input = InputMetrics::new(&r, topic_names);
        let runtime = RuntimeMetrics::new(&r);
        let (registry, names) = r.finish();
        // The exporter convention: `process_*` (CPU, memory, file
        // descriptors, threads, start time), unprefixed.
        registry
            .register(Box::new(process::ProcessCollector::new()))
            .expect("registered once, under names of its own");
        Metrics {
            registry,
            names,
            crowd,
            parking,
            payments,
            input,
            runtime,
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding into memory cannot fail");
        String::from_utf8(buf).expect("exposition is UTF-8")
    }

    /// Every metric family this exports, whether or not it has series yet
    /// (labelled families appear in `/metrics` only once used), for checking
    /// dashboards and alert rules against.
    pub fn names(&self) -> Vec<String> {
        self.names.clone()
    }
}
