//! Which configuration values may be secret, so that no message, log line or
//! listing ever prints one. A `kafka.client` property passes straight to
//! librdkafka and may hold a password under any name, so error messages never
//! show any of its values; listings mask the values of keys that name a secret.

/// Words that mark a key as holding a secret (`sasl.password`,
/// `sasl.jaas.config`, `ssl.key.password`, `sasl.oauthbearer.client.secret`...).
const SECRET_WORDS: [&str; 8] = [
    "basic_auth",
    "password",
    "secret",
    "jaas",
    "token",
    "key",
    "credential",
    "oauthbearer",
];

/// True when the value of `key` (a dotted path or a librdkafka property) must
/// never be printed.
pub fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| key.contains(w))
}

/// True when an error about `path` must not quote the value: every
/// `kafka.client` property, and every key that names a secret.
pub fn hide_value_of(path: &str) -> bool {
    path.starts_with("kafka.client") || is_secret(path)
}

/// `value` as a listing may show it: `***` for a secret.
pub fn shown(key: &str, value: &str) -> String {
    if is_secret(key) {
        "***".into()
    } else {
        value.to_string()
    }
}

/// `text` with every occurrence of `value` replaced by `***` (for messages of
/// other libraries that may quote a value).
pub fn redact(text: &str, value: &str) -> String {
    if value.is_empty() {
        text.to_string()
    } else {
        text.replace(value, "***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_recognised_by_their_key() {
        for k in [
            "sasl.password",
            "sasl.jaas.config",
            "ssl.key.password",
            "ssl.keystore.password",
            "sasl.oauthbearer.client.secret",
            "SASL_PASSWORD",
        ] {
            assert!(is_secret(k), "{k}");
            assert_eq!(shown(k, "pw"), "***");
        }
        for k in ["security.protocol", "sasl.mechanism", "sasl.username"] {
            assert!(!is_secret(k), "{k}");
        }
        assert!(hide_value_of("kafka.client.sasl.passwrd"));
        assert!(hide_value_of("kafka.client"));
        assert!(!hide_value_of("crowd.min_dwell"));
        assert_eq!(
            redact("bad value \"x1\" for p", "x1"),
            "bad value \"***\" for p"
        );
    }
}
