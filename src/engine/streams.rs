//! What runs each consumed topic: the operator that owns one of its
//! partitions, and whether its watermark follows upstream partitions (a
//! stage fed through a repartition topic) rather than its own sensors.

use crate::config::Config;
use crate::crowd::{CrowdOperator, CrowdParams};
use crate::district::DistrictOperator;
use crate::model::{Catalog, InputTopic};
use crate::operator::Operator;
use crate::parking::{ParkingOperator, ParkingParams};
use crate::payments::{PaymentForwarder, PaymentsOperator, PaymentsParams};
use std::sync::Arc;

/// What an operator is built from.
pub(crate) struct Build<'a> {
    pub config: &'a Config,
    pub catalog: &'a Arc<Catalog>,
    pub partition: i32,
    /// Re-keyed records go through the repartition topic (the Kafka runner)
    /// rather than straight to the next stage in process.
    pub through_kafka: bool,
}

pub(crate) struct InputStream {
    pub topic: InputTopic,
    pub operator: fn(&Build<'_>) -> Box<dyn Operator>,
    /// Fed by a repartition topic: the watermark is the slowest upstream
    /// partition's, merged (`time::MergedWatermark`).
    pub repartitioned: bool,
    /// Upstream topics whose partitions send to it, for the merged watermark.
    pub upstream_topics: i32,
}

pub(crate) const STREAMS: [InputStream; 5] = [
    InputStream {
        topic: InputTopic::CrowdCounts,
        operator: |b| {
            let params = CrowdParams::from_config(b.config);
            Box::new(CrowdOperator::new(b.catalog.clone(), params))
        },
        repartitioned: false,
        upstream_topics: 0,
    },
    InputStream {
        topic: InputTopic::ParkingEvents,
        operator: |b| {
            let params = ParkingParams::from_config(b.config);
            Box::new(ParkingOperator::new(b.catalog.clone(), params))
        },
        repartitioned: false,
        upstream_topics: 0,
    },
    InputStream {
        topic: InputTopic::Payments,
        operator: |b| {
            let params = PaymentsParams::from_config(b.config);
            let targets = b.config.topics.input_partitions;
            let (catalog, partition) = (b.catalog.clone(), b.partition);
            let f = PaymentForwarder::new(catalog, params, partition, targets, b.through_kafka);
            Box::new(f)
        },
        repartitioned: false,
        upstream_topics: 0,
    },
    InputStream {
        topic: InputTopic::PaymentsByZone,
        operator: |b| {
            let params = PaymentsParams::from_config(b.config);
            Box::new(PaymentsOperator::new(b.catalog.clone(), params))
        },
        repartitioned: true,
        upstream_topics: 1,
    },
    InputStream {
        topic: InputTopic::DistrictPartials,
        operator: |b| Box::new(DistrictOperator::new(b.config, b.catalog.clone())),
        repartitioned: true,
        upstream_topics: crate::district::SENDERS.len() as i32,
    },
];

/// The stream of a consumed topic.
pub(crate) fn stream(topic: InputTopic) -> &'static InputStream {
    STREAMS
        .iter()
        .find(|s| s.topic == topic)
        .expect("every consumed topic has a stream")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_consumed_topic_has_one_stream() {
        for topic in InputTopic::CONSUMED {
            assert_eq!(STREAMS.iter().filter(|s| s.topic == topic).count(), 1);
        }
        assert_eq!(STREAMS.len(), InputTopic::CONSUMED.len());
    }
}
