//! What each partition task tells its district (see `district`): its closed
//! zone windows and car park figures as they are published, and its watermark
//! every second, through `crowdpark.partials-by-district` or, in process,
//! straight to the district's task.

use super::{Engine, InputTopic};
use crate::district::DistrictOperator;
use crate::district::{district_partition, partial_of, upstream_id, PartialRecord};
use crate::model::{Decoded, Partial};
use crate::operator::Emit;
use crate::output::{DeadLetter, Origin, Output};

/// Heartbeats go out this often (wall clock), moved or not: the district
/// reads silence as "this partition's owner is gone" and waits.
const HEARTBEAT_EVERY_MS: i64 = 1_000;

/// Boundaries a car park partition reports at most in one step (a jump in
/// event time sends the latest ones only).
const MAX_BOUNDARIES: i64 = 60;

impl Engine {
    /// The partition of the district topic a district is in.
    fn district_target(&self, district: &str) -> i32 {
        match self.catalog.district(district) {
            Some(d) => self.district_targets[d as usize],
            None => district_partition(district, self.config.topics.input_partitions),
        }
    }

    /// A heartbeat from `upstream` at `wm` to every district's partition.
    fn beat(&mut self, upstream: i32, wm: i64) {
        for target in &self.heartbeat_targets {
            let record = PartialRecord {
                upstream,
                wm,
                partial: None,
            };
            self.partials.push((*target, record));
        }
    }

    /// The sender's number and watermark, for a partition that sends.
    fn sender(&self, topic: InputTopic, partition: i32) -> Option<(i32, i64)> {
        let id = upstream_id(topic, partition, self.config.topics.input_partitions)?;
        let wm = self.tasks.get(topic, partition)?.core().watermark.current();
        Some((id, wm))
    }

    /// Forwards what the records among `out[first..]`, made by the task of
    /// `topic`/`partition`, bring the district.
    pub(super) fn forward_partials(
        &mut self,
        topic: InputTopic,
        partition: i32,
        first: usize,
        out: &[Output],
    ) {
        // Most messages close no window: skip the lookups for them.
        if out.len() <= first {
            return;
        }
        let Some((upstream, wm)) = self.sender(topic, partition) else {
            return;
        };
        let before = self.partials.len();
        for o in &out[first..] {
            if let Some((district, partial)) = partial_of(o) {
                let target = self.district_target(district);
                // No watermark on the partial itself: the district would close
                // a window on the first record of a step, before the rest of
                // it (the other zones the same watermark closed) is in.
                let record = PartialRecord {
                    upstream,
                    wm: i64::MIN,
                    partial: Some(partial),
                };
                self.partials.push((target, record));
            }
        }
        if self.partials.len() > before {
            self.beat(upstream, wm);
        }
    }

    /// After a car park partition's step: its car parks' free spaces as of
    /// each crowd-window boundary its event time has passed since the last
    /// step (the district sums them at each window's end). Event time here is
    /// the newest event time less the allowed out-of-orderness, which the
    /// partition's records alone fix. The watermark is not used: it also
    /// follows the wall clock (it jumped ahead after a broker failover, before
    /// the records that had waited were in). An idle partition sends nothing
    /// more, and needs not: with no records its figures stand, and the
    /// district takes the last ones reported before a window's end.
    pub(super) fn free_spaces_due(&mut self, topic: InputTopic, partition: i32) {
        if topic != InputTopic::ParkingEvents {
            return;
        }
        let Some((upstream, _)) = self.sender(topic, partition) else {
            return;
        };
        let crowd = &self.config.crowd;
        let step = crowd.window_advance.unwrap_or(crowd.window).as_ms().max(1);
        let ooo = self.config.engine.max_out_of_orderness.as_ms();
        let Some(task) = self.tasks.parking.get_mut(&partition) else {
            return;
        };
        let Some(newest) = task.core.watermark.snapshot().0 else {
            return;
        };
        let progress = newest.saturating_sub(ooo);
        let through = progress - progress.rem_euclid(step);
        let first = match task.core.free_through {
            Some(t) if t >= through => return,
            Some(t) => (t + step).max(through - MAX_BOUNDARIES * step),
            None => through,
        };
        task.core.free_through = Some(through);
        let free = task.op.free_spaces();
        for at in (first..=through).step_by(step as usize) {
            for (lot, available) in &free {
                let district = self.catalog.lots[*lot as usize].district;
                let target = self.district_targets[district as usize];
                let partial = Partial::Free {
                    lot: self.catalog.lots[*lot as usize].id.clone(),
                    at,
                    available: *available,
                };
                let record = PartialRecord {
                    upstream,
                    wm: i64::MIN,
                    partial: Some(partial),
                };
                self.partials.push((target, record));
            }
        }
    }

    /// Tells the district how far a sending partition's event time has got,
    /// once a second, so its windows close even when the partition has
    /// nothing for them.
    pub(super) fn district_heartbeat(&mut self, topic: InputTopic, partition: i32, wall_ms: i64) {
        let Some((upstream, wm)) = self.sender(topic, partition) else {
            return;
        };
        let Some(task) = self.tasks.get_mut(topic, partition) else {
            return;
        };
        let core = task.core_mut();
        if wall_ms < core.district_beat.saturating_add(HEARTBEAT_EVERY_MS) {
            return;
        }
        core.district_beat = wall_ms;
        self.beat(upstream, wm);
    }

    /// Replaces `into` with the district records made since the last call,
    /// as `(partition, record)`, in the order made.
    pub fn take_partials_into(&mut self, into: &mut Vec<(i32, PartialRecord)>) {
        into.clear();
        std::mem::swap(&mut self.partials, into);
    }

    /// Hands the district records made so far to the district's task here,
    /// as the district topic would.
    pub(super) fn route_partials(&mut self, wall_ms: i64, out: &mut Vec<Output>) {
        for (partition, r) in std::mem::take(&mut self.partials) {
            self.process_partial(partition, &r, wall_ms, out);
        }
    }

    /// Processes one district record in the district's task here: the
    /// in-process route.
    fn process_partial(
        &mut self,
        partition: i32,
        r: &PartialRecord,
        wall_ms: i64,
        out: &mut Vec<Output>,
    ) {
        let skew = self.config.engine.max_future_skew.as_ms();
        let decoded = Decoded {
            ts: r.wm.max(0),
            dedup_id: None,
            event: r.partial.clone(),
            upstream: Some((r.upstream, r.wm)),
            merchant: None,
        };
        let mut none = Vec::new();
        let (task, peers) = self.typed_task::<DistrictOperator>(partition, wall_ms);
        let mut emit = Emit {
            records: out,
            forwarded: &mut none,
        };
        if let Err(reject) = task.process_among(&decoded, wall_ms, skew, &peers, &mut emit) {
            let origin = Origin {
                topic: self.topic_name(InputTopic::DistrictPartials),
                partition,
                offset: -1,
                key: None,
            };
            let json = serde_json::to_vec(r).unwrap_or_default();
            out.push(Output::DeadLetter(DeadLetter::new(origin, reject, &json)));
        }
    }
}
