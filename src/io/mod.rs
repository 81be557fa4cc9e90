//! The edges: sources that feed the engine and sinks that take its outputs.

pub mod console;
pub mod demo;
pub mod kafka;

use crate::engine::Engine;
use crate::http::LiveView;
use crate::output::Output;

/// Hands outputs to this process's own consumers: metrics, the HTTP view and its
/// live stream. An alert also refreshes the zones at once, so the API never
/// lags behind an alert it has already streamed.
pub fn publish_local(engine: &Engine, view: &LiveView, out: &[Output]) {
    if out.is_empty() {
        return;
    }
    view.metrics
        .count_outputs(out, |o| engine.output_topic_name(o.topic()));
    view.publish(out);
    if out.iter().any(|o| matches!(o, Output::Alert(_))) {
        for z in engine.zone_statuses() {
            view.update_zone(z);
        }
    }
}
