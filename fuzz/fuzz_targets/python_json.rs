//! The `json.dumps(sort_keys=True)` emulation: whatever the loader builds is
//! emitted as JSON that a standard parser reads back.
#![no_main]

use flink_gitops::config::convert::to_value;
use flink_gitops::config::yaml::{Limits, load};
use flink_gitops::value::python_json::dumps;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(Some(node)) = load(text, &Limits::default())
        && let Ok(value) = to_value(&node, "")
    {
        let emitted = dumps(&value);
        assert!(
            serde_json::from_str::<serde_json::Value>(&emitted).is_ok(),
            "invalid JSON {emitted:?} for {text:?}"
        );
    }
});
