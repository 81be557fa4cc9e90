//! Zones: people, density, level, and the alerts published about them.

use super::registrar::Registrar;
use crate::crowd::ZoneStatus;
use crate::model::Catalog;
use crate::output::{AlertKind, CrowdAlert};
use prometheus::{GaugeVec, Histogram, IntCounterVec, IntGaugeVec};

pub struct CrowdMetrics {
    zone_people: IntGaugeVec,
    zone_density: GaugeVec,
    zone_alert_level: IntGaugeVec,
    alerts_total: IntCounterVec,
    forecasts_total: IntCounterVec,
    forecast_lead: Histogram,
}

impl CrowdMetrics {
    pub(super) fn new(r: &Registrar, catalog: &Catalog) -> Self {
        let zone = &["zone"];
        let m = CrowdMetrics {
            zone_people: r.int_gauges("zone_people", "Estimated people in the zone.", zone),
            zone_density: r.gauges(
                "zone_density",
                "Smoothed people per square metre of net walkable area.",
                zone,
            ),
            zone_alert_level: r.int_gauges(
                "zone_alert_level",
                "Crowd level of the zone: 0 green, 1 yellow, 2 red.",
                zone,
            ),
            alerts_total: r.counters(
                "alerts_total",
                "Level-change alerts published, by the level entered.",
                &["zone", "level"],
            ),
            forecasts_total: r.counters(
                "forecast_alerts_total",
                "Early warnings published that red is expected within the horizon.",
                zone,
            ),
            forecast_lead: r.histogram(
                "forecast_lead_seconds",
                "Event time from a zone's first forecast alert to its red level alert.",
                vec![0.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0],
            ),
        };
        for z in &catalog.zones {
            m.zone_people.with_label_values(&[&z.id]).set(0);
            m.zone_density.with_label_values(&[&z.id]).set(0.0);
            m.zone_alert_level.with_label_values(&[&z.id]).set(0);
            m.forecasts_total.with_label_values(&[&z.id]);
            for level in ["green", "yellow", "red"] {
                m.alerts_total.with_label_values(&[&z.id, level]);
            }
        }
        m
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

    /// Counts a published alert.
    pub fn count_alert(&self, a: &CrowdAlert) {
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
