//! The input model: typed events, and the decoding that turns raw Kafka payloads
//! into them or into a classified rejection.
//!
//! Decoding borrows from the payload wherever it can (ids are `Cow<str>` that only
//! allocate when the JSON string has escapes), because it runs for every message.

mod catalog;
mod decode;
mod event;
mod fields;
mod json;
mod keys;
mod money;
mod partial;
mod reject;
mod topic;

pub use crate::config::area_to_centi;
pub use catalog::{
    Catalog, CategoryIx, DistrictInfo, DistrictIx, LotInfo, LotIx, ZoneInfo, ZoneIx,
};
pub use decode::{
    decode, decode_crowd, decode_parking, decode_partial, decode_payment, decode_payment_by_zone,
    forwarded_lines,
};
pub use event::{
    CrowdEvent, CrowdReading, Decoded, Event, ParkingEvent, ParkingReading, Payment, StreamEvent,
};
pub use keys::{LotKeys, ZoneKeys};
pub use money::{format_fen, parse_fen, MAX_ABS_FEN};
pub use partial::{Partial, PartialRecord};
pub use reject::{Reject, RejectReason};
pub use topic::InputTopic;
