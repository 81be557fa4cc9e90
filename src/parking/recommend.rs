//! Off-peak guidance ("错峰停车"): which car park to drive to, given where the
//! driver is going and when they will arrive.
//!
//! Car parks are ranked by what the driver will find, not by what is free now:
//! free spaces expected at arrival come from each car park's forecast
//! (interpolated between its 15/30/60-minute points). Those expected to have
//! room come first, nearest first; the rest follow, most room first. Every
//! entry says why it is where it is, so the app can show the reason.

use crate::output::{Availability, ForecastPoint, ParkingStatus};
use serde::Serialize;

/// Fewer free spaces than this share of the car park (and at least
/// `MIN_ROOM`) at arrival counts as full: the last few spaces go to whoever
/// is circling already.
const ROOM_SHARE: f64 = 0.02;
const MIN_ROOM: u32 = 3;

/// Where the driver is going.
#[derive(Debug, Clone, PartialEq)]
pub enum Near {
    Lot(String),
    Point { lat: f64, lon: f64 },
}

impl Near {
    /// `near` as a car park id (when `is_lot` says it is one) or `lat,lon`.
    pub fn parse(text: &str, is_lot: impl Fn(&str) -> bool) -> Result<Near, String> {
        if is_lot(text) {
            return Ok(Near::Lot(text.to_string()));
        }
        let bad =
            || format!("`near` must be a car park id or `lat,lon` in degrees; `{text}` is neither");
        let (lat, lon) = text.split_once(',').ok_or_else(bad)?;
        let (lat, lon): (f64, f64) = (
            lat.trim().parse().map_err(|_| bad())?,
            lon.trim().parse().map_err(|_| bad())?,
        );
        if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
            return Err(bad());
        }
        Ok(Near::Point { lat, lon })
    }
}

/// One car park as the ranking sees it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: String,
    pub name: String,
    pub spaces: u32,
    /// `[lat, lon]`, when configured.
    pub position: Option<(f64, f64)>,
    /// The latest availability record, if any has been published.
    pub latest: Option<LotNow>,
}

/// What the ranking needs of a car park's latest record: from the record
/// itself, or from its JSON in the shared view.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LotNow {
    pub available_spot_number: u32,
    pub status: ParkingStatus,
    #[serde(default)]
    pub forecast: Vec<ForecastPoint>,
}

