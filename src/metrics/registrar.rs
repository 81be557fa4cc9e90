//! Registers metrics under one prefix and remembers their names.

use prometheus::core::Collector;
use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use std::cell::RefCell;

pub(super) struct Registrar {
    registry: Registry,
    prefix: &'static str,
    names: RefCell<Vec<String>>,
}

impl Registrar {
    pub fn new(prefix: &'static str) -> Self {
        Registrar {
            registry: Registry::new(),
            prefix,
            names: RefCell::default(),
        }
    }

    /// The registry, and every family name registered, sorted.
    pub fn finish(self) -> (Registry, Vec<String>) {
        let mut names = self.names.into_inner();
        names.sort();
        (self.registry, names)
    }

    fn opts(&self, name: &str, help: &str) -> Opts {
        Opts::new(name, help).namespace(self.prefix)
    }

    /// Registers a metric built in place (its definition is a literal, so
    /// valid; each is registered once).
    fn add<C: Collector + Clone + 'static>(&self, metric: prometheus::Result<C>) -> C {
        let m = metric.expect("valid metric definition");
        let mut names = self.names.borrow_mut();
        names.extend(m.desc().iter().map(|d| d.fq_name.clone()));
        self.registry
            .register(Box::new(m.clone()))
            .expect("metric registered once");
        m
    }

    pub fn int_gauges(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.add(IntGaugeVec::new(self.opts(name, help), labels))
    }

    pub fn gauges(&self, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
        self.add(GaugeVec::new(self.opts(name, help), labels))
    }

    pub fn counters(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.add(IntCounterVec::new(self.opts(name, help), labels))
    }

    pub fn int_gauge(&self, name: &str, help: &str) -> IntGauge {
        self.add(IntGauge::with_opts(self.opts(name, help)))
    }

    pub fn gauge(&self, name: &str, help: &str) -> Gauge {
        self.add(Gauge::with_opts(self.opts(name, help)))
    }

    pub fn histogram(&self, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
        let opts = HistogramOpts::new(name, help)
            .namespace(self.prefix)
            .buckets(buckets);
        self.add(Histogram::with_opts(opts))
    }
}
