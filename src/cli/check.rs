//! `check-config`: validate a file and say what it defines.

use super::load_config;
use crate::config::Config;
use std::path::Path;
use std::process::ExitCode;

/// One line per district: name, id, clock, and how many zones and car parks.
fn print_districts(c: &crate::config::Config) {
    let named = |d: &crate::config::DistrictConfig, in_it: Option<&str>| {
        c.district_of(in_it).is_some_and(|x| x.id == d.id)
    };
    for d in c.districts() {
        let zones = c.zones.iter().filter(|z| named(d, z.district.as_deref()));
        let lots = c.lots.iter().filter(|l| named(d, l.district.as_deref()));
        println!(
            "district  {} ({}), UTC{}: {} zones, {} car parks",
            d.name,
            d.id,
            d.utc_offset,
            zones.count(),
            lots.count()
        );
    }
}

pub(super) fn check_config(file: &Path) -> ExitCode {
    // `FILE: KEY: PROBLEM`, as every command reports a bad configuration.
    let c = match load_config(Some(file)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    println!("{}: valid", file.display());
    print_districts(&c);
    println!(
        "engine    out-of-orderness {}, idle timeout {}, lateness {}, dedup horizon {}",
        c.engine.max_out_of_orderness,
        c.engine.idle_timeout,
        c.engine.allowed_lateness,
        c.engine.dedup_horizon
    );
    println!(
        "zones     {} zones, {:.0} m² walkable; default thresholds yellow {} / red {} p/m²",
        c.zones.len(),
        c.zones.iter().map(|z| z.area_m2).sum::<f64>(),
        c.crowd.thresholds.yellow,
        c.crowd.thresholds.red
    );
    for z in &c.zones {
        let t = c.thresholds_for(z);
        println!(
            "  {:<28} {:>7.1} m²  yellow {:<4} red {:<4} {:?}",
            z.id, z.area_m2, t.yellow, t.red, z.kind
        );
    }
    println!(
        "car parks {} car parks, {} spaces",
        c.lots.len(),
        c.total_spaces()
    );
    for l in &c.lots {
        println!(
            "  {:<28} {:>5} spaces  {:?}, open {}",
            l.id, l.spaces, l.detection, l.opening_hours
        );
    }
    println!(
        "merchants {} merchants in {} categories ({})",
        c.merchants.len(),
        c.payments.categories.len(),
        c.payments.categories.join(", ")
    );
    println!(
        "topics    in: {}, {}, {} ({} partitions); out: {}, {}, {}, {}, {}",
        c.topics.crowd_counts,
        c.topics.parking_events,
        c.topics.payments,
        c.topics.input_partitions,
        c.topics.crowd_alerts,
        c.topics.crowd_density,
        c.topics.parking_availability,
        c.topics.payments_stats,
        c.topics.deadletter
    );
    println!(
        "          replication factor {}, min.insync.replicas {} (production: 3 and 2)",
        c.topics.replication_factor, c.topics.min_insync_replicas
    );
    print_kafka_settings(&c);
    ExitCode::SUCCESS
}

/// The Kafka settings `run` would use, secrets masked.
fn print_kafka_settings(c: &Config) {
    use crate::config::secrets::shown;
    println!(
        "kafka     brokers {}, group {}, {:?}, commit every {}",
        c.kafka.brokers, c.kafka.group_id, c.kafka.processing_guarantee, c.kafka.commit_interval
    );
    for (key, value) in &c.kafka.client {
        println!("  {key} = {}", shown(key, value));
    }
}
