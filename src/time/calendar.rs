//! The district's local calendar: weekday and public holiday of an instant,
//! for opening hours and the parking forecast's day kinds.

use super::UtcOffset;
use std::collections::BTreeSet;

/// Day kinds: Monday … Sunday, and public holidays as an eighth.
pub const DAY_KINDS: usize = 8;
pub const HOLIDAY: usize = 7;
pub const SUNDAY: usize = 6;

/// Local calendar of the district: weekday and holiday of an instant.
#[derive(Debug, Clone, Default)]
pub struct Calendar {
    offset_s: i64,
    /// Local days since 1970-01-01 that are public holidays.
    holidays: BTreeSet<i64>,
}

impl Calendar {
    /// `holidays` as `YYYY-MM-DD` (validated by the configuration).
    pub fn new(offset: UtcOffset, holidays: &[String]) -> Self {
        let holidays = holidays
            .iter()
            .filter_map(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .map(|d| {
                d.signed_duration_since(chrono::NaiveDate::default())
                    .num_days()
            })
            .collect();
        Calendar {
            offset_s: offset.seconds as i64,
            holidays,
        }
    }

    /// The district's offset from UTC, in ms.
    pub fn offset_ms(&self) -> i64 {
        self.offset_s * 1000
    }

    fn local_minutes(&self, ts_ms: i64) -> i64 {
        (ts_ms.div_euclid(1000) + self.offset_s).div_euclid(60)
    }

    /// The kind of a local day (days since 1970-01-01): 0 = Monday … 6 =
    /// Sunday, 7 = holiday.
    pub fn kind(&self, day: i64) -> usize {
        if self.holidays.contains(&day) {
            HOLIDAY
        } else {
            // 1970-01-01 was a Thursday.
            (day + 3).rem_euclid(7) as usize
        }
    }

    /// The day kind and the minute of that local day.
    pub fn day_and_minute(&self, ts_ms: i64) -> (usize, i64) {
        let m = self.local_minutes(ts_ms);
        (self.kind(m.div_euclid(1440)), m.rem_euclid(1440))
    }

    /// 0 = Monday … 6 = Sunday, holiday or not.
    pub fn weekday(&self, ts_ms: i64) -> usize {
        (self.local_minutes(ts_ms).div_euclid(1440) + 3).rem_euclid(7) as usize
    }

    pub fn is_holiday(&self, ts_ms: i64) -> bool {
        self.day_and_minute(ts_ms).0 == HOLIDAY
    }
}
