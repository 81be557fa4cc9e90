//! `crowdpark.deadletter`: a refused message, bounded whatever its size, with
//! why it was refused and where it came from.

use serde::Serialize;

/// `crowdpark.deadletter`: a rejected input and why.
///
/// Every echoed part of the input is cut to a bounded size, so a dead letter
/// always fits the topic whatever the input was: a 1 MB key, or a 1 MB field
/// quoted in the error, once made a dead letter the broker refused, and the
/// engine could neither publish it nor move past the message. `truncated`
/// names what was cut; `payload_bytes` is the input's whole size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub reason: crate::model::RejectReason,
    pub error: String,
    pub payload: String,
    pub payload_bytes: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub truncated: Vec<&'static str>,
}

/// Dead letters keep at most this much of the original payload.
pub const DEADLETTER_PAYLOAD_LIMIT: usize = 64 * 1024;
/// ... of the input's key (ids are short; anything longer is not one).
pub const DEADLETTER_KEY_LIMIT: usize = 1024;
/// ... of the error text (which may quote the offending field).
pub const DEADLETTER_ERROR_LIMIT: usize = 2048;

/// Where a dead-lettered input came from.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
}

impl DeadLetter {
    pub fn new(origin: Origin<'_>, reject: crate::model::Reject, payload: &[u8]) -> Self {
        let mut truncated = Vec::new();
        let mut cut = |field: &'static str, bytes: &[u8], limit: usize| {
            let (text, was_cut) = bounded_text(bytes, limit);
            if was_cut {
                truncated.push(field);
            }
            text
        };
        let key = origin.key.map(|k| cut("key", k, DEADLETTER_KEY_LIMIT));
        let error = cut("error", reject.error.as_bytes(), DEADLETTER_ERROR_LIMIT);
        let payload_text = cut("payload", payload, DEADLETTER_PAYLOAD_LIMIT);
        DeadLetter {
            topic: origin.topic.to_string(),
            partition: origin.partition,
            offset: origin.offset,
            key,
            reason: reject.reason,
            error,
            payload: payload_text,
            payload_bytes: payload.len(),
            truncated,
        }
    }
}

/// `bytes` as text (invalid UTF-8 replaced), cut to at most `limit` bytes on a
/// character boundary, with an ellipsis when cut; and whether it was cut.
fn bounded_text(bytes: &[u8], limit: usize) -> (String, bool) {
    let mut text = String::from_utf8_lossy(&bytes[..bytes.len().min(limit)]).into_owned();
    let cut = bytes.len() > limit || text.len() > limit;
    if cut {
        let mut end = limit.saturating_sub('…'.len_utf8()).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    (text, cut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Reject;
    use crate::output::Output;

    fn letter(key: &[u8], error: String, payload: &[u8]) -> DeadLetter {
        let origin = Origin {
            topic: "crowd.counts",
            partition: 1,
            offset: 7,
            key: Some(key),
        };
        DeadLetter::new(origin, Reject::invalid(error), payload)
    }

    #[test]
    fn a_dead_letter_is_bounded_whatever_the_input() {
        let huge = "é".repeat(600_000);
        let d = letter(
            huge.as_bytes(),
            format!("field `ts`: {huge}"),
            huge.as_bytes(),
        );
        let json = Output::DeadLetter(d.clone()).to_json();
        assert!(
            json.len() < 2 * DEADLETTER_PAYLOAD_LIMIT,
            "{} bytes",
            json.len()
        );
        assert!(d.key.as_ref().unwrap().len() <= DEADLETTER_KEY_LIMIT);
        assert!(d.error.len() <= DEADLETTER_ERROR_LIMIT);
        assert!(d.error.starts_with("field `ts`: é") && d.error.ends_with('…'));
        assert_eq!(d.truncated, ["key", "error", "payload"]);
        assert_eq!(d.payload_bytes, huge.len());
    }

    #[test]
    fn a_small_dead_letter_is_kept_whole_and_says_nothing_was_cut() {
        let d = letter(
            b"east-pier-queue",
            "field `people` must not be negative".into(),
            b"{}",
        );
        assert_eq!(d.key.as_deref(), Some("east-pier-queue"));
        assert_eq!(d.payload, "{}");
        let json = String::from_utf8(Output::DeadLetter(d).to_json()).unwrap();
        assert!(!json.contains("truncated"), "{json}");
        assert!(json.contains(r#""payload_bytes":2"#), "{json}");
    }
}
