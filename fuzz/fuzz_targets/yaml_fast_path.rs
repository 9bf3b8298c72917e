//! The YAML loader's fast path against saphyr-parser on arbitrary input:
//! whichever path `load` takes, the result must be saphyr-parser's, also
//! when the input is over a small `max_nodes` (the fast path then gives up
//! part way).
#![no_main]

use flink_gitops::config::yaml::{Limits, canonical_text, load, load_with_saphyr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        // The input's length picks a small limit, so that the same input is
        // also tried with the default one.
        let small = Limits {
            max_nodes: 1 + text.len() % 32,
            ..Limits::default()
        };
        for limits in [Limits::default(), small] {
            let fast = canonical_text(&load(text, &limits));
            let reference = canonical_text(&load_with_saphyr(text, &limits));
            assert_eq!(fast, reference, "{text:?} (max_nodes {})", limits.max_nodes);
        }
    }
});
