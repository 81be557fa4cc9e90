//! The idempotent producer for the output topics and the dead-letter topic in
//! at-least-once mode (the transactional one in `transaction` wraps it), with delivery
//! tracking: a record that fails is kept and sent
//! again, and offsets are never committed while any delivery is outstanding or
//! failed.

use super::client_config;
use crate::config::Config;
use crate::metrics::Metrics;
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A record whose delivery failed, copied out of librdkafka to be sent again.
#[derive(Debug, Clone)]
struct Failed {
    topic: String,
    partition: i32,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    error: String,
}

/// Producer context: collects failed deliveries.
pub struct DeliveryTracker {
    failed: Mutex<Vec<Failed>>,
    metrics: Option<Arc<Metrics>>,
}

impl ClientContext for DeliveryTracker {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        super::logs::client_log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        super::logs::client_error("producer", &error, reason);
    }

    fn stats(&self, stats: rdkafka::statistics::Statistics) {
        super::health::note_statistics(&stats);
    }
}

impl DeliveryTracker {
    fn failed(&self) -> std::sync::MutexGuard<'_, Vec<Failed>> {
        crate::sync::lock(&self.failed)
    }

    /// Puts records on the list to be sent again.
    fn keep(&self, records: impl IntoIterator<Item = Failed>) {
        self.failed().extend(records);
    }

    /// Takes every record off the list.
    fn take(&self) -> Vec<Failed> {
        std::mem::take(&mut *self.failed())
    }
}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, msg)) = result {
            if let Some(m) = &self.metrics {
                m.runtime.delivery_error(msg.topic());
            }
            self.keep([Failed {
                topic: msg.topic().to_string(),
                partition: msg.partition(),
                key: msg.key().map(<[u8]>::to_vec),
                payload: msg.payload().map(<[u8]>::to_vec),
                error: e.to_string(),
            }]);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("producing to {topic} failed: {source}")]
    Produce { topic: String, source: KafkaError },
    #[error("{count} record(s) still undelivered after retrying (last error: {last})")]
    Undelivered { count: usize, last: String },
    #[error("flush timed out with records still in flight: {0}")]
    Flush(KafkaError),
}

pub struct KafkaSink {
    producer: ThreadedProducer<DeliveryTracker>,
}

/// Producer settings: idempotence (no duplicates or reordering from retries),
/// a short linger so records batch without adding latency, lz4 compression,
/// delivery reports for failures only, and
/// Java's murmur2 partitioner so keys land where Java clients put them.
const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("linger.ms", "5"),
    ("compression.type", "lz4"),
    ("partitioner", "murmur2_random"),
    ("message.timeout.ms", "300000"),
    // Only failures need a report (they are re-sent); flush() still waits for
    // every record, and skipping the per-record callback saves a wake-up each.
    ("delivery.report.only.error", "true"),
    // Broker reachability for `/healthz`, from a thread that never blocks.
    ("statistics.interval.ms", "1000"),
];

impl KafkaSink {
    pub fn new(config: &Config, metrics: Option<Arc<Metrics>>) -> Result<Self, KafkaError> {
        Self::with_settings(config, metrics, &[])
    }

    /// A sink with extra librdkafka settings on top of the defaults (the user's
    /// `kafka.client` still wins).
    pub fn with_settings(
        config: &Config,
        metrics: Option<Arc<Metrics>>,
        extra: &[(&str, &str)],
    ) -> Result<Self, KafkaError> {
        let budget_kb = config.kafka.buffer_kbytes().to_string();
        let mut settings: Vec<(&str, &str)> = PRODUCER_DEFAULTS.to_vec();
        settings.push(("queue.buffering.max.kbytes", &budget_kb));
        settings.extend_from_slice(extra);
        let producer = client_config(config, &settings).create_with_context(DeliveryTracker {
            failed: Mutex::new(Vec::new()),
            metrics,
        })?;
        Ok(KafkaSink { producer })
    }

    pub(super) fn producer(&self) -> &ThreadedProducer<DeliveryTracker> {
        &self.producer
    }

    fn drain_failed(&self) -> Vec<Failed> {
        self.producer.context().take()
    }

    /// Forgets the records whose delivery failed; `Err` says how many there were.
    pub(super) fn take_failed(&self) -> Result<(), SinkError> {
        let failed = self.drain_failed();
        match failed.last() {
            None => Ok(()),
            Some(f) => Err(SinkError::Undelivered {
                count: failed.len(),
                last: f.error.clone(),
            }),
        }
    }

