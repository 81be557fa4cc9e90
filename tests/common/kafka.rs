//! Helpers for tests against the real broker that `scripts/test.sh` starts
//! (`CROWDPARK_KAFKA_BROKERS`, default 127.0.0.1:9092). Every test works in topics
//! and consumer groups of its own, so tests can run side by side.

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The brokers the tests use: the secured broker once a test has chosen it
/// (`secure::use_secure_cluster`), else `CROWDPARK_KAFKA_BROKERS`.
pub fn brokers() -> String {
    if let Some(cluster) = super::secure::chosen() {
        return cluster.brokers.clone();
    }
    if let Some(cluster) = super::cluster::chosen() {
        return cluster.brokers();
    }
    std::env::var("CROWDPARK_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// A client configuration for `brokers`, with the secured broker's super-user
/// credentials when a test has chosen that broker.
pub fn client_on(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    if let Some(cluster) = super::secure::chosen() {
        for (k, v) in cluster.client_properties("admin") {
            c.set(k, v);
        }
    }
    c
}

/// Fails with instructions when no broker answers.
pub fn require_broker() {
    let b = brokers();
    let consumer: BaseConsumer = client_on(&b).create().unwrap();
    if let Err(e) = consumer.fetch_metadata(None, Duration::from_secs(10)) {
        panic!("no Kafka broker at {b} ({e}). Start one with `scripts/kafka.sh start`, or run `scripts/test.sh`, which does.");
    }
}

/// Topic names and a group id unique to one test run.
pub struct Names {
    pub prefix: String,
    /// Partitions per input topic, when not the configured 3.
    pub partitions: Option<i32>,
}

pub const BASES: [(&str, &str); 12] = [
    ("CROWD_COUNTS", "crowd.counts"),
    ("PARKING_EVENTS", "parking.events"),
    ("PAYMENTS", "payments"),
    ("CROWD_ALERTS", "crowd.alerts"),
    ("CROWD_DENSITY", "crowd.density"),
    ("PARKING_AVAILABILITY", "parking.availability"),
    ("PAYMENTS_STATS", "payments.stats"),
    ("DEADLETTER", "crowdpark.deadletter"),
    ("STATE", "crowdpark.state"),
    ("PAYMENTS_BY_ZONE", "crowdpark.payments-by-zone"),
    ("PARTIALS_BY_DISTRICT", "crowdpark.partials-by-district"),
    ("VIEW", "crowdpark.view"),
];

impl Names {
    pub fn new(test: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        Names {
            prefix: format!("{test}-{}-{nanos}", std::process::id()),
            partitions: None,
        }
    }

    /// The same names, with `partitions` per input topic (and per internal
    /// topic) instead of the configured 3.
    pub fn with_partitions(mut self, partitions: i32) -> Self {
        self.partitions = Some(partitions);
        self
    }

    pub fn topic(&self, base: &str) -> String {
        format!("{}.{base}", self.prefix)
    }

    /// The three input topics (not the internal repartition topic).
    pub fn input_topics(&self) -> Vec<String> {
        ["crowd.counts", "parking.events", "payments"]
            .iter()
            .map(|b| self.topic(b))
            .collect()
    }

    /// The sum of `metric` over the input topics, in an engine's metrics.
    pub fn sum_over_inputs(&self, metrics: &BTreeMap<String, f64>, metric: &str) -> f64 {
        self.input_topics()
            .iter()
            .map(|t| metric_sum(metrics, metric, &format!("topic=\"{t}\"")))
            .sum()
    }

    /// Environment for a `crowdpark` process using these names; `inputs_from`
    /// lets two engines read the same input topics and write different outputs.
    pub fn env(&self, group: &str, inputs_from: Option<&Names>) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = BASES
            .iter()
            .map(|(key, base)| {
                let owner = match (inputs_from, *key) {
                    (Some(other), "CROWD_COUNTS" | "PARKING_EVENTS" | "PAYMENTS") => other,
                    _ => self,
                };
                (format!("CROWDPARK_TOPICS__{key}"), owner.topic(base))
            })
            .collect();
        env.push(("CROWDPARK_KAFKA__BROKERS".into(), brokers()));
        if let Some(n) = self.partitions {
            env.push(("CROWDPARK_TOPICS__INPUT_PARTITIONS".into(), n.to_string()));
        }
        if let Some(cluster) = super::secure::chosen() {
            env.extend(cluster.engine_env("admin"));
        }
        if super::cluster::chosen().is_some() {
            // Replicated as production clusters are (3 copies, 2 in sync).
            env.push(("CROWDPARK_TOPICS__REPLICATION_FACTOR".into(), "3".into()));
            env.push(("CROWDPARK_TOPICS__MIN_INSYNC_REPLICAS".into(), "2".into()));
        }
        env.push((
            "CROWDPARK_KAFKA__GROUP_ID".into(),
            format!("{}-{group}", self.prefix),
        ));
        // Local snapshots of the changelog, caught up every 5 s (a
        // directory per group id under it), so every restart and rebalance
        // in the tests restores from a snapshot and the changelog's tail.
        env.push((
            "CROWDPARK_ENGINE__STATE_DIR".into(),
            format!("{}/snapshots", env!("CARGO_TARGET_TMPDIR")),
        ));
        env.push(("CROWDPARK_ENGINE__SNAPSHOT_INTERVAL".into(), "5s".into()));
        env
    }
}

pub fn producer() -> ThreadedProducer<DefaultProducerContext> {
    client_on(&brokers())
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create()
        .unwrap()
}

pub fn produce(
    p: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    key: &str,
    payload: &str,
) {
    p.send(BaseRecord::to(topic).key(key).payload(payload))
        .map_err(|(e, _)| e)
        .unwrap();
}

pub fn flush(p: &ThreadedProducer<DefaultProducerContext>) {
    p.flush(Duration::from_secs(30)).unwrap();
}

#[derive(Debug, Clone)]
pub struct Record {
    pub key: String,
    pub value: serde_json::Value,
    pub partition: i32,
    pub offset: i64,
}

fn record(m: &rdkafka::message::BorrowedMessage<'_>) -> Record {
    Record {
        key: m
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default(),
        value: m
            .payload()
            .map(|p| serde_json::from_slice(p).unwrap())
            .unwrap_or(serde_json::Value::Null),
        partition: m.partition(),
        offset: m.offset(),
    }
}

/// A `read_committed` consumer assigned to every partition of `topic` from the
/// beginning (it reports the end of each partition), and the partitions.
fn reader(brokers: &str, topic: &str) -> (BaseConsumer, Vec<i32>) {
    let consumer: BaseConsumer = client_on(brokers)
        .set("group.id", format!("reader-{topic}"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    let partitions: Vec<i32> = md.topics()[0].partitions().iter().map(|p| p.id()).collect();
    for p in &partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    (consumer, partitions)
}

/// Reads a topic from the beginning until `done` holds for what was read, or
/// `timeout` passes; returns everything read.
pub fn read_until(topic: &str, timeout: Duration, done: impl Fn(&[Record]) -> bool) -> Vec<Record> {
    let (consumer, _) = reader(&brokers(), topic);
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        // `done` is asked only when nothing more is there to read right now.
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push(record(&m)),
            Some(Err(_)) => {}
            None if done(&out) => break,
            None => {}
        }
    }
    out
}

/// Every committed record of `topic` on `brokers`, read from the beginning to
/// the end each partition has now (its end-of-partition event, which for a
/// `read_committed` reader comes after the last committed record).
pub fn read_all_on(brokers: &str, topic: &str) -> Vec<Record> {
    let (consumer, partitions) = reader(brokers, topic);
    let mut open: std::collections::BTreeSet<i32> = partitions.into_iter().collect();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !open.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{topic} not read to its end in 60 s"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push(record(&m)),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            _ => {}
        }
    }
    out
}

