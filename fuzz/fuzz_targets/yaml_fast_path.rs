//! The YAML loader's fast path against saphyr-parser on arbitrary input:
//! whichever path `load` takes, the result must be saphyr-parser's.
#![no_main]

use flink_gitops::config::yaml::{Limits, canonical_text, load, load_with_saphyr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let limits = Limits::default();
        let fast = canonical_text(&load(text, &limits));
        let reference = canonical_text(&load_with_saphyr(text, &limits));
        assert_eq!(fast, reference, "{text:?}");
    }
});
