//! Why an input was refused, in the contract's dead-letter vocabulary (docs/contract.md §3).

use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// Not a UTF-8 JSON object at all.
    MalformedJson,
    /// Valid JSON, but a field is missing, of the wrong type or badly formatted.
    InvalidField,
    /// Names a zone, car park, merchant or category the configuration does not know.
    UnknownEntity,
    /// Well-formed but impossible (negative people, a timestamp in 1970, ...).
    OutOfRange,
    /// Its event time falls only in windows that are already final.
    Late,
    /// Larger than `engine.max_message_bytes`; not parsed.
    TooLarge,
    /// Keyed by another entity than the one it is about, or not keyed: it may
    /// sit on another partition than that entity's state.
    KeyMismatch,
}

impl RejectReason {
    pub const ALL: [RejectReason; 7] = [
        RejectReason::MalformedJson,
        RejectReason::InvalidField,
        RejectReason::UnknownEntity,
        RejectReason::OutOfRange,
        RejectReason::Late,
        RejectReason::TooLarge,
        RejectReason::KeyMismatch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::MalformedJson => "malformed_json",
            RejectReason::InvalidField => "invalid_field",
            RejectReason::UnknownEntity => "unknown_entity",
            RejectReason::OutOfRange => "out_of_range",
            RejectReason::Late => "late",
            RejectReason::TooLarge => "too_large",
            RejectReason::KeyMismatch => "key_mismatch",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejection: the reason for machines, a sentence naming the field for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub reason: RejectReason,
    pub error: String,
}

impl Reject {
    pub fn new(reason: RejectReason, error: impl Into<String>) -> Self {
        Reject {
            reason,
            error: error.into(),
        }
    }
    pub fn invalid(error: impl Into<String>) -> Self {
        Reject::new(RejectReason::InvalidField, error)
    }
    pub fn range(error: impl Into<String>) -> Self {
        Reject::new(RejectReason::OutOfRange, error)
    }
    pub fn unknown(error: impl Into<String>) -> Self {
        Reject::new(RejectReason::UnknownEntity, error)
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.error)
    }
}

impl std::error::Error for Reject {}