pub fn read_all(topic: &str) -> Vec<Record> {
    read_all_on(&brokers(), topic)
}

/// True when `group` has committed, for every partition of `topics`, the end
/// offset the partition has now.
pub fn caught_up(brokers: &str, group: &str, topics: &[String]) -> bool {
    behind(brokers, group, topics).is_some_and(|b| b.is_empty())
}

/// The partitions of `topics` whose committed offset in `group` is short of
/// their end, as `topic[p] at offset of end`; `None` if the broker did not
/// answer.
pub fn behind(brokers: &str, group: &str, topics: &[String]) -> Option<Vec<String>> {
    let consumer: BaseConsumer = client_on(brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for t in topics {
        let Ok(md) = consumer.fetch_metadata(Some(t), Duration::from_secs(10)) else {
            return None;
        };
        for p in md.topics()[0].partitions() {
            let Ok((_, high)) = consumer.fetch_watermarks(t, p.id(), Duration::from_secs(10))
            else {
                return None;
            };
            tpl.add_partition(t, p.id());
            ends.insert((t.clone(), p.id()), high);
        }
    }
    let Ok(committed) = consumer.committed_offsets(tpl, Duration::from_secs(10)) else {
        return None;
    };
    let behind: Vec<String> = committed
        .elements()
        .iter()
        .filter(|e| {
            let end = ends[&(e.topic().to_string(), e.partition())];
            match e.offset() {
                Offset::Offset(o) => o < end,
                _ => end != 0,
            }
        })
        .map(|e| {
            let end = ends[&(e.topic().to_string(), e.partition())];
            format!(
                "{}[{}] at {:?} of {end}",
                e.topic(),
                e.partition(),
                e.offset()
            )
        })
        .collect();
    Some(behind)
}

/// The latest record per key, as a compacted topic keeps it.
pub fn latest_per_key(records: &[Record]) -> BTreeMap<String, serde_json::Value> {
    records
        .iter()
        .map(|r| (r.key.clone(), r.value.clone()))
        .collect()
}

/// `/metrics` as a map from `name{labels}` to value.
pub fn metrics(addr: &str) -> BTreeMap<String, f64> {
    let (_, text) = super::http_get(addr, "/metrics").unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// Sum of a metric over all its series whose labels contain `filter`.
pub fn metric_sum(m: &BTreeMap<String, f64>, name: &str, filter: &str) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with(&format!("{name}{{")) && k.contains(filter))
        .map(|(_, v)| v)
        .sum()
}

