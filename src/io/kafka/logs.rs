//! Kafka client logs and errors, and the engine's repeating warnings, through
//! the shared limiter ([`crate::repeats`]): one line per distinct message per
//! interval, with a count; a recognised cause is said once by [`super::cause`].

use crate::repeats::{limiter, Verdict};
use rdkafka::config::RDKafkaLogLevel;
use std::time::Instant;

/// A warning that can repeat every loop pass (a failing abort, a deferred
/// commit), rate-limited like client errors: `what` and the error make the
/// message.
pub fn warn(what: &str, error: &dyn std::fmt::Display) {
    let message = format!("{what}: {error}");
    super::cause::note(&message);
    crate::repeats::warn(&message);
}

/// A client error callback's report, rate-limited.
pub fn client_error(role: &str, error: &dyn std::fmt::Display, reason: &str) {
    let message = format!("{error}: {reason}");
    if super::cause::note(&message) || super::cause::explains(&message) {
        // The cause's own line says it; librdkafka's words stay at debug.
        tracing::debug!(client = role, "kafka client error: {message}");
        return;
    }
    if let Verdict::Log { repeated } = limiter().check(&message, Instant::now()) {
        tracing::warn!(client = role, repeated, "kafka client error: {message}");
    }
}

/// A librdkafka log line, rate-limited. Failures it also reports through the
/// error callback (facilities `FAIL` and `ERROR`) are logged there and only at
/// debug level here, so each is one line, not two.
pub fn client_log(level: RDKafkaLogLevel, fac: &str, message: &str) {
    // A disconnect at the first request is only an INFO line here, and the
    // cause of everything after it.
    if fac == "FAIL" {
        super::cause::note(message);
    }
    let duplicate = matches!(fac, "FAIL" | "ERROR");
    let serious = (level as i32) <= (RDKafkaLogLevel::Warning as i32);
    if duplicate || !serious {
        tracing::debug!(target: "librdkafka", "{fac}: {message}");
        return;
    }
    let line = format!("{fac}: {message}");
    if let Verdict::Log { repeated } = limiter().check(&line, Instant::now()) {
        if (level as i32) <= (RDKafkaLogLevel::Error as i32) {
            tracing::error!(target: "librdkafka", repeated, "{line}");
        } else {
            tracing::warn!(target: "librdkafka", repeated, "{line}");
        }
    }
}

/// A client context for short-lived helper clients (admin, metadata probes)
/// whose logs go through the limiter like everyone else's.
pub struct Quiet;

impl rdkafka::client::ClientContext for Quiet {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        client_log(level, fac, log_message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        client_error("helper", &error, reason);
    }
}

impl rdkafka::consumer::ConsumerContext for Quiet {}

impl rdkafka::producer::ProducerContext for Quiet {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: ()) {}
}
