//! Turns parking events into availability records.

use super::forecast::{self, Now, Profile, HORIZONS_MIN};
use super::lot::{LotState, SWEEP_EVERY_MS};
use crate::config::{Config, Detection};
use crate::model::{Catalog, LotIx, ParkingEvent, ParkingReading, Reject};
use crate::output::{round3, Availability, ForecastPoint, OccupancyTrend, Output, ParkingStatus};
use crate::state::{read, unknown_key, RestoreError, StateRecord};
use crate::time::format_ts;
use std::collections::{BTreeMap, BTreeSet};
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
struct LotEntry {
    state: LotState,
    /// What was last published, to publish only changes.
    published: Option<(u32, ParkingStatus)>,
    last_emit_at: i64,
    dirty: bool,
    /// Checkpointed under its own key, and only when it learned something: it
    /// is large next to the counts and changes about once a minute.
    #[serde(skip)]
    profile: Profile,
    #[serde(skip)]
    profile_changed: bool,
}

/// The parking operator of one input partition. Space readings are applied as they
/// arrive: each space keeps its newest reading by event time and gates only add and
/// subtract, so arrival order within the out-of-orderness hardly matters and the
/// parking app sees changes without waiting for the watermark.
#[derive(Debug, Clone)]
pub struct ParkingOperator {
    catalog: Arc<Catalog>,
    params: ParkingParams,
    lots: BTreeMap<LotIx, LotEntry>,
    /// Earliest event time at which some car park may need publishing or sweeping.
    next_due: i64,
    /// Car parks changed since the last checkpoint.
    changed: BTreeSet<LotIx>,
}

