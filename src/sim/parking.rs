//! Parking traffic: space sensors (with periodic status heartbeats) and gates.

use super::Rng;
use crate::config::Detection;
use crate::model::{Catalog, InputTopic};
use serde::Serialize;

struct LotSim {
    id: String,
    detection: Detection,
    spaces: u32,
    /// Peak occupancy the afternoon drives this car park towards (>1 means cars
    /// queue: the car park fills completely).
    peak: f64,
    /// Space sensors: which spaces are taken.
    slots: Vec<bool>,
    occupied: u32,
    heartbeat_cursor: usize,
    heartbeat_debt: f64,
}

#[derive(Serialize)]
struct SpaceMsg<'a> {
    lot: &'a str,
    ts: i64,
    slot: String,
    state: &'static str,
    event_id: String,
}

#[derive(Serialize)]
struct GateMsg<'a> {
    lot: &'a str,
    ts: i64,
    gate: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u32>,
    event_id: String,
}

pub struct ParkingSim {
    lots: Vec<LotSim>,
}

/// A sensor repeats its state this often even when nothing changes.
const SENSOR_HEARTBEAT_S: f64 = 600.0;
/// At start every sensor reports within this many seconds.
const INITIAL_REPORT_S: f64 = 30.0;

fn slot_name(i: usize) -> String {
    format!("B{}-{:03}", 1 + i / 200, i % 200 + 1)
}

impl ParkingSim {
    pub fn new(catalog: &Catalog, rng: &mut Rng) -> Self {
        let lots = catalog
            .lots
            .iter()
            .enumerate()
            .map(|(i, l)| {
                // The busiest car parks (by the lake and the malls) fill up.
                let peak = if i % 3 == 2 || l.id.contains("hubin88") {
                    1.08
                } else {
                    0.8 + 0.03 * (i % 4) as f64
                };
                // Gate counters only know the cars they counted in, so gate car parks
                // start the simulation empty; sensors see whatever is parked.
                let start = match l.detection {
                    Detection::SingleSpace => 0.55 + 0.05 * (i % 3) as f64,
                    Detection::Gate => 0.0,
                };
                let mut slots = vec![false; l.spaces as usize];
                let mut occupied = 0;
                for s in slots.iter_mut() {
                    if rng.chance(start) {
                        *s = true;
                        occupied += 1;
                    }
                }
                LotSim {
                    id: l.id.clone(),
                    detection: l.detection,
                    spaces: l.spaces,
                    peak,
                    slots,
                    occupied,
                    heartbeat_cursor: 0,
                    heartbeat_debt: 0.0,
                }
            })
            .collect();
        ParkingSim { lots }
    }

    pub fn step(
        &mut self,
        minute: f64,
        t0: i64,
        t1: i64,
        intensity: f64,
        rng: &mut Rng,
        out: &mut Vec<(InputTopic, String, i64, Vec<u8>)>,
    ) {
        let elapsed_s = minute * 60.0;
        for lot in &mut self.lots {
            let m = minute.rem_euclid(120.0);
            let x = (m - 50.0) / 35.0;
            let target = 0.6 + (lot.peak - 0.6) * (-x * x).exp();
            let desired = target * lot.spaces as f64;
            let occ = lot.occupied as f64;
            let churn = lot.spaces as f64 * 0.0004 * intensity;
            let arrivals = rng.poisson(churn + (desired - occ).max(0.0) * 0.02 * intensity);
            let departures = rng.poisson(churn + (occ - desired).max(0.0) * 0.02 * intensity);
            let mut events = Vec::new();
            for _ in 0..arrivals {
                if lot.occupied < lot.spaces {
                    events.push(true);
                    lot.occupied += 1;
                }
            }
            for _ in 0..departures {
                if lot.occupied > 0 {
                    events.push(false);
                    lot.occupied -= 1;
                }
            }
            match lot.detection {
                Detection::SingleSpace => {
                    Self::sensors(lot, &events, elapsed_s, t0, t1, intensity, rng, out)
                }
                Detection::Gate => Self::gates(lot, &events, t0, t1, rng, out),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn sensors(
        lot: &mut LotSim,
        events: &[bool],
        elapsed_s: f64,
        t0: i64,
        t1: i64,
        intensity: f64,
        rng: &mut Rng,
        out: &mut Vec<(InputTopic, String, i64, Vec<u8>)>,
    ) {
        let emit = |lot: &LotSim, i: usize, ts: i64, out: &mut Vec<_>| {
            let msg = SpaceMsg {
                lot: &lot.id,
                ts,
                slot: slot_name(i),
                state: if lot.slots[i] { "occupied" } else { "vacant" },
                event_id: format!("{}-{}-{}", lot.id, i, ts),
            };
            out.push((
                InputTopic::ParkingEvents,
                lot.id.clone(),
                ts,
                serde_json::to_vec(&msg).expect("plain struct"),
            ));
        };
        for &arrive in events {
            // Pick a space in the wanted state by probing from a random start.
            let n = lot.slots.len();
            let start = rng.range(0, n as u64) as usize;
            if let Some(i) = (0..n)
                .map(|k| (start + k) % n)
                .find(|&i| lot.slots[i] != arrive)
            {
                lot.slots[i] = arrive;
                let ts = rng.range(t0 as u64, t1 as u64) as i64;
                emit(lot, i, ts, out);
            }
        }
        let per_step = if elapsed_s < INITIAL_REPORT_S {
            lot.spaces as f64 / INITIAL_REPORT_S
        } else {
            lot.spaces as f64 / SENSOR_HEARTBEAT_S * intensity.max(1.0)
        };
        lot.heartbeat_debt += per_step;
        while lot.heartbeat_debt >= 1.0 {
            lot.heartbeat_debt -= 1.0;
            let i = lot.heartbeat_cursor;
            lot.heartbeat_cursor = (i + 1) % lot.slots.len();
            let ts = rng.range(t0 as u64, t1 as u64) as i64;
            emit(lot, i, ts, out);
        }
    }

    fn gates(
        lot: &LotSim,
        events: &[bool],
        t0: i64,
        t1: i64,
        rng: &mut Rng,
        out: &mut Vec<(InputTopic, String, i64, Vec<u8>)>,
    ) {
        let entries = events.iter().filter(|e| **e).count() as u32;
        let exits = events.len() as u32 - entries;
        for (gate, n) in [("entry", entries), ("exit", exits)] {
            if n == 0 {
                continue;
            }
            // Barriers with a loop counter batch a burst into one report.
            let reports: Vec<u32> = if n >= 3 { vec![n] } else { vec![1; n as usize] };
            for (k, count) in reports.into_iter().enumerate() {
                let ts = rng.range(t0 as u64, t1 as u64) as i64;
                let msg = GateMsg {
                    lot: &lot.id,
                    ts,
                    gate,
                    count: (count > 1).then_some(count),
                    event_id: format!("{}-{gate}-{ts}-{k}", lot.id),
                };
                out.push((
                    InputTopic::ParkingEvents,
                    lot.id.clone(),
                    ts,
                    serde_json::to_vec(&msg).expect("plain struct"),
                ));
            }
        }
    }
}
