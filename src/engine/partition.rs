//! The work for one input partition: its watermark, dedup memory and the
//! operator of its stream.

use crate::config::EngineSettings;
use crate::engine::Disposition;
use crate::model::{Decoded, Reject, RejectReason, StreamEvent};
use crate::operator::{Emit, Input, Operator};
use crate::state::{flush_all, read, restore_into, RestoreError, Splitter, StateRecord, Stores};
use crate::time::{format_ts, Dedup, Leader, MergedWatermark, Watermark};

/// What every partition task keeps beside its operator, whatever its stream.
pub(crate) struct TaskCore {
    pub watermark: Watermark,
    pub dedup: Dedup,
    /// Offset of the next message: the input position this state reflects.
    pub next_offset: Option<i64>,
    /// Stages fed through a repartition topic follow their upstreams' watermarks.
    pub merged: Option<MergedWatermark>,
    /// Which of this partition's changelog values are written in parts.
    pub split: Splitter,
    /// Wall time of the last watermark heartbeat to the district.
    pub district_beat: i64,
    /// Car park partitions: the last crowd-window boundary whose free spaces
    /// went to the district (checkpointed, so a replay sends none twice).
    pub free_through: Option<i64>,
}

/// One input partition's task: the core and the operator of its stream,
/// typed by that stream's event.
pub(crate) struct PartitionTask<O> {
    pub core: TaskCore,
    pub op: O,
}

impl<O: Operator> PartitionTask<O> {
    pub fn new(settings: &EngineSettings, op: O) -> Self {
        let core = TaskCore {
            watermark: Watermark::new(
                settings.max_out_of_orderness.as_ms(),
                settings.idle_timeout.as_ms(),
            ),
            dedup: Dedup::new(settings.dedup_horizon.as_ms(), settings.dedup_max_ids),
            next_offset: None,
            merged: None,
            split: Splitter::default(),
            district_beat: i64::MIN,
            free_through: None,
        };
        PartitionTask { core, op }
    }

    /// Applies a decoded event. Order of checks: a known id is a duplicate (even
    /// if it is also old), then lateness, then the operator's own checks; only an
    /// event the operator took is remembered for dedup and moves the watermark.
    pub fn process<'m>(
        &mut self,
        d: &Decoded<'m, O::Event<'m>>,
        wall_ms: i64,
        max_future_skew: i64,
        peers: O::Peers<'_>,
        out: &mut Emit<'_>,
    ) -> Result<Disposition, Reject> {
        let core = &mut self.core;
        if let Some(merged) = &mut core.merged {
            if let Some((from, wm)) = d.upstream {
                merged.report(from, wm, wall_ms);
            }
            if let Some(wm) = merged.current(wall_ms) {
                core.watermark.advance_to(wm);
            }
        }
        // A heartbeat (repartition topics only) has moved the watermark.
        let Some(event) = &d.event else {
            self.advance(out);
            return Ok(Disposition::Accepted);
        };
        // Bounded by the wall clock alone: bounded by the partition's newest
        // event too, one message an hour ahead let the next go an hour further.
        if d.ts > wall_ms.saturating_add(max_future_skew) {
            return Err(Reject::range(format!(
                "field `ts` is {}, more than {} s ahead of the clock",
                format_ts(d.ts),
                max_future_skew / 1000
            )));
        }
        if let Some(id) = &d.dedup_id {
            if core.dedup.contains(id) {
                return Ok(Disposition::Duplicate);
            }
        }
        let wm = core.watermark.current();
        if self.op.is_late(d.ts, wm) {
            return Err(Reject::new(
                RejectReason::Late,
                format!(
                    "event time {} is behind the watermark {} by more than the allowed lateness; its window is final",
                    format_ts(d.ts),
                    format_ts(wm)
                ),
            ));
        }
        let input = Input {
            ts: d.ts,
            event,
            id: d.dedup_id.as_deref(),
            watermark: wm,
            peers,
        };
        self.op.accept(&input, out)?;
        let core = &mut self.core;
        if let Some(id) = &d.dedup_id {
            core.dedup.insert(id, d.ts);
        }
        if core.merged.is_none() {
            let sensor = event.sensor(d.merchant.as_deref());
            core.watermark.observe(sensor, d.ts, wall_ms);
        }
        self.advance(out);
        Ok(Disposition::Accepted)
    }

    /// Lets the operator and the dedup memory follow the watermark.
    fn advance(&mut self, out: &mut Emit<'_>) {
        let wm = self.core.watermark.current();
        self.core.dedup.expire(wm);
        self.op.advance(wm, out);
    }

    pub fn on_wall_clock(&mut self, wall_ms: i64, out: &mut Emit<'_>) {
        let core = &mut self.core;
        let moved = match &core.merged {
            Some(merged) => match merged.current(wall_ms) {
                Some(wm) if wm > core.watermark.current() => {
                    core.watermark.advance_to(wm);
                    true
                }
                _ => false,
            },
            None => core.watermark.on_wall_clock(wall_ms),
        };
        if moved {
            self.advance(out);
        }
        self.op.tick(self.core.watermark.current(), wall_ms, out);
    }

    pub fn force_watermark(&mut self, watermark: i64, out: &mut Emit<'_>) {
        self.core.watermark.advance_to(watermark);
        self.advance(out);
    }
}

