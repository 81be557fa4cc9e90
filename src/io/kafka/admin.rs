//! `crowdpark topics create`.

use super::client_config;
use crate::config::Config;
use crate::model::InputTopic;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::error::RDKafkaErrorCode;
use std::time::Duration;

/// One topic to create: name, partitions, extra configuration.
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub config: Vec<(&'static str, String)>,
}

/// The topics crowdpark reads and writes, with their partition counts and
/// policies. `parking.availability` and the state changelog are compacted: their
/// latest record per key is the current state. The changelog has one partition
/// per input partition, so a partition's checkpoint is read from one place.
pub fn topic_specs(c: &Config) -> Vec<TopicSpec> {
    let t = &c.topics;
    let plain = |name: &str, partitions: i32| TopicSpec {
        name: name.to_string(),
        partitions,
        config: Vec::new(),
    };
    let compacted = |name: &str, partitions: i32| TopicSpec {
        name: name.to_string(),
        partitions,
        config: vec![
            ("cleanup.policy", "compact".to_string()),
            ("min.cleanable.dirty.ratio", "0.1".to_string()),
            ("segment.ms", "600000".to_string()),
        ],
    };
    // The consumed topics, internal repartition topic included: same
    // partition count as the inputs, and Java's partitioner, so the engine can
    // route in process too.
    let consumed = InputTopic::CONSUMED.map(|i| plain(i.name_in(t), t.input_partitions));
    let mut specs = Vec::from(consumed);
    specs.extend([
        plain(&t.crowd_alerts, t.output_partitions),
        plain(&t.crowd_density, t.output_partitions),
        compacted(&t.parking_availability, t.output_partitions),
        plain(&t.payments_stats, t.output_partitions),
        plain(&t.deadletter, t.output_partitions),
        compacted(&t.state, t.input_partitions),
        // A few hundred keys at most, read whole by every instance.
        compacted(&t.view, 1),
    ]);
    specs
}

/// Creates every topic that does not exist yet. Returns one line per topic.
///
/// Gives up within `kafka.unhealthy_after` when no broker answers, and at once
/// when the clients name a cause that waiting will not cure (refused
/// credentials, an untrusted certificate, a plaintext client on a TLS port).
pub async fn create_topics(c: &Config) -> anyhow::Result<Vec<String>> {
    let probe = c.clone();
    tokio::task::spawn_blocking(move || reach_brokers(&probe)).await??;
    let admin: AdminClient<super::logs::Quiet> =
        client_config(c, &[]).create_with_context(super::logs::Quiet)?;
    let specs = topic_specs(c);
    let isr = c.topics.min_insync_replicas.to_string();
    let new: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|s| {
            let mut n = NewTopic::new(
                &s.name,
                s.partitions,
                TopicReplication::Fixed(c.topics.replication_factor),
            );
            for (k, v) in &s.config {
                n = n.set(k, v);
            }
            n.set("min.insync.replicas", &isr)
        })
        .collect();
    let limit = c.kafka.unhealthy_after.as_duration();
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(30)))
        .request_timeout(Some(limit));
    let results = admin.create_topics(new.iter(), &opts).await?;
    let mut lines = Vec::new();
    let mut failed = Vec::new();
    for (r, s) in results.into_iter().zip(specs.iter()) {
        let policy = if s.config.is_empty() {
            ""
        } else {
            ", compacted"
        };
        match r {
            Ok(name) => lines.push(format!(
                "created {name} ({} partitions, replication factor {}, min.insync.replicas {}{policy})",
                s.partitions, c.topics.replication_factor, c.topics.min_insync_replicas
            )),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                lines.push(format!("exists  {name}"))
            }
            Err((name, code)) => failed.push(format!("{name}: {code}")),
        }
    }
    if !failed.is_empty() {
        anyhow::bail!("could not create topics: {}", failed.join("; "));
    }
    if c.topics.replication_factor < 2 {
        lines.push(format!(
            "note: replication factor {}: one copy of each topic, so a broker lost is data lost; production clusters set topics.replication_factor = 3 and topics.min_insync_replicas = 2",
            c.topics.replication_factor
        ));
    }
    Ok(lines)
}

/// Waits until a broker answers a metadata request, at most
/// `kafka.unhealthy_after`; fails at once when the clients name a cause (the
/// admin client reports none of its connection failures, a consumer does).
fn reach_brokers(c: &Config) -> anyhow::Result<()> {
    use rdkafka::producer::{BaseProducer, Producer};
    let limit = c.kafka.unhealthy_after.as_duration();
    // A producer: it needs no group, so no group ACL.
    let probe: BaseProducer<super::logs::Quiet> =
        client_config(c, &[]).create_with_context(super::logs::Quiet)?;
    let started = std::time::Instant::now();
    loop {
        let attempt = probe
            .client()
            .fetch_metadata(None, Duration::from_millis(500));
        // Serves the error callbacks, where the causes are noted.
        probe.poll(Duration::ZERO);
        match attempt {
            Ok(_) => return Ok(()),
            Err(e) => {
                if let Some(cause) = super::cause::settled(started.elapsed()) {
                    anyhow::bail!("cannot reach Kafka at {}: {cause}", c.kafka.brokers);
                }
                if started.elapsed() > limit {
                    anyhow::bail!(
                        "no Kafka broker at {} answered within {} ({e})",
                        c.kafka.brokers,
                        c.kafka.unhealthy_after
                    );
                }
            }
        }
    }
}

/// A topic's `max.message.bytes` as the broker applies it (the topic's own
/// setting, or the broker's default), for sizing what the engine writes there.
pub fn max_message_bytes(c: &Config, topic: &str) -> anyhow::Result<usize> {
    use rdkafka::admin::ResourceSpecifier;
    let admin: AdminClient<super::logs::Quiet> =
        client_config(c, &[]).create_with_context(super::logs::Quiet)?;
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let results = rt.block_on(admin.describe_configs(&[ResourceSpecifier::Topic(topic)], &opts))?;
    let resource = results
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no configuration returned for topic `{topic}`"))?
        .map_err(|code| anyhow::anyhow!("describing topic `{topic}`: {code}"))?;
    let value = resource
        .get("max.message.bytes")
        .and_then(|e| e.value.as_deref())
        .ok_or_else(|| anyhow::anyhow!("topic `{topic}` reports no max.message.bytes"))?;
    value
        .parse()
        .map_err(|e| anyhow::anyhow!("topic `{topic}`: max.message.bytes `{value}`: {e}"))
}
