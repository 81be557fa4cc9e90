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

/// Any stream's event, for callers that decode by topic ([`super::decode`]:
/// tools, tests). The engine decodes each stream straight into its own type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    Crowd(CrowdEvent<'a>),
    Parking(ParkingEvent<'a>),
    Payment(Payment),
    /// Internal: what a partition tells its district.
    Partial(super::Partial),
}

/// One accepted message of a stream whose events are `E`: event time,
/// optional idempotency id, and the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<'a, E = Event<'a>> {
    pub ts: i64,
    pub dedup_id: Option<Cow<'a, str>>,
    /// `None` only on a repartition topic: a heartbeat, saying an upstream
    /// partition's watermark moved.
    pub event: Option<E>,
    /// Repartitioned records only: (upstream partition, its watermark).
    pub upstream: Option<(i32, i64)>,
    /// Payments only: the merchant, by which the message must be keyed.
    pub merchant: Option<Cow<'a, str>>,
}

impl<'a, E> Decoded<'a, E> {
    /// The same message with its event made into another type.
    pub fn map_event<F>(self, f: impl FnOnce(E) -> F) -> Decoded<'a, F> {
        Decoded {
            ts: self.ts,
            dedup_id: self.dedup_id,
            event: self.event.map(f),
            upstream: self.upstream,
            merchant: self.merchant,
        }
    }
}

/// What the engine asks of every stream's event, whatever its type.
pub trait StreamEvent {
    /// A stable identity for the sensor behind the event, for the
    /// watermark: the camera or counting line of a zone, the space or gate
    /// of a car park, the merchant of a payment. FNV-1a, so a checkpoint
    /// restored by another process names the same sensors.
    fn sensor(&self, merchant: Option<&str>) -> u64;

    /// What the message must be keyed by (`("zone", id)`), where the key
    /// chooses its partition; `None` for internal records.
    fn entity<'c>(
        &'c self,
        catalog: &'c super::Catalog,
        merchant: Option<&'c str>,
    ) -> Option<(&'static str, &'c str)>;
}

impl StreamEvent for CrowdEvent<'_> {
    fn sensor(&self, _: Option<&str>) -> u64 {
        let mut h = Fnv::new();
        h.write(&self.zone.to_le_bytes());
        h.write(self.source.as_bytes());
        h.0
    }

    fn entity<'c>(
        &'c self,
        c: &'c super::Catalog,
        _: Option<&'c str>,
    ) -> Option<(&'static str, &'c str)> {
        Some(("zone", c.zones[self.zone as usize].id.as_str()))
    }
}

impl StreamEvent for ParkingEvent<'_> {
    fn sensor(&self, _: Option<&str>) -> u64 {
        let mut h = Fnv::new();
        h.write(&self.lot.to_le_bytes());
        match &self.reading {
            ParkingReading::Space { slot, .. } => h.write(slot.as_bytes()),
            ParkingReading::Gate { entry, .. } => h.write(&[*entry as u8]),
        }
        h.0
    }

    fn entity<'c>(
        &'c self,
        c: &'c super::Catalog,
        _: Option<&'c str>,
    ) -> Option<(&'static str, &'c str)> {
        Some(("car park", c.lots[self.lot as usize].id.as_str()))
    }
}

impl StreamEvent for Payment {
    fn sensor(&self, merchant: Option<&str>) -> u64 {
        let mut h = Fnv::new();
        match merchant {
            Some(m) => h.write(m.as_bytes()),
            None => h.write(&self.zone.to_le_bytes()),
        }
        h.0
    }

    /// By merchant on the payments topic; the re-keyed ones carry none.
    fn entity<'c>(
        &'c self,
        _: &'c super::Catalog,
        merchant: Option<&'c str>,
    ) -> Option<(&'static str, &'c str)> {
        merchant.map(|m| ("merchant", m))
    }
}

impl StreamEvent for super::Partial {
    fn sensor(&self, _: Option<&str>) -> u64 {
        Fnv::new().0
    }

    fn entity<'c>(
        &'c self,
        _: &'c super::Catalog,
        _: Option<&'c str>,
    ) -> Option<(&'static str, &'c str)> {
        None
    }
}

impl StreamEvent for Event<'_> {
    fn sensor(&self, merchant: Option<&str>) -> u64 {
        match self {
            Event::Crowd(e) => e.sensor(merchant),
            Event::Parking(e) => e.sensor(merchant),
            Event::Payment(e) => e.sensor(merchant),
            Event::Partial(e) => e.sensor(merchant),
        }
    }

    fn entity<'c>(
        &'c self,
        c: &'c super::Catalog,
        merchant: Option<&'c str>,
    ) -> Option<(&'static str, &'c str)> {
        match self {
            Event::Crowd(e) => e.entity(c, merchant),
            Event::Parking(e) => e.entity(c, merchant),
            Event::Payment(e) => e.entity(c, merchant),
            Event::Partial(e) => e.entity(c, merchant),
        }
    }
}

struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 ^= 0xff; // a separator, so ("ab","c") and ("a","bc") differ
    }
}
