//! The `crowdpark` command line (contract §5).

mod check;
mod commands;
mod serve;

use crate::config::{self, Config, DEFAULT_CONFIG};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "crowdpark",
    version = crate::LONG_VERSION,
    about = "Streaming engine for crowd safety, parking availability and district commerce"
)]
pub struct Cli {
    /// Log lines as text (coloured only on a terminal) or one JSON object
    /// per line.
    #[arg(long, global = true, env = "CROWDPARK_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the built-in simulation of the model district in process (no Kafka):
    /// prints alerts and availability changes, serves the HTTP API and metrics.
    Demo(DemoArgs),
    /// Run the engine against Kafka: consume the input topics as a consumer
    /// group, publish every output topic, serve the HTTP API and metrics.
    Run {
        /// Configuration file; the embedded model district by default.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Brokers (overrides kafka.brokers).
        #[arg(long)]
        brokers: Option<String>,
        /// HTTP listen address (overrides http.listen).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Produce realistic district traffic to the input topics.
    Simulate(SimulateArgs),
    /// Manage topics.
    Topics {
        #[command(subcommand)]
        action: TopicsAction,
    },
    /// Validate a configuration file and print what it defines.
    CheckConfig {
        /// The configuration file (TOML) to check.
        file: PathBuf,
    },
    /// Reprocess: with every `run` of the group stopped, delete the
    /// checkpoint and set the group's offsets to a time, the beginning or the
    /// end of the input topics. The next `run` starts there with empty state.
    Reset(ResetArgs),
}

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("to").required(true).args(["to_datetime", "to_earliest", "to_latest"])))]
pub struct ResetArgs {
    /// Configuration file; the embedded model district by default.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Brokers (overrides kafka.brokers).
    #[arg(long)]
    pub brokers: Option<String>,
    /// Reprocess from this time (RFC 3339, e.g. 2026-10-01T13:00:00+08:00):
    /// each input partition from its first record at or after it.
    #[arg(long)]
    pub to_datetime: Option<String>,
    /// Reprocess everything the input topics hold.
    #[arg(long)]
    pub to_earliest: bool,
    /// Skip what waits: start at the end of the input topics.
    #[arg(long)]
    pub to_latest: bool,
}

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Configuration file; the embedded model district by default.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Simulated seconds per wall-clock second.
    #[arg(long, default_value_t = 60.0)]
    pub speed: f64,
    /// Stop after this many wall-clock seconds (default: run until Ctrl-C).
    #[arg(long)]
    pub duration: Option<f64>,
    /// HTTP listen address (overrides http.listen); port 0 picks a free port.
    #[arg(long)]
    pub listen: Option<String>,
    /// Simulator seed: the same seed replays the same afternoon.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Share of deliberately bad messages (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub bad_ratio: f64,
    /// Print only the banner and the summary.
    #[arg(long)]
    pub quiet: bool,
    /// After `--duration`, keep serving the last state (HTTP API and the
    /// district view) until Ctrl-C, for a look or a screenshot.
    #[arg(long, requires = "duration")]
    pub hold: bool,
}

#[derive(clap::Args, Debug)]
pub struct SimulateArgs {
    /// Brokers (overrides kafka.brokers).
    #[arg(long)]
    pub brokers: Option<String>,
    /// Messages per second (0: as fast as possible).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Seconds to run.
    #[arg(long, default_value_t = 60.0)]
    pub duration: f64,
    /// Stop after this many messages.
    #[arg(long)]
    pub messages: Option<u64>,
    /// Share of deliberately bad messages (0 to 1), each of a known reason.
    #[arg(long, default_value_t = 0.0)]
    pub bad_ratio: f64,
    /// Share of good messages sent twice, as a retrying producer would.
    #[arg(long, default_value_t = 0.0)]
    pub duplicate_ratio: f64,
    /// Simulator seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Simulated start time (RFC 3339); default 2026-10-01T13:00:00+08:00,
    /// or with --weeks Monday 2026-08-31T00:00:00+08:00.
    #[arg(long)]
    pub start: Option<String>,
    /// Multi-week mode: this many weeks of gate counts for every car park
    /// (weekday and holiday patterns, noise), for forecasts; parking only.
    #[arg(long)]
    pub weeks: Option<u32>,
    /// Configuration file (its zones, car parks, merchants and topics); the
    /// embedded model district by default.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum TopicsAction {
    /// Create the input, output, dead-letter and state topics that do not exist.
    Create {
        /// Configuration file (topic names, partitions, replication); the
        /// embedded model district by default.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Brokers (overrides kafka.brokers).
        #[arg(long)]
        brokers: Option<String>,
    },
    /// Print the Kafka ACLs `run` needs with this configuration, one
    /// `kafka-acls --add` option list per line (the guarantee, group and
    /// instance id decide some of them).
    Acls {
        /// Configuration file (topic names, group and instance id); the
        /// embedded model district by default.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The engine's principal, e.g. `User:crowdpark`.
        #[arg(long)]
        principal: String,
    },
}

/// Loads `path`, or the embedded default, with environment overrides.
pub fn load_config(path: Option<&Path>) -> Result<Config, String> {
    let (source, loaded) = match path {
        Some(p) => (p.display().to_string(), config::load_file(p)),
        None => (
            "embedded config".to_string(),
            config::load_str(DEFAULT_CONFIG, std::env::vars()),
        ),
    };
    loaded
        .and_then(|c| crate::io::kafka::check_client_properties(&c).map(|()| c))
        .map_err(|e| match e.variable {
            // The variable is named in `e`: the file is not to blame.
            Some(_) => format!("environment: {e}"),
            None => format!("{source}: {e}"),
        })
}

/// [`load_config`], with `--brokers` overriding `kafka.brokers` when given.
fn load_with_brokers(path: Option<&Path>, brokers: Option<String>) -> Result<Config, String> {
    let mut cfg = load_config(path)?;
    if let Some(b) = brokers {
        cfg.kafka.brokers = b;
    }
    Ok(cfg)
}

/// Logs to stderr, filtered by `RUST_LOG`: text with colours only when
/// stderr is a terminal (a file or a pipe gets no escape codes), or JSON.
fn init_logs(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "crowdpark=info,warn".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => logs.json().flatten_event(true).init(),
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_format);
    match cli.command {
        Command::CheckConfig { file } => check::check_config(&file),
        Command::Run {
            config,
            brokers,
            listen,
        } => commands::run(config, brokers, listen),
        Command::Topics {
            action: TopicsAction::Create { config, brokers },
        } => commands::topics_create(config, brokers),
        Command::Topics {
            action: TopicsAction::Acls { config, principal },
        } => commands::topics_acls(config, &principal),
        Command::Simulate(args) => commands::simulate(args),
        Command::Demo(args) => commands::demo(args),
        Command::Reset(args) => commands::reset(args),
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

#[cfg(test)]
mod tests;
