//! Produce failures against `crowdpark run` on the real broker. While the
//! simulated district streams in, an output topic (or the internal repartition
//! topic) stops taking records for a few seconds, in one of two ways:
//! - permanently refused: its `max.message.bytes` is lowered below every
//!   record's size, which the broker answers with a permanent error for each
//!   record, the kind a revoked write ACL gives;
//! - unavailable: its `min.insync.replicas` is raised above its one replica,
//!   which the broker answers with `NOT_ENOUGH_REPLICAS`, a retriable error
//!   (as while a partition's followers are down).
//!
//! The engine may stall or stop, but it must not lose or double-count
//! anything: restarted with the topic healthy again, it must finish with the
//! payment windows, density windows, alert ids and availability of a run that
//! never saw a failure.

mod common;

use common::kafka;
use common::scenario::{simulate, Disturbed, Rng};
use std::time::Duration;

/// Topics whose records can be made to fail, and whether they are compacted
/// (a non-incremental config change resets what it does not name).
const TARGETS: [(&str, bool); 6] = [
    ("parking.availability", true),
    ("payments.stats", false),
    ("crowd.alerts", false),
    ("crowdpark.deadletter", false),
    ("crowdpark.payments-by-zone", false),
    ("crowdpark.partials-by-district", false),
];

/// Below every record batch the engine writes, above the 78-byte control
/// batch of a transaction marker: lower, the broker's own coordinator cannot
/// write the commit or abort marker, and the transaction hangs in the broker
/// whatever the client does (a broker limitation, not the failure under test).
const REFUSING: usize = 100;

fn faults(guarantee: &str) {
    let d = Disturbed::new("fault", guarantee);
    let sim = simulate(&d.input, &d.brokers, 400, 14_000);
    let mut rng = Rng::from_env_or_clock();
    d.disturb_three_times(&d.env, sim, &mut rng, |rng, _| {
        let (base, compacted) = TARGETS[rng.below(TARGETS.len() as u64) as usize];
        let topic = d.run.topic(base);
        let refusing = REFUSING.to_string();
        let fault: (&str, &str) = if rng.below(2) == 0 {
            ("max.message.bytes", &refusing)
        } else {
            ("min.insync.replicas", "2")
        };
        eprintln!("{topic}: {}={} for 4 s", fault.0, fault.1);
        kafka::alter_topic(&topic, compacted, &[fault]);
        std::thread::sleep(Duration::from_secs(4));
        kafka::alter_topic(
            &topic,
            compacted,
            &[
                ("max.message.bytes", "1048588"),
                ("min.insync.replicas", "1"),
            ],
        );
    });
}

#[test]
fn failed_produces_lose_nothing_at_least_once() {
    faults("at_least_once");
}

#[test]
fn failed_produces_lose_nothing_exactly_once() {
    faults("exactly_once");
}
