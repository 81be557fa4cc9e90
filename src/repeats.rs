//! One log line per distinct message per interval, with a count: the limiter
//! every repeating warning goes through (Kafka client errors, loop warnings,
//! the HTTP server's accept failures).
//!
//! With the broker down, librdkafka reports the same failure every few hundred
//! milliseconds, through both its log and its error callbacks, once per client
//! (the consumer, two producers, the restore reader): measured, 749 lines in
//! 60 s, 724 of them the same `AllBrokersDown`; a TLS verification failure
//! made 800 lines a minute. A message is logged the first time; repeats
//! within [`INTERVAL`] are counted, and the next line after it says how many
//! there were. Messages are compared with their numbers masked, so "after
//! 3ms" and "after 5ms" are one message.

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
        let mut seen = crate::sync::lock(&self.seen);
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

/// The process-wide limiter, so one broker outage is one line however many
/// clients notice it.
pub fn limiter() -> &'static Limiter {
    static LIMITER: OnceLock<Limiter> = OnceLock::new();
    LIMITER.get_or_init(Limiter::default)
}

/// Logs `message` as a warning, unless it was logged within [`INTERVAL`].
pub fn warn(message: &str) {
    if let Verdict::Log { repeated } = limiter().check(message, Instant::now()) {
        tracing::warn!(repeated, "{message}");
    }
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
