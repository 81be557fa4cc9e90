//! Opening hours in district time.

/// `"24h"`, or `"HH:MM-HH:MM"` (a close before the open wraps past midnight, and
/// `24:00` is the end of the day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpeningHours {
    Always,
    Daily { open_min: u32, close_min: u32 },
}

impl OpeningHours {
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t == "24h" {
            return Ok(OpeningHours::Always);
        }
        let bad = || format!("`{text}` is not \"24h\" or \"HH:MM-HH:MM\"");
        let (open, close) = t.split_once('-').ok_or_else(bad)?;
        let minutes = |s: &str| -> Result<u32, String> {
            let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
            let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
            if m > 59 || h > 24 || (h == 24 && m != 0) {
                return Err(bad());
            }
            Ok(h * 60 + m)
        };
        let (open_min, close_min) = (minutes(open)?, minutes(close)?);
        if open_min == close_min {
            return Err(format!(
                "`{text}` opens and closes at the same time; use \"24h\""
            ));
        }
        Ok(OpeningHours::Daily {
            open_min,
            close_min,
        })
    }

    pub fn is_open(&self, minute_of_day: u32) -> bool {
        match *self {
            OpeningHours::Always => true,
            OpeningHours::Daily {
                open_min,
                close_min,
            } if open_min < close_min => (open_min..close_min).contains(&minute_of_day),
            OpeningHours::Daily {
                open_min,
                close_min,
            } => minute_of_day >= open_min || minute_of_day < close_min,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daytime_overnight_and_always() {
        let day = OpeningHours::parse("07:00-23:00").unwrap();
        assert!(!day.is_open(6 * 60 + 59));
        assert!(day.is_open(7 * 60));
        assert!(!day.is_open(23 * 60));
        let late = OpeningHours::parse("06:00-24:00").unwrap();
        assert!(late.is_open(23 * 60 + 59));
        let night = OpeningHours::parse("22:00-06:00").unwrap();
        assert!(night.is_open(23 * 60) && night.is_open(60) && !night.is_open(12 * 60));
        assert!(OpeningHours::parse("24h").unwrap().is_open(0));
        for bad in ["", "7-23", "07:00-07:00", "25:00-26:00", "07:60-08:00"] {
            assert!(OpeningHours::parse(bad).is_err(), "{bad}");
        }
    }
}
