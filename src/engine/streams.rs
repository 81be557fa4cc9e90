//! The consumed streams, each declared once: its topic, its decoder and its
//! operator, typed by its event (`Stream`); and their partition tasks, one
//! map per stream (`Streams`), so the engine reaches each operator by its
//! type and never asks which one a task holds.
//!
//! A new stream is one `impl Stream` and one field here, beside its event
//! and decoder (`model`) and its operator (see `docs/design.md`).

use super::partition::{PartitionTask, TaskCore};
use super::Disposition;
use crate::config::Config;
use crate::crowd::{CrowdOperator, CrowdParams};
use crate::district::DistrictOperator;
use crate::model::{self, Catalog, Decoded, InputTopic, Reject};
use crate::operator::{Emit, Operator, StoreName};
use crate::parking::{ParkingOperator, ParkingParams};
use crate::payments::{PaymentForwarder, PaymentsOperator, PaymentsParams};
use crate::state::{RestoreError, StateRecord};
use crate::time::MergedWatermark;
use std::collections::BTreeMap;
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

/// A consumed stream: its topic, how its messages decode, and the operator
/// that owns each of its partitions, all for one event type.
pub(crate) trait Stream: Operator + Sized + 'static {
    const TOPIC: InputTopic;
    /// Fed by a repartition topic from this many upstream topics (0: read
    /// from its own sensors): its watermark is then the slowest upstream
    /// partition's, merged (`time::MergedWatermark`).
    const UPSTREAM_TOPICS: i32 = 0;

    fn decode<'a>(
        payload: &'a [u8],
        catalog: &Catalog,
        max_bytes: usize,
    ) -> Result<Decoded<'a, Self::Event<'a>>, Reject>;

    fn build(b: &Build<'_>) -> Self;

    /// The upstream partitions whose watermarks the merged one waits for
    /// before any has reported (the district's: those that hold its zones).
    fn expected_upstreams(_b: &Build<'_>) -> Option<Vec<i32>> {
        None
    }

    /// What its operator reads of the other streams of its partition
    /// ([`Operator::Peers`]); nothing by default.
    fn peers<'a>(_peers: &Peers<'a>) -> Self::Peers<'a> {
        Default::default()
    }

    fn tasks(s: &Streams) -> &Tasks<Self>;
    fn tasks_mut(s: &mut Streams) -> &mut Tasks<Self>;
    /// Its tasks among another stream's peers.
    // No operator reads a peer yet (every `Operator::Peers` is `()`); the
    // first will join sales with footfall. Tested in this module.
    #[allow(dead_code)]
    fn peer<'a>(p: &Peers<'a>) -> Option<&'a Tasks<Self>>;
    /// Its own tasks to change, and every other stream's to read.
    fn split(s: &mut Streams) -> (&mut Tasks<Self>, Peers<'_>);
}

/// A stream's accessors of its field in [`Streams`].
macro_rules! tasks_in {
    ($field:ident) => {
        fn tasks(s: &Streams) -> &Tasks<Self> {
            &s.$field
        }
        fn tasks_mut(s: &mut Streams) -> &mut Tasks<Self> {
            &mut s.$field
        }
        fn peer<'a>(p: &Peers<'a>) -> Option<&'a Tasks<Self>> {
            p.$field
        }
        fn split(s: &mut Streams) -> (&mut Tasks<Self>, Peers<'_>) {
            let mut all = Split::of(s);
            let own = all.$field.take().expect("every stream has its field");
            (own, all.peers())
        }
    };
}

impl Stream for CrowdOperator {
    const TOPIC: InputTopic = InputTopic::CrowdCounts;
    fn decode<'a>(
        p: &'a [u8],
        c: &Catalog,
        max: usize,
    ) -> Result<Decoded<'a, Self::Event<'a>>, Reject> {
        model::decode_crowd(p, c, max)
    }
    fn build(b: &Build<'_>) -> Self {
        CrowdOperator::new(b.catalog.clone(), CrowdParams::from_config(b.config))
    }
    tasks_in!(crowd);
}

