//! Human-readable durations for the configuration file (`"5s"`, `"2m"`, `"500ms"`).
//!
//! Written by hand rather than pulled in as a crate because the grammar is tiny and
//! the error has to name the offending text so `check-config` can point at it.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A non-negative span of time in whole milliseconds: event time in crowdpark is kept
/// in epoch milliseconds, so every configured duration is compared in that unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub i64);

impl Millis {
    pub const fn from_secs(s: i64) -> Self {
        Millis(s * 1000)
    }
    pub fn as_ms(self) -> i64 {
        self.0
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }
    /// As a wall-clock duration; a negative value counts as zero.
    pub fn as_duration(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0.max(0) as u64)
    }
}

/// Parses `"<integer><unit>"` with unit one of `ms`, `s`, `m`/`min`, `h`, `d`.
pub fn parse_duration(text: &str) -> Result<Millis, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit (use ms, s, m, h or d)"))?;
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!("`{text}` does not start with a number"));
    }
    let n: i64 = num
        .parse()
        .map_err(|_| format!("`{text}` is too large a number"))?;
    let factor = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(format!(
                "`{text}` has unknown unit `{other}` (use ms, s, m, h or d)"
            ))
        }
    };
    n.checked_mul(factor)
        .map(Millis)
        .ok_or_else(|| format!("`{text}` is too long a duration"))
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        if ms != 0 && ms % 3_600_000 == 0 {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms != 0 && ms % 60_000 == 0 {
            write!(f, "{}m", ms / 60_000)
        } else if ms % 1000 == 0 {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Millis {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_rejects_garbage() {
        assert_eq!(parse_duration("5s"), Ok(Millis(5_000)));
        assert_eq!(parse_duration("500ms"), Ok(Millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Millis(120_000)));
        assert_eq!(parse_duration("10min"), Ok(Millis(600_000)));
        assert_eq!(parse_duration("1h"), Ok(Millis(3_600_000)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("5 fortnights").is_err());
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
    }

    #[test]
    fn display_round_trips() {
        for text in ["5s", "2m", "1h", "250ms", "0s"] {
            assert_eq!(parse_duration(text).unwrap().to_string(), text);
        }
    }
}
