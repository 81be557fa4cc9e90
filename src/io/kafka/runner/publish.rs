//! Publishing: outputs to their topics (re-keyed payments into batches for
//! the repartition topic) and to the local view.

use super::*;

/// Buffers the loop reuses for every message.
#[derive(Default)]
pub(super) struct Buffers {
    /// Every output is serialised into this one buffer, which librdkafka copies.
    pub json: Vec<u8>,
    /// The re-keyed payments the engine made for the message.
    pub forwarded: Vec<Forwarded>,
}

/// Sends outputs to their topics (re-keyed payments into their batch) and to
/// the local view; true when the message caused anything to send. A failed
/// send inside a transaction marks it for abort (the loop then rewinds); only
/// a fatal producer error stops the run.
pub(super) fn publish(
    engine: &mut Engine,
    ctx: &RunContext,
    view: &LiveView,
    batches: &mut RepartitionBatches,
    bufs: &mut Buffers,
    out: &[Output],
) -> anyhow::Result<bool> {
    engine.take_forwarded_into(&mut bufs.forwarded);
    for f in &bufs.forwarded {
        if let Some((p, batch)) = batches.add(f) {
            if let Err(e) = send_batch(engine, ctx, p, &batch) {
                on_send_error(e)?;
                return Ok(true);
            }
        }
    }
    if out.is_empty() {
        return Ok(!bufs.forwarded.is_empty());
    }
    for o in out {
        bufs.json.clear();
        o.write_json(&mut bufs.json);
        let topic = engine.output_topic_name(o.topic());
        if let Err(e) = ctx.send_output(topic, None, o.key().as_bytes(), &bufs.json) {
            on_send_error(e)?;
            return Ok(true);
        }
    }
    crate::io::publish_local(engine, view, out);
    Ok(true)
}

/// A send that failed: inside a transaction it is aborted and rewound by the
/// loop, so only a fatal error stops the run.
pub(super) fn on_send_error(e: TxnError) -> anyhow::Result<()> {
    match e {
        TxnError::Abort(e) | TxnError::Retry(e) => {
            crate::io::kafka::logs::warn("output not added to the transaction", &e);
            Ok(())
        }
        TxnError::Fatal(e) => anyhow::bail!(e),
    }
}

pub(super) fn send_batch(
    engine: &Engine,
    ctx: &RunContext,
    partition: i32,
    batch: &[u8],
) -> Result<(), TxnError> {
    let topic = engine.output_topic_name(OutputTopic::PaymentsByZone);
    ctx.send_output(topic, Some(partition), b"", batch)
}

/// Sends every pending batch of re-keyed payments.
pub(super) fn send_batches(
    engine: &Engine,
    ctx: &RunContext,
    batches: &mut RepartitionBatches,
) -> Result<(), TxnError> {
    for (p, batch) in batches.drain() {
        send_batch(engine, ctx, p, &batch)?;
    }
    Ok(())
}
