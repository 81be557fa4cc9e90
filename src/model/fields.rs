//! Reading single JSON fields, each error a sentence that names the field.
//!
//! Fields arrive as borrowed [`Raw`] values: the decoder only finds their extent, and the
//! typed reading happens here, where a failure can say which field was wrong and
//! whether it was badly formed (`invalid_field`) or impossible (`out_of_range`).

use super::json::Raw;
use super::money::{parse_fen, MoneyError, MAX_ABS_FEN};
use super::reject::Reject;
use chrono::DateTime;
use std::borrow::Cow;

/// 2000-01-01T00:00:00Z and 2100-01-01T00:00:00Z: event times outside are bad clocks.
pub const MIN_TS: i64 = 946_684_800_000;
pub const MAX_TS: i64 = 4_102_444_800_000;

/// Longest id (zone, source, space, transaction) accepted.
pub const MAX_ID_LEN: usize = 128;

fn kind_of(raw: Raw<'_>) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b't') | Some(b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

pub fn required<'a>(name: &str, raw: Option<Raw<'a>>) -> Result<Raw<'a>, Reject> {
    raw.ok_or_else(|| Reject::invalid(format!("field `{name}` is missing")))
}

/// A JSON string, borrowed unless it contains escapes.
pub fn string<'a>(name: &str, raw: Raw<'a>) -> Result<Cow<'a, str>, Reject> {
    let text = raw.get();
    if !text.starts_with('"') {
        return Err(Reject::invalid(format!(
            "field `{name}` must be a string, not {}",
            kind_of(raw)
        )));
    }
    let inner = &text[1..text.len() - 1];
    if inner.contains('\\') {
        serde_json::from_str::<String>(text)
            .map(Cow::Owned)
            .map_err(|e| Reject::invalid(format!("field `{name}` is not a valid string: {e}")))
    } else {
        Ok(Cow::Borrowed(inner))
    }
}

/// A non-empty identifier of bounded length.
pub fn id<'a>(name: &str, raw: Option<Raw<'a>>) -> Result<Cow<'a, str>, Reject> {
    let s = string(name, required(name, raw)?)?;
    if s.trim().is_empty() {
        return Err(Reject::invalid(format!("field `{name}` must not be empty")));
    }
    if s.len() > MAX_ID_LEN {
        return Err(Reject::invalid(format!(
            "field `{name}` is {} bytes long; ids are at most {MAX_ID_LEN}",
            s.len()
        )));
    }
    Ok(s)
}

pub fn optional_id<'a>(name: &str, raw: Option<Raw<'a>>) -> Result<Option<Cow<'a, str>>, Reject> {
    match raw {
        None => Ok(None),
        Some(_) => id(name, raw).map(Some),
    }
}

/// A whole number in `0..=max`.
pub fn count(name: &str, raw: Raw<'_>, max: u32) -> Result<u32, Reject> {
    let text = raw.get();
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(if kind_of(raw) == "a number" {
            Reject::invalid(format!("field `{name}` must be a whole number, got {text}"))
        } else {
            Reject::invalid(format!(
                "field `{name}` must be a number, not {}",
                kind_of(raw)
            ))
        });
    }
    if text.starts_with('-') {
        if digits.bytes().all(|b| b == b'0') {
            return Ok(0);
        }
        return Err(Reject::range(format!(
            "field `{name}` must not be negative, got {text}"
        )));
    }
    match digits.parse::<u64>() {
        Ok(v) if v <= max as u64 => Ok(v as u32),
        _ => Err(Reject::range(format!(
            "field `{name}` is {text}, more than the plausible maximum {max}"
        ))),
    }
}

/// `ts`: RFC 3339 with an offset, or integer epoch milliseconds.
pub fn timestamp(raw: Option<Raw<'_>>) -> Result<i64, Reject> {
    let raw = required("ts", raw)?;
    let text = raw.get();
    let ms = if text.starts_with('"') {
        let s = string("ts", raw)?;
        DateTime::parse_from_rfc3339(&s)
            .map_err(|e| {
                Reject::invalid(format!(
                    "field `ts` is \"{s}\", not an RFC 3339 time with offset ({e})"
                ))
            })?
            .timestamp_millis()
    } else if kind_of(raw) == "a number" {
        let digits = text.strip_prefix('-').unwrap_or(text);
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Reject::invalid(format!(
                "field `ts` is {text}; epoch time must be whole milliseconds"
            )));
        }
        text.parse::<i64>().map_err(|_| {
            Reject::range(format!("field `ts` is {text}, outside any plausible time"))
        })?
    } else {
        return Err(Reject::invalid(format!(
            "field `ts` must be an RFC 3339 string or epoch milliseconds, not {}",
            kind_of(raw)
        )));
    };
    if !(MIN_TS..MAX_TS).contains(&ms) {
        return Err(Reject::range(format!(
            "field `ts` is {text}, outside 2000-01-01..2100-01-01 (a misconfigured clock, or seconds instead of milliseconds?)"
        )));
    }
    Ok(ms)
}

/// `amount`: a decimal string or number with at most two decimals, into fen.
pub fn amount(raw: Option<Raw<'_>>) -> Result<i64, Reject> {
    let raw = required("amount", raw)?;
    let text = match kind_of(raw) {
        "a string" => string("amount", raw)?,
        "a number" => Cow::Borrowed(raw.get()),
        other => {
            return Err(Reject::invalid(format!(
                "field `amount` must be a decimal, not {other}"
            )))
        }
    };
    parse_fen(&text).map_err(|e| match e {
        MoneyError::Format => Reject::invalid(format!(
            "field `amount` is {text}, not a decimal with at most two places"
        )),
        MoneyError::Range => Reject::range(format!(
            "field `amount` is {text}, beyond the {} yuan limit for one payment",
            MAX_ABS_FEN / 100
        )),
    })
}
