//! Shared test support. Each test binary uses a subset of it.
#![allow(dead_code)]

pub mod fake_apiserver;
pub mod scenario;
