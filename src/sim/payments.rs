//! Mobile payments that follow the crowds.

use super::Rng;
use crate::config::Config;
use crate::model::{format_fen, Catalog, InputTopic};
use serde::Serialize;

pub struct PaymentsSim {
    /// Merchant ids and categories per zone index.
    by_zone: Vec<Vec<(String, String)>>,
    currency: String,
    seq: u64,
    lots: Vec<String>,
    zones: Vec<String>,
}

#[derive(Serialize)]
struct PaymentMsg<'a> {
    txn_id: String,
    ts: i64,
    merchant: &'a str,
    amount: String,
    currency: &'a str,
    channel: &'static str,
    /// Parking fees: paid at a car park's exit, to the district's parking
    /// operator, naming the car park.
    #[serde(skip_serializing_if = "Option::is_none")]
    zone: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    category: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lot: Option<&'a str>,
}

/// The merchant parking fees are paid to; not a shop, so it has no selling
/// area and each payment names its zone and category itself.
const PARKING_OPERATOR: &str = "hubin-parking-operator";
/// Parking fees per second across the district (about one every 15 s).
const PARKING_FEES_PER_S: f64 = 1.0 / 15.0;

/// Typical ticket range in fen per category.
fn ticket_range(category: &str) -> (u64, u64) {
    match category {
        "food" => (1_500, 18_000),
        "fashion" => (10_000, 150_000),
        "beauty" => (8_000, 80_000),
        "electronics" => (20_000, 800_000),
        "tea" => (2_000, 30_000),
        "souvenir" => (1_000, 20_000),
        "jewellery" => (50_000, 2_000_000),
        "parking" => (500, 6_000),
        _ => (1_000, 50_000),
    }
}

impl PaymentsSim {
    pub fn new(config: &Config, catalog: &Catalog) -> Self {
        let mut by_zone = vec![Vec::new(); catalog.zones.len()];
        for m in &config.merchants {
            if let Some(z) = catalog.zone(&m.zone) {
                by_zone[z as usize].push((m.id.clone(), m.category.clone()));
            }
        }
        PaymentsSim {
            by_zone,
            currency: catalog.currency.clone(),
            seq: 0,
            lots: catalog.lots.iter().map(|l| l.id.clone()).collect(),
            zones: catalog.zones.iter().map(|z| z.id.clone()).collect(),
        }
    }

    pub fn step(
        &mut self,
        people: &[f64],
        t0: i64,
        t1: i64,
        intensity: f64,
        rng: &mut Rng,
        out: &mut Vec<(InputTopic, String, i64, Vec<u8>)>,
    ) {
        for (zone, merchants) in self.by_zone.iter().enumerate() {
            if merchants.is_empty() {
                continue;
            }
            let rate = people.get(zone).copied().unwrap_or(0.0) * 0.0004 * intensity;
            for _ in 0..rng.poisson(rate) {
                let (merchant, category) = rng.pick(merchants);
                let (lo, hi) = ticket_range(category);
                // Prices end in whole yuan more often than not.
                let mut fen = rng.range(lo, hi) as i64;
                if rng.chance(0.6) {
                    fen -= fen % 100;
                }
                if rng.chance(0.03) {
                    fen = -fen;
                }
                self.seq += 1;
                let channel = match self.seq % 3 {
                    0 => "wechat",
                    1 => "alipay",
                    _ => "unionpay",
                };
                let ts = rng.range(t0 as u64, t1 as u64) as i64;
                let msg = PaymentMsg {
                    txn_id: format!("{}-{}-{:08}", &channel[..2], t0 / 86_400_000, self.seq),
                    ts,
                    merchant,
                    amount: format_fen(fen),
                    currency: &self.currency,
                    channel,
                    zone: None,
                    category: None,
                    lot: None,
                };
                out.push((
                    InputTopic::Payments,
                    merchant.clone(),
                    ts,
                    serde_json::to_vec(&msg).expect("plain struct"),
                ));
            }
        }
        self.parking_fees(t0, t1, intensity, rng, out);
    }

    /// Parking fees paid at the car parks' machines, naming the car park.
    fn parking_fees(
        &mut self,
        t0: i64,
        t1: i64,
        intensity: f64,
        rng: &mut Rng,
        out: &mut Vec<(InputTopic, String, i64, Vec<u8>)>,
    ) {
        if self.lots.is_empty() || self.zones.is_empty() {
            return;
        }
        let seconds = (t1 - t0) as f64 / 1000.0;
        for _ in 0..rng.poisson(PARKING_FEES_PER_S * seconds * intensity) {
            self.seq += 1;
            let (lo, hi) = ticket_range("parking");
            let fen = (rng.range(lo, hi) as i64 / 100) * 100;
            let lot = rng.pick(&self.lots);
            let zone = rng.pick(&self.zones);
            let ts = rng.range(t0 as u64, t1 as u64) as i64;
            let msg = PaymentMsg {
                txn_id: format!("pk-{}-{:08}", t0 / 86_400_000, self.seq),
                ts,
                merchant: PARKING_OPERATOR,
                amount: format_fen(fen),
                currency: &self.currency,
                channel: "etc",
                zone: Some(zone),
                category: Some("parking"),
                lot: Some(lot),
            };
            out.push((
                InputTopic::Payments,
                PARKING_OPERATOR.to_string(),
                ts,
                serde_json::to_vec(&msg).expect("plain struct"),
            ));
        }
    }
}