/// Sets a topic's `max.message.bytes` on the broker (and keeps it compacted if
/// `compacted`: a config change through this API resets what it does not name).
pub fn set_max_message_bytes(topic: &str, compacted: bool, bytes: usize) {
    alter_topic(
        topic,
        compacted,
        &[("max.message.bytes", &bytes.to_string())],
    );
}

/// Replaces a topic's configuration with `settings` (plus compaction if
/// `compacted`): the AlterConfigs API resets every setting it does not name.
pub fn alter_topic(topic: &str, compacted: bool, settings: &[(&str, &str)]) {
    use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        client_on(&brokers()).create().unwrap();
    let mut change = AlterConfig::new(ResourceSpecifier::Topic(topic));
    for (k, v) in settings {
        change = change.set(k, v);
    }
    if compacted {
        change = change.set("cleanup.policy", "compact");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = rt
        .block_on(admin.alter_configs([&change], &AdminOptions::new()))
        .unwrap();
    assert!(r.iter().all(|r| r.is_ok()), "alter {topic}: {r:?}");
}

/// Grows `topic` to `partitions` partitions, as an operator would with
/// `kafka-topics --alter --partitions`.
pub fn grow_topic(topic: &str, partitions: usize) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        client_on(&brokers()).create().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = rt
        .block_on(admin.create_partitions(
            &[NewPartitions::new(topic, partitions)],
            &AdminOptions::new(),
        ))
        .unwrap();
    assert!(r.iter().all(|r| r.is_ok()), "grow {topic}: {r:?}");
}
