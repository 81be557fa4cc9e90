//! `crowdpark run` on a locked-down cluster: the secured broker of
//! `scripts/kafka.sh start --secure` (SASL_SSL, SCRAM-SHA-512, a private CA,
//! `allow.everyone.if.no.acl.found=false`). The engine logs in as a user of its
//! own that holds exactly the ACLs `crowdpark topics acls` prints.

mod common;

use common::engine::{start_engine, stop_engine, Engine};
use common::scenario::{simulate, Disturbed, Rng};
use common::secure::{use_secure_cluster, SecureCluster};
use std::time::Duration;

/// A run on the secured broker whose engine is a user with the documented
/// grants only; the reference engine and the test's own clients are `admin`.
struct Locked {
    d: Disturbed,
    env: Vec<(String, String)>,
    grants: Vec<String>,
}

fn locked(kind: &str, guarantee: &str) -> (&'static SecureCluster, Locked) {
    let cluster = use_secure_cluster();
    let d = Disturbed::new(kind, guarantee);
    let user = d.run.prefix.clone();
    cluster.create_user(&user);
    let mut env = d.env.clone();
    env.extend(cluster.engine_env(&user));
    let grants = cluster.grant_documented(&env, &format!("User:{user}"));
    (cluster, Locked { d, env, grants })
}

/// The grants a revocation picks from: an output topic, the repartition
/// topic, the consumer group and (exactly-once) the transactional id.
fn revocable(grants: &[String]) -> Vec<&String> {
    grants
        .iter()
        .filter(|g| {
            g.contains("parking.availability")
                || g.contains("payments.stats")
                || g.contains("payments-by-zone")
                || (g.contains("--group") && !g.ends_with("-restore"))
                || g.contains("--transactional-id")
        })
        .collect()
}

/// Revokes one of the engine's grants at a random point, three times, and
/// grants it again after 5 s. The engine may hold or stop (then it is started
/// again, as a supervisor would), but it must lose and double-count nothing:
/// it finishes with the outputs of an uninterrupted run.
fn revoked_mid_run(guarantee: &str) {
    let (cluster, l) = locked("acl", guarantee);
    let sim = simulate(&l.d.input, &l.d.brokers, 400, 14_000);
    let mut rng = Rng::from_env_or_clock();
    let candidates = revocable(&l.grants);
    let mut engine: Option<(Engine, String)> = None;
    for _ in 0..3 {
        let (mut e, addr) = match engine.take() {
            Some(running) => running,
            None => start_engine(&l.env),
        };
        l.d.wait_consuming(&addr);
        std::thread::sleep(Duration::from_millis(500 + rng.below(2500)));
        let grant = candidates[rng.below(candidates.len() as u64) as usize];
        eprintln!("revoking for 5 s: {grant}");
        cluster.acl("revoke", grant);
        std::thread::sleep(Duration::from_secs(5));
        cluster.acl("grant", grant);
        match e.child.0.as_mut().unwrap().try_wait().unwrap() {
            Some(status) => {
                eprintln!("the engine stopped: {status}");
                e.child.0 = None;
            }
            None => engine = Some((e, addr)),
        }
    }
    let last = match engine.take() {
        Some((e, _)) => e,
        None => start_engine(&l.env).0,
    };
    let uninterrupted = l.d.assert_same_as_uninterrupted(sim);
    assert_eq!(stop_engine(last).code(), Some(0));
    assert_eq!(stop_engine(uninterrupted).code(), Some(0));
}

#[test]
fn revoked_acls_lose_nothing_at_least_once() {
    revoked_mid_run("at_least_once");
}

#[test]
fn revoked_acls_lose_nothing_exactly_once() {
    revoked_mid_run("exactly_once");
}
