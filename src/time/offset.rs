//! The district's fixed UTC offset and RFC 3339 rendering of event times.

use chrono::{DateTime, SecondsFormat};

/// A fixed offset such as `+08:00`. China has no daylight saving time, and a fixed
/// offset keeps opening-hour arithmetic free of a time-zone database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcOffset {
    pub seconds: i32,
}

impl UtcOffset {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("`{text}` is not an offset like +08:00");
        let (sign, rest) = match text.as_bytes().first() {
            Some(b'+') => (1, &text[1..]),
            Some(b'-') => (-1, &text[1..]),
            _ => return Err(bad()),
        };
        let (h, m) = rest.split_once(':').ok_or_else(bad)?;
        let h: i32 = h.parse().map_err(|_| bad())?;
        let m: i32 = m.parse().map_err(|_| bad())?;
        if h > 14 || m > 59 {
            return Err(bad());
        }
        Ok(UtcOffset {
            seconds: sign * (h * 3600 + m * 60),
        })
    }

    /// Minutes since local midnight for an epoch-millisecond instant.
    pub fn minute_of_day(&self, ts_ms: i64) -> u32 {
        let local = ts_ms.div_euclid(1000) + self.seconds as i64;
        (local.rem_euclid(86_400) / 60) as u32
    }
}

/// Renders epoch milliseconds as RFC 3339 UTC (`2026-10-01T06:05:30Z`), with
/// milliseconds only when they are not zero.
pub fn format_ts(ts_ms: i64) -> String {
    DateTime::from_timestamp_millis(ts_ms)
        .map(|d| d.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| ts_ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_and_minutes() {
        let cst = UtcOffset::parse("+08:00").unwrap();
        assert_eq!(cst.seconds, 28_800);
        // 2026-10-01T06:05:30Z is 14:05 in Hangzhou.
        assert_eq!(cst.minute_of_day(1_759_298_730_000), 14 * 60 + 5);
        assert!(UtcOffset::parse("08:00").is_err());
        assert!(UtcOffset::parse("+25:00").is_err());
    }

    #[test]
    fn formats_utc() {
        assert_eq!(format_ts(1_759_298_730_000), "2025-10-01T06:05:30Z");
        assert_eq!(format_ts(1_759_298_730_250), "2025-10-01T06:05:30.250Z");
    }
}
