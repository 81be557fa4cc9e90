//! The records of `crowdpark.partials-by-district`: what one partition tells
//! its district (see the `district` module), in plain fields so that the
//! model depends on no operator.

use serde::{Deserialize, Serialize};

/// What one partition tells the district about one of its entities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Partial {
    /// A zone's closed crowd window: its mean people (in tenths, as
    /// published: integers sum exactly), highest level (0 green, 1 yellow,
    /// 2 red), and the people its counting lines saw entering.
    Crowd {
        zone: String,
        start: i64,
        end: i64,
        people_tenths: i64,
        level: u8,
        entered: u64,
    },
    /// A zone's closed payments window, in fen.
    Sales {
        zone: String,
        start: i64,
        end: i64,
        sales: u32,
        sales_fen: i64,
        refunds: u32,
        refund_fen: i64,
    },
    /// A car park's free spaces as of the crowd-window boundary `at`: what
    /// it had when its partition's event time first passed `at`. Taken at a
    /// point fixed by the partition's records, not by when its figures were
    /// published, so two runs of the same input agree on it.
    Free {
        lot: String,
        at: i64,
        available: u32,
    },
    /// A car park's newest figures.
    Lot {
        lot: String,
        total: u32,
        available: u32,
        occupied: u32,
        observed: i64,
        emitted: i64,
    },
}

/// One record of the district topic: a partial, or (none) a heartbeat, with
/// the sending partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialRecord {
    /// The sending partition, numbered across the topics that send.
    pub upstream: i32,
    /// The sender's watermark: set on heartbeats, which follow the partials
    /// of each step; `i64::MIN` (none) on a partial, so that the district
    /// does not close a window before the rest of that step is in.
    pub wm: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<Partial>,
}
