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

/// Asks for the end offsets on a thread of its own until the guard is dropped.
pub(super) fn watch(config: &Config, health: &Arc<Health>) -> anyhow::Result<StopOnDrop> {
    // A client of its own, in no group: it only lists offsets. Its isolation
    // level gives the last stable offset, as the consumer reads.
    let client: BaseConsumer = client_config(config, &[("isolation.level", "read_committed")])
        .create()
        .map_err(|e| anyhow::anyhow!("the end-offset client: {e}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let (health, flag) = (health.clone(), stop.clone());
    std::thread::Builder::new()
        .name("crowdpark-ends".into())
        .spawn(move || {
            while !flag.load(Ordering::Relaxed) {
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
