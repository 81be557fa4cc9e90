//! The shared view: every instance's latest figures, read whole from the
//! compacted `crowdpark.view` topic by every instance, as Kafka Streams reads
//! a global table. Each instance owns some partitions and so computes some
//! zones and car parks; through this view its HTTP API, stream and page answer
//! for the whole district, and every live instance answers the same once it
//! has read the topic to its end.
//!
//! Records are keyed by what they describe (`zone/<id>`, `lot/<id>`,
//! `revenue/<lot>/<topic>/<partition>`, `district/<id>/parking`,
//! `district/<id>/crowd`, `district/<id>/payments`, `sales/<zone>`,
//! `alert/<zone>`) and hold the JSON the
//! API serves for it, so the view is bounded by the configuration, not by
//! traffic. A car park's revenue comes from payments on several partitions,
//! each owner writing its own share; the view sums them.
//!
//! Staleness: an owner writes what changed once a second, in its checkpoint's
//! transaction under exactly_once (visible when that commits, every
//! `kafka.commit_interval`), and readers poll continuously. So the view is
//! about 1 s plus the commit interval behind the owners; `view.as_of` says
//! when this instance last had everything the topic held.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::RwLock;

use serde_json::{json, Value};

/// How many alerts `/api/v1/alerts` keeps, here and in a process's own
/// view: a page opened after an alert still shows it, and memory stays
/// bounded.
pub const RECENT_ALERTS: usize = 50;

#[derive(Default)]
pub struct SharedView {
    entries: RwLock<BTreeMap<String, Value>>,
    /// Alerts as they were read, newest last.
    recent_alerts: RwLock<VecDeque<Value>>,
    /// Wall time (Unix ms) at which the reader last had all the topic held;
    /// 0 before it first had.
    caught_up_ms: AtomicI64,
}

/// The stream event a record of `key` is broadcast as, if any.
pub fn event_of(key: &str) -> Option<&'static str> {
    match key.split('/').next()? {
        "alert" => Some("alert"),
        "lot" => Some("availability"),
        "sales" => Some("sales"),
        "district" if key.ends_with("/parking") => Some("availability"),
        "district" => Some("district"),
        _ => None,
    }
}

impl SharedView {
    /// Applies one record (`None`: deleted).
    pub fn apply(&self, key: &str, value: Option<Value>) {
        let mut entries = crate::sync::write(&self.entries);
        match value {
            Some(v) => {
                if key.starts_with("alert/") {
                    let mut recent = crate::sync::write(&self.recent_alerts);
                    let id = &v["alert_id"];
                    recent.retain(|a| &a["alert_id"] != id);
                    if recent.len() == RECENT_ALERTS {
                        recent.pop_front();
                    }
                    recent.push_back(v.clone());
                }
                entries.insert(key.to_string(), v);
            }
            None => {
                entries.remove(key);
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<Value> {
        crate::sync::read(&self.entries).get(key).cloned()
    }

    /// A car park's net revenue: the sum of every partition's share.
    pub fn revenue(&self, lot: &str) -> Option<i64> {
        let prefix = format!("revenue/{lot}/");
        let entries = crate::sync::read(&self.entries);
        let shares: Vec<i64> = entries
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter_map(|(_, v)| v.as_i64())
            .collect();
        (!shares.is_empty()).then(|| shares.iter().sum())
    }

    /// Alerts read, newest first.
    pub fn alerts(&self) -> Vec<Value> {
        let recent = crate::sync::read(&self.recent_alerts);
        recent.iter().rev().cloned().collect()
    }

    pub fn caught_up(&self, wall_ms: i64) {
        self.caught_up_ms.store(wall_ms, Ordering::Relaxed);
    }

    /// How fresh the view is, for `/api/v1/district` and the page.
    pub fn freshness(&self, now_ms: i64) -> Value {
        match self.caught_up_ms.load(Ordering::Relaxed) {
            0 => json!({"shared": true, "as_of": null, "behind_s": null}),
            at => json!({
                "shared": true,
                "as_of": crate::time::format_ts(at),
                "behind_s": ((now_ms - at).max(0) as f64 / 1000.0).round(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revenue_is_the_sum_of_the_shares_of_one_lot() {
        let v = SharedView::default();
        v.apply("revenue/p01/payments/0", Some(json!(500)));
        v.apply("revenue/p01/payments/2", Some(json!(-100)));
        v.apply("revenue/p010/payments/0", Some(json!(7)));
        assert_eq!(v.revenue("p01"), Some(400));
        assert_eq!(v.revenue("p02"), None);
        v.apply("revenue/p01/payments/2", None);
        assert_eq!(v.revenue("p01"), Some(500));
    }

    #[test]
    fn alerts_are_kept_once_each_and_bounded() {
        let v = SharedView::default();
        for i in 0..60 {
            let a = json!({"alert_id": format!("z1:{i}"), "zone": "z1"});
            v.apply("alert/z1", Some(a.clone()));
            // Read again (a rewind re-sends it): kept once.
            v.apply("alert/z1", Some(a));
        }
        let alerts = v.alerts();
        assert_eq!(alerts.len(), RECENT_ALERTS);
        assert_eq!(alerts[0]["alert_id"], "z1:59");
    }

    #[test]
    fn events_follow_the_key() {
        assert_eq!(event_of("alert/z1"), Some("alert"));
        assert_eq!(event_of("lot/p01"), Some("availability"));
        assert_eq!(event_of("district/hubin/parking"), Some("availability"));
        assert_eq!(event_of("district/hubin/crowd"), Some("district"));
        assert_eq!(event_of("zone/z1"), None);
        assert_eq!(event_of("revenue/p01/payments/0"), None);
    }
}
