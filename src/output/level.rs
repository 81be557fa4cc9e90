//! The three colours of a zone's crowd level.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Green, yellow or red: ordered, so the highest of a window is its `max`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    #[default]
    Green,
    Yellow,
    Red,
}

impl Level {
    /// The gauge value of `crowdpark_zone_alert_level`.
    pub fn as_number(self) -> i64 {
        self as i64
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Green => "green",
            Level::Yellow => "yellow",
            Level::Red => "red",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
