//! Deadlines on the Kafka client's blocking transactional calls.
//!
//! librdkafka 2.12.1's `send_offsets_to_transaction` can block for good when
//! its transaction coordinator stops answering: it waits with no limit for a
//! coordinator request whose own deadline is set and never read (librdkafka
//! issues #5456 and #5511; no release up to 2.15 changes it). Seen on a
//! 3-broker cluster under rolling restarts: the checkpoint thread blocked,
//! every worker waited behind it, and the consumer left the group 5 minutes
//! later, with nothing in the log.
//!
//! Each such call runs inside [`during`], which notes the step and its timeout.
//! The health thread reads [`overdue`]: past the timeout, `/readyz` and
//! `/healthz` turn 503 naming the step; past the timeout and [`GRACE`], the
//! process exits with [`EXIT_HUNG`] so that the orchestrator restarts it. A
//! restart is safe at any point: it resumes from the last committed
//! checkpoint, and `init_transactions` fences and aborts what the hung
//! instance left open.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long past its timeout a call may stay blocked before the process exits.
pub const GRACE: Duration = Duration::from_secs(20);
/// librdkafka's timeouts are not to the millisecond: a call this little past
/// its timeout is not overdue yet.
const SLACK: Duration = Duration::from_secs(1);
/// The exit status of a process that left a hung call behind (EX_TEMPFAIL: try
/// again).
pub const EXIT_HUNG: i32 = 75;

struct Step {
    name: &'static str,
    started: Instant,
    timeout: Duration,
}

/// The blocking calls running now.
#[derive(Default)]
struct Steps {
    running: Mutex<BTreeMap<u64, Step>>,
    next: AtomicU64,
}

/// The process's calls: one watch for every client.
static STEPS: Steps = Steps {
    running: Mutex::new(BTreeMap::new()),
    next: AtomicU64::new(0),
};

/// A blocking call that has outrun its timeout.
#[derive(Debug, Clone, PartialEq)]
pub struct Overdue {
    pub step: &'static str,
    pub elapsed: Duration,
    pub timeout: Duration,
}

impl Overdue {
    /// True once the call has outrun its timeout and the grace too.
    pub fn hung(&self) -> bool {
        self.elapsed > self.timeout + GRACE
    }
}

impl std::fmt::Display for Overdue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the Kafka call `{}` has not returned for {} s (its timeout is {} s; the engine exits after {} s)",
            self.step,
            self.elapsed.as_secs(),
            self.timeout.as_secs(),
            (self.timeout + GRACE).as_secs()
        )
    }
}

/// Forgets the step when the call returns, however it returns.
struct Running<'a> {
    steps: &'a Steps,
    id: u64,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        crate::sync::lock(&self.steps.running).remove(&self.id);
    }
}

impl Steps {
    fn during<T>(&self, step: &'static str, timeout: Duration, f: impl FnOnce() -> T) -> T {
        // A bounded call is the loop at work (`/livez`).
        crate::liveness::beat();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let call = Step {
            name: step,
            started,
            timeout,
        };
        crate::sync::lock(&self.running).insert(id, call);
        let _running = Running { steps: self, id };
        f()
    }

    fn overdue(&self) -> Option<Overdue> {
        crate::sync::lock(&self.running)
            .values()
            .map(|s| Overdue {
                step: s.name,
                elapsed: s.started.elapsed(),
                timeout: s.timeout,
            })
            .filter(|o| o.elapsed > o.timeout + SLACK)
            .max_by_key(|o| o.elapsed.saturating_sub(o.timeout))
    }
}

/// Runs the blocking call `f`, known as `step`, which should return within
/// `timeout`.
pub fn during<T>(step: &'static str, timeout: Duration, f: impl FnOnce() -> T) -> T {
    STEPS.during(step, timeout, f)
}

/// The call furthest past its timeout, if any is.
pub fn overdue() -> Option<Overdue> {
    STEPS.overdue()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_past_its_timeout_is_overdue_until_it_returns() {
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        // A watch of its own: the process's is read by the health tests.
        let steps: &'static Steps = Box::leak(Box::default());
        let t = std::thread::spawn(move || {
            steps.during("test_step", Duration::ZERO, || {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
            })
        });
        started_rx.recv().unwrap();
        std::thread::sleep(SLACK + Duration::from_millis(50));
        let o = steps.overdue().expect("overdue");
        assert_eq!(o.step, "test_step");
        assert!(!o.hung(), "the grace has not passed");
        assert!(
            o.to_string().contains("`test_step` has not returned"),
            "{o}"
        );
        release_tx.send(()).unwrap();
        t.join().unwrap();
        assert_eq!(steps.overdue(), None);
    }
}
