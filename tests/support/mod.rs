//! Shared test support. Each test binary uses a subset of it.
#![allow(dead_code)]

pub mod daemon_process;
pub mod fake_apiserver;
pub mod git_repo;
pub mod observe;
pub mod scenario;
