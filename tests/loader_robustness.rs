//! The soa-configs loader never panics, whatever a file holds: it returns a
//! value or an error with a position. (A panic would take every service down,
//! not just the broken one.)

use flink_gitops::config::convert::to_value;
use flink_gitops::config::yaml::{Limits, load};
use proptest::prelude::*;

fn load_and_convert(text: &str) {
    if let Ok(Some(node)) = load(text, &Limits::default()) {
        let _ = to_value(&node, "");
    }
}

/// Fragments that steer random input towards YAML's tricky corners.
fn yaml_like() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "a: ",
        "- ",
        "&x ",
        "*x",
        "<<: ",
        "{",
        "}",
        "[",
        "]",
        ", ",
        "? ",
        ": ",
        "!!int ",
        "!",
        "|\n  ",
        ">\n  ",
        "'",
        "\"",
        "\\u",
        "#",
        "\n",
        "  ",
        "---\n",
        "...\n",
        "%YAML 1.1\n",
        "010",
        "1:30",
        ".inf",
        "2024-01-01",
        "~",
        "yes",
        "=",
        "é",
        "🚀",
        "\t",
        "\r\n",
        "0x",
        "1e3",
        "&a [*a]",
    ]);
    prop::collection::vec(pieces, 0..40).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(text) = std::str::from_utf8(&bytes) {
            load_and_convert(text);
        }
    }

    #[test]
    fn yaml_shaped_input_never_panics(text in yaml_like()) {
        load_and_convert(&text);
    }
}
