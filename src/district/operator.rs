//! The operator of a district's partition of `crowdpark.partials-by-district`:
//! the district KPIs of each closed window and the car parks' roll-up.

use super::state::{CrowdWindow, DistrictState, SalesWindow};
use super::Partial;
use crate::config::Config;
use crate::model::{Catalog, Event, Reject};
use crate::operator::{foreign_event, Emit, Input, Operator};
use crate::output::{DistrictRecord, DistrictScope, Output, ParkingGroup};
use crate::parking::{DistrictRollup, LotFigures};
use crate::payments::Tally;
use crate::state::{Cell, Json, Stores};
use crate::time::format_ts;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Sums a district's zone windows once every sending partition has passed
/// them, and rolls its car parks up.
pub struct DistrictOperator {
    catalog: Arc<Catalog>,
    rollup: DistrictRollup,
    lateness: i64,
    payments_window_ms: i64,
    state: Cell<DistrictState>,
}

impl DistrictOperator {
    pub fn new(config: &Config, catalog: Arc<Catalog>) -> Self {
        DistrictOperator {
            rollup: DistrictRollup::new(
                config.district.id.clone(),
                config.district.name.clone(),
                config.parking.min_emit_interval.as_ms(),
                config.parking.heartbeat.as_ms(),
            ),
            catalog,
            lateness: config.engine.allowed_lateness.as_ms(),
            payments_window_ms: config.payments.window.as_ms().max(1),
            state: Cell::new(DistrictState::default(), Arc::new(Json)),
        }
    }

    /// The car parks' roll-up as it stands (the HTTP view's district record).
    pub fn current(&self) -> Option<ParkingGroup> {
        self.rollup.current(&self.state.get().rollup)
    }

    fn record(&self, scope: DistrictScope, (start, end): (i64, i64)) -> DistrictRecord {
        DistrictRecord {
            kind: "district",
            district: self.catalog.district_id.clone(),
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

    fn crowd_record(&mut self, start: i64, w: CrowdWindow) -> DistrictRecord {
        let mut r = self.record(DistrictScope::Crowd, (start, w.end));
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
        let state = self.state.get_mut();
        r.available_spot_number = state.free_at(w.end);
        let entered: u64 = w.zones.values().map(|z| z.entered).sum();
        state.entered(start, entered, self.payments_window_ms);
        r
    }

    fn sales_record(&mut self, start: i64, w: SalesWindow) -> DistrictRecord {
        let mut r = self.record(DistrictScope::Payments, (start, w.end));
        let mut tally = Tally::default();
        for t in w.zones.values() {
            tally.absorb(t);
        }
        let catalog = &self.catalog;
        let figures = tally.figures(&catalog.currency, catalog.district_selling_area_centi());
        let entries = self.state.get_mut().entries.remove(&start);
        r.transactions = Some(figures.transactions);
        r.transactions_per_visitor = entries
            .filter(|e| *e > 0)
            .map(|e| (figures.transactions as f64 / e as f64 * 1000.0).round() / 1000.0);
        r.entries = entries;
        r.amount = Some(figures.amount);
        r.sales_per_m2 = figures.sales_per_m2;
        r
    }

    /// A car park's new figures: into the free-space history, and into the
    /// roll-up, which may publish.
    fn lot(&mut self, partial: &Partial, out: &mut Vec<Output>) {
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
        let state = &mut self.state.get_mut().rollup;
        if let Some(g) = self.rollup.update(state, lot, figures, *emitted) {
            out.push(Output::Group(g));
        }
    }
}

impl Operator for DistrictOperator {
    /// Never: a partial for a window already published is a replay, which
    /// the state recognises and ignores; it is not bad input.
    fn is_late(&self, _ts: i64, _watermark: i64) -> bool {
        false
    }

    fn accept(&mut self, input: &Input<'_, '_>, out: &mut Emit<'_>) -> Result<(), Reject> {
        let Event::Partial(partial) = input.event else {
            return Err(foreign_event());
        };
        if self.state.get_mut().take(partial) && matches!(**partial, Partial::Lot { .. }) {
            self.lot(partial, out.records);
        }
        Ok(())
    }

    /// Publishes the windows every sending partition has passed, crowd
    /// windows first: their entries count towards the payments windows.
    fn advance(&mut self, watermark: i64, out: &mut Emit<'_>) {
        let done = watermark.saturating_sub(self.lateness);
        while let Some((start, w)) = self.state.get_mut().close_crowd(done) {
            let r = self.crowd_record(start, w);
            out.records.push(Output::District(r));
        }
        while let Some((start, w)) = self.state.get_mut().close_sales(done) {
            let r = self.sales_record(start, w);
            out.records.push(Output::District(r));
        }
    }

    fn stores(&mut self) -> Stores<'_> {
        vec![("district", &mut self.state)]
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
