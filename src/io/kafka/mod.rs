//! Kafka at the edges: the consumer-group source, the idempotent sink, topic
//! administration and the traffic generator. Everything between them is the same
//! engine the demo drives.

pub mod acls;
pub mod admin;
pub mod changelog;
pub mod health;
pub mod logs;
pub mod repartition;
pub mod runner;
pub mod simulate;
pub mod sink;
pub mod startup;
pub mod txn;

use crate::config::Config;
use rdkafka::config::ClientConfig;

/// A client configuration: brokers, then crowdpark's settings for the role, then
/// the user's `kafka.client` properties, which win (SASL, TLS, tuning pass through
/// to librdkafka unchanged).
pub fn client_config(config: &Config, role_defaults: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
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

/// Name of the changelog topic that holds checkpointed operator state.
pub fn state_topic(config: &Config) -> &str {
    &config.topics.state
}