impl ParkingOperator {
    pub fn new(catalog: Arc<Catalog>, params: ParkingParams) -> Self {
        ParkingOperator {
            catalog,
            params,
            lots: BTreeMap::new(),
            next_due: i64::MAX,
            changed: BTreeSet::new(),
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
        let entry = self.lots.entry(event.lot).or_insert_with(|| LotEntry {
            state: LotState::new(info.spaces, info.detection),
            published: None,
            last_emit_at: i64::MIN,
            dirty: true,
            profile: Profile::default(),
            profile_changed: false,
        });
        self.changed.insert(event.lot);
        let before = entry.state.available();
        match &event.reading {
            ParkingReading::Space { slot, occupied } => entry.state.space(
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
        entry.dirty |= entry.state.available() != before;
        let now = ts.max(watermark);
        let due = Self::maybe_emit(&self.catalog, &self.params, event.lot, entry, now, out);
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
            self.changed.insert(*ix);
            if entry.state.sweep(watermark, self.params.slot_ttl) {
                entry.dirty = true;
            }
            let due = Self::maybe_emit(&self.catalog, &self.params, *ix, entry, watermark, out);
            next_due = next_due.min(due);
        }
        self.next_due = next_due;
    }

    /// Emits when due; returns the next time this car park needs a look.
    fn maybe_emit(
        catalog: &Catalog,
        params: &ParkingParams,
        ix: LotIx,
        entry: &mut LotEntry,
        now: i64,
        out: &mut Vec<Output>,
    ) -> i64 {
        let status = status_of(catalog, params, ix, &entry.state, now);
        let changed = entry.published != Some((entry.state.available(), status));
        let rate_ok = now >= entry.last_emit_at.saturating_add(params.min_emit_interval);
        let heartbeat = now >= entry.last_emit_at.saturating_add(params.heartbeat);
        if (changed && rate_ok) || heartbeat {
            if sample_history(&mut entry.state, now) && status.is_known() {
                entry
                    .profile
                    .learn(&catalog.calendar, now, entry.state.occupancy());
                entry.profile_changed = true;
            }
            let record = availability(catalog, ix, &entry.state, &entry.profile, status, now);
            entry.published = Some((record.available_spot_number, status));
            entry.last_emit_at = now;
            entry.dirty = false;
            out.push(Output::Availability(record));
        } else if changed {
            entry.dirty = true;
        }
        let mut due = entry.last_emit_at.saturating_add(params.heartbeat);
        if entry.dirty {
            due = due.min(entry.last_emit_at.saturating_add(params.min_emit_interval));
        }
        if entry.state.detection == Detection::SingleSpace {
            due = due.min(entry.state.last_sweep_ts.saturating_add(SWEEP_EVERY_MS));
        }
        due
    }

    /// The current record of every car park seen, published or not.
    pub fn snapshots(&self, watermark: i64) -> Vec<Availability> {
        let (catalog, params) = (&self.catalog, &self.params);
        self.lots
            .iter()
            .map(|(ix, e)| {
                let now = e.state.last_event_ts.max(watermark);
                let status = status_of(catalog, params, *ix, &e.state, now);
                availability(catalog, *ix, &e.state, &e.profile, status, now)
            })
            .collect()
    }

    /// Changelog records for every car park and space changed since the last
    /// call: one record per car park (counts, publication state, trend history)
    /// and one per space reading.
    pub fn checkpoint(&mut self, prefix: &str, out: &mut Vec<StateRecord>) {
        for ix in std::mem::take(&mut self.changed) {
            let Some(entry) = self.lots.get_mut(&ix) else {
                continue;
            };
            let id = &self.catalog.lots[ix as usize].id;
            out.push(StateRecord::put(format!("{prefix}lot/{id}"), &*entry));
            if std::mem::take(&mut entry.profile_changed) {
                out.push(StateRecord::put(
                    format!("{prefix}profile/{id}"),
                    &entry.profile,
                ));
            }
            for (slot, r) in entry.state.slots.iter_mut() {
                if r.changed {
                    r.changed = false;
                    out.push(StateRecord::put(format!("{prefix}slot/{id}/{slot}"), &*r));
                }
            }
        }
    }

    /// Applies one changelog record (key without the partition prefix). Car parks
    /// sort before their spaces (`lot/` < `slot/`), which restore relies on.
    pub fn restore(&mut self, key: &str, value: &[u8]) -> Result<(), RestoreError> {
        if let Some(lot_id) = key.strip_prefix("lot/") {
            let Some(ix) = self.catalog.lot(lot_id) else {
                tracing::warn!(
                    lot = lot_id,
                    "checkpointed car park is no longer configured; its state is dropped"
                );
                return Ok(());
            };
            self.lots.insert(ix, read(key, value)?);
            self.next_due = i64::MIN;
        } else if let Some(lot_id) = key.strip_prefix("profile/") {
            // `lot/` sorts before `profile/`: the car park is in already.
            if let Some(entry) = self
                .catalog
                .lot(lot_id)
                .and_then(|ix| self.lots.get_mut(&ix))
            {
                entry.profile = read(key, value)?;
            }
        } else if let Some(rest) = key.strip_prefix("slot/") {
            let (lot_id, slot) = rest.split_once('/').ok_or_else(|| unknown_key(key))?;
            let Some(entry) = self
                .catalog
                .lot(lot_id)
                .and_then(|ix| self.lots.get_mut(&ix))
            else {
                return Ok(());
            };
            let mut reading: crate::parking::lot::SlotReading = read(key, value)?;
            reading.changed = false;
            entry.state.restore_space(slot, reading);
        } else {
            return Err(unknown_key(key));
        }
        Ok(())
    }

    /// Rebuilds derived counts once every record is in.
    pub fn finish_restore(&mut self) {
        for entry in self.lots.values_mut() {
            entry.state.recount();
        }
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
    if !info.hours.is_open(catalog.utc_offset.minute_of_day(now)) {
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
                - forecast::used_in(profile, &catalog.calendar, start, minutes),
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
        total_spot_number: lot.spaces,
        available_spot_number: lot.available(),
        occupied_spot_number: lot.occupied,
        unknown_spot_number: lot.unknown(),
        occupancy: round3(lot.occupancy()),
        status,
        occupancy_trend: trend,
        occupancy_detection_type: info.detection_type(),
        observation_date_time: format_ts(lot.last_event_ts.max(i64::MIN + 1)),
        location: info.location(),
        forecast: forecast(catalog, lot, profile, status, now),
        analytics: lot.analytics,
        observed_ms: lot.last_event_ts,
        emitted_ms: now,
    }
}
