//! Turns parking events into availability records.

use super::forecast::{self, Now, Profile, HORIZONS_MIN};
use super::lot::{LotState, SWEEP_EVERY_MS};
use super::slots::Slots;
use crate::config::{Config, Detection};
use crate::model::{Catalog, LotIx, LotKeys, ParkingEvent, ParkingReading, Reject};
use crate::operator::{Emit, Input, Operator, StoreName};
use crate::output::{round3, Availability, ForecastPoint, OccupancyTrend, Output, ParkingStatus};
use crate::state::{Json, KeyMap, Stores};
use crate::time::format_ts;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct ParkingParams {
    pub slot_ttl: i64,
    pub almost_full: f64,
    pub min_emit_interval: i64,
    pub heartbeat: i64,
    pub lateness: i64,
}

impl ParkingParams {
    pub fn from_config(c: &Config) -> Self {
        ParkingParams {
            slot_ttl: c.parking.slot_ttl.as_ms(),
            almost_full: c.parking.almost_full,
            min_emit_interval: c.parking.min_emit_interval.as_ms(),
            heartbeat: c.parking.heartbeat.as_ms(),
            lateness: c.engine.allowed_lateness.as_ms(),
        }
    }
}

/// Trend looks this far back, and counts a change of at least 1 % of the spaces.
const TREND_SPAN_MS: i64 = 5 * 60_000;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct LotEntry {
    state: LotState,
    /// What was last published, to publish only changes.
    published: Option<(u32, ParkingStatus)>,
    last_emit_at: i64,
    /// A change waits for `min_emit_interval` to pass.
    #[serde(alias = "dirty")]
    unpublished: bool,
}

/// Each car park's counts and analytics, for the HTTP API and the metrics.
pub(crate) const LOTS: StoreName<ParkingOperator, KeyMap<LotIx, LotEntry>> =
    StoreName::new("lot", |op| &op.lots);

/// The parking operator of one input partition. Space readings are applied as they
/// arrive: each space keeps its newest reading by event time and gates only add and
/// subtract, so arrival order within the out-of-orderness hardly matters and the
/// parking app sees changes without waiting for the watermark.
#[derive(Debug, Clone)]
pub struct ParkingOperator {
    catalog: Arc<Catalog>,
    params: ParkingParams,
    lots: KeyMap<LotIx, LotEntry>,
    /// The forecast's occupancy profile per car park: a store of its own, as
    /// it is large next to the counts and changes about once a minute.
    profiles: KeyMap<LotIx, Profile>,
    slots: Slots,
    /// Earliest event time at which some car park may need publishing or sweeping.
    next_due: i64,
}

impl ParkingOperator {
    pub fn new(catalog: Arc<Catalog>, params: ParkingParams) -> Self {
        let lot_keys = Arc::new(LotKeys(catalog.clone()));
        ParkingOperator {
            catalog,
            params,
            lots: KeyMap::new(lot_keys.clone(), Arc::new(Json)),
            profiles: KeyMap::new(lot_keys.clone(), Arc::new(Json)),
            slots: Slots::new(lot_keys),
            next_due: i64::MAX,
        }
    }

    /// Parking events are not windowed; one is late once it is older than the
    /// watermark by more than the allowed lateness.
    pub fn is_late(&self, ts: i64, watermark: i64) -> bool {
        ts.saturating_add(self.params.lateness) < watermark
    }

    /// Applies an event at `ts`; `watermark` is the partition's watermark after it.
    pub fn accept(
        &mut self,
        ts: i64,
        event: &ParkingEvent<'_>,
        watermark: i64,
        out: &mut Vec<Output>,
    ) -> Result<(), Reject> {
        let info = &self.catalog.lots[event.lot as usize];
        let entry = self.lots.get_or_insert_with(event.lot, || LotEntry {
            state: LotState::new(info.spaces, info.detection),
            published: None,
            last_emit_at: i64::MIN,
            unpublished: true,
        });
        let before = entry.state.available();
        match &event.reading {
            ParkingReading::Space { slot, occupied } => entry.state.space(
                self.slots.table(event.lot),
                &info.id,
                slot,
                *occupied,
                ts,
                watermark,
                self.params.slot_ttl,
            )?,
            ParkingReading::Gate {
                entry: is_entry,
                count,
            } => entry.state.gate(*is_entry, *count, ts),
        }
        entry.unpublished |= entry.state.available() != before;
        let now = ts.max(watermark);
        let profiles = &mut self.profiles;
        let due = Self::maybe_emit(
            &self.catalog,
            &self.params,
            event.lot,
            entry,
            profiles,
            now,
            out,
        );
        self.next_due = self.next_due.min(due);
        Ok(())
    }

