//! A small, deterministic YAML emitter for rendered resources.
//!
//! Output is block style with two-space indentation. A string is written plain
//! only when both YAML 1.1 (PyYAML) and YAML 1.2 (kubectl, Go) read it back as
//! that same string; everything else is double-quoted with escapes. Floats
//! always carry a `.` so that both versions read them back as floats.

use super::{Map, Value, push_int, python_float_repr};
use std::fmt::Write;
use std::io;

/// Emits one YAML document (without the `---` marker), ending with a newline.
#[must_use]
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::with_capacity(512);
    write_document(&mut out, value);
    out
}

fn write_document(out: &mut String, value: &Value) {
    match value {
        Value::Map(map) if !map.is_empty() => write_map(out, map, 0),
        Value::Seq(items) if !items.is_empty() => write_seq(out, items, 0),
        scalar => {
            write_inline(out, scalar);
            out.push('\n');
        }
    }
}

/// Emits a multi-document stream: every document starts with `---`.
#[must_use]
pub fn to_yaml_stream<'a>(values: impl IntoIterator<Item = &'a Value>) -> String {
    let mut out = String::new();
    for value in values {
        out.push_str("---\n");
        write_document(&mut out, value);
    }
    out
}

/// Writes the same stream as [`to_yaml_stream`] to `writer`, one document at
/// a time, so the whole stream never has to be in memory at once.
pub fn write_yaml_stream<'a>(
    values: impl IntoIterator<Item = &'a Value>,
    writer: &mut dyn io::Write,
) -> io::Result<()> {
    let mut document = String::with_capacity(4096);
    for value in values {
        document.clear();
        document.push_str("---\n");
        write_document(&mut document, value);
        writer.write_all(document.as_bytes())?;
    }
    Ok(())
}

fn indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

fn is_block(value: &Value) -> bool {
    match value {
        Value::Map(map) => !map.is_empty(),
        Value::Seq(items) => !items.is_empty(),
        _ => false,
    }
}

fn write_map(out: &mut String, map: &Map, level: usize) {
    for (key, value) in map.iter() {
        indent(out, level);
        write_string(out, key);
        out.push(':');
        // Sequences under a key sit at the key's indentation, as kubectl writes them.
        let child_level = if matches!(value, Value::Seq(_)) {
            level
        } else {
            level + 1
        };
        write_child(out, value, child_level);
    }
}

fn write_seq(out: &mut String, items: &[Value], level: usize) {
    for item in items {
        indent(out, level);
        out.push('-');
        match item {
            Value::Map(map) if !map.is_empty() => {
                // The first entry shares the dash's line; the rest align under it.
                let start = out.len();
                write_map(out, map, level + 1);
                let indented = out[start..].len() - out[start..].trim_start_matches(' ').len();
                out.replace_range(start..start + indented, " ");
            }
            _ => write_child(out, item, level + 1),
        }
    }
}

/// Writes `value` after a `key:` or `-`; a block value goes on the next lines
/// at `level`.
fn write_child(out: &mut String, value: &Value, level: usize) {
    if is_block(value) {
        out.push('\n');
        match value {
            Value::Map(map) => write_map(out, map, level),
            Value::Seq(items) => write_seq(out, items, level),
            _ => {}
        }
    } else {
        out.push(' ');
        write_inline(out, value);
        out.push('\n');
    }
}

fn write_inline(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => push_int(out, *i),
        Value::Float(f) => out.push_str(&yaml_float(*f)),
        Value::Str(s) => write_string(out, s),
        Value::Seq(_) => out.push_str("[]"),
        Value::Map(_) => out.push_str("{}"),
    }
}

fn yaml_float(value: f64) -> String {
    if value.is_nan() {
        return ".nan".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { ".inf" } else { "-.inf" }.to_owned();
    }
    let repr = python_float_repr(value);
    match repr.split_once('e') {
        Some((mantissa, exponent)) if !mantissa.contains('.') => {
            format!("{mantissa}.0e{exponent}")
        }
        _ => repr,
    }
}

fn write_string(out: &mut String, text: &str) {
    if is_safe_plain(text) {
        out.push_str(text);
        return;
    }
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || c == '\u{feff}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Words that YAML 1.1 or 1.2 would read as something other than a string.
const RESERVED_WORDS: &[&str] = &["y", "n", "yes", "no", "on", "off", "true", "false", "null"];

/// True when `text` reads back as the same string as a plain scalar in both
/// YAML 1.1 and 1.2. Deliberately conservative: starts with a letter, `_` or
/// `/`, contains only URL-ish characters (no space, so never `: ` or ` #`),
/// never ends with `:`.
fn is_safe_plain(text: &str) -> bool {
    let bytes = text.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == b'_' || first == b'/')
        && last != b':'
        && bytes.iter().all(|&b| PLAIN_SAFE[usize::from(b)])
        && (bytes.len() > 5
            || !RESERVED_WORDS
                .iter()
                .any(|word| word.eq_ignore_ascii_case(text)))
}

