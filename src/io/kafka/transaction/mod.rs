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

use super::deadline;
use super::sink::{KafkaSink, SinkError};
use crate::config::Config;
use crate::metrics::Metrics;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use rdkafka::topic_partition_list::TopicPartitionList;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

/// How long a dead instance's open transaction can hold back `read_committed`
/// readers of the partitions it wrote (Kafka Streams uses 10 s for the same
/// reason). A restarted instance does not wait: its `init_transactions` aborts
/// its predecessor's transaction. A broker outage longer than this makes the
/// coordinator abort the transaction itself, and the producer is then replaced.
const TRANSACTION_TIMEOUT_MS: &str = "10000";
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// A producer replaced more often than this is fenced by a live twin (two
/// instances with one id), not by outages: stop rather than fence it back.
const MAX_REPLACEMENTS: usize = 5;
const REPLACEMENT_WINDOW: Duration = Duration::from_secs(600);
/// Aborts failing this many times in a row (each waits `CALL_TIMEOUT`) mean
/// the producer is stuck, not the broker slow: it is replaced.
const STUCK_ABORTS: u8 = 3;

/// Why a transaction did not commit, and so what the caller must do.
#[derive(Debug, thiserror::Error)]
pub enum TransactionError {
    /// The commit did not finish in time (the broker is away); nothing may be
    /// sent until `commit` is called again and succeeds.
    #[error("transaction commit not finished yet: {0}")]
    Retry(#[source] Cause),
    /// Nothing was committed and the transaction must be aborted; the in-memory
    /// state is then ahead of the changelog and must be rewound.
    #[error("transaction must be aborted: {0}")]
    Abort(#[source] Cause),
    /// The producer cannot go on: fenced by another instance with the same id,
    /// too often to be outages. The process must stop.
    #[error("transactional producer failed for good: {0}")]
    Fatal(#[source] Cause),
}

/// What went wrong underneath a [`TransactionError`]: a client error, kept whole
/// with its code, or a reason of the engine's own.
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("{0}")]
    Reason(String),
}

impl From<String> for Cause {
    fn from(reason: String) -> Self {
        Cause::Reason(reason)
    }
}

impl From<&str> for Cause {
    fn from(reason: &str) -> Self {
        Cause::Reason(reason.to_string())
    }
}

/// Where the transaction stands. Kept in an atomic (workers send while the
/// coordinator commits), read and written only as this type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    Idle = 0,
    Open = 1,
    /// `commit_transaction` failed with a retriable error: only calling it
    /// again is allowed.
    Committing = 2,
    MustAbort = 3,
    /// The producer hit a fatal error (for example its transaction was
    /// aborted by the coordinator during a long outage) and must be replaced.
    Broken = 4,
}

/// A [`Phase`] shared between threads.
struct PhaseCell(AtomicU8);

impl PhaseCell {
    fn new(phase: Phase) -> Self {
        PhaseCell(AtomicU8::new(phase as u8))
    }

    fn get(&self) -> Phase {
        match self.0.load(Ordering::Acquire) {
            0 => Phase::Idle,
            1 => Phase::Open,
            2 => Phase::Committing,
            3 => Phase::MustAbort,
            _ => Phase::Broken,
        }
    }

    fn set(&self, phase: Phase) {
        self.0.store(phase as u8, Ordering::Release);
    }
}

pub struct Transactions {
    config: Config,
    metrics: Option<Arc<Metrics>>,
    transactional_id: String,
    sink: RwLock<KafkaSink>,
    phase: PhaseCell,
    replaced_at: Mutex<Vec<Instant>>,
    /// Aborts that failed in a row; see `abort`.
    failed_aborts: AtomicU8,
    /// Held while a transaction is begun.
    beginning: Mutex<()>,
}

/// librdkafka's three kinds of transactional error, as the caller must treat
/// them: fatal (replace the producer), abortable (abort, rewind), retriable
/// (call again).
fn classify(e: KafkaError) -> TransactionError {
    match &e {
        KafkaError::Transaction(t) if t.is_fatal() => TransactionError::Fatal(e.into()),
        KafkaError::Transaction(t) if t.txn_requires_abort() => TransactionError::Abort(e.into()),
        KafkaError::Transaction(t) if t.is_retriable() => TransactionError::Retry(e.into()),
        // rdkafka flushes before committing; a flush that times out leaves the
        // transaction open, to be committed by the next call.
        KafkaError::Flush(_) => TransactionError::Retry(e.into()),
        _ => TransactionError::Abort(e.into()),
    }
}

