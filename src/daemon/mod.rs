//! The reconciler daemon (`flink-gitops run`): the loop, its triggers and
//! its HTTP edge. `engine` is pure; the rest is IO.

pub mod engine;
pub mod hooks;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod problems;
pub mod run;
mod watch;