/// The bytes a safe plain scalar may hold: ASCII letters, digits and
/// `_ . / : @ + = -`.
static PLAIN_SAFE: [bool; 256] = {
    let mut safe = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        #[allow(clippy::cast_possible_truncation)]
        let b = byte as u8;
        safe[byte] = b.is_ascii_alphanumeric()
            || matches!(b, b'_' | b'.' | b'/' | b':' | b'@' | b'+' | b'=' | b'-');
        byte += 1;
    }
    safe
};

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: Vec<(&str, Value)>) -> Value {
        Value::Map(Map::from_unsorted(
            entries.into_iter().map(|(k, v)| (k.to_owned(), v)),
        ))
    }

    #[test]
    fn block_layout_for_nested_maps_and_sequences() {
        let value = map(vec![
            ("kind", Value::str("Flink")),
            (
                "spec",
                map(vec![
                    (
                        "jobs",
                        Value::Seq(vec![
                            map(vec![
                                ("name", Value::str("a")),
                                ("parallelism", Value::Int(2)),
                            ]),
                            Value::str("b"),
                        ]),
                    ),
                    ("empty", Value::Map(Map::new())),
                    ("none", Value::Seq(vec![])),
                ]),
            ),
        ]);
        assert_eq!(
            to_yaml(&value),
            "kind: Flink\nspec:\n  empty: {}\n  jobs:\n  - name: a\n    parallelism: 2\n  - b\n  none: []\n"
        );
    }

    #[test]
    fn ambiguous_strings_are_quoted() {
        for text in [
            "True", "yes", "010", "1e3", "1:30", "", " x", "a: b", "-x", "~", "null", "x:", "é",
        ] {
            let mut out = String::new();
            write_string(&mut out, text);
            assert!(out.starts_with('"'), "{text:?} must be quoted, got {out}");
        }
        for text in [
            "stateful",
            "s3://bucket/path/",
            "paasta.yelp.com/service",
            "pnw-prod",
        ] {
            let mut out = String::new();
            write_string(&mut out, text);
            assert_eq!(out, text);
        }
    }

    /// The rule as first written, character by character: the oracle for
    /// the byte-table version.
    fn reference_is_safe_plain(text: &str) -> bool {
        let mut chars = text.chars();
        let Some(first) = chars.next() else {
            return false;
        };
        if !(first.is_ascii_alphabetic() || first == '_' || first == '/') {
            return false;
        }
        if text.ends_with(':') || text.contains(": ") || text.contains(" #") {
            return false;
        }
        text.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | ':' | '@' | '+' | '=' | '-')
        }) && !RESERVED_WORDS
            .iter()
            .any(|word| word.eq_ignore_ascii_case(text))
    }

    #[test]
    fn every_byte_and_every_reserved_word_is_judged_like_the_reference() {
        for byte in 0u8..=0x7f {
            let c = char::from(byte);
            for text in [
                format!("{c}"),
                format!("a{c}"),
                format!("a{c}b"),
                format!("_{c}"),
            ] {
                assert_eq!(
                    is_safe_plain(&text),
                    reference_is_safe_plain(&text),
                    "{text:?}"
                );
            }
        }
        for word in RESERVED_WORDS {
            for text in [
                word.to_string(),
                word.to_uppercase(),
                format!("{word}x"),
                format!("x{word}"),
            ] {
                assert_eq!(
                    is_safe_plain(&text),
                    reference_is_safe_plain(&text),
                    "{text:?}"
                );
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn plain_scalars_are_judged_like_the_reference(
            text in "[a-zA-Z_/0-9 :#.@+=é\\-]{0,12}|\\PC{0,8}"
        ) {
            proptest::prop_assert_eq!(is_safe_plain(&text), reference_is_safe_plain(&text));
        }
    }

    #[test]
    fn floats_keep_a_decimal_point() {
        assert_eq!(yaml_float(1e-7), "1.0e-07");
        assert_eq!(yaml_float(1.5e16), "1.5e+16");
        assert_eq!(yaml_float(2.0), "2.0");
    }

    #[test]
    fn stream_marks_every_document() {
        let docs = [Value::Int(1), Value::str("a")];
        assert_eq!(to_yaml_stream(docs.iter()), "---\n1\n---\na\n");
        let mut written = Vec::new();
        write_yaml_stream(docs.iter(), &mut written).expect("write");
        assert_eq!(written, b"---\n1\n---\na\n");
    }
}
