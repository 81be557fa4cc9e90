use super::*;

#[test]
fn every_consumed_topic_has_one_stream() {
    let config = crate::config::load_str(crate::config::DEFAULT_CONFIG, Vec::new()).unwrap();
    let catalog = Arc::new(Catalog::new(&config));
    let mut streams = Streams::default();
    for topic in InputTopic::CONSUMED {
        let b = Build {
            config: &config,
            catalog: &catalog,
            partition: 0,
            through_kafka: false,
        };
        streams.ensure(topic, &b, 0);
    }
    let keys = streams.keys();
    assert_eq!(keys.len(), InputTopic::CONSUMED.len());
    for topic in InputTopic::CONSUMED {
        assert!(streams.get(topic, 0).is_some(), "{topic:?}");
        assert_eq!(keys.iter().filter(|(t, _)| *t == topic).count(), 1);
    }
}
/// An operator's task reads the other streams' state of its partition,
/// typed, by store name; not its own stream's, nor another partition's.
#[test]
fn a_task_reads_the_other_streams_of_its_partition() {
    use crate::testing::T0;
    let config = crate::config::load_str(crate::config::DEFAULT_CONFIG, Vec::new()).unwrap();
    let catalog = Arc::new(Catalog::new(&config));
    let zone = catalog.zones[0].id.clone();
    let build = |partition| Build {
        config: &config,
        catalog: &catalog,
        partition,
        through_kafka: true,
    };
    let mut streams = Streams::default();
    // Two headcounts a minute apart: the first is applied once the
    // watermark passes it.
    for (i, ts) in [T0, T0 + 60_000].into_iter().enumerate() {
        let payload = format!(
            r#"{{"zone":"{zone}","ts":{ts},"source":"cam-1","people":40,"event_id":"e{i}"}}"#
        );
        let msg = Message {
            payload: payload.as_bytes(),
            key: None,
            wall_ms: ts,
            catalog: &catalog,
            max_bytes: 1 << 20,
            max_future_skew: 3_600_000,
            check_keys: false,
        };
        let (mut records, mut forwarded) = (Vec::new(), Vec::new());
        let mut out = Emit {
            records: &mut records,
            forwarded: &mut forwarded,
        };
        let (task, _, peers) = streams.ensure(InputTopic::CrowdCounts, &build(0), ts);
        task.process_message(&msg, &peers, &mut out).unwrap();
    }
    let (_, _, peers) = streams.typed::<PaymentsOperator>(&build(0), T0);
    let crowd = peers
        .operator::<CrowdOperator>()
        .expect("the crowd task of partition 0");
    let zones = peers.store(&crate::crowd::ZONES).expect("its zone store");
    let statuses = crowd.zone_statuses(zones);
    assert_eq!(statuses.len(), 1);
    assert_eq!(
        (statuses[0].id.as_str(), statuses[0].people),
        (zone.as_str(), 40)
    );
    assert!(
        peers.operator::<PaymentsOperator>().is_none(),
        "its own stream is no peer"
    );
    let (_, _, elsewhere) = streams.typed::<PaymentsOperator>(&build(1), T0);
    assert!(
        elsewhere.store(&crate::crowd::ZONES).is_none(),
        "another partition's"
    );
}