impl Stream for ParkingOperator {
    const TOPIC: InputTopic = InputTopic::ParkingEvents;
    fn decode<'a>(
        p: &'a [u8],
        c: &Catalog,
        max: usize,
    ) -> Result<Decoded<'a, Self::Event<'a>>, Reject> {
        model::decode_parking(p, c, max)
    }
    fn build(b: &Build<'_>) -> Self {
        ParkingOperator::new(b.catalog.clone(), ParkingParams::from_config(b.config))
    }
    tasks_in!(parking);
}

impl Stream for PaymentForwarder {
    const TOPIC: InputTopic = InputTopic::Payments;
    fn decode<'a>(
        p: &'a [u8],
        c: &Catalog,
        max: usize,
    ) -> Result<Decoded<'a, Self::Event<'a>>, Reject> {
        model::decode_payment(p, c, max)
    }
    fn build(b: &Build<'_>) -> Self {
        let params = PaymentsParams::from_config(b.config);
        let targets = b.config.topics.input_partitions;
        let (catalog, partition) = (b.catalog.clone(), b.partition);
        PaymentForwarder::new(catalog, params, partition, targets, b.through_kafka)
    }
    tasks_in!(payments);
}

impl Stream for PaymentsOperator {
    const TOPIC: InputTopic = InputTopic::PaymentsByZone;
    const UPSTREAM_TOPICS: i32 = 1;
    fn decode<'a>(
        p: &'a [u8],
        c: &Catalog,
        max: usize,
    ) -> Result<Decoded<'a, Self::Event<'a>>, Reject> {
        model::decode_payment_by_zone(p, c, max)
    }
    fn build(b: &Build<'_>) -> Self {
        PaymentsOperator::new(b.catalog.clone(), PaymentsParams::from_config(b.config))
    }
    tasks_in!(by_zone);
}

impl Stream for DistrictOperator {
    const TOPIC: InputTopic = InputTopic::DistrictPartials;
    const UPSTREAM_TOPICS: i32 = crate::district::SENDERS.len() as i32;
    fn decode<'a>(
        p: &'a [u8],
        c: &Catalog,
        max: usize,
    ) -> Result<Decoded<'a, Self::Event<'a>>, Reject> {
        model::decode_partial(p, c, max)
    }
    fn build(b: &Build<'_>) -> Self {
        DistrictOperator::new(b.config, b.catalog.clone())
    }
    fn expected_upstreams(b: &Build<'_>) -> Option<Vec<i32>> {
        let partitions = b.config.topics.input_partitions;
        Some(crate::district::holding(b.catalog, partitions, b.partition))
    }
    tasks_in!(district);
}

/// One stream's tasks, by partition.
pub(crate) type Tasks<O> = BTreeMap<i32, PartitionTask<O>>;

/// Every stream's tasks.
#[derive(Default)]
pub(crate) struct Streams {
    pub crowd: Tasks<CrowdOperator>,
    pub parking: Tasks<ParkingOperator>,
    pub payments: Tasks<PaymentForwarder>,
    pub by_zone: Tasks<PaymentsOperator>,
    pub district: Tasks<DistrictOperator>,
}

/// Every stream's tasks, each to be taken once: one to change, the others
/// to read.
struct Split<'a> {
    crowd: Option<&'a mut Tasks<CrowdOperator>>,
    parking: Option<&'a mut Tasks<ParkingOperator>>,
    payments: Option<&'a mut Tasks<PaymentForwarder>>,
    by_zone: Option<&'a mut Tasks<PaymentsOperator>>,
    district: Option<&'a mut Tasks<DistrictOperator>>,
}

impl<'a> Split<'a> {
    fn of(s: &'a mut Streams) -> Self {
        let Streams {
            crowd,
            parking,
            payments,
            by_zone,
            district,
        } = s;
        Split {
            crowd: Some(crowd),
            parking: Some(parking),
            payments: Some(payments),
            by_zone: Some(by_zone),
            district: Some(district),
        }
    }

    /// What is left, read-only.
    fn peers(self) -> Peers<'a> {
        Peers {
            partition: 0,
            crowd: self.crowd.map(|t| &*t),
            parking: self.parking.map(|t| &*t),
            payments: self.payments.map(|t| &*t),
            by_zone: self.by_zone.map(|t| &*t),
            district: self.district.map(|t| &*t),
        }
    }
}

