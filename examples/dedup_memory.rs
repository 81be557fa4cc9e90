//! Resident memory per remembered message id, for sizing
//! `engine.dedup_max_ids` (no broker needed):
//!
//! ```sh
//! cargo run --release --example dedup_memory -- [ids (1000000)]
//! ```
//!
//! Fills one partition's dedup memory with `ids` fresh payment ids inside the
//! horizon, as a fast feed would, with changelog tracking on (as in `run`)
//! and the pending changelog chunks taken after each 10,000 (a checkpoint),
//! and reports resident bytes per id. Then it adds as many again past
//! `dedup_max_ids` = `ids`, to show the memory levels off at the cap while
//! `evicted_early` counts what was forgotten.

mod common;
use common::resident_bytes;

use crowdpark::time::Dedup;

use crowdpark::testing::T0;

fn main() -> anyhow::Result<()> {
    let ids: usize = std::env::args()
        .nth(1)
        .map_or(Ok(1_000_000), |a| a.parse())?;
    let before = resident_bytes();
    let mut d = Dedup::new(600_000, ids);
    d.track_changes();
    let mut id = String::new();
    let mut fill = |d: &mut Dedup, from: usize, to: usize| {
        for i in from..to {
            id.clear();
            use std::fmt::Write;
            write!(id, "wx-20261001-{i:010}").expect("a String takes writes");
            d.insert(&id, T0 + (i / 15) as i64);
            if i % 10_000 == 0 {
                let _ = d.take_changes();
            }
        }
        let _ = d.take_changes();
    };
    fill(&mut d, 0, ids);
    let full = resident_bytes();
    println!(
        "{ids} ids remembered: {:.1} MB resident, {:.1} bytes per id",
        (full - before) as f64 / 1e6,
        (full - before) as f64 / ids as f64
    );
    fill(&mut d, ids, 2 * ids);
    let after = resident_bytes();
    println!(
        "{} more past the cap: {:.1} MB resident ({} remembered, {} evicted before their horizon)",
        ids,
        (after - before) as f64 / 1e6,
        d.len(),
        d.evicted_early()
    );
    Ok(())
}
