//! The transactional producer that makes a checkpoint atomic.
//!
//! A checkpoint is many records (one per changed entity, then each partition's
//! `meta`) plus the consumer's offsets. Written one by one, a crash in the middle
//! leaves some entities newer than the offsets, and replaying input then counts
//! their events twice. In one Kafka transaction they land together or not at
//! all: the changelog is read `read_committed`, so a restore only ever sees
//! whole checkpoints, and the offsets committed with them always match.
//!
//! In exactly-once mode the outputs go into the same transaction, so a
//! `read_committed` consumer sees each of them once, at the commit.

use super::sink::{KafkaSink, SinkError};
use crate::config::Config;
use crate::metrics::Metrics;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use rdkafka::topic_partition_list::TopicPartitionList;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a dead instance's open transaction can hold back `read_committed`
/// readers of the partitions it wrote (Kafka Streams uses 10 s for the same
/// reason). A restarted instance does not wait: its `init_transactions` aborts
/// its predecessor's transaction.
const TRANSACTION_TIMEOUT_MS: &str = "10000";
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a transaction did not commit, and so what the caller must do.
#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    /// Nothing was committed and the transaction must be aborted; the in-memory
    /// state is then ahead of the changelog and must be rewound.
    #[error("transaction must be aborted: {0}")]
    Abort(String),
    /// The producer is fenced (another instance uses the same id) or broken; the
    /// process must stop, and its restart resumes from the last commit.
    #[error("transactional producer failed for good: {0}")]
    Fatal(String),
}

const IDLE: u8 = 0;
const OPEN: u8 = 1;
const MUST_ABORT: u8 = 2;

pub struct Transactions {
    sink: KafkaSink,
    phase: AtomicU8,
}

fn classify(e: KafkaError) -> TxnError {
    match &e {
        KafkaError::Transaction(t) if t.is_fatal() => TxnError::Fatal(format!(
            "{e} (fenced: another producer registered this instance id; give each \
             running instance its own `kafka.instance_id`)"
        )),
        _ => TxnError::Abort(e.to_string()),
    }
}

impl Transactions {
    /// Creates the producer and registers `transactional_id` with the broker,
    /// which fences any older producer with that id and aborts its open
    /// transaction. Waits up to `wait` for the broker.
    pub fn new(
        config: &Config,
        metrics: Option<Arc<Metrics>>,
        transactional_id: &str,
        wait: Duration,
    ) -> anyhow::Result<Self> {
        let sink = KafkaSink::with_settings(
            config,
            metrics,
            &[
                ("transactional.id", transactional_id),
                ("transaction.timeout.ms", TRANSACTION_TIMEOUT_MS),
                // Inside a transaction a record may not outlive it.
                ("message.timeout.ms", TRANSACTION_TIMEOUT_MS),
            ],
        )?;
        let deadline = Instant::now() + wait;
        loop {
            match sink.producer().init_transactions(CALL_TIMEOUT) {
                Ok(()) => break,
                Err(KafkaError::Transaction(t)) if t.is_retriable() && Instant::now() < deadline => {
                    tracing::warn!(error = %t, "waiting for the broker to register the transactional producer");
                }
                Err(e) => anyhow::bail!("registering transactional id `{transactional_id}`: {e}"),
            }
        }
        Ok(Transactions {
            sink,
            phase: AtomicU8::new(IDLE),
        })
    }

    /// True while a failed transaction waits to be aborted: nothing may be
    /// produced or processed until `abort` succeeds.
    pub fn must_abort(&self) -> bool {
        self.phase.load(Ordering::Relaxed) == MUST_ABORT
    }

    /// True when records were sent since the last commit.
    pub fn is_open(&self) -> bool {
        self.phase.load(Ordering::Relaxed) == OPEN
    }

    fn begin(&self) -> Result<(), TxnError> {
        match self.phase.load(Ordering::Relaxed) {
            OPEN => Ok(()),
            MUST_ABORT => Err(TxnError::Abort("an earlier transaction failed".into())),
            _ => {
                self.sink.producer().begin_transaction().map_err(classify)?;
                self.phase.store(OPEN, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// Sends a record inside the current transaction, beginning one if needed.
    pub fn send(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
    ) -> Result<(), TxnError> {
        self.begin()?;
        self.sink
            .send(topic, partition, key, payload)
            .map_err(|e| self.failed(TxnError::Abort(e.to_string())))
    }

    /// Adds `offsets` and commits everything sent since `begin`.
    pub fn commit(
        &self,
        offsets: &TopicPartitionList,
        group: &ConsumerGroupMetadata,
    ) -> Result<(), TxnError> {
        self.begin()?;
        let p = self.sink.producer();
        p.send_offsets_to_transaction(offsets, group, CALL_TIMEOUT)
            .map_err(|e| self.failed(classify(e)))?;
        p.commit_transaction(CALL_TIMEOUT)
            .map_err(|e| self.failed(classify(e)))?;
        // A record that failed delivery inside a committed transaction is an
        // error librdkafka reports by failing the commit; this is a second guard.
        if let Err(SinkError::Undelivered { count, last }) = self.sink.take_failed() {
            return Err(self.failed(TxnError::Abort(format!(
                "{count} record(s) undelivered: {last}"
            ))));
        }
        self.phase.store(IDLE, Ordering::Relaxed);
        Ok(())
    }

    fn failed(&self, e: TxnError) -> TxnError {
        if matches!(e, TxnError::Abort(_)) {
            self.phase.store(MUST_ABORT, Ordering::Relaxed);
        }
        e
    }

    /// Aborts the open or failed transaction. Fails while the broker cannot be
    /// reached; the caller tries again later.
    pub fn abort(&self) -> Result<(), TxnError> {
        if self.phase.load(Ordering::Relaxed) == IDLE {
            return Ok(());
        }
        match self.sink.producer().abort_transaction(CALL_TIMEOUT) {
            Ok(()) => {
                let _ = self.sink.take_failed();
                self.phase.store(IDLE, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(classify(e)),
        }
    }
}

impl std::fmt::Debug for Transactions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transactions")
            .field("phase", &self.phase.load(Ordering::Relaxed))
            .finish()
    }
}
