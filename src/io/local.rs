//! This process's own consumers of the engine: the metrics, the HTTP view
//! and its live stream, the same for every source (demo or Kafka).

use crate::engine::Engine;
use crate::http::LiveView;
use crate::metrics::Metrics;
use crate::model::InputTopic;
use crate::output::Output;
use std::sync::Arc;

/// Builds the engine's metrics and live view for a configuration.
pub fn live_view(engine: &Engine) -> Arc<LiveView> {
    let names: Vec<(InputTopic, String)> = InputTopic::CONSUMED
        .map(|t| (t, engine.topic_name(t).to_string()))
        .into();
    let metrics = Arc::new(Metrics::new(engine.catalog(), &names));
    Arc::new(LiveView::new(engine.catalog().clone(), metrics))
}

/// Copies the engine's live state into the view and gauges.
pub fn refresh_view(engine: &Engine, view: &LiveView) {
    for z in engine.zone_statuses() {
        view.update_zone(z);
    }
    for (lot, t) in engine.lot_revenue() {
        view.update_lot_revenue(&engine.catalog().lots[lot as usize].id, t.net_fen());
    }
    for a in engine.lot_snapshots() {
        view.update_lot(a);
    }
    view.update_district(engine.district());
    view.metrics
        .payments
        .set_payment_totals(engine.catalog(), &engine.payment_totals());
    for (topic, n) in engine.dedup_evicted() {
        view.metrics
            .input
            .set_dedup_evicted(engine.topic_name(topic), n);
    }
    for (topic, partition, wm) in engine.watermarks() {
        view.metrics
            .runtime
            .set_watermark(engine.topic_name(topic), partition, wm);
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
