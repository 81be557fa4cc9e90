//! Publishing: outputs to their topics (re-keyed payments into batches for
//! the repartition topic) and to the local view.

use super::*;

/// Sends outputs to their topics (re-keyed payments into their batch) and to
/// the local view. A failed send inside a transaction marks it for abort (the
/// loop then rewinds); only a fatal producer error stops the run.
pub(super) fn publish(
    engine: &mut Engine,
    ctx: &RunContext,
    view: &LiveView,
    batches: &mut RepartitionBatches,
    json: &mut Vec<u8>,
    out: &[Output],
) -> anyhow::Result<()> {
    for f in engine.take_forwarded() {
        if let Some((p, batch)) = batches.add(&f) {
            if let Err(e) = send_batch(engine, ctx, p, &batch) {
                return on_send_error(e);
            }
        }
    }
    if out.is_empty() {
        return Ok(());
    }
    for o in out {
        json.clear();
        o.write_json(json);
        let topic = engine.output_topic_name(o.topic());
        if let Err(e) = ctx.send_output(topic, None, o.key().as_bytes(), json) {
            return on_send_error(e);
        }
    }
    crate::io::publish_local(engine, view, out);
    Ok(())
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
