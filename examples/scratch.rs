use crowdpark::config::{load_str, DEFAULT_CONFIG};
use crowdpark::engine::{Engine, InputMessage};
use crowdpark::output::Output;
use crowdpark::sim::{partition_for, SimOptions, Simulator};
use std::sync::Arc;
fn main() {
    let config = Arc::new(load_str(DEFAULT_CONFIG, Vec::new()).unwrap());
    let mut engine = Engine::new(config.clone());
    let opts = SimOptions::default();
    let mut sim = Simulator::new(&config, opts.clone());
    let mut out = Vec::new();
    let mut n = 0;
    for second in 1..=120 * 60 {
        let now = opts.start_ms + second * 1000;
        for m in sim.advance_to(now) {
            n += 1;
            let p = partition_for(m.key.as_bytes(), 3);
            engine.process(&InputMessage { topic: m.topic, partition: p, offset: 0, key: Some(m.key.as_bytes()), payload: &m.payload, wall_ms: now }, &mut out);
        }
        engine.tick(now, &mut out);
    }
    println!("messages {n}");
    let mut last_status = std::collections::HashMap::new();
    for o in &out {
        match o {
            Output::Alert(a) => println!("{} {} {:?} {}→{} d={} p={} eta={:?}", a.ts, a.zone, a.kind, a.previous, a.level, a.density, a.people, a.red_in_s),
            Output::Availability(a) => { if last_status.insert(a.id.clone(), a.status) != Some(a.status) { println!("{} {} {:?} {}/{} unk {}", a.observation_date_time, a.id, a.status, a.available_spot_number, a.total_spot_number, a.unknown_spot_number) } }
            _ => {}
        }
    }
    let counts = out.iter().fold(std::collections::BTreeMap::new(), |mut m, o| { *m.entry(format!("{:?}", o.topic())).or_insert(0) += 1; m });
    println!("{counts:?}");
    if let Some(Output::Payments(p)) = out.iter().rev().find(|o| matches!(o, Output::Payments(_))) { println!("{}", serde_json::to_string_pretty(p).unwrap()); }
}
