//! Publishing: outputs to their topics (re-keyed payments and district
//! partials into batches for the repartition topics) and to the local view.

use super::*;

/// Buffers a thread reuses for every message.
#[derive(Default)]
pub(super) struct Buffers {
    /// Every output is serialised into this one buffer, which librdkafka copies.
    pub json: Vec<u8>,
    /// The re-keyed payments the engine made for the message.
    pub forwarded: Vec<Forwarded>,
    /// What the message's partition tells its district.
    pub partials: Vec<(i32, PartialRecord)>,
}

/// Sends a task's outputs to their topics (re-keyed payments and district
/// partials into the task's batches) and to the local view; true when the
/// message caused anything to send. A failed send inside a transaction marks
/// it for abort (the coordinator then rewinds); only a fatal producer error
/// stops the run.
pub(super) fn publish(
    engine: &mut Engine,
    batches: &mut Batches,
    ctx: &RunContext,
    view: &LiveView,
    bufs: &mut Buffers,
    out: &[Output],
) -> anyhow::Result<bool> {
    engine.take_forwarded_into(&mut bufs.forwarded);
    engine.take_partials_into(&mut bufs.partials);
    let full = bufs
        .forwarded
        .iter()
        .filter_map(|f| batches.payments.add(f))
        .map(|(p, b)| (InputTopic::PaymentsByZone, p, b))
        .collect::<Vec<_>>();
    let partials = bufs
        .partials
        .iter()
        .filter_map(|(p, r)| batches.partials.add_line(*p, r))
        .map(|(p, b)| (InputTopic::DistrictPartials, p, b));
    for (topic, p, batch) in full.into_iter().chain(partials.collect::<Vec<_>>()) {
        if let Err(e) = send_batch(ctx, topic, p, &batch) {
            on_send_error(ctx, e)?;
            return Ok(true);
        }
    }
    send_all(engine, ctx, view, &mut bufs.json, out)?;
    Ok(!out.is_empty() || !bufs.forwarded.is_empty() || !bufs.partials.is_empty())
}

/// Sends records to their topics and hands them to the local view. A failed
/// send stops the rest (and was dealt with: see [`on_send_error`]).
fn send_all(
    engine: &Engine,
    ctx: &RunContext,
    view: &LiveView,
    json: &mut Vec<u8>,
    out: &[Output],
) -> anyhow::Result<()> {
    for o in out {
        json.clear();
        o.write_json(json);
        let topic = o.topic().name_in(&ctx.config.topics);
        if let Err(e) = ctx.send_output(topic, None, o.key().as_bytes(), json) {
            return on_send_error(ctx, e);
        }
    }
    crate::io::publish_local(engine, view, out);
    Ok(())
}

/// A send that failed: inside a transaction it is aborted and rewound by the
/// coordinator, so only a fatal error stops the run. Processing pauses at
/// once (the batch stops at its next message): whatever follows would be
/// rewound anyway.
pub(super) fn on_send_error(ctx: &RunContext, e: TransactionError) -> anyhow::Result<()> {
    match e {
        TransactionError::Abort(e) | TransactionError::Retry(e) => {
            ctx.event(RunEvent::TransactionFailed);
            crate::io::kafka::logs::warn("output not added to the transaction", &e);
            Ok(())
        }
        TransactionError::Fatal(e) => anyhow::bail!(e),
    }
}

pub(super) fn send_batch(
    ctx: &RunContext,
    topic: InputTopic,
    partition: i32,
    batch: &[u8],
) -> Result<(), TransactionError> {
    let topic = topic.name_in(&ctx.config.topics);
    ctx.send_output(topic, Some(partition), b"", batch)
}

/// Sends every pending batch of both repartition topics.
pub(super) fn send_batches(
    ctx: &RunContext,
    batches: &mut Batches,
) -> Result<(), TransactionError> {
    for (topic, p, batch) in batches.drain() {
        send_batch(ctx, topic, p, &batch)?;
    }
    Ok(())
}
