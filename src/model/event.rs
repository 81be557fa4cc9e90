//! Decoded, validated input events. Ids the configuration knows are indices; ids it
//! cannot know in advance (camera, space, transaction) borrow from the payload.

use super::catalog::{CategoryIx, LotIx, ZoneIx};
use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum CrowdReading {
    /// People seen right now by a camera or Wi-Fi estimate.
    Headcount { people: u32 },
    /// Crossings of a counting line since the source's previous report.
    Line { entered: u32, exited: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrowdEvent<'a> {
    pub zone: ZoneIx,
    pub source: Cow<'a, str>,
    pub reading: CrowdReading,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParkingReading<'a> {
    Space { slot: Cow<'a, str>, occupied: bool },
    Gate { entry: bool, count: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkingEvent<'a> {
    pub lot: LotIx,
    pub reading: ParkingReading<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub zone: ZoneIx,
    pub category: CategoryIx,
    /// Negative for a refund.
    pub amount_fen: i64,
    /// The car park a parking payment paid for, when the message names one.
    pub lot: Option<LotIx>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    Crowd(CrowdEvent<'a>),
    Parking(ParkingEvent<'a>),
    Payment(Payment),
    /// Internal: an upstream partition's watermark moved (repartition topic).
    Heartbeat,
    /// Internal: what a partition tells its district.
    Partial(Box<super::Partial>),
}

/// One accepted message: event time, optional idempotency id, and the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<'a> {
    pub ts: i64,
    pub dedup_id: Option<Cow<'a, str>>,
    pub event: Event<'a>,
    /// Repartitioned records only: (upstream partition, its watermark).
    pub upstream: Option<(i32, i64)>,
    /// Payments only: the merchant, by which the message must be keyed.
    pub merchant: Option<Cow<'a, str>>,
}
