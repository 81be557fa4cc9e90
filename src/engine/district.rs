//! District KPIs: one record per closed crowd window and per closed payments
//! window, summed over the zones this instance owns.
//!
//! A window's zone records close partition by partition, each when its own
//! watermark passes; the district record waits until every partition of the
//! stage has passed the window (the slowest watermark), so it sums all of
//! them and is published once.

use crate::config::Config;
use crate::model::{Catalog, InputTopic};
use crate::output::{Availability, DistrictRecord, DistrictScope, Output, ParkingGroup};
use crate::parking::DistrictRollup;
use crate::payments::Tally;
use crate::time::format_ts;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a worker's engine hands to a district stage it shares with other
/// workers ([`Engine::detach_district`](super::Engine::detach_district)).
#[derive(Debug, Clone)]
pub enum DistrictInput {
    /// A car park, zone window or payments window record the worker published.
    Record(Output),
    /// A restored car park, as already published.
    Seed(Availability),
    /// People entering through counting lines at an event time.
    Entered(i64, u32),
    /// A partition's watermark.
    Watermark(InputTopic, i32, i64),
    /// A partition the worker no longer holds.
    Forget(InputTopic, i32),
}

/// The district-wide stage after the partitions: the car parks' roll-up and
/// the district KPIs. Inline in a single engine; shared by the workers of a
/// parallel run, each feeding it [`DistrictInput`]s under one lock, so its
/// records go out in the order they were made.
#[derive(Debug)]
pub struct District {
    rollup: DistrictRollup,
    kpis: DistrictKpis,
    catalog: Arc<Catalog>,
    lateness: i64,
    /// Shared: every partition's watermark, as the workers last reported.
    watermarks: BTreeMap<(InputTopic, i32), i64>,
}

impl District {
    pub fn new(config: &Config, catalog: Arc<Catalog>) -> Self {
        District {
            rollup: DistrictRollup::new(
                config.district.id.clone(),
                config.district.name.clone(),
                config.parking.min_emit_interval.as_ms(),
                config.parking.heartbeat.as_ms(),
            ),
            kpis: DistrictKpis::new(config.payments.window.as_ms()),
            catalog,
            lateness: config.engine.allowed_lateness.as_ms(),
            watermarks: BTreeMap::new(),
        }
    }

    /// The district roll-up from the latest records.
    pub fn current(&self) -> Option<ParkingGroup> {
        self.rollup.current()
    }

    /// Takes one input; a record comes back, for the caller to roll up.
    pub(super) fn take(&mut self, input: DistrictInput) -> Option<Output> {
        match input {
            DistrictInput::Record(r) => return Some(r),
            DistrictInput::Seed(a) => self.rollup.seed(&a),
            DistrictInput::Entered(ts, n) => self.kpis.entered(ts, n),
            DistrictInput::Watermark(t, p, wm) => {
                self.watermarks.insert((t, p), wm);
            }
            DistrictInput::Forget(t, p) => {
                self.watermarks.remove(&(t, p));
            }
        }
        None
    }

    /// Rolls up the records among `out[first..]`, appending what is due;
    /// `watermark` gives a topic's slowest partition watermark.
    pub(super) fn roll_up(
        &mut self,
        first: usize,
        out: &mut Vec<Output>,
        watermark: impl Fn(InputTopic) -> Option<i64>,
    ) {
        let mut windows = false;
        for i in first..out.len() {
            match &out[i] {
                Output::Availability(a) => {
                    if let Some(g) = self.rollup.update(a) {
                        out.push(Output::Group(g));
                    }
                }
                Output::Density(_) | Output::Payments(_) => windows = true,
                _ => {}
            }
        }
        if windows {
            self.kpis.observe(&out[first..]);
        }
        if self.kpis.has_pending() {
            let lateness = self.lateness;
            // How far the windows of one topic's partitions are final.
            let done = |t| watermark(t).map(|w: i64| w.saturating_sub(lateness));
            let crowd_done = done(InputTopic::CrowdCounts);
            let payments_done = done(InputTopic::PaymentsByZone);
            let free = self.rollup.available();
            self.kpis
                .publish(&self.catalog, crowd_done, payments_done, free, out);
        }
    }

    /// Shared: takes a worker's inputs (draining them) and appends the
    /// district records they make due.
    pub fn absorb(&mut self, inputs: &mut Vec<DistrictInput>, out: &mut Vec<Output>) {
        let first = out.len();
        for input in inputs.drain(..) {
            out.extend(self.take(input));
        }
        let records = out.len();
        let watermarks = std::mem::take(&mut self.watermarks);
        let slowest = |topic: InputTopic| {
            watermarks
                .iter()
                .filter(|((t, _), _)| *t == topic)
                .map(|(_, wm)| *wm)
                .min()
        };
        self.roll_up(first, out, slowest);
        self.watermarks = watermarks;
        // The workers published their own records; only the district's are new.
        out.drain(first..records);
    }
}

