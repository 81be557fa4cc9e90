//! The payments operator: sales per zone and category per window, in integer fen.
//! Pure and deterministic: no I/O, no clock.

mod forward;
mod operator;

pub use crate::output::Tally;
pub use forward::PaymentForwarder;
pub use operator::{PaymentsOperator, PaymentsParams};
pub(crate) use operator::{LOT_TOTALS, TOTALS};
