//! Windows of payments per zone and category.

use super::Tally;
use crate::config::Config;
use crate::model::{Catalog, CategoryIx, Payment, ZoneIx};
use crate::output::{Output, PaymentStats};
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

#[derive(Debug, Clone, Default, PartialEq)]
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
}

impl PaymentsOperator {
    pub fn new(catalog: Arc<Catalog>, params: PaymentsParams) -> Self {
        PaymentsOperator {
            catalog,
            windows: WindowStore::new(params.window, params.lateness),
            totals: BTreeMap::new(),
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
            .entry((p.zone, p.category))
            .or_default()
            .add(p.amount_fen);
    }

    pub fn advance(&mut self, watermark: i64, out: &mut Vec<Output>) {
        let catalog = &self.catalog;
        self.windows.close_until(watermark, |start, end, zone, w| {
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
            }));
        });
    }

    /// Running totals per zone and category.
    pub fn totals(&self) -> &BTreeMap<(ZoneIx, CategoryIx), Tally> {
        &self.totals
    }
}
