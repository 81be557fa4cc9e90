//! The work for one input partition: its watermark, dedup memory and operator.

use crate::config::EngineSettings;
use crate::engine::Disposition;
use crate::model::{Decoded, Event, ParkingReading, Reject, RejectReason};
use crate::operator::{Emit, Input, Operator};
use crate::state::{flush_all, read, restore_into, RestoreError, Splitter, StateRecord, Stores};
use crate::time::{format_ts, Dedup, Leader, MergedWatermark, Watermark};

pub(crate) struct PartitionTask {
    pub watermark: Watermark,
    pub dedup: Dedup,
    pub op: Box<dyn Operator>,
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

impl PartitionTask {
    pub fn new(settings: &EngineSettings, op: Box<dyn Operator>) -> Self {
        PartitionTask {
            watermark: Watermark::new(
                settings.max_out_of_orderness.as_ms(),
                settings.idle_timeout.as_ms(),
            ),
            dedup: Dedup::new(settings.dedup_horizon.as_ms(), settings.dedup_max_ids),
            op,
            next_offset: None,
            merged: None,
            split: Splitter::default(),
            district_beat: i64::MIN,
            free_through: None,
        }
    }

    /// Applies a decoded event. Order of checks: a known id is a duplicate (even
    /// if it is also old), then lateness, then the operator's own checks; only an
    /// event the operator took is remembered for dedup and moves the watermark.
    pub fn process(
        &mut self,
        d: &Decoded<'_>,
        wall_ms: i64,
        max_future_skew: i64,
        out: &mut Emit<'_>,
    ) -> Result<Disposition, Reject> {
        if let Some(merged) = &mut self.merged {
            if let Some((from, wm)) = d.upstream {
                merged.report(from, wm, wall_ms);
            }
            if let Some(wm) = merged.current(wall_ms) {
                self.watermark.advance_to(wm);
            }
            if matches!(d.event, Event::Heartbeat) {
                self.advance(out);
                return Ok(Disposition::Accepted);
            }
        }
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
            if self.dedup.contains(id) {
                return Ok(Disposition::Duplicate);
            }
        }
        let wm = self.watermark.current();
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
            event: &d.event,
            id: d.dedup_id.as_deref(),
            watermark: wm,
        };
        self.op.accept(&input, out)?;
        if let Some(id) = &d.dedup_id {
            self.dedup.insert(id, d.ts);
        }
        if self.merged.is_none() {
            self.watermark.observe(sensor_of(d), d.ts, wall_ms);
        }
        self.advance(out);
        Ok(Disposition::Accepted)
    }

    /// Lets the operator and the dedup memory follow the watermark.
    fn advance(&mut self, out: &mut Emit<'_>) {
        let wm = self.watermark.current();
        self.dedup.expire(wm);
        self.op.advance(wm, out);
    }

    pub fn on_wall_clock(&mut self, wall_ms: i64, out: &mut Emit<'_>) {
        let moved = match &self.merged {
            Some(merged) => match merged.current(wall_ms) {
                Some(wm) if wm > self.watermark.current() => {
                    self.watermark.advance_to(wm);
                    true
                }
                _ => false,
            },
            None => self.watermark.on_wall_clock(wall_ms),
        };
        if moved {
            self.advance(out);
        }
        self.op.tick(self.watermark.current(), wall_ms, out);
    }

    pub fn force_watermark(&mut self, watermark: i64, out: &mut Emit<'_>) {
        self.watermark.advance_to(watermark);
        self.advance(out);
    }
}

/// A stable identity for the sensor behind an event, for the watermark: the
/// camera or counting line of a zone, the space or gate of a car park, the
/// merchant of a payment. FNV-1a, so a checkpoint restored by another
/// process names the same sensors.
fn sensor_of(d: &Decoded<'_>) -> u64 {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    match &d.event {
        Event::Crowd(e) => {
            h.write(&e.zone.to_le_bytes());
            h.write(e.source.as_bytes());
        }
        Event::Parking(e) => {
            h.write(&e.lot.to_le_bytes());
            match &e.reading {
                ParkingReading::Space { slot, .. } => h.write(slot.as_bytes()),
                ParkingReading::Gate { entry, .. } => h.write(&[*entry as u8]),
            }
        }
        Event::Payment(p) => match &d.merchant {
            Some(m) => h.write(m.as_bytes()),
            None => h.write(&p.zone.to_le_bytes()),
        },
        Event::Heartbeat | Event::Partial(_) => {}
    }
    h.0
}

struct Fnv(u64);

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 ^= 0xff; // a separator, so ("ab","c") and ("a","bc") differ
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

impl PartitionTask {
    /// The task's stores: the dedup memory, then the operator's.
    fn stores(&mut self) -> Stores<'_> {
        let mut stores: Stores<'_> = vec![("ids", &mut self.dedup)];
        stores.extend(self.op.stores());
        stores
    }

    /// Appends changelog records for everything changed since the last call:
    /// every store's changes, then the task's `meta` record, last, so a reader
    /// that sees it has seen the records before it.
    pub fn checkpoint(&mut self, prefix: &str, out: &mut Vec<StateRecord>) {
        flush_all(prefix, self.stores(), out);
        let (max_ts, watermark, leaders) = self.watermark.snapshot();
        let meta = Meta {
            max_ts,
            watermark,
            next_offset: self.next_offset,
            upstream: self
                .merged
                .as_ref()
                .map(|m| m.upstreams())
                .unwrap_or_default(),
            leaders,
            free_through: self.free_through,
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
            self.watermark
                .restore(m.max_ts, m.watermark, &m.leaders, wall_ms);
            self.next_offset = m.next_offset;
            self.free_through = m.free_through;
            if let Some(merged) = &mut self.merged {
                for (from, wm) in m.upstream {
                    merged.report(from, wm, wall_ms);
                }
            }
        }
        self.op.finish_restore();
        Ok(())
    }
}
