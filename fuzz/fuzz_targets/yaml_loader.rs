//! The soa-configs YAML loader and PyYAML resolver on arbitrary input.
#![no_main]

use flink_gitops::config::convert::to_value;
use flink_gitops::config::yaml::{Limits, load};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(Some(node)) = load(text, &Limits::default())
    {
        let _ = to_value(&node, "");
    }
});
