//! The same input gives the same outputs however fast it is processed: live
//! at the pace it was sent, after a stall (a rebalance, a broker failover, a
//! busy machine), or replayed in one burst after downtime. Only a partition
//! that has caught up and gone quiet (`Engine::tick`, not called here) may
//! let the wall clock move its event time on.
//!
//! Found from outside: a survivor that took over a killed instance's
//! partitions published one zone's crowd window with 1,800.9 people on
//! average against 1,798.6 from an uninterrupted run of the same input. The
//! watermark judged a sensor "silent" by the wall clock between its records,
//! which is the processing pace, not the sensors': a stall let the leading
//! sensor alone move the watermark past readings still on their way.

use crowdpark::output::{Output, OutputTopic};
use crowdpark::sim::{SimMessage, SimOptions, Simulator};
use crowdpark::testing::{config_with, TestDriver};

/// Every record the engine publishes, per topic, in a stable order (the
/// partitions' records interleave at their own pace, which may differ).
fn outputs(
    msgs: &[SimMessage],
    held: bool,
    wall_of: impl Fn(usize, &SimMessage) -> i64,
) -> Vec<(OutputTopic, String)> {
    let mut driver = TestDriver::with_config(config_with(&[("ENGINE__IDLE_TIMEOUT", "3s")]));
    // `held`: every partition is known to have records waiting at each
    // tick, as a stalled engine's have.
    driver.set_records_waiting(held);
    for (i, m) in msgs.iter().enumerate() {
        driver.advance_wall_clock(wall_of(i, m));
        driver.send(m.topic, &m.key, &m.payload);
    }
    // The input has ended: every window closes (as idleness closes them
    // once the runner has caught up).
    let end = msgs.last().map_or(0, |m| m.ts_ms) + 3_600_000;
    driver.advance_watermark(end);
    let mut records: Vec<_> = driver
        .take()
        .iter()
        .filter(|o| !matches!(o, Output::Group(_) | Output::District(_)))
        .map(|o| (o.topic(), String::from_utf8(o.to_json()).unwrap()))
        .collect();
    records.sort();
    records
}

#[test]
fn outputs_do_not_depend_on_the_processing_pace() {
    let config = config_with(&[]);
    let opts = SimOptions {
        bad_ratio: 0.01,
        duplicate_ratio: 0.01,
        ..SimOptions::default()
    };
    let msgs = Simulator::new(&config, opts.clone()).advance_to(opts.start_ms + 40 * 60_000);
    let last = msgs.last().unwrap().deliver_ms;

    // Live: each message processed when it was delivered.
    let live = outputs(&msgs, true, |_, m| m.deliver_ms);
    // Replayed after downtime: everything processed an hour later, in one
    // burst at 10,000 messages a second.
    let burst = outputs(&msgs, true, |i, _| last + 3_600_000 + i as i64 / 10);
    // Live, with the engine stalled for 20 s before every 1,500th message
    // (its records wait meanwhile: nothing is idle).
    let stalled = outputs(&msgs, true, |i, m| {
        m.deliver_ms + (i / 1_500) as i64 * 20_000
    });
    // As the Kafka tests feed it: 1,500 messages a second, so a simulated
    // minute passes in a fraction of a wall second, with 4 s stalls.
    let fed_at =
        |i: usize, _: &SimMessage| last + 3_600_000 + i as i64 * 2 / 3 + (i / 2_000) as i64 * 4_000;
    let fed = outputs(&msgs, true, fed_at);
    // The same, with the stalls in the input itself (a paused producer, a
    // broker's garbage collection): nothing is known to wait, and the
    // partitions count as idle.
    let paused = outputs(&msgs, false, fed_at);

    assert!(
        live.iter().any(|(t, _)| *t == OutputTopic::CrowdDensity),
        "the run closes crowd windows"
    );
    let runs = [
        ("replayed in a burst", &burst),
        ("stalled", &stalled),
        ("fed fast with stalls", &fed),
        ("fed fast with pauses", &paused),
    ];
    for (name, run) in runs {
        let only_live: Vec<_> = live.iter().filter(|r| !run.contains(r)).take(3).collect();
        let only_run: Vec<_> = run.iter().filter(|r| !live.contains(r)).take(3).collect();
        assert!(
            only_live.is_empty() && only_run.is_empty(),
            "{name}: outputs differ from the live run ({} against {} records)\n live only: {only_live:#?}\n {name} only: {only_run:#?}",
            live.len(),
            run.len()
        );
    }
}