    /// Queues a record; waits while librdkafka's queue is full (backpressure rather
    /// than loss).
    pub fn send(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
    ) -> Result<(), SinkError> {
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(p) = payload {
            record = record.payload(p);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => {
                    return Err(SinkError::Produce {
                        topic: topic.to_string(),
                        source: e,
                    })
                }
            }
        }
    }

    /// Waits until no record is queued or in flight (each acknowledged, or failed
    /// and kept for re-sending), or until `deadline`.
    ///
    /// Not rdkafka's `Producer::flush`: between its checks it polls the event
    /// queue for up to 100 ms, and with delivery reports for failures only,
    /// served by the `ThreadedProducer`'s own thread, no event ends that wait
    /// early. Every flush took at least 100 ms; under load that was 100 ms of
    /// each one-second commit interval with the engine thread stalled. This
    /// asks librdkafka to send at once (a flush that does not wait, which skips
    /// `linger.ms`) and then watches the in-flight count.
    fn wait_in_flight(&self, deadline: Instant) -> Result<(), SinkError> {
        // Timing out is the point of a zero timeout; the count below decides.
        let _ = self.producer.flush(Duration::ZERO);
        let mut pause = Duration::from_micros(100);
        while self.producer.in_flight_count() > 0 {
            if Instant::now() >= deadline {
                return Err(SinkError::Flush(KafkaError::Flush(
                    RDKafkaErrorCode::OperationTimedOut,
                )));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(2));
        }
        Ok(())
    }

    /// Waits until every queued record is acknowledged, sending failed ones again,
    /// for at most `timeout`. Only after `Ok` may input offsets be committed.
    pub fn flush(&self, timeout: Duration) -> Result<(), SinkError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.wait_in_flight(deadline)?;
            let failed = self.drain_failed();
            if failed.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let last = failed.last().map(|f| f.error.clone()).unwrap_or_default();
                let count = failed.len();
                // Keep them for the next attempt: nothing is dropped.
                self.producer.context().keep(failed);
                return Err(SinkError::Undelivered { count, last });
            }
            // The count is in the text; the limiter masks numbers, so one
            // failing topic is one line per interval whatever the counts.
            super::logs::warn(
                &format!(
                    "re-sending {} record(s) whose delivery failed",
                    failed.len()
                ),
                &failed[0].error,
            );
            self.resend(failed)?;
        }
    }

    /// Sends `failed` again. A record librdkafka refuses at once (it knows the
    /// topic is not writable: a revoked ACL) goes back on the list with every
    /// one after it: dropping them here let the next flush succeed with
    /// nothing to re-send, and a checkpoint then committed state whose outputs
    /// were never delivered (a whole payments window lost after a revoked and
    /// restored write ACL).
    fn resend(&self, failed: Vec<Failed>) -> Result<(), SinkError> {
        let mut rest = failed.into_iter();
        while let Some(f) = rest.next() {
            let sent = self.send(
                &f.topic,
                Some(f.partition),
                f.key.as_deref(),
                f.payload.as_deref(),
            );
            if let Err(e) = sent {
                let refused = Failed {
                    error: e.to_string(),
                    ..f
                };
                self.producer
                    .context()
                    .keep(std::iter::once(refused).chain(rest));
                return Err(e);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::mocking::MockCluster;

    fn failed(topic: &str, bytes: usize) -> Failed {
        Failed {
            topic: topic.into(),
            partition: 0,
            key: Some(b"k".to_vec()),
            payload: Some(vec![b'x'; bytes]),
            // Not a message `cause::note` recognises: the cause it would keep is
            // process-wide, and the health tests in this binary read it.
            error: "Local: Message timed out".into(),
        }
    }

    /// A record refused at once while failed ones are sent again keeps its
    /// place, and so does every one after it: nothing leaves the list until
    /// it is delivered.
    #[test]
    fn a_refused_resend_loses_no_record() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("out", 1, 1).unwrap();
        let mut config = crate::config::load_str(
            crate::config::DEFAULT_CONFIG,
            Vec::<(String, String)>::new(),
        )
        .unwrap();
        config.kafka.brokers = cluster.bootstrap_servers();
        // Refused by librdkafka itself, before any broker sees it.
        config
            .kafka
            .client
            .insert("message.max.bytes".into(), "2000".into());
        let sink = KafkaSink::new(&config, None).unwrap();
        sink.producer().context().keep([
            failed("out", 10),
            failed("out", 5_000),
            failed("out", 20),
            failed("out", 30),
        ]);
        let e = sink.flush(Duration::from_secs(5)).unwrap_err();
        assert!(matches!(e, SinkError::Produce { .. }), "{e}");
        let kept: Vec<usize> = sink
            .drain_failed()
            .iter()
            .map(|f| f.payload.as_ref().unwrap().len())
            .collect();
        assert_eq!(
            kept,
            vec![5_000, 20, 30],
            "the refused one and every one after it"
        );
    }
}
