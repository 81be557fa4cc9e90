//! crowdpark: a streaming engine for crowd safety, parking availability and
//! commerce statistics in a busy city district.
//!
//! Data flows one way: a source ([`io`]) hands raw messages to the [`engine`],
//! which decodes them ([`model`]), orders them in event time ([`time`]) and feeds
//! the domain operators ([`crowd`], [`parking`], [`payments`]); their [`output`]
//! records go to the sinks, the HTTP API ([`http`]) and the [`metrics`]. The
//! operators are pure, so everything between source and sinks can be tested and
//! benchmarked without Kafka.

pub mod cli;
pub mod config;
pub mod crowd;
pub mod district;
pub mod engine;
pub mod http;
pub mod io;
pub mod limits;
pub mod liveness;
pub mod metrics;
pub mod model;
pub mod operator;
pub mod output;
pub mod parking;
pub mod partitioner;
pub mod payments;
pub mod repeats;
pub mod sim;
pub mod state;
pub mod sync;
pub mod testing;
pub mod time;

/// Which build this is: `--version` and `crowdpark_build_info` say it.
#[derive(Debug, Clone, Copy)]
pub struct Build {
    pub version: &'static str,
    /// The git revision it was built from (`build.rs`), or `unknown`.
    pub revision: &'static str,
    /// The day it was built, UTC (`YYYY-MM-DD`).
    pub date: &'static str,
}

pub const BUILD: Build = Build {
    version: env!("CARGO_PKG_VERSION"),
    revision: env!("CROWDPARK_REVISION"),
    date: env!("CROWDPARK_BUILD_DATE"),
};

/// `--version`'s text: `0.1.0 (revision 1a2b3c4d5e6f, built 2026-12-07)`.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("CROWDPARK_REVISION"),
    ", built ",
    env!("CROWDPARK_BUILD_DATE"),
    ")"
);
