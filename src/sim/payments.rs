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
}

#[derive(Serialize)]
struct PaymentMsg<'a> {
    txn_id: String,
    ts: i64,
    merchant: &'a str,
    amount: String,
    currency: &'a str,
    channel: &'static str,
}

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
                };
                out.push((
                    InputTopic::Payments,
                    merchant.clone(),
                    ts,
                    serde_json::to_vec(&msg).expect("plain struct"),
                ));
            }
        }
    }
}
