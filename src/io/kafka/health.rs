//! What `/healthz` and `/readyz` report in Kafka mode, kept by its own thread
//! so it stays true while the engine thread waits (for a broker, a full
//! producer queue, a stuck transaction).
//!
//! `/healthz` is 503, with the reason in its body and `crowdpark_healthy` 0,
//! once for `kafka.unhealthy_after`:
//! - start-up has not reached the broker (the engine keeps trying);
//! - no broker has been reachable;
//! - a restore has failed (the instance holds its partitions and retries);
//! - no checkpoint has been committed while there was input to commit: a
//!   commit deferred again and again, a transaction that cannot be aborted,
//!   a checkpoint that fails every time. Consuming alone is not progress: a
//!   rewind loop consumes the same messages forever;
//! - one partition has records waiting and has not advanced (`stall`), while
//!   the others go on and checkpoints still commit.
//!
//! At once, without waiting for `unhealthy_after`: a transactional call has
//! outrun its timeout (`deadline`); once it has outrun its grace too, the
//! process exits with `deadline::EXIT_HUNG` for the orchestrator to restart.
//!
//! `/readyz` is 200 only while the engine is ready (assigned, restored, not
//! held) and this verdict is healthy.

use super::deadline;
use super::stall::StallWatch;
use crate::http::LiveView;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// No client statistics showing a broker up for this long (they come every
/// second) means the broker is away.
const AWAY: Duration = Duration::from_millis(2500);

/// When any client last saw a broker up, in ms since `EPOCH`. The consumer's
/// statistics arrive only while its thread polls, which a long flush or a
/// restore holds up; the producers' arrive on their own threads.
static LAST_UP_MS: AtomicU64 = AtomicU64::new(0);
static EPOCH: OnceLock<Instant> = OnceLock::new();

fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// Notes a broker seen up now.
fn broker_up() {
    let ms = epoch().elapsed().as_millis() as u64;
    LAST_UP_MS.fetch_max(ms, Ordering::Relaxed);
}

/// Reads reachability from a client's statistics: true, and noted, when a
/// broker connection is up. Every client reports through this one place.
pub fn note_statistics(stats: &rdkafka::statistics::Statistics) -> bool {
    let up = stats.brokers.values().any(|b| b.state == "UP");
    if up {
        broker_up();
    }
    up
}

fn last_up() -> Option<Instant> {
    match LAST_UP_MS.load(Ordering::Relaxed) {
        0 => None,
        ms => Some(epoch() + Duration::from_millis(ms)),
    }
}

pub struct Health {
    unhealthy_after: Duration,
    state: Mutex<HealthState>,
    stalls: Mutex<StallWatch>,
    /// The partitions whose stall series `publish` last set.
    published: Mutex<Vec<super::stall::Key>>,
}

struct HealthState {
    started: Instant,
    /// Start-up reached the broker (producer registered, topics found).
    connected: bool,
    /// Last checkpoint committed, or last time there was nothing to commit.
    progress_at: Instant,
    last_error: Option<String>,
    restore_failed: Option<String>,
    /// Partition counts that do not match (`layout`): processing refused.
    refused: Option<String>,
}

impl Health {
    pub fn new(unhealthy_after: Duration) -> Self {
        epoch();
        let now = Instant::now();
        Health {
            unhealthy_after,
            state: Mutex::new(HealthState {
                started: now,
                connected: false,
                progress_at: now,
                last_error: None,
                restore_failed: None,
                refused: None,
            }),
            stalls: Mutex::new(StallWatch::default()),
            published: Mutex::new(Vec::new()),
        }
    }

