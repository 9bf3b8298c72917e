//! flink-gitops keeps PaaSTA-style Flink custom resources on Kubernetes in
//! step with a soa-configs repository.
//!
//! The pipeline, one module per stage:
//! [`source`] (read soa-configs into a [`source::Snapshot`]) →
//! [`config`] (parse it with PaaSTA's semantics into a [`config::ConfigSet`]) →
//! [`render`] (the desired resources, byte-identical to PaaSTA's, a
//! [`render::DesiredSet`]). [`cli`] drives it from the command line;
//! [`report`] turns comparisons into CI comments. [`pipeline`] chains the
//! first three per service for a one-shot render.
//! `config` and `render` are pure and synchronous: no IO, no clients.

pub mod apply;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod pipeline;
pub mod plan;
pub mod render;
pub mod report;
pub mod secret;
pub mod source;
pub mod value;
