//! Windows of payments per zone and category.

use super::Tally;
use crate::config::Config;
use crate::model::{Catalog, CategoryIx, LotIx, Payment, ZoneIx};
use crate::output::{Output, PaymentStats};
use crate::state::{read, unknown_key, RestoreError, StateRecord};
use crate::time::{format_ts, WindowSpec, WindowStore};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct PaymentsParams {
    pub window: WindowSpec,
    pub lateness: i64,
}

impl PaymentsParams {
    pub fn from_config(c: &Config) -> Self {
        let size = c.payments.window.as_ms();
        PaymentsParams {
            window: WindowSpec::hopping(
                size,
                c.payments.window_advance.map_or(size, |a| a.as_ms()),
            ),
            lateness: c.engine.allowed_lateness.as_ms(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ZoneWindow {
    pub total: Tally,
    pub by_category: BTreeMap<CategoryIx, Tally>,
}

/// The payments operator of one input partition.
#[derive(Debug, Clone)]
pub struct PaymentsOperator {
    catalog: Arc<Catalog>,
    windows: WindowStore<ZoneIx, ZoneWindow>,
    /// Running totals since start, for the `crowdpark_payments_*` counters.
    totals: BTreeMap<(ZoneIx, CategoryIx), Tally>,
    /// Running totals of payments that name a car park.
    lot_totals: BTreeMap<LotIx, Tally>,
    changed_windows: BTreeSet<i64>,
    closed_windows: BTreeSet<i64>,
    totals_changed: bool,
}

impl PaymentsOperator {
    pub fn new(catalog: Arc<Catalog>, params: PaymentsParams) -> Self {
        PaymentsOperator {
            catalog,
            windows: WindowStore::new(params.window, params.lateness),
            totals: BTreeMap::new(),
            lot_totals: BTreeMap::new(),
            changed_windows: BTreeSet::new(),
            closed_windows: BTreeSet::new(),
            totals_changed: false,
        }
    }

    pub fn is_late(&self, ts: i64, watermark: i64) -> bool {
        self.windows.is_late(ts, watermark)
    }

    pub fn accept(&mut self, ts: i64, p: &Payment) {
        self.changed_windows
            .extend(self.windows.spec().starts_of(ts));
        self.totals_changed = true;
        self.windows.update(ts, &p.zone, |w| {
            w.total.add(p.amount_fen);
            w.by_category
                .entry(p.category)
                .or_default()
                .add(p.amount_fen);
        });
        self.totals
            .entry((p.zone, p.category))
            .or_default()
            .add(p.amount_fen);
        if let Some(lot) = p.lot {
            self.lot_totals.entry(lot).or_default().add(p.amount_fen);
        }
    }

    pub fn advance(&mut self, watermark: i64, out: &mut Vec<Output>) {
        let (catalog, changed, closed) = (
            &self.catalog,
            &mut self.changed_windows,
            &mut self.closed_windows,
        );
        self.windows.close_until(watermark, |start, end, zone, w| {
            changed.remove(&start);
            closed.insert(start);
            let currency = &catalog.currency;
            out.push(Output::Payments(PaymentStats {
                zone: catalog.zones[zone as usize].id.clone(),
                window_start: format_ts(start),
                window_end: format_ts(end),
                figures: w
                    .total
                    .figures(currency, catalog.zone_selling_area_centi(zone)),
                by_category: w
                    .by_category
                    .iter()
                    .map(|(k, t)| {
                        (
                            catalog.categories[*k as usize].clone(),
                            t.figures(currency, catalog.category_selling_area_centi(zone, *k)),
                        )
                    })
                    .collect(),
                window_ms: (start, end),
                tally: w.total,
            }));
        });
    }

    /// Changelog records for the windows and totals changed since the last call.
    /// Zones and categories are written by id, so a reordered configuration
    /// still restores correctly.
    pub fn checkpoint(&mut self, prefix: &str, out: &mut Vec<StateRecord>) {
        let zone_id = |z: ZoneIx| self.catalog.zones[z as usize].id.as_str();
        let cat_id = |k: CategoryIx| self.catalog.categories[k as usize].as_str();
        for start in std::mem::take(&mut self.changed_windows) {
            if let Some(w) = self.windows.get(start) {
                let named: Vec<NamedWindow<'_>> = w
                    .iter()
                    .map(|(z, zw)| NamedWindow {
                        zone: zone_id(*z),
                        total: zw.total,
                        by_category: zw
                            .by_category
                            .iter()
                            .map(|(k, t)| (cat_id(*k), *t))
                            .collect(),
                    })
                    .collect();
                out.push(StateRecord::put(format!("{prefix}win/{start}"), &named));
            }
        }
        for start in std::mem::take(&mut self.closed_windows) {
            out.push(StateRecord::delete(format!("{prefix}win/{start}")));
        }
        if std::mem::take(&mut self.totals_changed) {
            let named: Vec<(&str, &str, Tally)> = self
                .totals
                .iter()
                .map(|((z, k), t)| (zone_id(*z), cat_id(*k), *t))
                .collect();
            out.push(StateRecord::put(format!("{prefix}totals"), &named));
            if !self.lot_totals.is_empty() {
                let by_lot: Vec<(&str, Tally)> = self
                    .lot_totals
                    .iter()
                    .map(|(l, t)| (self.catalog.lots[*l as usize].id.as_str(), *t))
                    .collect();
                out.push(StateRecord::put(format!("{prefix}lot-totals"), &by_lot));
            }
        }
    }

    /// Applies one changelog record (key without the partition prefix).
    pub fn restore(&mut self, key: &str, value: &[u8]) -> Result<(), RestoreError> {
        let catalog = self.catalog.clone();
        if let Some(start) = key.strip_prefix("win/") {
            let start: i64 = start.parse().map_err(|_| unknown_key(key))?;
            let named: Vec<OwnedWindow> = read(key, value)?;
            let mut aggs = BTreeMap::new();
            for w in named {
                let Some(zone) = catalog.zone(&w.zone) else {
                    continue;
                };
                let by_category = w
                    .by_category
                    .into_iter()
                    .filter_map(|(k, t)| Some((catalog.category(&k)?, t)))
                    .collect();
                aggs.insert(
                    zone,
                    ZoneWindow {
                        total: w.total,
                        by_category,
                    },
                );
            }
            self.windows.insert_window(start, aggs);
        } else if key == "totals" {
            let named: Vec<(String, String, Tally)> = read(key, value)?;
            self.totals = named
                .into_iter()
                .filter_map(|(z, k, t)| Some(((catalog.zone(&z)?, catalog.category(&k)?), t)))
                .collect();
        } else if key == "lot-totals" {
            let named: Vec<(String, Tally)> = read(key, value)?;
            self.lot_totals = named
                .into_iter()
                .filter_map(|(l, t)| Some((catalog.lot(&l)?, t)))
                .collect();
        } else {
            return Err(unknown_key(key));
        }
        Ok(())
    }

    /// Running totals per zone and category.
    pub fn totals(&self) -> &BTreeMap<(ZoneIx, CategoryIx), Tally> {
        &self.totals
    }

    /// Running totals per car park, of the payments that name one.
    pub fn lot_totals(&self) -> &BTreeMap<LotIx, Tally> {
        &self.lot_totals
    }
}

#[derive(serde::Serialize)]
struct NamedWindow<'a> {
    zone: &'a str,
    total: Tally,
    by_category: BTreeMap<&'a str, Tally>,
}

#[derive(serde::Deserialize)]
struct OwnedWindow {
    zone: String,
    total: Tally,
    by_category: BTreeMap<String, Tally>,
}