    /// Each assigned partition's progress, kept by the runner.
    pub fn stalls(&self) -> MutexGuard<'_, StallWatch> {
        crate::sync::lock(&self.stalls)
    }

    fn lock(&self) -> MutexGuard<'_, HealthState> {
        crate::sync::lock(&self.state)
    }

    /// Start-up is done; the progress clock starts now.
    pub fn connected(&self) {
        let mut h = self.lock();
        h.connected = true;
        h.progress_at = Instant::now();
        // Start-up has just talked to the broker.
        broker_up();
    }

    /// A checkpoint was committed, or there was nothing to commit.
    pub fn progress(&self) {
        self.lock().progress_at = Instant::now();
    }

    pub fn note_error(&self, e: String) {
        self.lock().last_error = Some(e);
    }

    pub fn restore_failed(&self, e: Option<String>) {
        let mut h = self.lock();
        if e.is_none() && h.restore_failed.is_some() {
            // Restored: the progress clock starts again from here.
            h.progress_at = Instant::now();
        }
        h.restore_failed = e;
    }

    /// Processing refused because the partition counts do not match (`Some`,
    /// with the reason), or allowed again. The ERROR is logged here, once per
    /// change, so every place that checks can report.
    pub fn refuse(&self, reason: Option<String>) {
        let mut h = self.lock();
        if h.refused == reason {
            return;
        }
        match &reason {
            Some(r) => tracing::error!("{r}"),
            None => {
                tracing::info!("partition counts match again; processing resumes");
                h.progress_at = Instant::now();
            }
        }
        h.refused = reason;
    }

    /// True while processing is refused (`refuse`).
    pub fn refused(&self) -> bool {
        self.lock().refused.is_some()
    }

    /// Why the engine is unhealthy now, if it is.
    pub fn verdict(&self) -> Option<String> {
        let h = self.lock();
        let limit = self.unhealthy_after;
        // A recognised cause (refused credentials, an untrusted certificate,
        // a missing ACL) says more than the time-out it leads to.
        let cause = super::cause::recent(limit.max(Duration::from_secs(30)));
        let last = cause
            .as_deref()
            .or(h.last_error.as_deref())
            .unwrap_or("none");
        if !h.connected {
            let waiting = h.started.elapsed();
            return (waiting > limit).then(|| {
                format!(
                    "starting for {} s and not yet connected to Kafka (last error: {last})",
                    waiting.as_secs()
                )
            });
        }
        // Refused at once: no amount of waiting fixes a partition count.
        if let Some(r) = &h.refused {
            return Some(r.clone());
        }
        // Past start-up (which waits for a broker however long it takes), a
        // call past its deadline is the reason at once.
        if let Some(o) = deadline::overdue() {
            return Some(o.to_string());
        }
        let away = last_up().unwrap_or(h.started).elapsed();
        if away > limit {
            return Some(format!(
                "no Kafka broker reachable for {} s (last client error: {last})",
                away.as_secs()
            ));
        }
        if let Some(e) = &h.restore_failed {
            return Some(format!("state restore failed: {e}"));
        }
        let stalled = self.stalls().stalled(limit, Instant::now());
        if let Some(first) = stalled.first() {
            let more = match stalled.len() {
                1 => String::new(),
                n => format!("; and {} more partition(s)", n - 1),
            };
            return Some(format!("{first}{more}"));
        }
        // While the broker is away, the outage above is the reason, and it is
        // given once the broker has been away for `unhealthy_after`.
        let stalled = h.progress_at.elapsed();
        (stalled > limit && away < AWAY).then(|| {
            format!(
                "no progress for {} s: no checkpoint committed while input waits (last error: {last})",
                stalled.as_secs()
            )
        })
    }

    fn publish(&self, view: &LiveView) {
        if let Some(o) = deadline::overdue().filter(deadline::Overdue::hung) {
            // librdkafka cannot be asked to give the call up, and whatever
            // waits behind it waits for good: a restart is the way out, and
            // is as safe as a crash.
            tracing::error!(
                "{o}; exiting so that the orchestrator restarts the engine (it resumes from the last committed checkpoint)"
            );
            std::process::exit(deadline::EXIT_HUNG);
        }
        let stalled = self.lock().progress_at.elapsed().as_secs_f64();
        view.metrics.runtime.set_seconds_since_progress(stalled);
        let now = Instant::now();
        let (keys, stuck) = {
            let stalls = self.stalls();
            (stalls.keys(), stalls.stalled(self.unhealthy_after, now))
        };
        let runtime = &view.metrics.runtime;
        let mut published = crate::sync::lock(&self.published);
        // A partition no longer assigned here has no series: another
        // instance's alert is not this one's.
        for (topic, partition) in published.iter().filter(|k| !keys.contains(k)) {
            runtime.forget_stalled(topic, *partition);
        }
        for (topic, partition) in &keys {
            let is = stuck
                .iter()
                .any(|s| &s.topic == topic && s.partition == *partition);
            runtime.set_partition_stalled(topic, *partition, is);
        }
        *published = keys;
        drop(published);
        match self.verdict() {
            Some(reason) => view.set_health(false, &reason),
            None => view.set_health(true, ""),
        }
    }

    /// Publishes the verdict every 250 ms until the returned guard is dropped.
    pub fn watch(self: &Arc<Self>, view: Arc<LiveView>) -> StopOnDrop {
        let stop = Arc::new(AtomicBool::new(false));
        let (health, flag) = (self.clone(), stop.clone());
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                health.publish(&view);
                std::thread::sleep(PUBLISH_EVERY);
            }
        });
        StopOnDrop(stop)
    }
}

pub struct StopOnDrop(Arc<AtomicBool>);

impl StopOnDrop {
    /// A guard that sets `flag` when dropped.
    pub fn new(flag: Arc<AtomicBool>) -> Self {
        StopOnDrop(flag)
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_up_without_a_broker_turns_unhealthy_with_the_reason() {
        let h = Health::new(Duration::ZERO);
        std::thread::sleep(Duration::from_millis(5));
        h.note_error("Local: Broker transport failure".into());
        let v = h.verdict().expect("unhealthy");
        assert!(
            v.starts_with("starting for") && v.contains("transport failure"),
            "{v}"
        );
    }

    #[test]
    fn no_commit_while_connected_is_no_progress_and_a_commit_clears_it() {
        let h = Health::new(Duration::from_millis(50));
        h.connected();
        assert_eq!(h.verdict(), None);
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(20));
            broker_up();
        }
        let v = h.verdict().expect("stalled");
        assert!(v.starts_with("no progress for"), "{v}");
        h.progress();
        assert_eq!(h.verdict(), None);
    }
}