    /// Publishes rate-limited changes, heartbeats and sweeps silent sensors once
    /// the watermark reaches them.
    pub fn advance(&mut self, watermark: i64, out: &mut Vec<Output>) {
        if watermark < self.next_due {
            return;
        }
        let mut next_due = i64::MAX;
        for (ix, entry) in self.lots.iter_mut() {
            let slots = self.slots.table(*ix);
            if entry.state.sweep(slots, watermark, self.params.slot_ttl) {
                entry.unpublished = true;
            }
            let profiles = &mut self.profiles;
            let due = Self::maybe_emit(
                &self.catalog,
                &self.params,
                *ix,
                entry,
                profiles,
                watermark,
                out,
            );
            next_due = next_due.min(due);
        }
        self.next_due = next_due;
    }

    /// Emits when due; returns the next time this car park needs a look.
    #[allow(clippy::too_many_arguments)]
    fn maybe_emit(
        catalog: &Catalog,
        params: &ParkingParams,
        ix: LotIx,
        entry: &mut LotEntry,
        profiles: &mut KeyMap<LotIx, Profile>,
        now: i64,
        out: &mut Vec<Output>,
    ) -> i64 {
        let status = status_of(catalog, params, ix, &entry.state, now);
        let changed = entry.published != Some((entry.state.available(), status));
        let rate_ok = now >= entry.last_emit_at.saturating_add(params.min_emit_interval);
        let heartbeat = now >= entry.last_emit_at.saturating_add(params.heartbeat);
        if (changed && rate_ok) || heartbeat {
            if sample_history(&mut entry.state, now) && status.is_known() {
                profiles.get_or_insert_with(ix, Profile::default).learn(
                    &catalog.lot_district(ix).calendar,
                    now,
                    entry.state.occupancy(),
                );
            }
            let profile = profiles.get(&ix).unwrap_or(&NO_PROFILE);
            let record = availability(catalog, ix, &entry.state, profile, status, now);
            entry.published = Some((record.available_spot_number, status));
            entry.last_emit_at = now;
            entry.unpublished = false;
            out.push(Output::Availability(record));
        } else if changed {
            entry.unpublished = true;
        }
        let mut due = entry.last_emit_at.saturating_add(params.heartbeat);
        if entry.unpublished {
            due = due.min(entry.last_emit_at.saturating_add(params.min_emit_interval));
        }
        if entry.state.detection == Detection::SingleSpace {
            due = due.min(entry.state.last_sweep_ts.saturating_add(SWEEP_EVERY_MS));
        }
        due
    }

    /// The current record of every car park seen, published or not.
    /// Each car park's free spaces now.
    pub fn free_spaces(&self) -> Vec<(LotIx, u32)> {
        self.lots
            .iter()
            .map(|(ix, e)| (*ix, e.state.available()))
            .collect()
    }

    /// The record of every car park in `lots` (this operator's [`LOTS`]) as
    /// of `watermark`.
    pub(crate) fn snapshots(
        &self,
        lots: &KeyMap<LotIx, LotEntry>,
        watermark: i64,
    ) -> Vec<Availability> {
        let (catalog, params) = (&self.catalog, &self.params);
        lots.iter()
            .map(|(ix, e)| {
                let now = e.state.last_event_ts.max(watermark);
                let status = status_of(catalog, params, *ix, &e.state, now);
                let profile = self.profiles.get(ix).unwrap_or(&NO_PROFILE);
                availability(catalog, *ix, &e.state, profile, status, now)
            })
            .collect()
    }
}

/// The profile of a car park that has not learned one yet.
static NO_PROFILE: std::sync::LazyLock<Profile> = std::sync::LazyLock::new(Profile::default);

impl Operator for ParkingOperator {
    type Event<'a> = ParkingEvent<'a>;
    type Peers<'a> = ();

    /// Parking events are not windowed; one is late once it is older than the
    /// watermark by more than the allowed lateness.
    fn is_late(&self, ts: i64, watermark: i64) -> bool {
        ParkingOperator::is_late(self, ts, watermark)
    }

    fn accept(
        &mut self,
        input: &Input<'_, ParkingEvent<'_>>,
        out: &mut Emit<'_>,
    ) -> Result<(), Reject> {
        let (ts, wm) = (input.ts, input.watermark);
        ParkingOperator::accept(self, ts, input.event, wm, out.records)
    }

