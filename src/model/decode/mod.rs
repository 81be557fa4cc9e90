//! Payload bytes → [`Decoded`] event, or a classified [`Reject`].

use super::catalog::{Catalog, CategoryIx, LotIx, ZoneIx};
use super::event::*;
use super::fields::{self, id, optional_id, required, string};
use super::json::{self, Raw};
use super::reject::{Reject, RejectReason};
use super::topic::InputTopic;
use crate::config::Detection;
use serde::Deserialize;
use serde_json::value::RawValue;

/// The three input streams.
/// Upper bounds that make a reading impossible rather than merely large.
const MAX_PEOPLE: u32 = 1_000_000;
const MAX_CROSSINGS: u32 = 100_000;
const MAX_GATE_COUNT: u32 = 1_000;

/// Every field any input may carry, each only located, not yet read. One set
/// for all three topics keeps decoding to a single pass over the bytes: the
/// scanner's ([`flat_object`]) when it reads the message, else `serde_json`'s
/// (`SerdeFields`), whose answer is then the decoder's.
macro_rules! raw_fields {
    ($($name:ident),* $(,)?) => {
        #[derive(Default)]
        struct RawFields<'a> {
            $($name: Option<Raw<'a>>,)*
        }

        #[derive(Deserialize)]
        struct SerdeFields<'a> {
            $(#[serde(borrow)] $name: Option<&'a RawValue>,)*
        }

        impl<'a> From<SerdeFields<'a>> for RawFields<'a> {
            fn from(s: SerdeFields<'a>) -> Self {
                RawFields { $($name: s.$name.map(Raw::from_serde),)* }
            }
        }

        #[cfg(test)]
        impl<'a> RawFields<'a> {
            fn texts(&self) -> Vec<Option<&'a str>> {
                vec![$(self.$name.map(|r| r.get()),)*]
            }
        }

        /// Each known field's place and its bit in a set of those seen.
        fn field<'a, 'f>(
            fields: &'f mut RawFields<'a>,
            key: &str,
        ) -> Option<(&'f mut Option<Raw<'a>>, u32)> {
            let mut bit = 1u32;
            $(
                if key == stringify!($name) {
                    return Some((&mut fields.$name, bit));
                }
                bit <<= 1;
            )*
            let _ = bit;
            None
        }
    };
}

raw_fields!(
    ts, event_id, zone, source, people, entered, exited, lot, slot, state, gate, count, txn_id,
    merchant, amount, currency, category, amount_fen, upstream, wm,
);

/// The fields of a message as the scanner reads it; `None` if it declines.
fn scanned(text: &str) -> Option<RawFields<'_>> {
    let mut fields = RawFields::default();
    let mut seen = 0u32;
    json::flat_object(text, |key, value| match field(&mut fields, key) {
        // A repeated field is `serde_json`'s to refuse, with its message.
        Some((_, bit)) if seen & bit != 0 => false,
        Some((place, bit)) => {
            seen |= bit;
            *place = value;
            true
        }
        None => true,
    })?;
    Some(fields)
}

/// The fields of a message, from the scanner when it reads the message, else
/// from `serde_json`, with its error.
fn raw_fields(text: &str) -> Result<RawFields<'_>, Reject> {
    if let Some(fields) = scanned(text) {
        return Ok(fields);
    }
    serde_json::from_str::<SerdeFields<'_>>(text)
        .map(RawFields::from)
        .map_err(|e| {
            use serde_json::error::Category;
            match e.classify() {
                Category::Data => Reject::invalid(e.to_string()),
                _ => Reject::new(
                    RejectReason::MalformedJson,
                    format!("payload is not valid JSON: {e}"),
                ),
            }
        })
}

