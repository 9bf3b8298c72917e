//! Byte-exact emulation of Python's `json.dumps(value, sort_keys=True)`.
//!
//! PaaSTA's `config_sha` is the MD5 of these bytes, so every detail matters:
//! `", "` and `": "` separators, `ensure_ascii` escapes (`\u00e9`, surrogate
//! pairs for astral characters), Python float `repr`, `NaN`/`Infinity`, and
//! integers written as integers. Map entries are already in `sort_keys` order
//! (see [`super::Map`]).

use super::{Value, push_int, python_float_repr};
use std::fmt::Write;

/// Serialises `value` as Python's `json.dumps(value, sort_keys=True)` would.
#[must_use]
pub fn dumps(value: &Value) -> String {
    let mut out = String::with_capacity(256);
    write_value(&mut out, value);
    out
}

/// Appends `json.dumps(value, sort_keys=True)` to `out`.
pub fn dumps_into(out: &mut String, value: &Value) {
    write_value(out, value);
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Int(i) => push_int(out, *i),
        Value::Float(f) => out.push_str(&python_float_repr(*f)),
        Value::Str(s) => write_string(out, s),
        Value::Seq(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Map(map) => {
            out.push('{');
            for (index, (key, item)) in map.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                write_string(out, key);
                out.push_str(": ");
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

/// Writes a JSON string with Python's `ensure_ascii=True` escaping: only
/// printable ASCII (space to `~`) is written as is.
pub fn write_string(out: &mut String, text: &str) {
    out.reserve(text.len() + 2);
    out.push('"');
    // Runs of characters written as they are are copied in one go; the scan
    // is over bytes, as everything written as is is ASCII.
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut index = 0;
    while index < bytes.len() {
        // Eight bytes at a time while none of them needs escaping; the
        // last few bytes too (most strings are short), in a word that ends
        // with the string or is padded with spaces.
        if !needs_escape(word_from(bytes, index)) {
            index += 8;
            continue;
        }
        let byte = bytes[index];
        if matches!(byte, b' '..=b'~') && byte != b'"' && byte != b'\\' {
            index += 1;
            continue;
        }
        out.push_str(&text[start..index]);
        // `index` is at a character boundary: every byte before it in this
        // loop was ASCII or a whole character.
        let c = text[index..].chars().next().unwrap_or_default();
        index += c.len_utf8();
        start = index;
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push_str(&text[start..]);
    out.push('"');
}

/// The eight bytes from `index`; near the end, the string's last eight bytes
/// (the ones before `index` were checked already) or, in a string shorter
/// than that, its bytes followed by spaces.
fn word_from(bytes: &[u8], index: usize) -> u64 {
    let mut word = [b' '; 8];
    match bytes.get(index..index + 8) {
        Some(eight) => word.copy_from_slice(eight),
        None if bytes.len() >= 8 => word.copy_from_slice(&bytes[bytes.len() - 8..]),
        None => word[..bytes.len() - index].copy_from_slice(&bytes[index..]),
    }
    u64::from_le_bytes(word)
}

/// Whether any of the eight bytes of `word` is not written as is: below
/// space, above `~` (DEL and every non-ASCII byte), `"` or `\\` (the
/// "has a byte less than n" and "has a zero byte" bit tricks, exact as
/// yes/no answers).
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    // A byte of 0x7f becomes 0x80; a byte from 0x80 up has its high bit
    // (only 0xff carries, and it is flagged by its own high bit).
    let above_tilde = (word.wrapping_add(ONES) | word) & HIGH;
    let quote = has_zero(word ^ (ONES * u64::from(b'"')));
    let backslash = has_zero(word ^ (ONES * u64::from(b'\\')));
    below_space | above_tilde | quote | backslash != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Map;
    use proptest::prelude::*;

    fn map(entries: Vec<(&str, Value)>) -> Value {
        Value::Map(Map::from_unsorted(
            entries.into_iter().map(|(k, v)| (k.to_owned(), v)),
        ))
    }

    #[test]
    fn separators_sorting_and_scalars_match_python() {
        let value = map(vec![
            ("b", Value::Int(1)),
            ("a", Value::Seq(vec![Value::Int(1), Value::Int(2)])),
            ("c", Value::Float(1.0)),
            ("d", Value::Null),
            ("e", Value::Bool(true)),
        ]);
        assert_eq!(
            dumps(&value),
            r#"{"a": [1, 2], "b": 1, "c": 1.0, "d": null, "e": true}"#
        );
    }

    #[test]
    fn ensure_ascii_escapes_like_python() {
        let value = map(vec![("é", Value::str("ü🚀\"\\\n\t\u{7f}\u{1}"))]);
        assert_eq!(
            dumps(&value),
            r#"{"\u00e9": "\u00fc\ud83d\ude80\"\\\n\t\u007f\u0001"}"#
        );
    }

    #[test]
    fn non_finite_floats_use_python_spellings() {
        let value = Value::Seq(vec![
            Value::Float(f64::INFINITY),
            Value::Float(f64::NEG_INFINITY),
            Value::Float(f64::NAN),
            Value::Float(1e-7),
        ]);
        assert_eq!(dumps(&value), "[Infinity, -Infinity, NaN, 1e-07]");
    }

    fn arbitrary_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|i| Value::Int(i128::from(i))),
            any::<f64>()
                .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
                .prop_map(Value::Float),
            any::<String>().prop_map(Value::str),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Seq),
                prop::collection::vec((any::<String>(), inner), 0..6)
                    .prop_map(|entries| Value::Map(Map::from_unsorted(entries))),
            ]
        })
    }

    /// The byte-at-a-time escaping, as a reference for the word-at-a-time scan.
    fn reference(text: &str) -> String {
        let mut out = String::from('"');
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                ' '..='~' => out.push(c),
                _ => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        let _ = write!(out, "\\u{unit:04x}");
                    }
                }
            }
        }
        out.push('"');
        out
    }

    #[test]
    fn every_byte_at_every_offset_is_escaped_like_the_reference() {
        let specials = [
            '\0', '\u{1f}', ' ', '!', '"', '\\', '~', '\u{7f}', '\u{80}', 'é', '\u{ffff}', '🚀',
            '\n',
        ];
        // Every offset in strings of every length up to 18, so that the
        // special character is met in whole words and in the last bytes.
        for special in specials {
            for before in 0..17 {
                for after in 0..=(17 - before) {
                    let text: String = std::iter::repeat_n('a', before)
                        .chain([special])
                        .chain(std::iter::repeat_n('z', after))
                        .collect();
                    let mut out = String::new();
                    write_string(&mut out, &text);
                    assert_eq!(out, reference(&text), "{text:?}");
                }
            }
        }
        for byte in 0u8..=0x7f {
            let text = format!("abcdefgh{}ijklmnop", char::from(byte));
            let mut out = String::new();
            write_string(&mut out, &text);
            assert_eq!(out, reference(&text), "byte {byte:#x}");
        }
    }

    proptest! {
        #[test]
        fn strings_are_escaped_like_the_reference(text in any::<String>()) {
            let mut out = String::new();
            write_string(&mut out, &text);
            prop_assert_eq!(out, reference(&text));
        }


        /// Whatever we emit is JSON a standard parser reads back to the same value.
        #[test]
        fn output_round_trips_through_a_json_parser(value in arbitrary_value()) {
            let text = dumps(&value);
            let parsed: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
            let back = Value::from_json(&parsed);
            prop_assert!(same(&back, &value), "{text}");
        }
    }

    /// Equality where a float compares by value, since JSON readers may hand an
    /// integral float back as `1.0` (kept as a float by serde_json).
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Float(x), Value::Float(y)) => x == y,
            (Value::Seq(x), Value::Seq(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
            }
            (Value::Map(x), Value::Map(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .zip(y.iter())
                        .all(|((ka, va), (kb, vb))| ka == kb && same(va, vb))
            }
            _ => a == b,
        }
    }
}
