//! An in-process driver for the engine, as Kafka Streams'
//! `TopologyTestDriver` is for a topology: messages go in by topic, key and
//! time, partitioned as Kafka's default partitioner would and numbered per
//! partition as a broker would; the wall clock is the driver's; records come
//! out typed; and a checkpoint can be taken and restored into a fresh engine
//! at any point, as after a crash. The tests, examples and benchmarks drive
//! the engine through it instead of building `InputMessage`s by hand.

use crate::config::{load_str, Config, DEFAULT_CONFIG};
use crate::engine::{Disposition, Engine, InputMessage};
use crate::model::InputTopic;
use crate::output::Output;
use crate::partitioner::partition_for;
use crate::sim::SimMessage;
use crate::state::{RestoreError, StateRecord};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The tests' reference time: 2026-10-01 06:00 UTC, 14:00 in Hubin, an
/// hour into the simulator's default afternoon
/// ([`DEFAULT_START_MS`](crate::sim::DEFAULT_START_MS)).
pub const T0: i64 = 1_790_834_400_000;

/// The configuration the tests start from: the shipped default with
/// `overrides` applied as `CROWDPARK_*` environment variables would be
/// (`("ENGINE__IDLE_TIMEOUT", "3s")`, without the prefix).
pub fn config_with(overrides: &[(&str, &str)]) -> Arc<Config> {
    let env: Vec<(String, String)> = overrides
        .iter()
        .map(|(k, v)| (format!("CROWDPARK_{k}"), v.to_string()))
        .collect();
    Arc::new(load_str(DEFAULT_CONFIG, env).expect("the test configuration loads"))
}

/// An engine fed message by message, with its clock and offsets.
pub struct TestDriver {
    engine: Engine,
    config: Arc<Config>,
    partitions: i32,
    offsets: HashMap<(InputTopic, i32), i64>,
    wall_ms: i64,
    /// The next tick of [`advance_wall_clock`](Self::advance_wall_clock).
    next_tick: i64,
    records_waiting: bool,
    /// The changelog as a compacted topic keeps it, when checkpointing.
    changelog: Option<BTreeMap<String, Vec<u8>>>,
    out: Vec<Output>,
}

impl TestDriver {
    /// A driver over the shipped default configuration, its clock at [`T0`].
    pub fn new() -> Self {
        Self::with_config(config_with(&[]))
    }

    pub fn with_config(config: Arc<Config>) -> Self {
        TestDriver {
            engine: Engine::new(config.clone()),
            partitions: config.topics.input_partitions,
            config,
            offsets: HashMap::new(),
            wall_ms: T0,
            next_tick: i64::MIN,
            records_waiting: false,
            changelog: None,
            out: Vec::new(),
        }
    }

    /// Keeps a changelog, as `run` does, so [`restart`](Self::restart) can
    /// restore from it.
    pub fn with_checkpoints(mut self) -> Self {
        self.engine.enable_checkpoints();
        self.changelog = Some(BTreeMap::new());
        self
    }

    pub fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The driver's wall clock.
    pub fn now(&self) -> i64 {
        self.wall_ms
    }

    /// Sets the wall clock without ticking (the next message arrives then).
    pub fn set_now(&mut self, wall_ms: i64) {
        self.wall_ms = wall_ms;
    }

    /// One message, keyed by `key` and on the partition it hashes to,
    /// received now.
    pub fn send(&mut self, topic: InputTopic, key: &str, payload: &[u8]) -> Disposition {
        let partition = partition_for(key.as_bytes(), self.partitions);
        self.send_to(topic, partition, Some(key.as_bytes()), payload)
    }

    /// One JSON message, keyed and received as [`send`](Self::send).
    pub fn send_json(
        &mut self,
        topic: InputTopic,
        key: &str,
        value: &serde_json::Value,
    ) -> Disposition {
        self.send(topic, key, value.to_string().as_bytes())
    }

    /// One message on an explicit partition (keyless input, internal topics).
    pub fn send_to(
        &mut self,
        topic: InputTopic,
        partition: i32,
        key: Option<&[u8]>,
        payload: &[u8],
    ) -> Disposition {
        let offset = self.next_offset(topic, partition);
        let msg = InputMessage {
            topic,
            partition,
            offset,
            key,
            payload,
            wall_ms: self.wall_ms,
        };
        self.engine.process(&msg, &mut self.out)
    }

    /// A simulated message, received when the simulator delivers it (the
    /// clock is set there first).
    pub fn send_sim(&mut self, m: &SimMessage) -> Disposition {
        self.wall_ms = m.deliver_ms;
        self.send(m.topic, &m.key, &m.payload)
    }

    fn next_offset(&mut self, topic: InputTopic, partition: i32) -> i64 {
        let next = self.offsets.entry((topic, partition)).or_insert(0);
        *next += 1;
        *next - 1
    }

    /// Sets the wall clock to `wall_ms`, ticking on the way as the runner does:
    /// once a wall second on a cadence of its own, not per message (idle
    /// partitions, heartbeats, forwarded watermarks). After a gap of more
    /// than a second only the last tick due is made, as a runner that was
    /// busy makes when it comes back.
    pub fn advance_wall_clock(&mut self, wall_ms: i64) {
        self.next_tick = self.next_tick.max(wall_ms - 1_000);
        while self.next_tick < wall_ms {
            if self.records_waiting {
                for (topic, partition) in self.engine.partitions() {
                    self.engine.hold_idle(topic, partition, self.next_tick);
                }
            }
            self.engine.tick(self.next_tick, &mut self.out);
            self.next_tick += 1_000;
        }
        self.wall_ms = wall_ms;
    }

