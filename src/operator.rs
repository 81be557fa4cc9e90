//! The one contract every operator keeps, as Kafka Streams' `Processor`
//! (init/process/close) and Arroyo's `ArrowOperator` (one required hook,
//! defaults for the rest): the engine runs any operator through it. Each is
//! typed by its stream's event, so none refuses another stream's, and the
//! engine's queries reach it by its type, never by a downcast.
//!
//! An operator owns the state of one input partition, in changelogged stores
//! ([`crate::state::Store`]) it lists once in [`Operator::stores`]; the
//! partition task writes and restores them, so an operator never formats a
//! changelog key or tracks what changed.

use crate::model::{Reject, StreamEvent};
use crate::output::{Forwarded, Output};
use crate::state::Stores;

/// One event the task let through: not a duplicate, not late, not ahead of
/// the clock. `E` is the operator's own stream's event type; `P` what it
/// reads of the other streams of its partition ([`Operator::Peers`]).
#[derive(Debug)]
pub struct Input<'e, E, P = ()> {
    /// Event time.
    pub ts: i64,
    pub event: &'e E,
    /// The message's own id (`event_id`, `txn_id`), where it has one.
    pub id: Option<&'e str>,
    /// The partition's watermark before this event.
    pub watermark: i64,
    /// The other streams' state it declared it reads, as of this event.
    pub peers: P,
}

/// Where an operator's results go: records for the output topics, and
/// records re-keyed for a later stage (see `payments::forward`), which travel
/// their own path: through a repartition topic, or straight to the stage in
/// process.
pub struct Emit<'a> {
    pub records: &'a mut Vec<Output>,
    pub forwarded: &'a mut Vec<Forwarded>,
}

/// One of operator `O`'s stores, by name and type, as Kafka Streams'
/// interactive queries name a store (`StoreQueryParameters.fromNameAndType`):
/// `name` is what the operator lists it as in [`Operator::stores`] (its
/// changelog key), and a query reads it as an `S`, with no downcast.
pub struct StoreName<O, S> {
    pub name: &'static str,
    read: fn(&O) -> &S,
}

impl<O, S> StoreName<O, S> {
    pub const fn new(name: &'static str, read: fn(&O) -> &S) -> Self {
        StoreName { name, read }
    }

    /// The store in one operator.
    pub fn of<'a>(&self, op: &'a O) -> &'a S {
        (self.read)(op)
    }
}

/// A stateful, deterministic operator of one input partition. It sees no
/// clock but the event times and watermarks it is given, and does no I/O.
pub trait Operator: Send {
    /// The events of the stream it runs on, as that stream's decoder makes
    /// them: an operator never sees another stream's.
    type Event<'a>: StreamEvent;

    /// What it reads of the other streams' state in its task, which is
    /// partition `p` of every co-partitioned input (a zone's footfall beside
    /// its sales, say): the engine resolves it from those streams' stores
    /// for each event (`engine::Stream::peers`). `()` for an operator of one
    /// stream only.
    type Peers<'a>: Default;

    /// True when an event at `ts` can no longer change anything this operator
    /// publishes (its windows are final); such events are dead-lettered.
    fn is_late(&self, ts: i64, watermark: i64) -> bool;

    /// Takes one event in. `Err` refuses it (it is dead-lettered) and must
    /// leave the state as it was.
    fn accept(
        &mut self,
        input: &Input<'_, Self::Event<'_>, Self::Peers<'_>>,
        out: &mut Emit<'_>,
    ) -> Result<(), Reject>;

    /// The partition's watermark moved to `watermark`: publish what it made
    /// final.
    fn advance(&mut self, _watermark: i64, _out: &mut Emit<'_>) {}

    /// A wall-clock tick, for operators that must speak even when nothing
    /// arrives (heartbeats to a later stage).
    fn tick(&mut self, _watermark: i64, _wall_ms: i64, _out: &mut Emit<'_>) {}

    /// The operator's changelogged stores by name, in checkpoint order.
    fn stores(&mut self) -> Stores<'_> {
        Vec::new()
    }

    /// Every store has been restored: rebuild what is derived across them.
    fn finish_restore(&mut self) {}
}