/// The other streams' tasks of the partition a task is on, read-only: what
/// an operator may read besides its own stream's state, as a Kafka Streams
/// processor reads any store of its task. In `run` a task is partition `p`
/// of every co-partitioned input, so these are the other inputs' state of
/// the same keys' partition (a zone's footfall beside its sales).
#[derive(Default)]
#[allow(dead_code)] // see `Stream::peer`
pub(crate) struct Peers<'a> {
    partition: i32,
    crowd: Option<&'a Tasks<CrowdOperator>>,
    parking: Option<&'a Tasks<ParkingOperator>>,
    payments: Option<&'a Tasks<PaymentForwarder>>,
    by_zone: Option<&'a Tasks<PaymentsOperator>>,
    district: Option<&'a Tasks<DistrictOperator>>,
}

#[allow(dead_code)] // see `Stream::peer`
impl<'a> Peers<'a> {
    /// The operator of stream `O` on this partition, if it has one here.
    pub fn operator<O: Stream>(&self) -> Option<&'a O> {
        O::peer(self)?.get(&self.partition).map(|t| &t.op)
    }

    /// Store `name` of stream `O` on this partition, typed.
    pub fn store<O: Stream, S>(&self, name: &StoreName<O, S>) -> Option<&'a S> {
        self.operator::<O>().map(|op| name.of(op))
    }
}

/// Runs `$body` with `$O` the operator type of `$topic`'s stream: the one
/// place a topic is matched to its stream.
macro_rules! with_stream {
    ($topic:expr, $O:ident => $body:expr) => {
        match $topic {
            InputTopic::CrowdCounts => {
                type $O = CrowdOperator;
                $body
            }
            InputTopic::ParkingEvents => {
                type $O = ParkingOperator;
                $body
            }
            InputTopic::Payments => {
                type $O = PaymentForwarder;
                $body
            }
            InputTopic::PaymentsByZone => {
                type $O = PaymentsOperator;
                $body
            }
            InputTopic::DistrictPartials => {
                type $O = DistrictOperator;
                $body
            }
        }
    };
}

impl Streams {
    /// The task of a partition, whatever its stream.
    pub fn get(&self, topic: InputTopic, p: i32) -> Option<&dyn AnyTask> {
        with_stream!(topic, O => O::tasks(self).get(&p).map(|t| t as &dyn AnyTask))
    }

    pub fn get_mut(&mut self, topic: InputTopic, p: i32) -> Option<&mut dyn AnyTask> {
        with_stream!(topic, O => O::tasks_mut(self).get_mut(&p).map(|t| t as &mut dyn AnyTask))
    }

    /// Forgets a partition's task; its core, if it had one.
    pub fn remove(&mut self, topic: InputTopic, p: i32) -> Option<TaskCore> {
        with_stream!(topic, O => O::tasks_mut(self).remove(&p).map(|t| t.core))
    }

    /// The task of a partition, built first if there is none; true when
    /// it was (one lookup: this runs for every message); and the other
    /// streams' tasks of that partition, to read.
    pub fn ensure(
        &mut self,
        topic: InputTopic,
        b: &Build<'_>,
        wall_ms: i64,
    ) -> (&mut dyn AnyTask, bool, Peers<'_>) {
        with_stream!(topic, O => {
            let (task, fresh, peers) = self.typed::<O>(b, wall_ms);
            (task as &mut dyn AnyTask, fresh, peers)
        })
    }

    /// The task of a partition of `O`'s stream, built first if there is
    /// none; true when it was.
    pub fn typed<O: Stream>(
        &mut self,
        b: &Build<'_>,
        wall_ms: i64,
    ) -> (&mut PartitionTask<O>, bool, Peers<'_>) {
        let (tasks, mut peers) = O::split(self);
        peers.partition = b.partition;
        let (task, fresh) = match tasks.entry(b.partition) {
            std::collections::btree_map::Entry::Occupied(e) => (e.into_mut(), false),
            std::collections::btree_map::Entry::Vacant(v) => {
                (v.insert(new_task::<O>(b, wall_ms)), true)
            }
        };
        (task, fresh, peers)
    }

    /// Every task's topic and partition, in order.
    pub fn keys(&self) -> Vec<(InputTopic, i32)> {
        let mut keys = Vec::new();
        for topic in InputTopic::CONSUMED {
            with_stream!(topic, O => keys.extend(O::tasks(self).keys().map(|p| (O::TOPIC, *p))));
        }
        keys.sort_unstable();
        keys
    }

