//! The broker's end offset of every assigned partition, asked of the broker
//! itself every few seconds for the stall watch. The client's statistics carry
//! an end offset too, but only from successful fetches: a partition whose
//! fetches fail (a revoked Read grant, a batch the client cannot decompress)
//! keeps the end it had when it was caught up, and its stall would never show.

use super::*;
use crate::io::kafka::health::StopOnDrop;

/// How often the end offsets are asked for.
const EVERY: Duration = Duration::from_secs(2);
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Partition counts are checked every this many rounds (10 s).
const LAYOUT_EVERY: u32 = 5;

/// Asks for the end offsets on a thread of its own until the guard is dropped.
pub(super) fn watch(config: &Config, health: &Arc<Health>) -> anyhow::Result<StopOnDrop> {
    // A client of its own, in no group: it only lists offsets. Its isolation
    // level gives the last stable offset, as the consumer reads.
    let client: BaseConsumer = client_config(config, &[("isolation.level", "read_committed")])
        .create()
        .map_err(|e| anyhow::anyhow!("the end-offset client: {e}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let (health, flag, config) = (health.clone(), stop.clone(), config.clone());
    std::thread::Builder::new()
        .name("crowdpark-ends".into())
        .spawn(move || {
            let mut rounds = 0u32;
            while !flag.load(Ordering::Relaxed) {
                // A topic grown while the engine runs shows here within
                // seconds; the consumer itself sees it only at its next
                // metadata refresh (5 minutes by default).
                if rounds % LAYOUT_EVERY == 0 {
                    use crate::io::kafka::layout::{check, LayoutError};
                    match check(&client, &config) {
                        Err(LayoutError::Mismatch(m)) => health.refuse(Some(m.to_string())),
                        // Cleared by the rewind that resumes processing,
                        // which checks again, so nothing runs in between.
                        Ok(()) | Err(LayoutError::Metadata(_)) => {}
                    }
                }
                rounds = rounds.wrapping_add(1);
                // Taken first: a guard in the loop's head would be held
                // through the loop, and the lookups below take it again.
                let keys = health.stalls().keys();
                for key in keys {
                    // A broker that is away is the outage verdict's to report.
                    if let Ok((_, high)) = client.fetch_watermarks(&key.0, key.1, QUERY_TIMEOUT) {
                        health.stalls().end(&key, high, Instant::now());
                    }
                }
                std::thread::sleep(EVERY);
            }
        })?;
    Ok(StopOnDrop::new(stop))
}