/// Decodes one message of `topic` into the event of any stream. Never
/// panics, whatever the bytes. (The engine decodes each stream straight
/// into its own event type: [`decode_crowd`] and its siblings.)
pub fn decode<'a>(
    topic: InputTopic,
    payload: &'a [u8],
    catalog: &Catalog,
    max_bytes: usize,
) -> Result<Decoded<'a>, Reject> {
    match topic {
        InputTopic::CrowdCounts => {
            Ok(decode_crowd(payload, catalog, max_bytes)?.map_event(Event::Crowd))
        }
        InputTopic::ParkingEvents => {
            Ok(decode_parking(payload, catalog, max_bytes)?.map_event(Event::Parking))
        }
        InputTopic::Payments => {
            Ok(decode_payment(payload, catalog, max_bytes)?.map_event(Event::Payment))
        }
        InputTopic::PaymentsByZone => {
            Ok(decode_payment_by_zone(payload, catalog, max_bytes)?.map_event(Event::Payment))
        }
        InputTopic::DistrictPartials => {
            Ok(decode_partial(payload, catalog, max_bytes)?.map_event(Event::Partial))
        }
    }
}

/// What every message must be before its fields are read: within the size
/// limit, UTF-8, a JSON object.
fn object_text(payload: &[u8], max_bytes: usize) -> Result<&str, Reject> {
    if payload.len() > max_bytes {
        return Err(Reject::new(
            RejectReason::TooLarge,
            format!(
                "message is {} bytes, more than the {max_bytes}-byte limit",
                payload.len()
            ),
        ));
    }
    let text = std::str::from_utf8(payload).map_err(|e| {
        Reject::new(
            RejectReason::MalformedJson,
            format!("payload is not UTF-8: {e}"),
        )
    })?;
    if !text.trim_start().starts_with('{') {
        return Err(Reject::new(
            RejectReason::MalformedJson,
            "payload is not a JSON object",
        ));
    }
    Ok(text)
}

/// A flat message's fields and event time.
fn flat(payload: &[u8], max_bytes: usize) -> Result<(RawFields<'_>, i64), Reject> {
    let raw = raw_fields(object_text(payload, max_bytes)?)?;
    let ts = fields::timestamp(raw.ts)?;
    Ok((raw, ts))
}

/// A message of the crowd counts topic.
pub fn decode_crowd<'a>(
    payload: &'a [u8],
    catalog: &Catalog,
    max_bytes: usize,
) -> Result<Decoded<'a, CrowdEvent<'a>>, Reject> {
    let (raw, ts) = flat(payload, max_bytes)?;
    crowd(raw, ts, catalog)
}

/// A message of the parking events topic.
pub fn decode_parking<'a>(
    payload: &'a [u8],
    catalog: &Catalog,
    max_bytes: usize,
) -> Result<Decoded<'a, ParkingEvent<'a>>, Reject> {
    let (raw, ts) = flat(payload, max_bytes)?;
    parking(raw, ts, catalog)
}

/// A message of the payments topic.
pub fn decode_payment<'a>(
    payload: &'a [u8],
    catalog: &Catalog,
    max_bytes: usize,
) -> Result<Decoded<'a, Payment>, Reject> {
    let (raw, ts) = flat(payload, max_bytes)?;
    payment(raw, ts, catalog)
}

/// One line of the payments-by-zone repartition topic.
pub fn decode_payment_by_zone<'a>(
    payload: &'a [u8],
    catalog: &Catalog,
    max_bytes: usize,
) -> Result<Decoded<'a, Payment>, Reject> {
    let (raw, ts) = flat(payload, max_bytes)?;
    forwarded(raw, ts, catalog)
}

/// What a partition told its district: written by this engine, read by
/// serde (a few records per window, not worth the fast path; not flat: its
/// partial is an object of its own). Its time is the sender's watermark,
/// which is what the district follows.
pub fn decode_partial<'a>(
    payload: &'a [u8],
    _catalog: &Catalog,
    max_bytes: usize,
) -> Result<Decoded<'a, super::Partial>, Reject> {
    let text = object_text(payload, max_bytes)?;
    let r: super::PartialRecord = serde_json::from_str(text)
        .map_err(|e| Reject::invalid(format!("not a district partial: {e}")))?;
    Ok(Decoded {
        ts: r.wm.max(0),
        dedup_id: None,
        event: r.partial,
        upstream: Some((r.upstream, r.wm)),
        merchant: None,
    })
}

fn known_zone(catalog: &Catalog, id: &str) -> Result<ZoneIx, Reject> {
    catalog
        .zone(id)
        .ok_or_else(|| Reject::unknown(format!("zone `{id}` is not configured")))
}

