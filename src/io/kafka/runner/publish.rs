//! Publishing: outputs to their topics (re-keyed payments into batches for
//! the repartition topic) and to the local view.

use super::*;

/// Buffers a thread reuses for every message.
#[derive(Default)]
pub(super) struct Buffers {
    /// Every output is serialised into this one buffer, which librdkafka copies.
    pub json: Vec<u8>,
    /// The re-keyed payments the engine made for the message.
    pub forwarded: Vec<Forwarded>,
    /// What the message brings the district stage, and what that makes.
    pub district: Vec<DistrictInput>,
    pub district_out: Vec<Output>,
}

/// Sends a slot's outputs to their topics (re-keyed payments into the slot's
/// batches) and to the local view, and gathers what they bring the district
/// stage; true when the message caused anything to send. A failed
/// send inside a transaction marks it for abort (the coordinator then
/// rewinds); only a fatal producer error stops the run.
pub(super) fn publish(
    engine: &mut Engine,
    batches: &mut RepartitionBatches,
    ctx: &RunContext,
    view: &LiveView,
    bufs: &mut Buffers,
    out: &[Output],
) -> anyhow::Result<bool> {
    engine.take_forwarded_into(&mut bufs.forwarded);
    for f in &bufs.forwarded {
        if let Some((p, batch)) = batches.add(f) {
            if let Err(e) = send_batch(ctx, p, &batch) {
                on_send_error(e)?;
                return Ok(true);
            }
        }
    }
    send_all(engine, ctx, view, &mut bufs.json, out)?;
    engine.take_district_inputs_into(&mut bufs.district);
    Ok(!out.is_empty() || !bufs.forwarded.is_empty())
}

/// Feeds the district stage what a batch of messages brought it (gathered
/// by [`publish`]) and sends the records that makes due, under the stage's
/// lock, so they leave in the order made whichever worker made them.
pub(super) fn publish_district(
    engine: &Engine,
    ctx: &RunContext,
    view: &LiveView,
    bufs: &mut Buffers,
) -> anyhow::Result<()> {
    if bufs.district.is_empty() {
        return Ok(());
    }
    let mut district = crate::sync::lock(&ctx.district);
    bufs.district_out.clear();
    district.absorb(&mut bufs.district, &mut bufs.district_out);
    send_all(engine, ctx, view, &mut bufs.json, &bufs.district_out)?;
    Ok(())
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
            return on_send_error(e);
        }
    }
    crate::io::publish_local(engine, view, out);
    Ok(())
}

/// A send that failed: inside a transaction it is aborted and rewound by the
/// coordinator, so only a fatal error stops the run.
pub(super) fn on_send_error(e: TxnError) -> anyhow::Result<()> {
    match e {
        TxnError::Abort(e) | TxnError::Retry(e) => {
            crate::io::kafka::logs::warn("output not added to the transaction", &e);
            Ok(())
        }
        TxnError::Fatal(e) => anyhow::bail!(e),
    }
}

pub(super) fn send_batch(ctx: &RunContext, partition: i32, batch: &[u8]) -> Result<(), TxnError> {
    let topic = OutputTopic::PaymentsByZone.name_in(&ctx.config.topics);
    ctx.send_output(topic, Some(partition), b"", batch)
}

/// Sends every pending batch of re-keyed payments.
pub(super) fn send_batches(
    ctx: &RunContext,
    batches: &mut RepartitionBatches,
) -> Result<(), TxnError> {
    for (p, batch) in batches.drain() {
        send_batch(ctx, p, &batch)?;
    }
    Ok(())
}
