//! HTTP basic authentication against bcrypt hashes (`http.basic_auth_users`),
//! as Prometheus exporters' web configuration does it.
//!
//! bcrypt is slow on purpose (tens of milliseconds at cost 10), so a header
//! that verified once is remembered (by its SHA-256, never in clear) and a
//! scrape every few seconds costs one hash lookup; at most [`REMEMBERED`]
//! are kept.
//!
//! A user name that is not configured is checked against a dummy hash of the
//! same cost, as the Prometheus exporter toolkit does: otherwise the answer
//! would come at once for an unknown name and after a bcrypt for a known one,
//! and its timing would tell which names exist.

use base64::Engine;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

const REMEMBERED: usize = 64;

pub struct BasicAuth {
    users: BTreeMap<String, String>,
    verified: Mutex<HashSet<[u8; 32]>>,
    /// A hash of nothing anyone knows, at the configured hashes' cost.
    dummy: String,
    /// bcrypt verifications run, known user or not.
    verifications: AtomicU64,
}

impl BasicAuth {
    /// `None` when no users are configured: the API is open.
    pub fn new(users: &BTreeMap<String, String>) -> Option<Self> {
        if users.is_empty() {
            return None;
        }
        let cost = users
            .values()
            .filter_map(|h| cost_of(h))
            .max()
            .unwrap_or(10);
        // Its password does not matter: an unknown user is refused whatever
        // the comparison says.
        let dummy = bcrypt::hash("no such user", cost).expect("bcrypt hashes at a valid cost");
        Some(BasicAuth {
            users: users.clone(),
            verified: Mutex::new(HashSet::new()),
            dummy,
            verifications: AtomicU64::new(0),
        })
    }

    /// True when `authorization` (the header's value) names a user whose
    /// password matches its hash. Blocking: call it off the async threads.
    pub fn allows(&self, authorization: Option<&str>) -> bool {
        let Some(header) = authorization else {
            return false;
        };
        let digest: [u8; 32] = openssl::sha::sha256(header.as_bytes());
        if self.lock().contains(&digest) {
            return true;
        }
        let Some((user, password)) = credentials(header) else {
            return false;
        };
        let known = self.users.get(&user);
        let hash = known.unwrap_or(&self.dummy);
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let ok = bcrypt::verify(&password, hash).unwrap_or(false) && known.is_some();
        if ok {
            let mut verified = self.lock();
            if verified.len() >= REMEMBERED {
                verified.clear();
            }
            verified.insert(digest);
        }
        ok
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        crate::sync::lock(&self.verified)
    }
}

/// The cost of a bcrypt hash (`$2b$10$…` → 10), within bcrypt's range.
fn cost_of(hash: &str) -> Option<u32> {
    let cost: u32 = hash.split('$').nth(2)?.parse().ok()?;
    (4..=31).contains(&cost).then_some(cost)
}

/// The user and password of a `Basic` authorization header.
fn credentials(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_password_passes() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let users = BTreeMap::from([("prom".to_string(), hash)]);
        let auth = BasicAuth::new(&users).unwrap();
        let header = |u: &str, p: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        };
        assert!(auth.allows(Some(&header("prom", "s3cret"))));
        assert!(auth.allows(Some(&header("prom", "s3cret"))), "remembered");
        assert!(!auth.allows(Some(&header("prom", "wrong"))));
        // An unknown name costs a bcrypt like a known one: its timing tells
        // nothing.
        let before = auth.verifications.load(Ordering::Relaxed);
        assert!(!auth.allows(Some(&header("nobody", "s3cret"))));
        assert_eq!(auth.verifications.load(Ordering::Relaxed), before + 1);
        assert_eq!(cost_of(&auth.dummy), Some(4), "the configured hashes' cost");
        assert!(!auth.allows(Some("Bearer abc")));
        assert!(!auth.allows(None));
        assert!(BasicAuth::new(&BTreeMap::new()).is_none());
    }
}