/// The watermark's part of a checkpoint.
#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    max_ts: Option<i64>,
    watermark: i64,
    /// The input offset this checkpoint reflects (the next one to process).
    next_offset: Option<i64>,
    /// Repartitioned stages: the upstream partitions' watermarks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    upstream: Vec<(i32, i64)>,
    /// The two most advanced sensors the watermark follows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    leaders: Vec<Leader>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    free_through: Option<i64>,
}

/// The key of the task's own record, written after every store's.
const META: &str = "meta";

impl<O: Operator> PartitionTask<O> {
    /// The task's stores: the dedup memory, then the operator's.
    fn stores(&mut self) -> Stores<'_> {
        let mut stores: Stores<'_> = vec![("ids", &mut self.core.dedup)];
        stores.extend(self.op.stores());
        stores
    }

    /// Appends changelog records for everything changed since the last call:
    /// every store's changes, then the task's `meta` record, last, so a reader
    /// that sees it has seen the records before it.
    pub fn checkpoint(&mut self, prefix: &str, out: &mut Vec<StateRecord>) {
        flush_all(prefix, self.stores(), out);
        let core = &self.core;
        let (max_ts, watermark, leaders) = core.watermark.snapshot();
        let meta = Meta {
            max_ts,
            watermark,
            next_offset: core.next_offset,
            upstream: core
                .merged
                .as_ref()
                .map(|m| m.upstreams())
                .unwrap_or_default(),
            leaders,
            free_through: core.free_through,
        };
        out.push(StateRecord::put(format!("{prefix}{META}"), &meta));
    }

    /// Rebuilds the task from the latest changelog record of each key (keys
    /// without the partition prefix, in any order). `wall_ms` restarts the
    /// idle clock.
    pub fn restore<'a>(
        &mut self,
        records: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        wall_ms: i64,
    ) -> Result<(), RestoreError> {
        let mut meta = None;
        {
            let mut stores = self.stores();
            for (key, value) in records {
                if key == META {
                    meta = Some(read::<Meta>(key, value)?);
                } else {
                    restore_into(&mut stores, key, value)?;
                }
            }
        }
        if let Some(m) = meta {
            let core = &mut self.core;
            core.watermark
                .restore(m.max_ts, m.watermark, &m.leaders, wall_ms);
            core.next_offset = m.next_offset;
            core.free_through = m.free_through;
            if let Some(merged) = &mut core.merged {
                for (from, wm) in m.upstream {
                    merged.report(from, wm, wall_ms);
                }
            }
        }
        self.op.finish_restore();
        Ok(())
    }
}
