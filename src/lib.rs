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
pub mod time;
