//! Windows of payments per zone and category.

use super::Tally;
use crate::config::Config;
use crate::model::{Catalog, CategoryIx, LotIx, Payment, Reject, ZoneIx};
use crate::operator::{Emit, Input, Operator, StoreName};
use crate::output::{Output, PaymentStats};
use crate::state::{read, Cell, RestoreError, Stores, ValueFormat};
use crate::time::{format_ts, WindowSpec, WindowStore};
use std::collections::BTreeMap;
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

/// Running totals by zone and category.
pub(crate) type ZoneTotals = BTreeMap<(ZoneIx, CategoryIx), Tally>;

/// Running totals per zone and category since start, for the metrics.
pub(crate) const TOTALS: StoreName<PaymentsOperator, Cell<ZoneTotals>> =
    StoreName::new("totals", |op| &op.totals);
/// Running totals per car park, of the payments that name one.
pub(crate) const LOT_TOTALS: StoreName<PaymentsOperator, Cell<BTreeMap<LotIx, Tally>>> =
    StoreName::new("lot-totals", |op| &op.lot_totals);

/// The payments operator of one input partition.
#[derive(Debug, Clone)]
pub struct PaymentsOperator {
    catalog: Arc<Catalog>,
    windows: WindowStore<ZoneIx, ZoneWindow>,
    /// Running totals since start, for the `crowdpark_payments_*` counters.
    totals: Cell<ZoneTotals>,
    /// Running totals of payments that name a car park.
    lot_totals: Cell<BTreeMap<LotIx, Tally>>,
}

impl PaymentsOperator {
    pub fn new(catalog: Arc<Catalog>, params: PaymentsParams) -> Self {
        let ids = Arc::new(ById(catalog.clone()));
        PaymentsOperator {
            catalog,
            windows: WindowStore::new(params.window, params.lateness, ids.clone()),
            totals: Cell::new(BTreeMap::new(), ids.clone()),
            lot_totals: Cell::new(BTreeMap::new(), ids),
        }
    }

    pub fn is_late(&self, ts: i64, watermark: i64) -> bool {
        self.windows.is_late(ts, watermark)
    }

    pub fn accept(&mut self, ts: i64, p: &Payment) {
        self.windows.update(ts, &p.zone, |w| {
            w.total.add(p.amount_fen);
            w.by_category
                .entry(p.category)
                .or_default()
                .add(p.amount_fen);
        });
        self.totals
            .get_mut()
            .entry((p.zone, p.category))
            .or_default()
            .add(p.amount_fen);
        if let Some(lot) = p.lot {
            let totals = self.lot_totals.get_mut();
            totals.entry(lot).or_default().add(p.amount_fen);
        }
    }

    pub fn advance(&mut self, watermark: i64, out: &mut Vec<Output>) {
        let catalog = &self.catalog;
        self.windows.close_until(watermark, |start, end, zone, w| {
            let currency = &catalog.currency;
            out.push(Output::Payments(PaymentStats {
                zone: catalog.zones[zone as usize].id.clone(),
                district: catalog.zone_district(zone).id.clone(),
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
}

impl Operator for PaymentsOperator {
    type Event<'a> = Payment;
    type Peers<'a> = ();

    fn is_late(&self, ts: i64, watermark: i64) -> bool {
        PaymentsOperator::is_late(self, ts, watermark)
    }

    fn accept(&mut self, input: &Input<'_, Payment>, _out: &mut Emit<'_>) -> Result<(), Reject> {
        PaymentsOperator::accept(self, input.ts, input.event);
        Ok(())
    }

    fn advance(&mut self, watermark: i64, out: &mut Emit<'_>) {
        PaymentsOperator::advance(self, watermark, out.records)
    }

    fn stores(&mut self) -> Stores<'_> {
        vec![
            ("win", &mut self.windows),
            (TOTALS.name, &mut self.totals),
            (LOT_TOTALS.name, &mut self.lot_totals),
        ]
    }
}

/// The stores' values with zones, categories and car parks written by id, so
/// a reordered configuration still restores correctly; entries of ones no
/// longer configured are dropped.
struct ById(Arc<Catalog>);

impl ById {
    fn zone(&self, z: ZoneIx) -> &str {
        &self.0.zones[z as usize].id
    }

    fn category(&self, k: CategoryIx) -> &str {
        &self.0.categories[k as usize]
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("state types serialise")
}

impl ValueFormat<BTreeMap<ZoneIx, ZoneWindow>> for ById {
    fn write(&self, w: &BTreeMap<ZoneIx, ZoneWindow>) -> Vec<u8> {
        let named: Vec<NamedWindow<'_>> = w
            .iter()
            .map(|(z, zw)| NamedWindow {
                zone: self.zone(*z),
                total: zw.total,
                by_category: zw
                    .by_category
                    .iter()
                    .map(|(k, t)| (self.category(*k), *t))
                    .collect(),
            })
            .collect();
        to_json(&named)
    }

    fn read(&self, value: &[u8]) -> Result<BTreeMap<ZoneIx, ZoneWindow>, RestoreError> {
        let named: Vec<OwnedWindow> = read("", value)?;
        let catalog = &self.0;
        Ok(named
            .into_iter()
            .filter_map(|w| {
                let by_category = w
                    .by_category
                    .into_iter()
                    .filter_map(|(k, t)| Some((catalog.category(&k)?, t)))
                    .collect();
                let total = w.total;
                Some((catalog.zone(&w.zone)?, ZoneWindow { total, by_category }))
            })
            .collect())
    }
}

impl ValueFormat<BTreeMap<(ZoneIx, CategoryIx), Tally>> for ById {
    fn write(&self, totals: &BTreeMap<(ZoneIx, CategoryIx), Tally>) -> Vec<u8> {
        let named: Vec<(&str, &str, Tally)> = totals
            .iter()
            .map(|((z, k), t)| (self.zone(*z), self.category(*k), *t))
            .collect();
        to_json(&named)
    }

    fn read(&self, value: &[u8]) -> Result<BTreeMap<(ZoneIx, CategoryIx), Tally>, RestoreError> {
        let named: Vec<(String, String, Tally)> = read("", value)?;
        let c = &self.0;
        Ok(named
            .into_iter()
            .filter_map(|(z, k, t)| Some(((c.zone(&z)?, c.category(&k)?), t)))
            .collect())
    }
}

impl ValueFormat<BTreeMap<LotIx, Tally>> for ById {
    fn write(&self, totals: &BTreeMap<LotIx, Tally>) -> Vec<u8> {
        let named: Vec<(&str, Tally)> = totals
            .iter()
            .map(|(l, t)| (self.0.lots[*l as usize].id.as_str(), *t))
            .collect();
        to_json(&named)
    }

    fn read(&self, value: &[u8]) -> Result<BTreeMap<LotIx, Tally>, RestoreError> {
        let named: Vec<(String, Tally)> = read("", value)?;
        Ok(named
            .into_iter()
            .filter_map(|(l, t)| Some((self.0.lot(&l)?, t)))
            .collect())
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
