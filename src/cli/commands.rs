//! What each command does with its arguments.

use super::serve::{run_demo, run_kafka, runtime};
use super::{load_config, load_with_brokers, usage_error, DemoArgs, ResetArgs, SimulateArgs};
use crate::io::demo::DemoOptions;
use crate::sim::SimOptions;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// `run`: the engine against Kafka.
pub(super) fn run(
    config: Option<PathBuf>,
    brokers: Option<String>,
    listen: Option<String>,
) -> ExitCode {
    let mut cfg = match load_with_brokers(config.as_deref(), brokers) {
        Ok(c) => c,
        Err(e) => return usage_error(&e),
    };
    if let Some(l) = listen {
        cfg.http.listen = l;
    }
    runtime().block_on(run_kafka(cfg))
}

/// `topics create`.
pub(super) fn topics_create(config: Option<PathBuf>, brokers: Option<String>) -> ExitCode {
    let cfg = match load_with_brokers(config.as_deref(), brokers) {
        Ok(c) => c,
        Err(e) => return usage_error(&e),
    };
    match runtime().block_on(crate::io::kafka::admin::create_topics(&cfg)) {
        Ok(lines) => {
            for l in lines {
                println!("{l}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `reset`: the checkpoint deleted and the group's offsets moved.
pub(super) fn reset(a: ResetArgs) -> ExitCode {
    use crate::io::kafka::reset::{reset, ResetTo};
    let cfg = match load_with_brokers(a.config.as_deref(), a.brokers) {
        Ok(c) => c,
        Err(e) => return usage_error(&e),
    };
    let to = match (a.to_datetime, a.to_earliest) {
        (Some(t), _) => match chrono::DateTime::parse_from_rfc3339(&t) {
            Ok(t) => ResetTo::Time(t.timestamp_millis()),
            Err(e) => {
                return usage_error(&format!(
                    "--to-datetime `{t}`: {e} (RFC 3339, e.g. 2026-10-01T13:00:00+08:00)"
                ))
            }
        },
        (None, true) => ResetTo::Earliest,
        (None, false) => ResetTo::Latest,
    };
    match reset(&cfg, to) {
        Ok(s) => {
            println!("group {}: offsets set ({to:?})", cfg.kafka.group_id);
            for ((topic, p), o) in &s.offsets {
                println!("  {topic}[{p}] -> {o}");
            }
            println!(
                "checkpoint deleted: {} state record(s) in {}; the next run starts from these offsets with empty state",
                s.state_keys,
                crate::io::kafka::state_topic(&cfg)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `topics acls`.
pub(super) fn topics_acls(config: Option<PathBuf>, principal: &str) -> ExitCode {
    match load_config(config.as_deref()) {
        Ok(cfg) => {
            for grant in crate::io::kafka::acls::grants(&cfg) {
                println!("{}", grant.options(principal));
            }
            ExitCode::SUCCESS
        }
        Err(e) => usage_error(&e),
    }
}

/// `simulate`: district traffic to the input topics.
pub(super) fn simulate(a: SimulateArgs) -> ExitCode {
    let cfg = match load_with_brokers(a.config.as_deref(), a.brokers) {
        Ok(c) => c,
        Err(e) => return usage_error(&e),
    };
    if !(0.0..=1.0).contains(&a.bad_ratio) || !(0.0..=1.0).contains(&a.duplicate_ratio) {
        return usage_error("--bad-ratio and --duplicate-ratio must be between 0 and 1");
    }
    if !(a.rate >= 0.0 && a.duration > 0.0) {
        return usage_error("--rate must be >= 0 and --duration > 0");
    }
    if a.weeks.is_some_and(|w| w == 0 || w > 52) {
        return usage_error("--weeks must be 1 to 52");
    }
    let start_ms = match a.start.as_deref().map(chrono::DateTime::parse_from_rfc3339) {
        None if a.weeks.is_some() => crate::sim::weeks::DEFAULT_WEEKS_START_MS,
        None => crate::sim::DEFAULT_START_MS,
        Some(Ok(t)) => t.timestamp_millis(),
        Some(Err(e)) => return usage_error(&format!("--start: {e}")),
    };
    let opts = crate::io::kafka::simulate::SimulateOptions {
        rate: a.rate,
        duration: Duration::from_secs_f64(a.duration),
        max_messages: a.messages,
        sim: SimOptions {
            seed: a.seed,
            bad_ratio: a.bad_ratio,
            duplicate_ratio: a.duplicate_ratio,
            start_ms,
            ..SimOptions::default()
        },
        progress: true,
        weeks: a.weeks,
    };
    match crate::io::kafka::simulate::simulate(&cfg, &opts) {
        Ok(summary) => {
            println!("{}", serde_json::to_string(&summary).expect("serialisable"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `demo`: the model district in process.
pub(super) fn demo(a: DemoArgs) -> ExitCode {
    if !(a.speed > 0.0 && a.speed.is_finite()) {
        return usage_error("--speed must be a positive number");
    }
    if !(0.0..=1.0).contains(&a.bad_ratio) {
        return usage_error("--bad-ratio must be between 0 and 1");
    }
    let mut cfg = match load_config(a.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return usage_error(&e),
    };
    if let Some(l) = a.listen {
        cfg.http.listen = l;
    }
    let opts = DemoOptions {
        speed: a.speed,
        duration: a.duration.map(Duration::from_secs_f64),
        sim: SimOptions {
            seed: a.seed,
            bad_ratio: a.bad_ratio,
            duplicate_ratio: if a.bad_ratio > 0.0 { 0.01 } else { 0.0 },
            ..SimOptions::default()
        },
        quiet: a.quiet,
    };
    runtime().block_on(run_demo(cfg, opts, a.hold))
}
