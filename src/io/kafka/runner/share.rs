//! The shared view's writer (see `http::shared`): once a second, what this
//! instance computes (its zones, car parks, revenue shares, the district if
//! it owns the district task, and the sales windows, district records and
//! alerts it published) goes to the compacted view topic, each record only
//! when it changed. Under exactly_once it joins the open transaction, so a
//! rewound checkpoint takes its view records with it.

use super::*;
use serde_json::Value;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// How often the view is written.
pub(super) const SHARE_EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(super) struct ViewWriter {
    /// A hash of the bytes last sent, per key.
    sent: HashMap<String, u64>,
    /// The rewinds and assignments seen: after one, everything is sent again
    /// (what was sent in an aborted transaction never arrived).
    generation: u64,
    hasher: std::collections::hash_map::RandomState,
}

impl ViewWriter {
    /// Sends what changed since the last call: `records` from the tasks
    /// ([`task_records`]), then the view's own.
    pub(super) fn write(
        &mut self,
        ctx: &RunContext,
        view: &LiveView,
        mut records: Vec<(String, Value)>,
    ) {
        let generation = ctx.generation.load(Ordering::Relaxed);
        if generation != self.generation {
            self.sent.clear();
            self.generation = generation;
        }
        let topic = ctx.config.topics.view.as_str();
        records.extend(view_records(view));
        for (key, value) in records {
            let bytes = value.to_string().into_bytes();
            let mut h = self.hasher.build_hasher();
            h.write(&bytes);
            let hash = h.finish();
            if self.sent.get(&key) == Some(&hash) {
                continue;
            }
            match ctx.send_output(topic, None, key.as_bytes(), &bytes) {
                Ok(()) => {
                    self.sent.insert(key, hash);
                }
                // The transaction failed: the coordinator rewinds, and the
                // next generation sends everything again.
                Err(e) => {
                    // As any output's failed send (which logs it); a fatal
                    // one stops the run.
                    if let Err(fatal) = super::publish::on_send_error(ctx, e) {
                        ctx.set_fatal(fatal.to_string());
                    }
                    return;
                }
            }
        }
    }
}

/// One task's records for the view now, read under its lock only.
pub(super) fn task_records(ctx: &RunContext, task: &Task, out: &mut Vec<(String, Value)>) {
    let catalog = &ctx.catalog;
    let engine = &task.engine;
    for z in engine.zone_statuses() {
        out.push((format!("zone/{}", z.id), json(&z)));
    }
    for a in engine.lot_snapshots() {
        let spaces = a.total_spot_number;
        let mut v = json(&a);
        v["analytics"] = crate::http::analytics_json(&a.analytics, spaces, None);
        out.push((format!("lot/{}", a.id), v));
    }
    // Revenue is the payments-by-zone stream's.
    let name = ctx.topic_name(InputTopic::PaymentsByZone);
    for (lot, tally) in engine.lot_revenue() {
        let id = &catalog.lots[lot as usize].id;
        let key = format!("revenue/{id}/{name}/{}", task.partition);
        out.push((key, Value::from(tally.net_fen())));
    }
    for g in engine.districts() {
        out.push((format!("district/{}/parking", g.id), json(&g)));
    }
}

/// What this instance published and the view keeps: district records,
/// sales windows, the latest alerts.
fn view_records(view: &LiveView) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for d in view.local_district_kpis() {
        let scope = match d.scope {
            crate::output::DistrictScope::Crowd => "crowd",
            crate::output::DistrictScope::Payments => "payments",
        };
        out.push((format!("district/{}/{scope}", d.district), json(&d)));
    }
    for s in view.local_sales() {
        out.push((format!("sales/{}", s.zone), json(&s)));
    }
    for a in view.local_latest_alerts() {
        out.push((format!("alert/{}", a.zone), json(&a)));
    }
    out
}

fn json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("output types serialise")
}
