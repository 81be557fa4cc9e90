//! The payments operator: sales per zone and category per window, in integer fen.
//! Pure and deterministic: no I/O, no clock.

mod forward;
mod operator;
mod tally;

pub use forward::PaymentForwarder;
pub use operator::{PaymentsOperator, PaymentsParams};
pub use tally::Tally;