fn known_lot(catalog: &Catalog, id: &str) -> Result<LotIx, Reject> {
    catalog
        .lot(id)
        .ok_or_else(|| Reject::unknown(format!("car park `{id}` is not configured")))
}

/// A payment's optional `lot`: it must name a configured car park.
fn optional_lot(catalog: &Catalog, raw: Option<Raw<'_>>) -> Result<Option<LotIx>, Reject> {
    optional_id("lot", raw)?
        .map(|l| known_lot(catalog, &l))
        .transpose()
}

fn known_category(catalog: &Catalog, id: &str) -> Result<CategoryIx, Reject> {
    catalog
        .category(id)
        .ok_or_else(|| Reject::unknown(format!("category `{id}` is not in payments.categories")))
}

fn crowd<'a>(
    raw: RawFields<'a>,
    ts: i64,
    catalog: &Catalog,
) -> Result<Decoded<'a, CrowdEvent<'a>>, Reject> {
    let zone = known_zone(catalog, &id("zone", raw.zone)?)?;
    let source = id("source", raw.source)?;
    let reading = match (raw.people, raw.entered.is_some() || raw.exited.is_some()) {
        (Some(_), true) => return Err(Reject::invalid(
            "message has both `people` and `entered`/`exited`; a source reports one or the other",
        )),
        (Some(people), false) => CrowdReading::Headcount {
            people: fields::count("people", people, MAX_PEOPLE)?,
        },
        (None, true) => CrowdReading::Line {
            entered: raw
                .entered
                .map_or(Ok(0), |v| fields::count("entered", v, MAX_CROSSINGS))?,
            exited: raw
                .exited
                .map_or(Ok(0), |v| fields::count("exited", v, MAX_CROSSINGS))?,
        },
        (None, false) => return Err(Reject::invalid(
            "message has neither `people` (a headcount) nor `entered`/`exited` (a counting line)",
        )),
    };
    Ok(Decoded {
        ts,
        dedup_id: optional_id("event_id", raw.event_id)?,
        event: Some(CrowdEvent {
            zone,
            source,
            reading,
        }),
        upstream: None,
        merchant: None,
    })
}

fn parking<'a>(
    raw: RawFields<'a>,
    ts: i64,
    catalog: &Catalog,
) -> Result<Decoded<'a, ParkingEvent<'a>>, Reject> {
    let lot_id = id("lot", raw.lot)?;
    let lot = known_lot(catalog, &lot_id)?;
    let detection = catalog.lots[lot as usize].detection;
    let reading = match (raw.slot.is_some() || raw.state.is_some(), raw.gate) {
        (true, Some(_)) => {
            return Err(Reject::invalid(
                "message has both `slot`/`state` and `gate`; send one event per message",
            ))
        }
        (true, None) => {
            let slot = id("slot", raw.slot)?;
            let state = string("state", required("state", raw.state)?)?;
            let occupied = match &*state {
                "occupied" => true,
                "vacant" => false,
                other => {
                    return Err(Reject::invalid(format!(
                        "field `state` is \"{other}\"; expected \"occupied\" or \"vacant\""
                    )))
                }
            };
            if detection != Detection::SingleSpace {
                return Err(Reject::invalid(format!(
                    "car park `{lot_id}` is counted by its gates, so field `slot` is not accepted for it"
                )));
            }
            ParkingReading::Space { slot, occupied }
        }
        (false, Some(gate)) => {
            let gate = string("gate", gate)?;
            let entry = match &*gate {
                "entry" => true,
                "exit" => false,
                other => {
                    return Err(Reject::invalid(format!(
                        "field `gate` is \"{other}\"; expected \"entry\" or \"exit\""
                    )))
                }
            };
            let count = match raw.count {
                None => 1,
                Some(c) => fields::count("count", c, MAX_GATE_COUNT)?,
            };
            if count == 0 {
                return Err(Reject::range(
                    "field `count` is 0; a gate report counts at least one car",
                ));
            }
            if detection != Detection::Gate {
                return Err(Reject::invalid(format!(
                    "car park `{lot_id}` is counted by space sensors, so field `gate` is not accepted for it"
                )));
            }
            ParkingReading::Gate { entry, count }
        }
        (false, None) => {
            return Err(Reject::invalid(
                "message has neither `slot` and `state` (a space sensor) nor `gate` (a barrier)",
            ))
        }
    };
    Ok(Decoded {
        ts,
        dedup_id: optional_id("event_id", raw.event_id)?,
        event: Some(ParkingEvent { lot, reading }),
        upstream: None,
        merchant: None,
    })
}

