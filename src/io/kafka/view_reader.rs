//! Reads the shared view topic whole, from its beginning, into the HTTP
//! view (`http::shared`), on a thread of its own, as Kafka Streams reads a
//! global table: no group, every partition assigned, committed records only.

use super::client_config;
use super::health::StopOnDrop;
use super::logs::Quiet;
use crate::config::Config;
use crate::http::LiveView;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the reader checks whether it has all the topic holds.
const CHECK_EVERY: Duration = Duration::from_millis(500);
const POLL: Duration = Duration::from_millis(100);

/// Starts the reader; it stops when the guard is dropped.
pub fn spawn(config: &Config, view: Arc<LiveView>) -> anyhow::Result<StopOnDrop> {
    let topic = config.topics.view.clone();
    // librdkafka assigns only with a group id. Like the restore reader's, this
    // one never joins the group nor commits, so it shares that reader's group
    // (and its grant).
    let group = format!("{}-restore", config.kafka.group_id);
    let consumer: BaseConsumer<Quiet> = client_config(
        config,
        &[
            ("group.id", &group),
            ("enable.auto.commit", "false"),
            ("enable.partition.eof", "false"),
            ("isolation.level", "read_committed"),
            ("fetch.wait.max.ms", "100"),
        ],
    )
    .create_with_context(Quiet)
    .map_err(|e| anyhow::anyhow!("the view reader: {e}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::Builder::new()
        .name("crowdpark-view".into())
        .spawn(move || read(&consumer, &topic, &view, &flag))?;
    Ok(StopOnDrop::new(stop))
}

fn read(consumer: &BaseConsumer<Quiet>, topic: &str, view: &LiveView, stop: &AtomicBool) {
    let mut assigned: Vec<i32> = Vec::new();
    let mut last_check = Instant::now() - CHECK_EVERY;
    while !stop.load(Ordering::Relaxed) {
        if last_check.elapsed() >= CHECK_EVERY {
            last_check = Instant::now();
            if assigned.is_empty() {
                assigned = assign(consumer, topic);
            } else if caught_up(consumer, topic, &assigned) {
                if let Some(shared) = view.shared() {
                    shared.caught_up(crate::time::now_ms());
                }
            }
        }
        match consumer.poll(POLL) {
            Some(Ok(m)) => {
                let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                    continue;
                };
                let value = m.payload().and_then(|p| serde_json::from_slice(p).ok());
                view.apply_shared(key, value);
            }
            Some(Err(e)) => crate::io::kafka::logs::warn("reading the view topic", &e),
            None => {}
        }
    }
}

/// Every partition of the topic from its beginning; none while the topic
/// cannot be described (tried again later).
fn assign(consumer: &BaseConsumer<Quiet>, topic: &str) -> Vec<i32> {
    let partitions: Vec<i32> = match consumer.fetch_metadata(Some(topic), Duration::from_secs(2)) {
        Ok(md) => md
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect(),
        Err(e) => {
            crate::io::kafka::logs::warn("describing the view topic", &e);
            return Vec::new();
        }
    };
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        let _ = tpl.add_partition_offset(topic, *p, Offset::Beginning);
    }
    match consumer.assign(&tpl) {
        Ok(()) => partitions,
        Err(e) => {
            crate::io::kafka::logs::warn("assigning the view topic", &e);
            Vec::new()
        }
    }
}

/// True when the reader's position is at the end of every partition.
fn caught_up(consumer: &BaseConsumer<Quiet>, topic: &str, partitions: &[i32]) -> bool {
    let Ok(positions) = consumer.position() else {
        return false;
    };
    partitions.iter().all(|p| {
        let Ok((low, high)) = consumer.fetch_watermarks(topic, *p, Duration::from_secs(1)) else {
            return false;
        };
        match positions.find_partition(topic, *p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o >= high,
            // Nothing read yet: caught up only if there is nothing to read.
            _ => high <= low,
        }
    })
}
