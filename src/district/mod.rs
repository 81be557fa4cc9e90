//! The district stage: one task per district, fed through an internal topic.
//!
//! The zone and car park records are made per input partition, but the
//! district's figures span all of them. Like payments re-keyed by zone, every
//! partition task forwards what the district needs (a closed zone window, a
//! car park's new figures, its watermark each second) keyed by district to
//! `crowdpark.partials-by-district`, whose partition holding a district is
//! owned by one task. That task keeps the district's windows in changelogged
//! state, so they survive a restart, a rewind or a move to another instance
//! like any other state, and it publishes a window once every partition with
//! something to say has passed it.
//!
//! A partial replaces the one before it for the same zone and window rather
//! than adding to it: a partition replayed after a rewind, or taken over by
//! another instance, sends the same records again and changes nothing.

mod operator;
mod state;

pub use operator::DistrictOperator;
pub(crate) use operator::DISTRICTS;

pub use crate::model::{Partial, PartialRecord};
use crate::output::{Availability, DensityRecord, Level, Output, PaymentStats};

/// What a zone or car park record brings its district, if anything, with
/// the district's id.
pub fn partial_of(output: &Output) -> Option<(&str, Partial)> {
    match output {
        Output::Density(d) => Some((&d.district, crowd(d))),
        Output::Payments(p) => Some((&p.district, sales(p))),
        Output::Availability(a) => Some((&a.district, lot(a))),
        _ => None,
    }
}

/// The levels' names by number, as `Partial::Crowd` carries them.
pub(crate) const LEVELS: [Level; 3] = [Level::Green, Level::Yellow, Level::Red];

fn crowd(d: &DensityRecord) -> Partial {
    Partial::Crowd {
        zone: d.zone.clone(),
        start: d.window_ms.0,
        end: d.window_ms.1,
        people_tenths: (d.people_avg * 10.0).round() as i64,
        level: d.level.as_number() as u8,
        entered: d.entered,
    }
}

fn sales(p: &PaymentStats) -> Partial {
    Partial::Sales {
        zone: p.zone.clone(),
        start: p.window_ms.0,
        end: p.window_ms.1,
        sales: p.tally.sales,
        sales_fen: p.tally.sales_fen,
        refunds: p.tally.refunds,
        refund_fen: p.tally.refund_fen,
    }
}

fn lot(a: &Availability) -> Partial {
    Partial::Lot {
        lot: a.id.clone(),
        total: a.total_spot_number,
        available: a.available_spot_number,
        occupied: a.occupied_spot_number,
        observed: a.observed_ms,
        emitted: a.emitted_ms,
    }
}

/// Where a district's records go: the partition its id hashes to, as a record
/// keyed by the district id would.
pub fn district_partition(district: &str, partitions: i32) -> i32 {
    crate::partitioner::partition_for(district.as_bytes(), partitions.max(1))
}

/// The topics whose partitions send to the district, in the order their
/// partitions are numbered for the merged watermark.
pub const SENDERS: [crate::model::InputTopic; 3] = [
    crate::model::InputTopic::CrowdCounts,
    crate::model::InputTopic::ParkingEvents,
    crate::model::InputTopic::PaymentsByZone,
];

/// The senders that hold a zone or car park of a district on partition
/// `target` of the district topic (entities are keyed by id, so their
/// partition follows): its task waits for these even before their first
/// event, and leaves out only the others when idle.
pub fn holding(catalog: &crate::model::Catalog, partitions: i32, target: i32) -> Vec<i32> {
    use crate::model::InputTopic::{CrowdCounts, ParkingEvents, PaymentsByZone};
    let at = |id: &str| crate::partitioner::partition_for(id.as_bytes(), partitions.max(1));
    let here = |d: crate::model::DistrictIx| {
        district_partition(&catalog.districts[d as usize].id, partitions) == target
    };
    let zones = catalog.zones.iter().filter(|z| here(z.district));
    let lots = catalog.lots.iter().filter(|l| here(l.district));
    let zones = zones.map(|z| at(&z.id));
    let lots = lots.map(|l| at(&l.id));
    let mut out: Vec<i32> = zones
        .flat_map(|p| [(CrowdCounts, p), (PaymentsByZone, p)])
        .chain(lots.map(|p| (ParkingEvents, p)))
        .filter_map(|(t, p)| upstream_id(t, p, partitions))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// A sending partition's number among all senders: `partitions` per topic.
pub fn upstream_id(
    topic: crate::model::InputTopic,
    partition: i32,
    partitions: i32,
) -> Option<i32> {
    let i = SENDERS.iter().position(|t| *t == topic)? as i32;
    Some(i * partitions + partition)
}

#[cfg(test)]
mod tests;
