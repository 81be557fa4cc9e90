//! The edges: sources that feed the engine and sinks that take its outputs.

pub mod console;
pub mod demo;
pub mod kafka;
