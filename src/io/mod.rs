//! The edges: sources that feed the engine and sinks that take its outputs.

pub mod console;
pub mod demo;
pub mod kafka;
mod local;

pub use local::{live_view, publish_local, refresh_view, shared_live_view, ViewParts};