#[derive(Debug, Default)]
struct CrowdWindow {
    end: i64,
    people: f64,
    levels: BTreeMap<&'static str, u32>,
}

#[derive(Debug, Default)]
struct PaymentsWindow {
    end: i64,
    tally: Tally,
}

#[derive(Debug, Default)]
pub(crate) struct DistrictKpis {
    crowd: BTreeMap<i64, CrowdWindow>,
    payments: BTreeMap<i64, PaymentsWindow>,
    /// People counted entering through counting lines, per payments window.
    entries: BTreeMap<i64, u64>,
    payments_window_ms: i64,
}

/// Entries are kept this many payments windows back at most (a window whose
/// payments never close, say with no sales at all, must not grow memory).
const KEEP_WINDOWS: i64 = 48;

impl DistrictKpis {
    pub fn new(payments_window_ms: i64) -> Self {
        DistrictKpis {
            payments_window_ms: payments_window_ms.max(1),
            ..Default::default()
        }
    }

    /// People entering at event time `ts` (accepted counting-line reports).
    pub fn entered(&mut self, ts: i64, people: u32) {
        let start = ts - ts.rem_euclid(self.payments_window_ms);
        *self.entries.entry(start).or_default() += people as u64;
        let oldest = start - KEEP_WINDOWS * self.payments_window_ms;
        // split_off builds a new tree; only pay for it when something expired.
        if self
            .entries
            .first_key_value()
            .is_some_and(|(k, _)| *k < oldest)
        {
            self.entries = self.entries.split_off(&oldest);
        }
    }

    /// Zone windows wait for the other partitions.
    pub fn has_pending(&self) -> bool {
        !self.crowd.is_empty() || !self.payments.is_empty()
    }

    /// Takes in the zone records among `outputs`.
    pub fn observe(&mut self, outputs: &[Output]) {
        for o in outputs {
            match o {
                Output::Density(d) => {
                    let w = self.crowd.entry(d.window_ms.0).or_default();
                    w.end = d.window_ms.1;
                    w.people += d.people_avg;
                    *w.levels.entry(d.level.as_str()).or_default() += 1;
                }
                Output::Payments(p) => {
                    let w = self.payments.entry(p.window_ms.0).or_default();
                    w.end = p.window_ms.1;
                    w.tally.absorb(&p.tally);
                }
                _ => {}
            }
        }
    }

    /// Publishes the windows every partition has closed: crowd windows whose
    /// end all crowd partitions' watermarks passed (`crowd_done`), payments
    /// windows likewise (`payments_done`).
    pub fn publish(
        &mut self,
        catalog: &Catalog,
        crowd_done: Option<i64>,
        payments_done: Option<i64>,
        free_spaces: Option<u32>,
        out: &mut Vec<Output>,
    ) {
        let record = |scope, (start, end): (i64, i64)| DistrictRecord {
            kind: "district",
            district: catalog.district_id.clone(),
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
        };
        while let Some(entry) = self.crowd.first_entry() {
            if crowd_done.is_none_or(|done| entry.get().end > done) {
                break;
            }
            let (start, w) = entry.remove_entry();
            let mut r = record(DistrictScope::Crowd, (start, w.end));
            r.people = Some((w.people * 10.0).round() / 10.0);
            let mut levels: BTreeMap<&'static str, u32> =
                ["green", "yellow", "red"].iter().map(|l| (*l, 0)).collect();
            levels.extend(w.levels);
            r.zones_by_level = Some(levels);
            r.available_spot_number = free_spaces;
            out.push(Output::District(r));
        }
        while let Some(entry) = self.payments.first_entry() {
            if payments_done.is_none_or(|done| entry.get().end > done) {
                break;
            }
            let (start, w) = entry.remove_entry();
            let mut r = record(DistrictScope::Payments, (start, w.end));
            let figures = w
                .tally
                .figures(&catalog.currency, catalog.district_selling_area_centi());
            let entries = self.entries.remove(&start);
            r.transactions = Some(figures.transactions);
            r.transactions_per_visitor = entries
                .filter(|e| *e > 0)
                .map(|e| (figures.transactions as f64 / e as f64 * 1000.0).round() / 1000.0);
            r.entries = entries;
            r.amount = Some(figures.amount);
            r.sales_per_m2 = figures.sales_per_m2;
            out.push(Output::District(r));
        }
    }
}