    /// Every task, with its topic and partition, in order.
    pub fn iter(&self) -> impl Iterator<Item = ((InputTopic, i32), &dyn AnyTask)> {
        self.keys()
            .into_iter()
            .filter_map(|(t, p)| Some(((t, p), self.get(t, p)?)))
    }
}

fn new_task<O: Stream>(b: &Build<'_>, wall_ms: i64) -> PartitionTask<O> {
    let config = b.config;
    let mut task = PartitionTask::new(&config.engine, O::build(b));
    if O::UPSTREAM_TOPICS > 0 {
        let mut merged = MergedWatermark::new(
            config.topics.input_partitions * O::UPSTREAM_TOPICS,
            config.engine.idle_timeout.as_ms(),
            wall_ms,
        );
        if let Some(from) = O::expected_upstreams(b) {
            merged.expect_events_from(from);
        }
        task.core.merged = Some(merged);
    }
    task
}

impl<O: Stream> PartitionTask<O> {
    /// [`process`](PartitionTask::process) with what its operator reads of
    /// `peers`.
    pub fn process_among<'m>(
        &mut self,
        d: &Decoded<'m, O::Event<'m>>,
        wall_ms: i64,
        max_future_skew: i64,
        peers: &Peers<'_>,
        out: &mut Emit<'_>,
    ) -> Result<Disposition, Reject> {
        self.process(d, wall_ms, max_future_skew, O::peers(peers), out)
    }
}

/// What the engine does with any partition task, whatever its stream.
pub(crate) trait AnyTask {
    fn core(&self) -> &TaskCore;
    fn core_mut(&mut self) -> &mut TaskCore;
    /// Decodes one message with its stream's decoder and processes it.
    fn process_message(
        &mut self,
        msg: &Message<'_, '_>,
        peers: &Peers<'_>,
        out: &mut Emit<'_>,
    ) -> Result<Disposition, Reject>;
    fn on_wall_clock(&mut self, wall_ms: i64, out: &mut Emit<'_>);
    fn force_watermark(&mut self, watermark: i64, out: &mut Emit<'_>);
    fn checkpoint(&mut self, prefix: &str, out: &mut Vec<StateRecord>);
    fn restore(&mut self, records: Vec<(&str, &[u8])>, wall_ms: i64) -> Result<(), RestoreError>;
}

/// One message for [`AnyTask::process_message`], with what decoding and
/// checking it needs.
pub(crate) struct Message<'m, 'c> {
    pub payload: &'m [u8],
    pub key: Option<&'m [u8]>,
    pub wall_ms: i64,
    pub catalog: &'c Catalog,
    pub max_bytes: usize,
    pub max_future_skew: i64,
    /// Refuse a message not keyed by its entity (`keys::check_key`).
    pub check_keys: bool,
}

impl<O: Stream> AnyTask for PartitionTask<O> {
    fn core(&self) -> &TaskCore {
        &self.core
    }

    fn core_mut(&mut self) -> &mut TaskCore {
        &mut self.core
    }

    fn process_message(
        &mut self,
        m: &Message<'_, '_>,
        peers: &Peers<'_>,
        out: &mut Emit<'_>,
    ) -> Result<Disposition, Reject> {
        let d = O::decode(m.payload, m.catalog, m.max_bytes)?;
        if m.check_keys {
            super::keys::check_key(m.catalog, m.key, &d)?;
        }
        self.process_among(&d, m.wall_ms, m.max_future_skew, peers, out)
    }

    fn on_wall_clock(&mut self, wall_ms: i64, out: &mut Emit<'_>) {
        PartitionTask::on_wall_clock(self, wall_ms, out)
    }

    fn force_watermark(&mut self, watermark: i64, out: &mut Emit<'_>) {
        PartitionTask::force_watermark(self, watermark, out)
    }

    fn checkpoint(&mut self, prefix: &str, out: &mut Vec<StateRecord>) {
        PartitionTask::checkpoint(self, prefix, out)
    }

    fn restore(&mut self, records: Vec<(&str, &[u8])>, wall_ms: i64) -> Result<(), RestoreError> {
        PartitionTask::restore(self, records, wall_ms)
    }
}

#[cfg(test)]
#[path = "streams/tests.rs"]
mod tests;
