//! This process's own consumers of the engine: the metrics, the HTTP view
//! and its live stream, the same for every source (demo or Kafka).

use crate::engine::Engine;
use crate::http::LiveView;
use crate::metrics::Metrics;
use crate::model::InputTopic;
use crate::model::{CategoryIx, LotIx, ZoneIx};
use crate::output::{Output, ParkingGroup};
use crate::payments::Tally;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Builds the engine's metrics and live view for a configuration.
pub fn live_view(engine: &Engine) -> Arc<LiveView> {
    Arc::new(view_of(engine))
}

/// [`live_view`] answering from the shared view (`http::shared`): for a
/// process that is one of several instances.
pub fn shared_live_view(engine: &Engine) -> Arc<LiveView> {
    Arc::new(view_of(engine).with_shared_view())
}

fn view_of(engine: &Engine) -> LiveView {
    let names: Vec<(InputTopic, String)> = InputTopic::CONSUMED
        .map(|t| (t, engine.topic_name(t).to_string()))
        .into();
    let metrics = Arc::new(Metrics::new(engine.catalog(), &names));
    LiveView::new(engine.catalog().clone(), metrics)
}

/// Copies the engine's live state into the view and gauges.
pub fn refresh_view(engine: &Engine, view: &LiveView) {
    let mut parts = ViewParts::new(&BTreeMap::new());
    parts.add(engine);
    parts.apply(view);
}

/// What the view takes from the engines of a run's partitions, gathered one
/// engine at a time and then applied at once: each zone and car park is in
/// one of them, totals are summed over all. A parallel run reads each task
/// under its own lock only, so the workers go on with the others meanwhile.
pub struct ViewParts {
    zones: Vec<crate::crowd::ZoneStatus>,
    lots: Vec<crate::output::Availability>,
    revenue: BTreeMap<LotIx, Tally>,
    totals: BTreeMap<(ZoneIx, CategoryIx), Tally>,
    /// Dedup evictions by topic name.
    evicted: BTreeMap<String, u64>,
    watermarks: Vec<(String, i32, i64)>,
    districts: Vec<ParkingGroup>,
    retired: BTreeMap<InputTopic, u64>,
}

impl ViewParts {
    /// Nothing gathered yet; `retired` counts the dedup evictions of
    /// engines already dropped.
    pub fn new(retired: &BTreeMap<InputTopic, u64>) -> Self {
        ViewParts {
            zones: Vec::new(),
            lots: Vec::new(),
            revenue: BTreeMap::new(),
            totals: BTreeMap::new(),
            evicted: BTreeMap::new(),
            watermarks: Vec::new(),
            districts: Vec::new(),
            retired: retired.clone(),
        }
    }

    /// One engine's part.
    pub fn add(&mut self, engine: &Engine) {
        self.zones.extend(engine.zone_statuses());
        self.lots.extend(engine.lot_snapshots());
        for (lot, t) in engine.lot_revenue() {
            self.revenue.entry(lot).or_default().absorb(&t);
        }
        for (k, t) in engine.payment_totals() {
            self.totals.entry(k).or_default().absorb(&t);
        }
        // Names from any engine, with the retired engines' counts once.
        for (topic, n) in std::mem::take(&mut self.retired) {
            *self
                .evicted
                .entry(engine.topic_name(topic).to_string())
                .or_default() += n;
        }
        for (topic, n) in engine.dedup_evicted() {
            *self
                .evicted
                .entry(engine.topic_name(topic).to_string())
                .or_default() += n;
        }
        for (topic, partition, wm) in engine.watermarks() {
            self.watermarks
                .push((engine.topic_name(topic).to_string(), partition, wm));
        }
        self.districts.extend(engine.districts());
    }

    /// Into the view and its gauges.
    pub fn apply(self, view: &LiveView) {
        for z in self.zones {
            view.update_zone(z);
        }
        for (topic, partition, wm) in &self.watermarks {
            view.metrics.runtime.set_watermark(topic, *partition, *wm);
        }
        let catalog = &view.catalog;
        for (lot, t) in self.revenue {
            view.update_lot_revenue(&catalog.lots[lot as usize].id, t.net_fen());
        }
        // After the revenue, which each car park's record carries.
        for a in self.lots {
            view.update_lot(a);
        }
        view.update_districts(self.districts);
        view.metrics
            .payments
            .set_payment_totals(catalog, &self.totals);
        // With no engine there is nothing new to count.
        for (topic, n) in self.evicted {
            view.metrics.input.set_dedup_evicted(&topic, n);
        }
    }
}

/// Hands outputs to this process's own consumers: metrics, the HTTP view and its
/// live stream. An alert also refreshes the zones at once, so the API never
/// lags behind an alert it has already streamed.
pub fn publish_local(engine: &Engine, view: &LiveView, out: &[Output]) {
    if out.is_empty() {
        return;
    }
    let m = &view.metrics;
    m.runtime
        .count_outputs(&m.crowd, out, |o| engine.output_topic_name(o.topic()));
    view.publish(out);
    if out.iter().any(|o| matches!(o, Output::Alert(_))) {
        for z in engine.zone_statuses() {
            view.update_zone(z);
        }
    }
}
