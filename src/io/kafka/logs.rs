//! One log line per distinct client error per interval, with a count.
//!
//! With the broker down, librdkafka reports the same failure every few hundred
//! milliseconds, through both its log and its error callbacks, once per client
//! (the consumer, two producers, the restore reader): measured, 749 lines in
//! 60 s, 724 of them the same `AllBrokersDown`; a TLS verification failure
//! made 800 lines a minute. A message is logged the first time; repeats
//! within [`INTERVAL`] are counted, and the next line after it says how many
//! there were. Messages are compared with their numbers masked, so "after
//! 3ms" and "after 5ms" are one message.

use rdkafka::config::RDKafkaLogLevel;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const INTERVAL: Duration = Duration::from_secs(30);
/// Distinct messages remembered at most; past that the oldest are forgotten
/// (so memory stays bounded whatever the errors say).
const MAX_KEYS: usize = 256;

#[derive(Debug)]
struct Seen {
    logged_at: Instant,
    suppressed: u64,
}

/// A limiter over any number of clients.
#[derive(Debug, Default)]
pub struct Limiter {
    seen: Mutex<HashMap<String, Seen>>,
}

/// What to do with one occurrence of a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Log it; `repeated` occurrences were held back since it was last logged.
    Log {
        repeated: u64,
    },
    Suppress,
}

impl Limiter {
    pub fn check(&self, message: &str, now: Instant) -> Verdict {
        let key = mask_numbers(message);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = seen.get_mut(&key) {
            if now.duration_since(s.logged_at) < INTERVAL {
                s.suppressed += 1;
                return Verdict::Suppress;
            }
            let repeated = std::mem::take(&mut s.suppressed);
            s.logged_at = now;
            return Verdict::Log { repeated };
        }
        if seen.len() >= MAX_KEYS {
            if let Some(oldest) = seen
                .iter()
                .min_by_key(|(_, s)| s.logged_at)
                .map(|(k, _)| k.clone())
            {
                seen.remove(&oldest);
            }
        }
        seen.insert(
            key,
            Seen {
                logged_at: now,
                suppressed: 0,
            },
        );
        Verdict::Log { repeated: 0 }
    }
}

/// Digits runs replaced by `#`.
fn mask_numbers(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut in_digits = false;
    for c in message.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

/// The process-wide limiter all Kafka clients share, so one broker outage is
/// one line however many clients notice it.
pub fn limiter() -> &'static Limiter {
    static LIMITER: OnceLock<Limiter> = OnceLock::new();
    LIMITER.get_or_init(Limiter::default)
}

/// A warning that can repeat every loop pass (a failing abort, a deferred
/// commit), rate-limited like client errors: `what` and the error make the
/// message.
pub fn warn(what: &str, error: &dyn std::fmt::Display) {
    let message = format!("{what}: {error}");
    super::cause::note(&message);
    if let Verdict::Log { repeated } = limiter().check(&message, Instant::now()) {
        tracing::warn!(repeated, "{message}");
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_within_the_interval_are_counted_and_reported_once() {
        let l = Limiter::default();
        let t0 = Instant::now();
        let down = |ms: u64| format!("Connect to 127.0.0.1:9092 failed (after {ms}ms)");
        assert_eq!(l.check(&down(1), t0), Verdict::Log { repeated: 0 });
        for i in 1..=700u64 {
            let at = t0 + Duration::from_millis(i * 40);
            assert_eq!(l.check(&down(i), at), Verdict::Suppress);
        }
        assert_eq!(
            l.check("TLS handshake failed", t0),
            Verdict::Log { repeated: 0 },
            "another message is logged at once"
        );
        let later = t0 + INTERVAL + Duration::from_millis(1);
        assert_eq!(l.check(&down(9), later), Verdict::Log { repeated: 700 });
        assert_eq!(l.check(&down(9), later), Verdict::Suppress);
    }

    #[test]
    fn distinct_messages_are_bounded() {
        let l = Limiter::default();
        let t0 = Instant::now();
        for i in 0..1000 {
            let text = format!("error {}", "x".repeat(i % 300));
            l.check(&text, t0);
        }
        assert!(l.seen.lock().unwrap().len() <= MAX_KEYS);
    }
}
