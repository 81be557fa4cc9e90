//! The operator of a partition of `crowdpark.partials-by-district`: for each
//! district on it, the district KPIs of each closed window and the car
//! parks' roll-up.

use super::state::{CrowdWindow, DistrictState, SalesWindow};
use super::Partial;
use crate::config::Config;
use crate::model::{Catalog, DistrictIx, Reject};
use crate::operator::{Emit, Input, Operator, StoreName};
use crate::output::{DistrictRecord, DistrictScope, Output, ParkingGroup};
use crate::parking::{DistrictRollup, LotFigures};
use crate::payments::Tally;
use crate::state::{Json, KeyFormat, KeyMap, Stores};
use crate::time::format_ts;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Each district's open windows and car park roll-up, for the HTTP API.
pub(crate) const DISTRICTS: StoreName<DistrictOperator, KeyMap<DistrictIx, DistrictState>> =
    StoreName::new("district", |op| &op.states);

/// Sums each district's zone windows once every sending partition has
/// passed them, and rolls its car parks up. One task holds every district
/// whose id hashes to its partition of the district topic.
pub struct DistrictOperator {
    catalog: Arc<Catalog>,
    /// The car park roll-up's settings, by district index.
    rollups: Vec<DistrictRollup>,
    lateness: i64,
    payments_window_ms: i64,
    /// Each district's state, changelogged one record per district.
    states: KeyMap<DistrictIx, DistrictState>,
}

impl DistrictOperator {
    pub fn new(config: &Config, catalog: Arc<Catalog>) -> Self {
        let rollups = catalog
            .districts
            .iter()
            .map(|d| {
                DistrictRollup::new(
                    d.id.clone(),
                    d.name.clone(),
                    config.parking.min_emit_interval.as_ms(),
                    config.parking.heartbeat.as_ms(),
                )
            })
            .collect();
        DistrictOperator {
            rollups,
            states: KeyMap::new(Arc::new(DistrictKeys(catalog.clone())), Arc::new(Json)),
            catalog,
            lateness: config.engine.allowed_lateness.as_ms(),
            payments_window_ms: config.payments.window.as_ms().max(1),
        }
    }

    /// Each district's car park roll-up as it stands (the HTTP view's
    /// district records), for the districts this task holds.
    /// `states` is this operator's [`DISTRICTS`].
    pub(crate) fn current(&self, states: &KeyMap<DistrictIx, DistrictState>) -> Vec<ParkingGroup> {
        states
            .iter()
            .filter_map(|(d, s)| self.rollups[*d as usize].current(&s.rollup))
            .collect()
    }

    /// The district a partial's zone or car park is in; `None` for one no
    /// longer configured (a partial sent before a configuration change).
    fn district_of(&self, partial: &Partial) -> Option<DistrictIx> {
        let c = &self.catalog;
        match partial {
            Partial::Crowd { zone, .. } | Partial::Sales { zone, .. } => {
                Some(c.zones[c.zone(zone)? as usize].district)
            }
            Partial::Free { lot, .. } | Partial::Lot { lot, .. } => {
                Some(c.lots[c.lot(lot)? as usize].district)
            }
        }
    }

    fn record(
        &self,
        d: DistrictIx,
        scope: DistrictScope,
        (start, end): (i64, i64),
    ) -> DistrictRecord {
        DistrictRecord {
            kind: "district",
            district: self.catalog.districts[d as usize].id.clone(),
            scope,
            window_start: format_ts(start),
            window_end: format_ts(end),
            people: None,
            zones_by_level: None,
            available_spot_number: None,
            transactions: None,
            amount: None,
            sales_per_m2: None,
            entries: None,
            transactions_per_visitor: None,
            window_ms: (start, end),
        }
    }

    fn crowd_record(&mut self, d: DistrictIx, start: i64, w: CrowdWindow) -> DistrictRecord {
        let mut r = self.record(d, DistrictScope::Crowd, (start, w.end));
        let tenths: i64 = w.zones.values().map(|z| z.people_tenths).sum();
        r.people = Some(tenths as f64 / 10.0);
        let mut levels: BTreeMap<&'static str, u32> =
            ["green", "yellow", "red"].iter().map(|l| (*l, 0)).collect();
        for z in w.zones.values() {
            let level = super::LEVELS
                .get(z.level as usize)
                .copied()
                .unwrap_or_default();
            *levels.entry(level.as_str()).or_default() += 1;
        }
        r.zones_by_level = Some(levels);
        let payments_window_ms = self.payments_window_ms;
        let state = self
            .states
            .get_mut(&d)
            .expect("a district closing a window");
        r.available_spot_number = state.free_at(w.end);
        let entered: u64 = w.zones.values().map(|z| z.entered).sum();
        state.entered(start, entered, payments_window_ms);
        r
    }

