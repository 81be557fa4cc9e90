//! Crowd traffic: camera headcounts and gate counting lines per zone.

use super::Rng;
use crate::model::{Catalog, InputTopic};
use serde::Serialize;

/// A zone's density over the afternoon: a base plus one bump, repeating every two
/// hours so long demos keep moving. Chosen so the lakeside promenade passes red
/// (3.5 p/m²) about half an hour in, other zones reach yellow, others stay green.
#[derive(Debug, Clone, Copy)]
struct Profile {
    base: f64,
    peak: f64,
    center_min: f64,
    width_min: f64,
}

impl Profile {
    fn density(&self, minute: f64) -> f64 {
        let m = minute.rem_euclid(120.0);
        let x = (m - self.center_min) / self.width_min;
        self.base + (self.peak - self.base) * (-x * x).exp()
    }
}

fn profile_for(zone_id: &str, index: usize) -> Profile {
    let p = |base, peak, center_min, width_min| Profile {
        base,
        peak,
        center_min,
        width_min,
    };
    match zone_id {
        "lakeside-promenade" => p(1.0, 4.3, 40.0, 18.0),
        "music-fountain-plaza" => p(0.8, 2.4, 60.0, 15.0),
        "hubin-pedestrian-street" => p(1.2, 2.2, 50.0, 25.0),
        "in77-atrium" => p(0.6, 1.5, 55.0, 30.0),
        "longxiang-bridge-exit" => p(0.8, 2.6, 45.0, 10.0),
        "longxiang-bridge-queue" => p(0.5, 1.8, 48.0, 12.0),
        "east-pier-queue" => p(0.8, 2.0, 35.0, 20.0),
        // Unknown zones (another district's config): gentle, staggered bumps.
        _ => p(0.4, 1.2, 30.0 + 10.0 * (index % 6) as f64, 20.0),
    }
}

struct Camera {
    id: String,
    share: f64,
    period_ms: i64,
    phase_ms: i64,
}

struct ZoneSim {
    id: String,
    area_m2: f64,
    profile: Profile,
    cameras: Vec<Camera>,
    /// Counting-line zones also get a gate reporting every `gate_period_ms`.
    gate: Option<String>,
    people: f64,
    net_since_report: f64,
}

#[derive(Serialize)]
struct Headcount<'a> {
    zone: &'a str,
    ts: i64,
    source: &'a str,
    people: u32,
    event_id: String,
}

#[derive(Serialize)]
struct Line<'a> {
    zone: &'a str,
    ts: i64,
    source: &'a str,
    entered: u32,
    exited: u32,
    event_id: String,
}

pub struct CrowdSim {
    zones: Vec<ZoneSim>,
}

const GATE_PERIOD_MS: i64 = 5_000;

impl CrowdSim {
    pub fn new(catalog: &Catalog, rng: &mut Rng) -> Self {
        let zones = catalog
            .zones
            .iter()
            .enumerate()
            .map(|(i, z)| {
                let n_cams = if z.area_m2 > 1000.0 {
                    3
                } else if z.area_m2 > 250.0 {
                    2
                } else {
                    1
                };
                let cameras = (0..n_cams)
                    .map(|c| Camera {
                        id: format!("cam-{:02}{}", i + 1, (b'a' + c as u8) as char),
                        share: 1.0 / n_cams as f64,
                        period_ms: 10_000,
                        phase_ms: rng.range(0, 10_000) as i64,
                    })
                    .collect();
                let gate = z.id.contains("exit").then(|| format!("gate-{:02}", i + 1));
                let profile = profile_for(&z.id, i);
                ZoneSim {
                    id: z.id.clone(),
                    area_m2: z.area_m2,
                    profile,
                    cameras,
                    gate,
                    people: profile.density(0.0) * z.area_m2,
                    net_since_report: 0.0,
                }
            })
            .collect();
        CrowdSim { zones }
    }

    pub fn step(
        &mut self,
        minute: f64,
        t0: i64,
        t1: i64,
        rng: &mut Rng,
        out: &mut Vec<(InputTopic, String, i64, Vec<u8>)>,
    ) {
        for z in &mut self.zones {
            let target = z.profile.density(minute) * z.area_m2;
            let previous = z.people;
            // Real crowds wander around the curve.
            z.people = (target * (1.0 + 0.02 * rng.normal())).max(0.0);
            for cam in &z.cameras {
                let mut t = t0 + (cam.phase_ms - t0).rem_euclid(cam.period_ms);
                while t < t1 {
                    let seen = z.people * cam.share * (1.0 + 0.04 * rng.normal());
                    let msg = Headcount {
                        zone: &z.id,
                        ts: t,
                        source: &cam.id,
                        people: seen.round().max(0.0) as u32,
                        event_id: format!("{}-{}", cam.id, t),
                    };
                    out.push((
                        InputTopic::CrowdCounts,
                        z.id.clone(),
                        t,
                        serde_json::to_vec(&msg).expect("plain struct"),
                    ));
                    t += cam.period_ms;
                }
            }
            if let Some(gate) = &z.gate {
                z.net_since_report += z.people - previous;
                if t0.rem_euclid(GATE_PERIOD_MS) == 0 {
                    // People walk through both ways; the difference is the change.
                    let through = (z.area_m2 * 0.02).max(1.0);
                    let net = z.net_since_report;
                    let entered = (through + net.max(0.0) + rng.poisson(2.0) as f64).round() as u32;
                    let exited =
                        (through + (-net).max(0.0) + rng.poisson(2.0) as f64).round() as u32;
                    let msg = Line {
                        zone: &z.id,
                        ts: t0,
                        source: gate,
                        entered,
                        exited,
                        event_id: format!("{gate}-{t0}"),
                    };
                    out.push((
                        InputTopic::CrowdCounts,
                        z.id.clone(),
                        t0,
                        serde_json::to_vec(&msg).expect("plain struct"),
                    ));
                    z.net_since_report = 0.0;
                }
            }
        }
    }

    pub fn people_by_zone(&self) -> Vec<f64> {
        self.zones.iter().map(|z| z.people).collect()
    }

    pub fn people_by_zone_named(&self) -> Vec<(String, u32)> {
        self.zones
            .iter()
            .map(|z| (z.id.clone(), z.people.round() as u32))
            .collect()
    }
}