    /// Whether every partition is known to have records waiting at each
    /// tick, as a stalled engine's have (so none counts as idle), or none
    /// is (the runner found them caught up). Off by default.
    pub fn set_records_waiting(&mut self, waiting: bool) {
        self.records_waiting = waiting;
    }

    /// Moves the wall clock to `wall_ms` and ticks once there, as a runner
    /// that was busy (or a test that skips the seconds between).
    pub fn tick_at(&mut self, wall_ms: i64) {
        self.wall_ms = self.wall_ms.max(wall_ms);
        self.engine.tick(self.wall_ms, &mut self.out);
    }

    /// Every partition's watermark to at least `watermark`: closes windows
    /// as the end of the input would.
    pub fn advance_watermark(&mut self, watermark: i64) {
        self.engine.advance_all(watermark, &mut self.out);
    }

    /// The records published since the last call.
    pub fn take(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }

    /// The records published since the last [`take`](Self::take), unread.
    pub fn pending(&self) -> &[Output] {
        &self.out
    }

    /// Checkpoints every partition into the changelog (compacted: the latest
    /// value per key, tombstones remove).
    pub fn checkpoint(&mut self) {
        let changelog = self
            .changelog
            .as_mut()
            .expect("the driver keeps a changelog (with_checkpoints)");
        for (topic, p) in self.engine.partitions() {
            for r in self.engine.checkpoint_partition(topic, p) {
                compact(changelog, r);
            }
        }
    }

    /// The changelog so far.
    pub fn changelog(&self) -> &BTreeMap<String, Vec<u8>> {
        self.changelog
            .as_ref()
            .expect("the driver keeps a changelog (with_checkpoints)")
    }

    /// A crash and restart: a fresh engine restored from the changelog
    /// for every partition this one held. What was processed since the last
    /// [`checkpoint`](Self::checkpoint) is lost from the state, as it is
    /// after `kill -9`; offsets go on where they were.
    pub fn restart(&mut self) -> Result<(), RestoreError> {
        *self = self.restored()?;
        Ok(())
    }

    /// A second driver, restored from this one's changelog as
    /// [`restart`](Self::restart) would be, with the same clock and offsets;
    /// this one goes on unchanged.
    pub fn restored(&self) -> Result<TestDriver, RestoreError> {
        let changelog = self.changelog().clone();
        let mut engine = Engine::new(self.config.clone());
        engine.enable_checkpoints();
        for (topic, p) in self.engine.partitions() {
            engine.restore_partition(topic, p, &changelog, self.wall_ms)?;
        }
        Ok(TestDriver {
            engine,
            config: self.config.clone(),
            partitions: self.partitions,
            offsets: self.offsets.clone(),
            wall_ms: self.wall_ms,
            next_tick: self.next_tick,
            records_waiting: self.records_waiting,
            changelog: Some(changelog),
            out: Vec::new(),
        })
    }
}

impl Default for TestDriver {
    fn default() -> Self {
        Self::new()
    }
}

fn compact(changelog: &mut BTreeMap<String, Vec<u8>>, r: StateRecord) {
    match r.value {
        Some(v) => changelog.insert(r.key, v),
        None => changelog.remove(&r.key),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::OutputTopic;

    fn count(driver: &mut TestDriver, zone: &str, ts: i64, people: u32) -> Disposition {
        let payload = serde_json::json!({
            "zone": zone, "ts": ts, "source": "cam-a", "people": people,
            "event_id": format!("cam-a-{ts}"),
        });
        driver.send_json(InputTopic::CrowdCounts, zone, &payload)
    }

    /// Messages in, windows out once the watermark passes them; the same
    /// message again is a duplicate.
    #[test]
    fn drives_messages_to_records() {
        let mut d = TestDriver::new();
        for s in 0..120 {
            d.set_now(T0 + s * 1_000 + 200);
            assert_eq!(
                count(&mut d, "lakeside-promenade", T0 + s * 1_000, 100),
                Disposition::Accepted
            );
        }
        assert_eq!(
            count(&mut d, "lakeside-promenade", T0 + 119_000, 100),
            Disposition::Duplicate
        );
        d.advance_watermark(T0 + 3_600_000);
        let windows = d
            .take()
            .into_iter()
            .filter(|o| o.topic() == OutputTopic::CrowdDensity)
            .count();
        assert!(windows >= 2, "two minutes make two zone windows: {windows}");
        assert!(d.take().is_empty(), "taken once");
    }

    /// A restart from the last checkpoint forgets what came after it, as a
    /// crash does, and knows what came before.
    #[test]
    fn restarts_from_the_last_checkpoint() {
        let mut d = TestDriver::new().with_checkpoints();
        count(&mut d, "lakeside-promenade", T0, 10);
        d.checkpoint();
        count(&mut d, "lakeside-promenade", T0 + 1_000, 20);
        d.restart().unwrap();
        assert_eq!(
            count(&mut d, "lakeside-promenade", T0, 10),
            Disposition::Duplicate,
            "checkpointed: known"
        );
        assert_eq!(
            count(&mut d, "lakeside-promenade", T0 + 1_000, 20),
            Disposition::Accepted,
            "after the checkpoint: lost, so taken again"
        );
    }
}
