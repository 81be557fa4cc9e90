//! Counting money exactly.

use super::PaymentFigures;
use crate::model::format_fen;

/// Sales and refunds of some scope, in fen. Addition is exact and commutative, so
/// a window's figures do not depend on the order its payments arrived in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tally {
    pub sales: u32,
    pub sales_fen: i64,
    pub refunds: u32,
    /// Sum of refunds as a positive number.
    pub refund_fen: i64,
}

impl Tally {
    pub fn add(&mut self, amount_fen: i64) {
        if amount_fen < 0 {
            self.refunds += 1;
            self.refund_fen += -amount_fen;
        } else {
            self.sales += 1;
            self.sales_fen += amount_fen;
        }
    }

    /// Adds another tally's counts (totals of several partitions).
    pub fn absorb(&mut self, other: &Tally) {
        self.sales += other.sales;
        self.sales_fen += other.sales_fen;
        self.refunds += other.refunds;
        self.refund_fen += other.refund_fen;
    }

    pub fn net_fen(&self) -> i64 {
        self.sales_fen - self.refund_fen
    }

    /// The published figures. `area_centi` is the selling area in hundredths of m².
    pub fn figures(&self, currency: &str, area_centi: u64) -> PaymentFigures {
        PaymentFigures {
            transactions: self.sales + self.refunds,
            sales: self.sales,
            refunds: self.refunds,
            amount: format_fen(self.net_fen()),
            refund_amount: format_fen(self.refund_fen),
            currency: currency.to_string(),
            avg_ticket: (self.sales > 0)
                .then(|| format_fen(div_round(self.sales_fen as i128, self.sales as i128))),
            sales_per_m2: (area_centi > 0)
                .then(|| format_fen(div_round(self.net_fen() as i128 * 100, area_centi as i128))),
        }
    }
}

/// Integer division rounding half away from zero.
fn div_round(n: i128, d: i128) -> i64 {
    let q = (2 * n.abs() + d) / (2 * d);
    (if n < 0 { -q } else { q }) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_exact() {
        let mut t = Tally::default();
        for a in [10, 20, 30, -5] {
            t.add(a);
        }
        let f = t.figures("CNY", 300); // 3 m²
        assert_eq!(f.transactions, 4);
        assert_eq!(f.amount, "0.55");
        assert_eq!(f.refund_amount, "0.05");
        assert_eq!(f.avg_ticket.as_deref(), Some("0.20"));
        assert_eq!(f.sales_per_m2.as_deref(), Some("0.18")); // 55/3 = 18.33
        assert_eq!(div_round(5, 2), 3);
        assert_eq!(div_round(-5, 2), -3);
        assert_eq!(Tally::default().figures("CNY", 0).avg_ticket, None);
    }
}
