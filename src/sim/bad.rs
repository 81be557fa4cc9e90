//! Spoiling good messages in the ways real feeds go wrong.

use super::Rng;
use crate::model::{InputTopic, RejectReason};

/// Turns a good message into a bad one and says which dead-letter reason it must
/// get. `late_ok` is false early in a run, when a partition may not have a
/// watermark yet and an old message would still be on time.
pub fn spoil(
    topic: InputTopic,
    good: &[u8],
    ts: i64,
    late_ok: bool,
    rng: &mut Rng,
) -> (Vec<u8>, RejectReason) {
    let text = String::from_utf8_lossy(good).into_owned();
    let kinds = if late_ok { 5 } else { 4 };
    match rng.range(0, kinds) {
        0 => {
            // Cut off mid-message, as a broken producer or proxy would.
            let cut = (text.len() / 2).max(1);
            (text.as_bytes()[..cut].to_vec(), RejectReason::MalformedJson)
        }
        1 => {
            let bad = match topic {
                InputTopic::CrowdCounts => {
                    replace_number(&text, "\"ts\":", "\"ts\":\"half past two\"")
                }
                InputTopic::ParkingEvents => replace_number(&text, "\"ts\":", "\"ts\":true"),
                InputTopic::Payments
                | InputTopic::PaymentsByZone
                | InputTopic::DistrictPartials => {
                    text.replacen("\"amount\":\"", "\"amount\":\"12.345", 1)
                }
            };
            (bad.into_bytes(), RejectReason::InvalidField)
        }
        2 => {
            let bad = match topic {
                InputTopic::CrowdCounts => text.replacen("\"zone\":\"", "\"zone\":\"atlantis-", 1),
                InputTopic::ParkingEvents => text.replacen("\"lot\":\"", "\"lot\":\"p99-", 1),
                // The contract's rule: a payment's own `zone` wins over its
                // merchant's, so one that carries a zone (a parking fee, from
                // a merchant not configured) is unknown by its zone.
                InputTopic::Payments
                | InputTopic::PaymentsByZone
                | InputTopic::DistrictPartials
                    if text.contains("\"zone\":\"") =>
                {
                    text.replacen("\"zone\":\"", "\"zone\":\"atlantis-", 1)
                }
                InputTopic::Payments
                | InputTopic::PaymentsByZone
                | InputTopic::DistrictPartials => {
                    text.replacen("\"merchant\":\"", "\"merchant\":\"x-", 1)
                }
            };
            (bad.into_bytes(), RejectReason::UnknownEntity)
        }
        3 => {
            // A sensor whose clock was never set: 1970.
            (
                replace_number(&text, "\"ts\":", "\"ts\":86400000").into_bytes(),
                RejectReason::OutOfRange,
            )
        }
        _ => {
            let old = ts - 15 * 60_000;
            (
                replace_number(&text, "\"ts\":", &format!("\"ts\":{old}")).into_bytes(),
                RejectReason::Late,
            )
        }
    }
}

/// Replaces the integer after `field` (the simulator writes `ts` as epoch ms).
fn replace_number(text: &str, field: &str, with: &str) -> String {
    let Some(start) = text.find(field) else {
        return text.to_string();
    };
    let after = start + field.len();
    let end = text[after..]
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .map_or(text.len(), |i| after + i);
    format!("{}{}{}", &text[..start], with, &text[end..])
}
