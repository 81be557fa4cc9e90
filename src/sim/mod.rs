//! A simulator of the model district on a holiday afternoon: crowds that build up
//! to red on the lakeside promenade, car parks that fill, payments that follow the
//! crowds. It drives `crowdpark demo` in process and `crowdpark simulate` into Kafka,
//! and replays exactly for a given seed.
//!
//! Messages come out in delivery order, which is event time plus a random network
//! delay of up to `max_delay_ms`: realistic disorder that stays within the engine's
//! allowed out-of-orderness. A share of them can be bad on purpose, each kind with
//! the dead-letter reason it must get, so tests can check the accounting.

mod bad;
mod crowd;
mod parking;
mod payments;
mod rng;
pub mod weeks;

pub use rng::Rng;

use crate::config::Config;
use crate::model::{Catalog, InputTopic, RejectReason};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

/// 2026-10-01T13:00:00+08:00: National Day, just after lunch.
pub const DEFAULT_START_MS: i64 = 1_790_830_800_000;

#[derive(Debug, Clone)]
pub struct SimOptions {
    pub start_ms: i64,
    pub seed: u64,
    /// Share of messages made bad on purpose.
    pub bad_ratio: f64,
    /// Share of good messages delivered twice (a producer retry).
    pub duplicate_ratio: f64,
    /// Largest delivery delay; keep it below the engine's out-of-orderness.
    pub max_delay_ms: i64,
    /// Multiplies payment and parking traffic, for load tests.
    pub intensity: f64,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            start_ms: DEFAULT_START_MS,
            seed: 42,
            bad_ratio: 0.0,
            duplicate_ratio: 0.0,
            max_delay_ms: 2_000,
            intensity: 1.0,
        }
    }
}

/// What the engine must make of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Accept,
    Duplicate,
    Reject(RejectReason),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimMessage {
    pub topic: InputTopic,
    pub key: String,
    pub payload: Vec<u8>,
    /// Event time of the message (for bad ones, of the good message it replaced).
    pub ts_ms: i64,
    /// When it reaches the engine, in simulated time.
    pub deliver_ms: i64,
    pub expect: Expect,
}

impl SimMessage {
    /// The message as the engine takes it: partitioned by its key as Kafka's
    /// default partitioner would over `partitions`, received when delivered.
    pub fn as_input(&self, partitions: i32, offset: i64) -> crate::engine::InputMessage<'_> {
        crate::engine::InputMessage {
            topic: self.topic,
            partition: crate::partitioner::partition_for(self.key.as_bytes(), partitions),
            offset,
            key: Some(self.key.as_bytes()),
            payload: &self.payload,
            wall_ms: self.deliver_ms,
        }
    }
}

impl PartialOrd for SimMessage {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SimMessage {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (
            self.deliver_ms,
            self.ts_ms,
            self.topic,
            &self.key,
            &self.payload,
        )
            .cmp(&(
                other.deliver_ms,
                other.ts_ms,
                other.topic,
                &other.key,
                &other.payload,
            ))
    }
}

/// One simulated second's worth of generated messages goes through this buffer.
pub struct Simulator {
    opts: SimOptions,
    rng: Rng,
    now_ms: i64,
    crowd: crowd::CrowdSim,
    parking: parking::ParkingSim,
    payments: payments::PaymentsSim,
    queue: BinaryHeap<Reverse<SimMessage>>,
}

/// Simulation step.
const STEP_MS: i64 = 1_000;

impl Simulator {
    pub fn new(config: &Config, opts: SimOptions) -> Self {
        let catalog = Arc::new(Catalog::new(config));
        let mut rng = Rng::new(opts.seed);
        Simulator {
            crowd: crowd::CrowdSim::new(&catalog, &mut rng),
            parking: parking::ParkingSim::new(&catalog, &mut rng),
            payments: payments::PaymentsSim::new(config, &catalog),
            now_ms: opts.start_ms,
            rng,
            opts,
            queue: BinaryHeap::new(),
        }
    }

    /// The simulated clock: everything generated so far has event time below it.
    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// Minutes since the simulation started, the simulator's notion of "afternoon".
    fn minute(&self) -> f64 {
        (self.now_ms - self.opts.start_ms) as f64 / 60_000.0
    }

    /// Messages delivered up to simulated time `until_ms`, in delivery order.
    pub fn advance_to(&mut self, until_ms: i64) -> Vec<SimMessage> {
        while self.now_ms + STEP_MS <= until_ms + self.opts.max_delay_ms {
            self.step();
        }
        let mut out = Vec::new();
        while self
            .queue
            .peek()
            .is_some_and(|m| m.0.deliver_ms <= until_ms)
        {
            out.push(self.queue.pop().expect("peeked").0);
        }
        out
    }

    fn step(&mut self) {
        let minute = self.minute();
        let (t0, t1) = (self.now_ms, self.now_ms + STEP_MS);
        let mut batch: Vec<(InputTopic, String, i64, Vec<u8>)> = Vec::new();
        self.crowd.step(minute, t0, t1, &mut self.rng, &mut batch);
        self.parking.step(
            minute,
            t0,
            t1,
            self.opts.intensity,
            &mut self.rng,
            &mut batch,
        );
        let people = self.crowd.people_by_zone();
        self.payments.step(
            &people,
            t0,
            t1,
            self.opts.intensity,
            &mut self.rng,
            &mut batch,
        );
        for (topic, key, ts, payload) in batch {
            let deliver = ts + self.rng.range(0, self.opts.max_delay_ms.max(1) as u64) as i64;
            if self.opts.bad_ratio > 0.0 && self.rng.chance(self.opts.bad_ratio) {
                let late_ok = minute >= 2.0;
                let (payload, reason) = bad::spoil(topic, &payload, ts, late_ok, &mut self.rng);
                self.push(topic, key, payload, ts, deliver, Expect::Reject(reason));
                continue;
            }
            let dup = self.opts.duplicate_ratio > 0.0 && self.rng.chance(self.opts.duplicate_ratio);
            if dup {
                let again = deliver + self.rng.range(1, 1_500) as i64;
                self.push(
                    topic,
                    key.clone(),
                    payload.clone(),
                    ts,
                    again,
                    Expect::Duplicate,
                );
            }
            self.push(topic, key, payload, ts, deliver, Expect::Accept);
        }
        self.now_ms = t1;
    }

    fn push(
        &mut self,
        topic: InputTopic,
        key: String,
        payload: Vec<u8>,
        ts: i64,
        deliver: i64,
        expect: Expect,
    ) {
        self.queue.push(Reverse(SimMessage {
            topic,
            key,
            payload,
            ts_ms: ts,
            deliver_ms: deliver,
            expect,
        }));
    }

    /// Current simulated people per zone id (for tests and the demo's banner).
    pub fn people(&self) -> Vec<(String, u32)> {
        self.crowd.people_by_zone_named()
    }
}
