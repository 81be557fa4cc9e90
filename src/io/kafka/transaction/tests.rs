//! The checkpoint's state machines on rdkafka's mock cluster: a transaction
//! moves idle → open → committed, or to "must abort" on a failed delivery and
//! back to idle by the abort; a restore reads committed checkpoints only, so
//! state written in an aborted transaction never comes back.

use super::*;
use crate::config::{load_str, DEFAULT_CONFIG};
use crate::engine::{Engine, InputMessage};
use crate::io::kafka::changelog::{changelog_reader, read_changelog};
use crate::model::InputTopic;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::topic_partition_list::Offset;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::ClientConfig;
use std::sync::Arc;

struct Fixture {
    // Dropped last: the clients below talk to it.
    config: Config,
    transaction: Transactions,
    consumer: BaseConsumer,
    cluster: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
}

fn fixture(id: &str) -> Fixture {
    let cluster = MockCluster::new(1).unwrap();
    let mut config = load_str(DEFAULT_CONFIG, Vec::<(String, String)>::new()).unwrap();
    config.kafka.brokers = cluster.bootstrap_servers();
    cluster.create_topic(&config.topics.state, 3, 1).unwrap();
    cluster
        .create_topic(&config.topics.crowd_counts, 3, 1)
        .unwrap();
    let transaction = Transactions::new(&config, None, id, Duration::from_secs(10)).unwrap();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .set("group.id", "unit")
        .create()
        .unwrap();
    Fixture {
        config,
        transaction,
        consumer,
        cluster,
    }
}

impl Fixture {
    fn commit(&self, offset: i64) -> Result<(), TransactionError> {
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset(&self.config.topics.crowd_counts, 0, Offset::Offset(offset))
            .unwrap();
        let group = self.consumer.group_metadata().unwrap();
        self.transaction.commit(&offsets, &group)
    }

    fn send(&self, key: &str, value: &[u8]) -> Result<(), TransactionError> {
        let topic = &self.config.topics.state;
        self.transaction
            .send(topic, Some(0), Some(key.as_bytes()), Some(value))
    }

    /// Writes partition 0's changed state into the open transaction.
    fn checkpoint(&self, engine: &mut Engine) {
        for r in engine.checkpoint_partition(InputTopic::CrowdCounts, 0) {
            let topic = &self.config.topics.state;
            let (key, value) = (Some(r.key.as_bytes()), r.value.as_deref());
            self.transaction.send(topic, Some(0), key, value).unwrap();
        }
    }
}

/// Headcounts of one camera in the first zone, a minute apart.
fn feed(engine: &mut Engine, from: i64, n: i64, people: u32) {
    let zone = engine.catalog().zones[0].id.clone();
    let t0 = 1_790_834_400_000;
    for i in from..from + n {
        let ts = t0 + i * 60_000;
        let payload = format!(
            r#"{{"event_id":"e{i}","ts":{ts},"zone":"{zone}","source":"cam-1","people":{people}}}"#
        );
        let msg = InputMessage {
            topic: InputTopic::CrowdCounts,
            partition: 0,
            offset: i,
            key: None,
            payload: payload.as_bytes(),
            wall_ms: ts,
        };
        engine.process(&msg, &mut Vec::new());
    }
}

#[test]
fn a_transaction_goes_idle_open_committed() {
    let f = fixture("unit-commit");
    assert!(!f.transaction.is_open() && !f.transaction.must_abort());
    f.send("k", b"v").unwrap();
    assert!(f.transaction.is_open(), "a send begins a transaction");
    f.commit(1).unwrap();
    assert!(
        !f.transaction.is_open() && !f.transaction.must_abort() && !f.transaction.is_committing()
    );
}

#[test]
fn a_refused_partition_must_be_aborted_and_then_the_next_one_commits() {
    let f = fixture("unit-abort");
    // The broker refuses to add the partition to the transaction: its record
    // cannot be delivered, and the transaction can only be aborted. (Not an
    // authorisation error: `cause::note` would keep that one process-wide,
    // and the health tests in this binary read it.)
    let refused = [RDKafkaRespErr::RD_KAFKA_RESP_ERR_OPERATION_NOT_ATTEMPTED; 8];
    f.cluster
        .request_errors(RDKafkaApiKey::AddPartitionsToTxn, &refused);
    f.send("k", b"v").unwrap();
    let e = f.commit(1).unwrap_err();
    assert!(matches!(e, TransactionError::Abort(_)), "{e}");
    assert!(
        std::error::Error::source(&e).is_some(),
        "the client's error is kept: {e:?}"
    );
    assert!(f.transaction.must_abort());
    let refused_again = f.send("k2", b"v").unwrap_err();
    assert!(
        matches!(refused_again, TransactionError::Abort(_)),
        "nothing is sent until the abort"
    );
    f.cluster
        .clear_request_errors(RDKafkaApiKey::AddPartitionsToTxn);
    f.transaction.abort().unwrap();
    assert!(
        !f.transaction.must_abort() && !f.transaction.is_open(),
        "idle again"
    );
    f.send("k3", b"v").unwrap();
    f.commit(2).unwrap();
}

#[test]
fn a_restore_reads_committed_checkpoints_and_never_an_aborted_one() {
    let f = fixture("unit-restore");
    let config = Arc::new(f.config.clone());
    let mut engine = Engine::new(config.clone());
    engine.enable_checkpoints();
    feed(&mut engine, 0, 30, 400);
    f.checkpoint(&mut engine);
    f.commit(30).unwrap();
    let committed = engine.zone_statuses();
    assert_eq!(committed.len(), 1, "{committed:?}");

    // More input, its checkpoint written and then aborted.
    feed(&mut engine, 30, 30, 4_000);
    assert_ne!(engine.zone_statuses(), committed);
    f.checkpoint(&mut engine);
    f.transaction.abort().unwrap();

    let reader = changelog_reader(&f.config).unwrap();
    let records = read_changelog(&reader, &f.config.topics.state, 0).unwrap();
    let mut restored = Engine::new(config);
    restored
        .restore_partition(InputTopic::CrowdCounts, 0, &records, 0)
        .unwrap();
    assert_eq!(restored.zone_statuses(), committed);
    assert_eq!(restored.next_offset(InputTopic::CrowdCounts, 0), Some(30));
}