fn payment<'a>(
    raw: RawFields<'a>,
    ts: i64,
    catalog: &Catalog,
) -> Result<Decoded<'a, Payment>, Reject> {
    let txn_id = id("txn_id", raw.txn_id)?;
    let merchant_id = id("merchant", raw.merchant)?;
    let amount_fen = fields::amount(raw.amount)?;
    if let Some(c) = raw.currency {
        let c = string("currency", c)?;
        if *c != *catalog.currency {
            return Err(Reject::invalid(format!(
                "field `currency` is \"{c}\"; this district settles in {}",
                catalog.currency
            )));
        }
    }
    let merchant = catalog.merchant(&merchant_id);
    // A message's own zone and category win: they describe this sale, the
    // configuration describes the merchant's usual place.
    let zone = match optional_id("zone", raw.zone)? {
        Some(z) => known_zone(catalog, &z)?,
        None => merchant.map(|m| m.zone).ok_or_else(|| {
            Reject::unknown(format!(
                "merchant `{merchant_id}` is not configured and the message has no `zone`"
            ))
        })?,
    };
    let category = match optional_id("category", raw.category)? {
        Some(k) => known_category(catalog, &k)?,
        None => merchant.map(|m| m.category).ok_or_else(|| {
            Reject::unknown(format!(
                "merchant `{merchant_id}` is not configured and the message has no `category`"
            ))
        })?,
    };
    let lot = optional_lot(catalog, raw.lot)?;
    Ok(Decoded {
        ts,
        dedup_id: Some(txn_id),
        event: Some(Payment {
            zone,
            category,
            amount_fen,
            lot,
        }),
        upstream: None,
        merchant: Some(merchant_id),
    })
}

/// The records in one message of the repartition topic: the engine gathers
/// re-keyed payments (and heartbeats) into one message per target partition, one
/// JSON record per line, so a message without a newline is a batch of one.
pub fn forwarded_lines(payload: &[u8]) -> impl Iterator<Item = &[u8]> {
    payload.split(|b| *b == b'\n').filter(|l| !l.is_empty())
}

/// A payment this engine accepted and re-keyed by zone: ids are configured ones,
/// the amount is already fen. Checked all the same, since a topic is a boundary.
fn forwarded<'a>(
    raw: RawFields<'a>,
    ts: i64,
    catalog: &Catalog,
) -> Result<Decoded<'a, Payment>, Reject> {
    let int = |name: &str, v: Option<Raw<'_>>| -> Result<i64, Reject> {
        let text = required(name, v)?.get();
        text.parse()
            .map_err(|_| Reject::invalid(format!("field `{name}` is {text}, not an integer")))
    };
    let upstream = Some((int("upstream", raw.upstream)? as i32, int("wm", raw.wm)?));
    if raw.txn_id.is_none() {
        return Ok(Decoded {
            ts,
            dedup_id: None,
            event: None,
            upstream,
            merchant: None,
        });
    }
    let txn_id = id("txn_id", raw.txn_id)?;
    let zone = known_zone(catalog, &id("zone", raw.zone)?)?;
    let category = known_category(catalog, &id("category", raw.category)?)?;
    let amount = required("amount_fen", raw.amount_fen)?.get();
    let amount_fen: i64 = amount
        .parse()
        .ok()
        .filter(|f: &i64| f.abs() <= super::money::MAX_ABS_FEN)
        .ok_or_else(|| {
            Reject::invalid(format!(
                "field `amount_fen` is {amount}, not a whole number of fen in range"
            ))
        })?;
    let lot = optional_lot(catalog, raw.lot)?;
    Ok(Decoded {
        ts,
        dedup_id: Some(txn_id),
        event: Some(Payment {
            zone,
            category,
            amount_fen,
            lot,
        }),
        upstream,
        merchant: None,
    })
}

#[cfg(test)]
mod tests;
