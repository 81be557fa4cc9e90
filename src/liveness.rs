//! Whether the process's main loop still turns: what `/livez` answers. The
//! Kafka runner's coordinator beats on every pass of its loop, and so does a
//! long state restore between its reads; nothing here depends on a broker, so
//! an orchestrator's liveness probe does not restart every instance while
//! Kafka is away (that is `/readyz`'s and `/healthz`'s to say).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long the loop may go without a beat before `/livez` says it is stuck.
/// Longer than the waits one pass of the loop may chain (a revoke during an
/// outage: settle, flush, offsets, commit and abort, each bounded, about
/// 80 s), so only a loop that is truly stuck fails; a single hung Kafka call
/// has its own, shorter way out (`io::kafka::deadline`).
pub const STUCK_AFTER: Duration = Duration::from_secs(180);

/// Milliseconds since `EPOCH` of the last beat; 0 before the first.
static LAST_BEAT_MS: AtomicU64 = AtomicU64::new(0);
static EPOCH: OnceLock<Instant> = OnceLock::new();

fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// The loop turned.
pub fn beat() {
    let ms = epoch().elapsed().as_millis() as u64;
    // 0 means "never": the first millisecond counts as 1.
    LAST_BEAT_MS.fetch_max(ms.max(1), Ordering::Relaxed);
}

/// How long since the last beat; `None` when nothing beats (the demo, or a
/// run that has not started its loop: start-up has its own deadline).
pub fn since_last_beat() -> Option<Duration> {
    match LAST_BEAT_MS.load(Ordering::Relaxed) {
        0 => None,
        ms => Some(epoch().elapsed().saturating_sub(Duration::from_millis(ms))),
    }
}

/// `Err` with the seconds since the last beat when the loop is stuck.
pub fn check() -> Result<(), u64> {
    match since_last_beat() {
        Some(d) if d > STUCK_AFTER => Err(d.as_secs()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_beat_is_alive() {
        beat();
        assert!(since_last_beat().unwrap() < Duration::from_secs(1));
        assert_eq!(check(), Ok(()));
    }
}
