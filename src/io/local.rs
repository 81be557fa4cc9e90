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
    refresh_view_of(&[engine], engine.districts(), &BTreeMap::new(), view);
}

/// The same over the engines of a parallel run's partitions: each zone and
/// car park is in one of them, totals are summed over all; `district` is
/// their shared stage's roll-up, `retired` the dedup evictions of engines
/// already dropped.
pub fn refresh_view_of(
    engines: &[&Engine],
    districts: Vec<ParkingGroup>,
    retired: &BTreeMap<InputTopic, u64>,
    view: &LiveView,
) {
    let mut revenue: BTreeMap<LotIx, Tally> = BTreeMap::new();
    let mut totals: BTreeMap<(ZoneIx, CategoryIx), Tally> = BTreeMap::new();
    let mut evicted = retired.clone();
    for engine in engines {
        for z in engine.zone_statuses() {
            view.update_zone(z);
        }
        for (lot, t) in engine.lot_revenue() {
            revenue.entry(lot).or_default().absorb(&t);
        }
        for (k, t) in engine.payment_totals() {
            totals.entry(k).or_default().absorb(&t);
        }
        for (topic, n) in engine.dedup_evicted() {
            *evicted.entry(topic).or_default() += n;
        }
        for (topic, partition, wm) in engine.watermarks() {
            view.metrics
                .runtime
                .set_watermark(engine.topic_name(topic), partition, wm);
        }
    }
    let catalog = &view.catalog;
    for (lot, t) in revenue {
        view.update_lot_revenue(&catalog.lots[lot as usize].id, t.net_fen());
    }
    // After the revenue, which each car park's record carries.
    for engine in engines {
        for a in engine.lot_snapshots() {
            view.update_lot(a);
        }
    }
    view.update_districts(districts);
    view.metrics.payments.set_payment_totals(catalog, &totals);
    // Names from any engine: with none there is nothing new to count.
    if let Some(engine) = engines.first() {
        for (topic, n) in evicted {
            view.metrics
                .input
                .set_dedup_evicted(engine.topic_name(topic), n);
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
