//! Why the clients cannot work, said once and plainly.
//!
//! librdkafka reports a refused connection in words meant for its developers:
//! a plaintext client on a TLS listener is an INFO line about a disconnect in
//! state `APIVERSION_QUERY` followed by `AllBrokersDown`; an untrusted CA and a
//! certificate for another host name are both `certificate verify failed`.
//! Every client report passes through [`note`], which recognises these, logs one
//! WARN line per distinct cause naming it and what to check, keeps the latest
//! for `/healthz` and `topics create`, and tells the two TLS failures apart by
//! checking the broker's certificate itself.

use super::tls_check::{examine, TlsSettings};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

#[derive(Default)]
struct State {
    settings: TlsSettings,
    last: Option<(Instant, String)>,
    /// Brokers whose certificate was examined, and what was found (empty
    /// while the examination runs).
    examined: HashMap<String, String>,
}

fn state() -> std::sync::MutexGuard<'static, State> {
    static STATE: OnceLock<Mutex<State>> = OnceLock::new();
    crate::sync::lock(STATE.get_or_init(Mutex::default))
}

/// Records the settings of this process's clients (from `kafka.client`).
pub fn configure(client: &std::collections::BTreeMap<String, String>) {
    state().settings = TlsSettings::from_client(client);
}

/// The latest cause, if one was seen within `within`.
pub fn recent(within: Duration) -> Option<String> {
    let s = state();
    let (at, cause) = s.last.as_ref()?;
    (at.elapsed() <= within).then(|| cause.clone())
}

/// What a client report says is wrong, in the operator's terms; `None` for
/// reports that name no cause (`AllBrokersDown`, time-outs).
pub fn classify(message: &str, protocol: &str) -> Option<String> {
    let m = message;
    if m.contains("SASL authentication error") || m.contains("Authentication failed") {
        return Some(
            "SASL authentication failed: check sasl.username, sasl.password and sasl.mechanism"
                .into(),
        );
    }
    if m.contains("certificate verify failed") {
        return Some(
            "TLS: the broker's certificate was not accepted (not signed by a CA in ssl.ca.location, or not issued for the host name connected to)"
                .into(),
        );
    }
    if m.contains("SSL handshake failed") || m.contains("SSL_HANDSHAKE") {
        return Some(format!("TLS handshake failed: {}", after_broker(m)));
    }
    if m.contains("state APIVERSION_QUERY") && m.contains("Disconnected") {
        return Some(format!(
            "the broker closed the connection at the first request: the listener probably expects {} (security.protocol here is {protocol})",
            if protocol.starts_with("SASL") || protocol == "SSL" {
                "another security.protocol"
            } else {
                "TLS or SASL"
            }
        ));
    }
    if m.contains("uthorization failed") || m.contains("AuthorizationFailed") {
        return Some(format!(
            "not authorised ({}): grant what `crowdpark topics acls` prints",
            authorisation_kind(m)
        ));
    }
    None
}

fn authorisation_kind(m: &str) -> &'static str {
    if m.contains("Transactional") {
        "transactional id"
    } else if m.contains("Group") {
        "consumer group"
    } else if m.contains("Topic") {
        "topic"
    } else if m.contains("Cluster") {
        "cluster"
    } else {
        "ACL"
    }
}

/// The part of a librdkafka message after its `proto://host:port/id: ` prefix.
fn after_broker(m: &str) -> &str {
    m.split_once("/bootstrap: ")
        .or_else(|| m.split_once("/1: "))
        .map_or(m, |(_, rest)| rest)
}

/// The `host:port` a librdkafka message names (`sasl_ssl://127.0.0.1:9094/...`).
fn broker_of(m: &str) -> Option<String> {
    let (_, rest) = m.split_once("://")?;
    let end = rest.find('/')?;
    Some(rest[..end].to_string())
}

/// True for reports that only follow from a cause already given (all
/// brokers down, right after one was named).
pub fn explains(message: &str) -> bool {
    message.contains("AllBrokersDown") && recent(Duration::from_secs(30)).is_some()
}

/// Looks at one client report: a recognised cause is kept and logged once per
/// distinct cause and broker (through the shared limiter). True when the
/// report named a cause.
pub fn note(message: &str) -> bool {
    let settings = state().settings.clone();
    let Some(mut cause) = classify(message, &settings.security_protocol) else {
        return false;
    };
    let broker = broker_of(message);
    // Until the certificate is examined, the generic TLS cause is kept but not
    // logged: the examination's finding is the line worth reading.
    let mut quiet = false;
    if message.contains("certificate verify failed") {
        if let Some(b) = &broker {
            // (The lock is released before `examine_later` takes it again.)
            let examined = state().examined.get(b).cloned();
            match examined {
                Some(found) if !found.is_empty() => cause = found,
                Some(_) => quiet = true,
                None => {
                    quiet = true;
                    examine_later(b.clone(), settings);
                }
            }
        }
    }
    let line = match &broker {
        Some(b) => format!("{cause} [broker {b}]"),
        None => cause,
    };
    if quiet {
        remember(&line);
    } else {
        announce(&line);
    }
    true
}

/// The latest cause seen within `within`, given a moment to become specific
/// (a certificate examination takes one TLS handshake).
pub fn settled(within: Duration) -> Option<String> {
    let first = recent(within)?;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let now = recent(within + Duration::from_secs(3))?;
        if now != first {
            return Some(now);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(first)
}

/// Examines the certificate of `broker` with a TLS connection of our own, off
/// the client's thread; its finding replaces the generic cause from then on.
fn examine_later(broker: String, settings: TlsSettings) {
    state().examined.insert(broker.clone(), String::new());
    std::thread::spawn(move || {
        let found = format!("TLS: {}", examine(&broker, &settings));
        state().examined.insert(broker.clone(), found.clone());
        announce(&format!("{found} [broker {broker}]"));
    });
}

fn remember(line: &str) {
    state().last = Some((Instant::now(), line.to_string()));
}

/// Keeps `line` as the latest cause and logs it, once per distinct line and
/// interval (through the shared limiter).
fn announce(line: &str) {
    remember(line);
    crate::repeats::warn(&format!("kafka: {line}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn librdkafka_reports_become_causes() {
        let auth = "sasl_ssl://127.0.0.1:9094/bootstrap: SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512";
        assert!(classify(auth, "SASL_SSL")
            .unwrap()
            .contains("sasl.password"));
        let plain = "127.0.0.1:9094/bootstrap: Disconnected: connection closed by peer: receive 0 after POLLIN (after 0ms in state APIVERSION_QUERY)";
        let c = classify(plain, "PLAINTEXT").unwrap();
        assert!(c.contains("TLS or SASL") && c.contains("PLAINTEXT"), "{c}");
        let tls = "sasl_ssl://127.0.0.1:9096/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified";
        assert!(classify(tls, "SASL_SSL")
            .unwrap()
            .contains("ssl.ca.location"));
        assert_eq!(broker_of(tls).as_deref(), Some("127.0.0.1:9096"));
        let group = "Message consumption error: GroupAuthorizationFailed (Broker: Group authorization failed)";
        assert!(classify(group, "SASL_SSL")
            .unwrap()
            .contains("consumer group"));
        assert_eq!(classify("1/1 brokers are down", "PLAINTEXT"), None);
    }
}
