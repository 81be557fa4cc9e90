//! Event time: watermarks per input partition, window arithmetic, duplicate
//! suppression, and the district's clock for opening hours.
//!
//! Everything here follows Kafka Streams' vocabulary: a window is *final* once the
//! watermark passes its end plus the allowed lateness ("grace period"), and an event
//! that would land only in final windows is *late*.

pub mod calendar;
mod dedup;
mod hours;
mod merged;
mod offset;
mod watermark;
mod window;

pub use calendar::Calendar;
pub use dedup::Dedup;
pub use hours::OpeningHours;
pub use merged::MergedWatermark;
pub use offset::{format_ts, UtcOffset};
pub use watermark::{Leader, Watermark};
pub use window::{WindowSpec, WindowStore};

/// The wall clock, in Unix milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