impl From<&Availability> for LotNow {
    fn from(a: &Availability) -> Self {
        LotNow {
            available_spot_number: a.available_spot_number,
            status: a.status,
            forecast: a.forecast.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    pub id: String,
    pub name: String,
    pub rank: usize,
    /// Metres from `near`, as the crow flies; `None` without coordinates.
    pub distance_m: Option<u32>,
    pub available_now: Option<u32>,
    pub expected_free_at_arrival: Option<u32>,
    pub has_room: bool,
    pub reason: String,
}

/// Free spaces expected `minutes` from the record, interpolated between the
/// record's own figure (0 min) and its forecast points; flat beyond the last.
pub fn expected_free(a: &LotNow, minutes: u32) -> u32 {
    let mut prev = (0u32, a.available_spot_number as f64);
    for p in &a.forecast {
        let here = (p.minutes, p.available_spot_number as f64);
        if minutes <= here.0 {
            let share = (minutes - prev.0) as f64 / (here.0 - prev.0).max(1) as f64;
            return (prev.1 + (here.1 - prev.1) * share).round() as u32;
        }
        prev = here;
    }
    prev.1.round() as u32
}

fn distance_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    const EARTH_M: f64 = 6_371_000.0;
    let (la1, lo1, la2, lo2) = (
        a.0.to_radians(),
        a.1.to_radians(),
        b.0.to_radians(),
        b.1.to_radians(),
    );
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * EARTH_M * h.sqrt().asin()
}

fn room_needed(spaces: u32) -> u32 {
    ((spaces as f64 * ROOM_SHARE).ceil() as u32).max(MIN_ROOM)
}

/// Ranks `candidates` for a driver going to `near`, arriving in `arrive_in`
/// minutes.
pub fn recommend(candidates: &[Candidate], near: &Near, arrive_in: u32) -> Vec<Recommendation> {
    let origin = match near {
        Near::Point { lat, lon } => Some((*lat, *lon)),
        Near::Lot(id) => candidates
            .iter()
            .find(|c| &c.id == id)
            .and_then(|c| c.position),
    };
    let mut rows: Vec<(Recommendation, f64)> = candidates
        .iter()
        .map(|c| {
            let distance = match (origin, c.position) {
                (Some(o), Some(p)) => Some(distance_m(o, p)),
                _ => None,
            };
            let known = c.latest.as_ref().filter(|a| a.status.is_known());
            let expected = known.map(|a| expected_free(a, arrive_in));
            let has_room = expected.is_some_and(|e| e >= room_needed(c.spaces));
            let reason = match (&c.latest, expected) {
                (None, _) => "no data from this car park yet".to_string(),
                (Some(a), None) if a.status == ParkingStatus::Closed => "closed".to_string(),
                (Some(_), None) => "free spaces unknown (sensors silent)".to_string(),
                (Some(_), Some(e)) if has_room => {
                    format!("{e} free spaces expected in {arrive_in} min")
                }
                (Some(_), Some(e)) => format!(
                    "expected full on arrival: {e} of {} spaces free in {arrive_in} min",
                    c.spaces
                ),
            };
            let row = Recommendation {
                id: c.id.clone(),
                name: c.name.clone(),
                rank: 0,
                distance_m: distance.map(|d| d.round() as u32),
                available_now: c.latest.as_ref().map(|a| a.available_spot_number),
                expected_free_at_arrival: expected,
                has_room,
                reason,
            };
            (row, distance.unwrap_or(f64::INFINITY))
        })
        .collect();
    rows.sort_by(|(a, da), (b, db)| {
        b.has_room.cmp(&a.has_room).then_with(|| {
            if a.has_room {
                da.total_cmp(db)
            } else {
                b.expected_free_at_arrival
                    .cmp(&a.expected_free_at_arrival)
                    .then_with(|| da.total_cmp(db))
            }
        })
    });
    // Say why the nearest is not first when it is expected full.
    let nearest_full = rows
        .iter()
        .filter(|(_, d)| d.is_finite())
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .filter(|(r, _)| !r.has_room)
        .map(|(r, _)| (r.id.clone(), r.expected_free_at_arrival));
    let mut out: Vec<Recommendation> = rows.into_iter().map(|(r, _)| r).collect();
    for (i, r) in out.iter_mut().enumerate() {
        r.rank = i + 1;
        if let (true, Some((id, free))) = (r.has_room, &nearest_full) {
            let free = free.map_or("unknown".to_string(), |f| f.to_string());
            r.reason = format!(
                "{}; the nearest, `{id}`, is expected full ({free} free) on arrival",
                r.reason
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::OccupancyTrend;

    fn record(id: &str, spaces: u32, now: u32, forecast: [u32; 3]) -> LotNow {
        LotNow::from(&Availability {
            district: "hubin".into(),
            id: id.into(),
            kind: "OffStreetParking",
            name: id.into(),
            total_spot_number: spaces,
            available_spot_number: now,
            occupied_spot_number: spaces - now,
            unknown_spot_number: 0,
            occupancy: 0.0,
            status: ParkingStatus::SpacesAvailable,
            occupancy_trend: OccupancyTrend::Stable,
            occupancy_detection_type: "balancing",
            observation_date_time: String::new(),
            location: None,
            forecast: [15, 30, 60]
                .iter()
                .zip(forecast)
                .map(|(&minutes, n)| ForecastPoint {
                    minutes,
                    available_spot_number: n,
                })
                .collect(),
            analytics: Default::default(),
            observed_ms: 0,
            emitted_ms: 0,
        })
    }

    /// A car park of 200 spaces.
    fn candidate(id: &str, lat: f64, a: LotNow) -> Candidate {
        Candidate {
            id: id.into(),
            name: id.into(),
            spaces: 200,
            position: Some((lat, 120.0)),
            latest: Some(a),
        }
    }

    #[test]
    fn interpolates_the_forecast() {
        let a = record("a", 100, 40, [30, 10, 0]);
        assert_eq!(expected_free(&a, 0), 40);
        assert_eq!(expected_free(&a, 15), 30);
        assert_eq!(expected_free(&a, 20), 23);
        assert_eq!(expected_free(&a, 45), 5);
        assert_eq!(expected_free(&a, 90), 0);
    }

    #[test]
    fn the_nearest_forecast_full_goes_below_one_with_room() {
        let cands = vec![
            // Nearest: room now, full in half an hour.
            candidate("near", 30.0000, record("near", 200, 60, [20, 1, 0])),
            candidate("far", 30.0100, record("far", 200, 80, [80, 75, 70])),
            candidate(
                "farther",
                30.0200,
                record("farther", 200, 150, [150, 150, 150]),
            ),
        ];
        let near = Near::Point {
            lat: 30.0,
            lon: 120.0,
        };
        let r = recommend(&cands, &near, 30);
        assert_eq!(r[0].id, "far");
        assert!(r[0].has_room);
        assert!(
            r[0].reason
                .contains("the nearest, `near`, is expected full"),
            "{}",
            r[0].reason
        );
        assert_eq!(r[1].id, "farther");
        assert_eq!(r.last().unwrap().id, "near");
        assert!(!r.last().unwrap().has_room);
        // Arriving now, the nearest still has room and comes first.
        assert_eq!(recommend(&cands, &near, 0)[0].id, "near");
    }

    #[test]
    fn near_is_a_lot_or_a_point() {
        let is_lot = |s: &str| s == "p01";
        assert_eq!(Near::parse("p01", is_lot), Ok(Near::Lot("p01".into())));
        assert_eq!(
            Near::parse("30.25, 120.16", is_lot),
            Ok(Near::Point {
                lat: 30.25,
                lon: 120.16
            })
        );
        assert!(Near::parse("p99", is_lot).is_err());
        assert!(Near::parse("95,0", is_lot).is_err());
    }
}