    fn advance(&mut self, watermark: i64, out: &mut Emit<'_>) {
        ParkingOperator::advance(self, watermark, out.records)
    }

    fn stores(&mut self) -> Stores<'_> {
        vec![
            (LOTS.name, &mut self.lots),
            ("profile", &mut self.profiles),
            ("slot", &mut self.slots),
        ]
    }

    /// Car parks and their spaces are separate records; the counts follow
    /// from the spaces once both are in. A restored car park may be due at
    /// once.
    fn finish_restore(&mut self) {
        let slots = &mut self.slots;
        for (ix, entry) in self.lots.iter_mut() {
            entry.state.recount(slots.table(*ix));
        }
        self.next_due = i64::MIN;
    }
}

fn status_of(
    catalog: &Catalog,
    params: &ParkingParams,
    ix: LotIx,
    lot: &LotState,
    now: i64,
) -> ParkingStatus {
    let info = &catalog.lots[ix as usize];
    let clock = catalog.lot_district(ix).utc_offset;
    if !info.hours.is_open(clock.minute_of_day(now)) {
        ParkingStatus::Closed
    } else if lot.unknown() * 2 > lot.spaces {
        ParkingStatus::Unknown
    } else if lot.available() == 0 {
        ParkingStatus::Full
    } else if lot.occupancy() >= params.almost_full {
        ParkingStatus::AlmostFull
    } else {
        ParkingStatus::SpacesAvailable
    }
}

/// Records the occupancy sample the trend compares against: about one a minute,
/// taken only when a record is published so the trend depends on event time
/// alone, never on who looked at the car park when. True when a sample was
/// taken (the forecast profile learns from the same samples).
fn sample_history(lot: &mut LotState, now: i64) -> bool {
    let used = lot.in_use();
    let taken = lot.history.back().is_none_or(|(t, _)| now - t >= 60_000);
    if taken {
        lot.history.push_back((now, used));
    }
    while lot.history.len() > 2 && lot.history[1].0 <= now - TREND_SPAN_MS {
        lot.history.pop_front();
    }
    taken
}

/// Arrivals minus departures per minute over the trend span, once it covers
/// two minutes.
fn trend_per_min(lot: &LotState, now: i64) -> Option<f64> {
    let (t0, u0) = *lot.history.front()?;
    let minutes = (now - t0) as f64 / 60_000.0;
    let used = lot.in_use() as f64;
    (minutes >= 2.0).then(|| (used - u0 as f64) / minutes)
}

fn forecast(
    catalog: &Catalog,
    ix: LotIx,
    lot: &LotState,
    profile: &Profile,
    status: ParkingStatus,
    now: i64,
) -> Vec<ForecastPoint> {
    if !status.is_known() {
        return Vec::new();
    }
    let start = Now {
        ts: now,
        spaces: lot.spaces,
        used: lot.in_use(),
        trend_per_min: trend_per_min(lot, now),
    };
    HORIZONS_MIN
        .iter()
        .map(|&minutes| ForecastPoint {
            minutes,
            available_spot_number: lot.spaces
                - forecast::used_in(profile, &catalog.lot_district(ix).calendar, start, minutes),
        })
        .collect()
}

fn availability(
    catalog: &Catalog,
    ix: LotIx,
    lot: &LotState,
    profile: &Profile,
    status: ParkingStatus,
    now: i64,
) -> Availability {
    let info = &catalog.lots[ix as usize];
    let used = lot.in_use();
    let reference = lot.history.front().map_or(used, |(_, u)| *u);
    let step = (lot.spaces / 100).max(1) as i64;
    let delta = used as i64 - reference as i64;
    let trend = if delta >= step {
        OccupancyTrend::Increasing
    } else if delta <= -step {
        OccupancyTrend::Decreasing
    } else {
        OccupancyTrend::Stable
    };
    Availability {
        id: info.id.clone(),
        kind: "OffStreetParking",
        name: info.name.clone(),
        district: catalog.lot_district(ix).id.clone(),
        total_spot_number: lot.spaces,
        available_spot_number: lot.available(),
        occupied_spot_number: lot.occupied,
        unknown_spot_number: lot.unknown(),
        occupancy: round3(lot.occupancy()),
        status,
        occupancy_trend: trend,
        occupancy_detection_type: info.detection_type(),
        observation_date_time: format_ts(lot.last_event_ts.max(i64::MIN + 1)),
        location: crate::output::GeoPoint::of_lot(info),
        forecast: forecast(catalog, ix, lot, profile, status, now),
        analytics: lot.analytics,
        observed_ms: lot.last_event_ts,
        emitted_ms: now,
    }
}