    fn sales_record(&mut self, d: DistrictIx, start: i64, w: SalesWindow) -> DistrictRecord {
        let mut r = self.record(d, DistrictScope::Payments, (start, w.end));
        let mut tally = Tally::default();
        for t in w.zones.values() {
            tally.absorb(t);
        }
        let catalog = &self.catalog;
        let area = catalog.district_selling_area_centi(d);
        let figures = tally.figures(&catalog.currency, area);
        let state = self
            .states
            .get_mut(&d)
            .expect("a district closing a window");
        let entries = state.entries.remove(&start);
        r.transactions = Some(figures.transactions);
        r.transactions_per_visitor = entries
            .filter(|e| *e > 0)
            .map(|e| (figures.transactions as f64 / e as f64 * 1000.0).round() / 1000.0);
        r.entries = entries;
        r.amount = Some(figures.amount);
        r.sales_per_m2 = figures.sales_per_m2;
        r
    }

    /// A car park's new figures: into its district's roll-up, which may
    /// publish.
    fn lot(&mut self, d: DistrictIx, partial: &Partial, out: &mut Vec<Output>) {
        let Partial::Lot {
            lot,
            total,
            available,
            occupied,
            observed,
            emitted,
        } = partial
        else {
            return;
        };
        let figures = LotFigures {
            total: *total,
            available: *available,
            occupied: *occupied,
            observed: *observed,
        };
        let Some(state) = self.states.get_mut(&d) else {
            return;
        };
        if let Some(g) = self.rollups[d as usize].update(&mut state.rollup, lot, figures, *emitted)
        {
            out.push(Output::Group(g));
        }
    }
}

/// Districts by id. The one record a checkpoint from before several
/// districts left (key `district`, no id) is not read: it stays in the
/// compacted changelog beside the newer per-district records, and read in
/// any order it could overwrite them. Only the windows open at the upgrade
/// are lost with it.
struct DistrictKeys(Arc<Catalog>);

impl KeyFormat<DistrictIx> for DistrictKeys {
    fn write(&self, key: &DistrictIx) -> Cow<'_, str> {
        Cow::Borrowed(&self.0.districts[*key as usize].id)
    }

    fn read(&self, text: &str) -> Option<DistrictIx> {
        self.0.district(text)
    }
}

impl Operator for DistrictOperator {
    type Event<'a> = Partial;
    type Peers<'a> = ();

    /// Never: a partial for a window already published is a replay, which
    /// the state recognises and ignores; it is not bad input.
    fn is_late(&self, _ts: i64, _watermark: i64) -> bool {
        false
    }

    fn accept(&mut self, input: &Input<'_, Partial>, out: &mut Emit<'_>) -> Result<(), Reject> {
        let partial = input.event;
        let Some(d) = self.district_of(partial) else {
            return Ok(());
        };
        let state = self.states.get_or_insert_with(d, DistrictState::default);
        if state.take(partial) && matches!(*partial, Partial::Lot { .. }) {
            self.lot(d, partial, out.records);
        }
        Ok(())
    }

    /// Publishes the windows every sending partition has passed, crowd
    /// windows first: their entries count towards the payments windows.
    fn advance(&mut self, watermark: i64, out: &mut Emit<'_>) {
        let done = watermark.saturating_sub(self.lateness);
        // Only districts with a window to close are touched: a write marks
        // the district for the next checkpoint.
        let due: Vec<DistrictIx> = self
            .states
            .iter()
            .filter(|(_, s)| s.closes_any(done))
            .map(|(d, _)| *d)
            .collect();
        for d in due {
            while let Some((start, w)) = self.states.get_mut(&d).and_then(|s| s.close_crowd(done)) {
                let r = self.crowd_record(d, start, w);
                out.records.push(Output::District(r));
            }
            while let Some((start, w)) = self.states.get_mut(&d).and_then(|s| s.close_sales(done)) {
                let r = self.sales_record(d, start, w);
                out.records.push(Output::District(r));
            }
        }
    }

    fn stores(&mut self) -> Stores<'_> {
        vec![(DISTRICTS.name, &mut self.states)]
    }
}
