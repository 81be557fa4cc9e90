//! The parking operator: spaces per car park from space sensors or barrier gates,
//! FIWARE availability records with status and trend, rate-limited with a heartbeat,
//! and the district roll-up. Pure and deterministic: no I/O, no clock.

pub mod forecast;
mod group;
pub(crate) mod lot;
mod operator;
pub mod recommend;
mod slots;

pub use crate::time::OpeningHours;
pub use group::{DistrictRollup, LotFigures, RollupState};
pub use lot::{LotAnalytics, LotState};
pub(crate) use operator::LOTS;
pub use operator::{ParkingOperator, ParkingParams};
