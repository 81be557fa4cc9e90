//! The crowd operator: people per zone, density, three-colour levels, early warning
//! and per-window density records. Pure and deterministic: no I/O, no clock.

mod alerts;
mod ewma;
mod level;
mod operator;
mod params;
mod trend;
mod zone;

pub use ewma::Ewma;
pub use level::{Level, LevelRules};
pub(crate) use operator::ZONES;
pub use operator::{CrowdOperator, CrowdParams, ZoneStatus};
pub use trend::Trend;
pub use zone::PeopleEstimate;
