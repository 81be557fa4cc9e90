//! Kafka at the edges: the consumer-group source, the idempotent sink, topic
//! administration and the traffic generator. Everything between them is the same
//! engine the demo drives.

pub mod acls;
pub mod admin;
pub mod allocator;
pub mod cause;
pub mod changelog;
pub mod deadline;
pub mod health;
pub mod layout;
pub mod logs;
pub mod repartition;
pub mod reset;
pub mod runner;
pub mod simulate;
pub mod sink;
pub mod snapshot;
pub mod stall;
pub mod startup;
pub mod tls_check;
pub mod transaction;
pub mod view_reader;

use crate::config::{secrets, Config, ConfigError};
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;

/// A client configuration: brokers, then crowdpark's settings for the role, then
/// the user's `kafka.client` properties, which win (SASL, TLS, tuning pass through
/// to librdkafka unchanged).
pub fn client_config(config: &Config, role_defaults: &[(&str, &str)]) -> ClientConfig {
    cause::configure(&config.kafka.client);
    let mut c = ClientConfig::new();
    // Every level reaches `logs::client_log`, which decides what is shown: a
    // disconnect at the first request (the sign of a wrong security.protocol)
    // is logged at debug level when it repeats.
    c.set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
    c.set("bootstrap.servers", &config.kafka.brokers);
    c.set("client.id", "crowdpark");
    for (k, v) in role_defaults {
        c.set(*k, *v);
    }
    for (k, v) in &config.kafka.client {
        c.set(k, v);
    }
    c
}

/// Checks every `kafka.client` property against librdkafka (name and value, as
/// a client would be configured, without connecting), so a mistyped property is
/// a configuration error of every command before any client exists. The error
/// names the property and never quotes its value.
pub fn check_client_properties(config: &Config) -> Result<(), ConfigError> {
    for (key, value) in &config.kafka.client {
        let mut one = ClientConfig::new();
        one.set(key, value);
        if let Err(e) = one.create_native_config() {
            let problem = match e {
                KafkaError::ClientConfig(_, description, _, _) => description,
                other => other.to_string(),
            };
            return Err(ConfigError::new(
                format!("kafka.client.{key}"),
                secrets::redact(&problem, value),
            ));
        }
    }
    Ok(())
}

/// Name of the changelog topic that holds checkpointed operator state.
pub fn state_topic(config: &Config) -> &str {
    &config.topics.state
}

#[cfg(test)]
mod tests {
    use rdkafka::config::ClientConfig;

    /// The client reads every codec a producer may choose and speaks every
    /// SASL mechanism operators run: librdkafka says what it was built with.
    /// (Built without zstd, a zstd batch stopped its partition for good.)
    #[test]
    fn the_client_is_built_with_every_codec_and_mechanism() {
        let native = ClientConfig::new().create_native_config().unwrap();
        let features = native.get("builtin.features").unwrap();
        let have: Vec<&str> = features.split(',').collect();
        for wanted in [
            "gzip",
            "snappy",
            "lz4",
            "zstd",
            "ssl",
            "sasl_scram",
            "sasl_gssapi",
            "sasl_oauthbearer",
            // OAUTHBEARER's OIDC token requests.
            "http",
            "oidc",
        ] {
            assert!(have.contains(&wanted), "{wanted} missing from {features}");
        }
    }
}