/// A producer registered under `transactional_id`; waits up to `wait` for the
/// broker.
fn registered_producer(
    config: &Config,
    metrics: Option<Arc<Metrics>>,
    transactional_id: &str,
    wait: Duration,
) -> anyhow::Result<KafkaSink> {
    let sink = KafkaSink::with_settings(
        config,
        metrics,
        &[
            ("transactional.id", transactional_id),
            ("transaction.timeout.ms", TRANSACTION_TIMEOUT_MS),
            // Inside a transaction a record may not outlive it.
            ("message.timeout.ms", TRANSACTION_TIMEOUT_MS),
            // A transaction begun right after the last commit gets
            // CONCURRENT_TRANSACTIONS while the coordinator writes the previous
            // one's markers; librdkafka retries after this backoff. Its default
            // (100 ms) held the loop 100–200 ms per checkpoint; the Java
            // client uses 20 ms for the same case (KAFKA-5477).
            ("retry.backoff.ms", "20"),
        ],
    )?;
    let deadline = Instant::now() + wait;
    loop {
        let timeout = CALL_TIMEOUT.min(wait);
        let registered = deadline::during("init_transactions", timeout, || {
            sink.producer().init_transactions(timeout)
        });
        match registered {
            Ok(()) => return Ok(sink),
            Err(KafkaError::Transaction(t)) if t.is_retriable() && Instant::now() < deadline => {
                super::logs::warn(
                    "waiting for the broker to register the transactional producer",
                    &t,
                );
            }
            Err(e) => anyhow::bail!("registering transactional id `{transactional_id}`: {e}"),
        }
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
        let sink = registered_producer(config, metrics.clone(), transactional_id, wait)?;
        Ok(Transactions {
            config: config.clone(),
            metrics,
            transactional_id: transactional_id.to_string(),
            sink: RwLock::new(sink),
            phase: PhaseCell::new(Phase::Idle),
            replaced_at: Mutex::new(Vec::new()),
            failed_aborts: AtomicU8::new(0),
            beginning: Mutex::new(()),
        })
    }

    fn sink(&self) -> RwLockReadGuard<'_, KafkaSink> {
        crate::sync::read(&self.sink)
    }

    /// True while a failed transaction waits to be aborted (or its producer to
    /// be replaced): nothing may be produced or processed until `abort`
    /// succeeds.
    pub fn must_abort(&self) -> bool {
        matches!(self.phase.get(), Phase::MustAbort | Phase::Broken)
    }

    /// True while a commit waits to be retried: nothing may be sent, and the
    /// next `commit` only finishes it.
    pub fn is_committing(&self) -> bool {
        self.phase.get() == Phase::Committing
    }

    /// True when records were sent since the last commit.
    pub fn is_open(&self) -> bool {
        self.phase.get() == Phase::Open
    }

    fn begin(&self) -> Result<(), TransactionError> {
        if self.phase.get() == Phase::Open {
            return Ok(());
        }
        // Workers send concurrently: one of them begins the transaction, the
        // others find it open.
        let _one = crate::sync::lock(&self.beginning);
        match self.phase.get() {
            Phase::Open => Ok(()),
            Phase::MustAbort | Phase::Broken => Err(TransactionError::Abort(
                "an earlier transaction failed".into(),
            )),
            Phase::Committing => Err(TransactionError::Retry(
                "the last commit is not finished".into(),
            )),
            Phase::Idle => {
                self.sink()
                    .producer()
                    .begin_transaction()
                    .map_err(|e| self.failed(classify(e)))?;
                self.phase.set(Phase::Open);
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
    ) -> Result<(), TransactionError> {
        self.begin()?;
        self.sink()
            .send(topic, partition, key, payload)
            .map_err(|e| self.failed(TransactionError::Abort(e.into())))
    }

    /// Adds `offsets` and commits everything sent since `begin`. After a
    /// `Retry`, call again (with any offsets: the first ones are already in).
    pub fn commit(
        &self,
        offsets: &TopicPartitionList,
        group: &ConsumerGroupMetadata,
    ) -> Result<(), TransactionError> {
        let sink = self.sink();
        let p = sink.producer();
        if !self.is_committing() {
            self.begin()?;
            // A retriable failure here is simplest treated as abortable: nothing
            // is committed yet, and the rewind replays the input.
            deadline::during("send_offsets_to_transaction", CALL_TIMEOUT, || {
                p.send_offsets_to_transaction(offsets, group, CALL_TIMEOUT)
            })
            .map_err(|e| match classify(e) {
                TransactionError::Retry(e) => self.failed(TransactionError::Abort(e)),
                other => self.failed(other),
            })?;
        }
        // rdkafka flushes, then commits, each with the whole timeout.
        deadline::during("commit_transaction", 2 * CALL_TIMEOUT, || {
            p.commit_transaction(CALL_TIMEOUT)
        })
        .map_err(|e| self.failed(classify(e)))?;
        // A record that failed delivery inside a committed transaction is an
        // error librdkafka reports by failing the commit; this is a second guard.
        if let Err(SinkError::Undelivered { count, last }) = sink.take_failed() {
            return Err(self.failed(TransactionError::Abort(
                format!("{count} record(s) undelivered: {last}").into(),
            )));
        }
        self.phase.set(Phase::Idle);
        Ok(())
    }

    /// Marks the transaction failed with `e`, as a failed call would (tests
    /// inject faults with it); returns what the caller must act on.
    pub fn fail(&self, e: TransactionError) -> TransactionError {
        self.failed(e)
    }

    fn failed(&self, e: TransactionError) -> TransactionError {
        let phase = match e {
            TransactionError::Abort(_) => Phase::MustAbort,
            TransactionError::Retry(_) => Phase::Committing,
            TransactionError::Fatal(_) => Phase::Broken,
        };
        self.phase.set(phase);
        match e {
            // Replacing the producer is the recovery; only `abort` decides
            // whether that is still possible.
            TransactionError::Fatal(e) => TransactionError::Abort(e),
            other => other,
        }
    }

    /// Aborts the open or failed transaction, replacing the producer if it is
    /// broken. Fails while the broker cannot be reached; the caller tries
    /// again later.
    pub fn abort(&self) -> Result<(), TransactionError> {
        match self.phase.get() {
            Phase::Idle => return Ok(()),
            Phase::Broken => return self.replace(),
            _ => {}
        }
        let result = deadline::during("abort_transaction", 2 * CALL_TIMEOUT, || {
            self.sink().producer().abort_transaction(CALL_TIMEOUT)
        });
        match result {
            Ok(()) => {
                let _ = self.sink().take_failed();
                self.failed_aborts.store(0, Ordering::Relaxed);
                self.phase.set(Phase::Idle);
                Ok(())
            }
            // Measured: after a produce failed inside the transaction and
            // records to another partition then timed out ("requires epoch
            // bump"), librdkafka's abort timed out on every call, for good,
            // with the broker up, and processing held forever. A new producer
            // under the same id gets there another way: registering it fences
            // the old one and the coordinator aborts the transaction.
            Err(e) if self.failed_aborts.fetch_add(1, Ordering::Relaxed) + 1 >= STUCK_ABORTS => {
                tracing::warn!(error = %e, attempts = STUCK_ABORTS, "the transaction cannot be aborted; replacing the producer");
                self.phase.set(Phase::Broken);
                self.replace()
            }
            Err(e) => match classify(e) {
                TransactionError::Fatal(e) => {
                    tracing::warn!(error = %e, "the transactional producer is broken; replacing it");
                    self.phase.set(Phase::Broken);
                    self.replace()
                }
                // An abort that times out is simply called again later.
                TransactionError::Retry(e) | TransactionError::Abort(e) => {
                    Err(TransactionError::Abort(e))
                }
            },
        }
    }

    /// A new producer under the same id: registering it aborts whatever the
    /// old one left open. Refused when it happens too often.
    fn replace(&self) -> Result<(), TransactionError> {
        {
            let mut times = crate::sync::lock(&self.replaced_at);
            times.retain(|t| t.elapsed() < REPLACEMENT_WINDOW);
            if times.len() >= MAX_REPLACEMENTS {
                return Err(TransactionError::Fatal(
                    format!(
                        "the transactional producer was fenced {MAX_REPLACEMENTS} times in {} s: \
                         another running instance probably uses instance id `{}`; give each \
                         instance its own `kafka.instance_id`",
                        REPLACEMENT_WINDOW.as_secs(),
                        self.transactional_id
                    )
                    .into(),
                ));
            }
        }
        let fresh = registered_producer(
            &self.config,
            self.metrics.clone(),
            &self.transactional_id,
            CALL_TIMEOUT,
        )
        .map_err(|e| TransactionError::Abort(format!("replacing the producer: {e:#}").into()))?;
        *crate::sync::write(&self.sink) = fresh;
        self.failed_aborts.store(0, Ordering::Relaxed);
        crate::sync::lock(&self.replaced_at).push(Instant::now());
        self.phase.set(Phase::Idle);
        tracing::warn!(id = %self.transactional_id, "transactional producer replaced");
        Ok(())
    }
}

impl std::fmt::Debug for Transactions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transactions")
            .field("id", &self.transactional_id)
            .field("phase", &self.phase.get())
            .finish()
    }
}

#[cfg(test)]
mod tests;
