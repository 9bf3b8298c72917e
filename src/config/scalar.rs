//! YAML 1.1 scalar typing exactly as PyYAML's `SafeLoader` (PaaSTA's loader)
//! does it.
//!
//! The regular expressions are PyYAML's implicit resolvers; the constructors
//! follow `SafeConstructor.construct_yaml_{bool,int,float}`. Examples that
//! differ from YAML 1.2: `yes`/`on` are booleans, `010` is octal 8, `1e3` is a
//! string (an exponent needs a dot and a sign), `1:30` is 90, `2024-01-01` is
//! a date.

use crate::value::Text;
use regex::Regex;
use std::sync::LazyLock;

/// What a plain scalar resolves to.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(Text),
    /// A YAML 1.1 timestamp: PyYAML builds a `date`/`datetime`, which
    /// `json.dumps` (and so PaaSTA's hash) cannot serialise.
    Timestamp(String),
    /// The `<<` merge key.
    Merge,
    /// YAML 1.1's `=` value key: a string as a mapping key, an error elsewhere.
    ValueKey,
}

/// Why a scalar could not be constructed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScalarError {
    #[error("`{0}` looks like an integer but has no digits (PyYAML fails on it too)")]
    IntWithoutDigits(String),
    #[error("the integer `{0}` is too large (more than 128 bits)")]
    IntTooLarge(String),
    #[error("`{text}` is not a valid {tag}")]
    BadTaggedValue { text: String, tag: &'static str },
}

/// A NaN that Python creates fresh (`float("nan")`), unlike the one shared
/// `.nan` object of PyYAML: as dict keys, fresh NaNs never collide. The
/// payload bit is the only difference from [`f64::NAN`].
pub const FRESH_NAN_BITS: u64 = 0x7ff8_0000_0000_0001;

/// PyYAML's bool resolver, `^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$`.
fn is_bool(text: &str) -> bool {
    matches!(
        text,
        "yes"
            | "Yes"
            | "YES"
            | "no"
            | "No"
            | "NO"
            | "true"
            | "True"
            | "TRUE"
            | "false"
            | "False"
            | "FALSE"
            | "on"
            | "On"
            | "ON"
            | "off"
            | "Off"
            | "OFF"
    )
}

static FLOAT: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?",
        r"|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?",
        r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*",
        r"|[-+]?\.(?:inf|Inf|INF)",
        r"|\.(?:nan|NaN|NAN))$",
    ))
});
static INT: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"^(?:[-+]?0b[0-1_]+",
        r"|[-+]?0[0-7_]+",
        r"|[-+]?(?:0|[1-9][0-9_]*)",
        r"|[-+]?0x[0-9a-fA-F_]+",
        r"|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
    ))
});
/// PyYAML's null resolver, `^(?:~|null|Null|NULL|)$`.
fn is_null(text: &str) -> bool {
    matches!(text, "~" | "null" | "Null" | "NULL" | "")
}
static TIMESTAMP: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]",
        r"|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?",
        r"(?:[Tt]|[ \t]+)[0-9][0-9]?",
        r":[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?",
        r"(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$",
    ))
});

fn regex(pattern: &str) -> Regex {
    // The patterns are constants checked by the tests below.
    Regex::new(pattern).unwrap_or_else(|e| panic!("invalid built-in pattern {pattern}: {e}"))
}

/// Resolves an untagged plain scalar the way PyYAML's resolver does: the
/// candidate resolvers are chosen by the first character, in PyYAML's order
/// (bool, float, int, merge, null, timestamp, value).
pub fn resolve_plain(text: &str) -> Result<Scalar, ScalarError> {
    Ok(resolve_typed(text)?.unwrap_or_else(|| Scalar::Str(Text::new(text))))
}

/// What [`resolve_plain`] resolves `text` to, `None` for a string.
fn resolve_typed(text: &str) -> Result<Option<Scalar>, ScalarError> {
    let first = text.chars().next();
    match first {
        None => return Ok(Some(Scalar::Null)),
        Some('y' | 'Y' | 'n' | 'N' | 't' | 'T' | 'f' | 'F' | 'o' | 'O') if is_bool(text) => {
            return Ok(Some(Scalar::Bool(construct_bool(text))));
        }
        // Most plain scalars are words (keys, names): no other resolver can
        // match a scalar that starts with a letter other than those above.
        Some('a'..='z' | 'A'..='Z' | '_') => {
            return Ok(match first {
                Some('n' | 'N') if is_null(text) => Some(Scalar::Null),
                _ => None,
            });
        }
        _ => {}
    }
    // A decimal integer without sign, underscores or leading zero
    // (`4096`): INT's `[1-9][0-9_]*` matches, FLOAT needs a `.`, so it is
    // an int; short ones are parsed here without the regexes.
    if let Some(value) = small_decimal(text) {
        return Ok(Some(Scalar::Int(value)));
    }
    let numeric_start = matches!(first, Some('-' | '+' | '0'..='9' | '.'));
    if numeric_start && FLOAT.is_match(text) {
        return Ok(Some(Scalar::Float(construct_float(text))));
    }
    if numeric_start && first != Some('.') && INT.is_match(text) {
        return construct_int(text).map(|i| Some(Scalar::Int(i)));
    }
    Ok(match first {
        Some('<') if text == "<<" => Some(Scalar::Merge),
        Some('~' | 'n' | 'N') if is_null(text) => Some(Scalar::Null),
        Some('0'..='9') if TIMESTAMP.is_match(text) => Some(Scalar::Timestamp(text.to_owned())),
        Some('=') if text == "=" => Some(Scalar::ValueKey),
        _ => None,
    })
}

/// `text` as an integer when it is 1 to 18 ASCII digits, the first not `0`
/// unless it is the only one.
fn small_decimal(text: &str) -> Option<i128> {
    let bytes = text.as_bytes();
    if bytes.is_empty()
        || bytes.len() > 18
        || (bytes[0] == b'0' && bytes.len() > 1)
        || !bytes.iter().all(u8::is_ascii_digit)
    {
        return None;
    }
    Some(
        bytes
            .iter()
            .fold(0i128, |value, digit| value * 10 + i128::from(digit - b'0')),
    )
}

/// Constructs a scalar carrying an explicit core tag (`!!int "0x10"`), as
/// leniently as PyYAML, which hands the text to Python's `int()`/`float()`.
pub fn construct_tagged(tag: &str, text: &str) -> Result<Scalar, ScalarError> {
    let bad = |tag: &'static str| ScalarError::BadTaggedValue {
        text: text.to_owned(),
        tag,
    };
    match tag {
        "str" => Ok(Scalar::Str(Text::new(text))),
        "null" => Ok(Scalar::Null),
        "merge" => Ok(Scalar::Merge),
        "bool" => match text.to_lowercase().as_str() {
            "yes" | "true" | "on" => Ok(Scalar::Bool(true)),
            "no" | "false" | "off" => Ok(Scalar::Bool(false)),
            _ => Err(bad("bool")),
        },
        "int" => construct_int(text).map(Scalar::Int).map_err(|e| match e {
            ScalarError::IntTooLarge(_) => e,
            _ => bad("int"),
        }),
        "float" => {
            let cleaned = text.replace('_', "").to_lowercase();
            let unsigned = cleaned.trim_start_matches(['-', '+']);
            if unsigned == ".inf" || unsigned == ".nan" || unsigned.contains(':') {
                return Ok(Scalar::Float(construct_float(text)));
            }
            match cleaned.trim().parse::<f64>() {
                Ok(f) if f.is_nan() => Ok(Scalar::Float(f64::from_bits(FRESH_NAN_BITS))),
                Ok(f) => Ok(Scalar::Float(f)),
                Err(_) => Err(bad("float")),
            }
        }
        "timestamp" => Ok(Scalar::Timestamp(text.to_owned())),
        _ => Err(bad("supported core type")),
    }
}

fn construct_bool(text: &str) -> bool {
    matches!(text.to_ascii_lowercase().as_str(), "yes" | "true" | "on")
}

/// PyYAML's `construct_yaml_int`: the branch is chosen on the raw text, the
/// digits are parsed by Python's `int(text, base)`.
fn construct_int(text: &str) -> Result<i128, ScalarError> {
    let cleaned = text.replace('_', "");
    let negative = cleaned.starts_with('-');
    let digits = cleaned.strip_prefix(['-', '+']).unwrap_or(&cleaned);
    let magnitude = if digits == "0" {
        0
    } else if let Some(binary) = digits.strip_prefix("0b") {
        python_int(text, binary, 2)?
    } else if let Some(hex) = digits.strip_prefix("0x") {
        python_int(text, hex, 16)?
    } else if digits.starts_with('0') {
        python_int(text, digits, 8)?
    } else if digits.contains(':') {
        let mut value: i128 = 0;
        for part in digits.split(':') {
            let part = python_int(text, part, 10)?;
            value = value
                .checked_mul(60)
                .and_then(|v| v.checked_add(part))
                .ok_or_else(|| ScalarError::IntTooLarge(text.to_owned()))?;
        }
        value
    } else {
        python_int(text, digits, 10)?
    };
    Ok(if negative { -magnitude } else { magnitude })
}

/// Python's `int(digits, radix)`: surrounding whitespace, a sign and the
/// radix's own prefix (`0o17` in base 8) are accepted.
fn python_int(original: &str, digits: &str, radix: u32) -> Result<i128, ScalarError> {
    let trimmed = digits.trim();
    let (negative, unsigned) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    let prefix = match radix {
        2 => Some("0b"),
        8 => Some("0o"),
        16 => Some("0x"),
        _ => None,
    };
    let body = prefix
        .and_then(|p| {
            unsigned
                .get(..2)
                .filter(|head| head.eq_ignore_ascii_case(p))
                .map(|_| &unsigned[2..])
        })
        .unwrap_or(unsigned);
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return Err(ScalarError::IntWithoutDigits(original.to_owned()));
    }
    let value = i128::from_str_radix(body, radix)
        .map_err(|_| ScalarError::IntTooLarge(original.to_owned()))?;
    Ok(if negative { -value } else { value })
}

fn construct_float(text: &str) -> f64 {
    let cleaned = text.replace('_', "").to_lowercase();
    let (sign, unsigned) = match cleaned.as_bytes().first() {
        Some(b'-') => (-1.0, &cleaned[1..]),
        Some(b'+') => (1.0, &cleaned[1..]),
        _ => (1.0, cleaned.as_str()),
    };
    if unsigned == ".inf" {
        return sign * f64::INFINITY;
    }
    if unsigned == ".nan" {
        return f64::NAN;
    }
    if unsigned.contains(':') {
        // Same summation order as PyYAML, so the rounding matches too.
        let mut value = 0.0;
        let mut base = 1.0;
        for part in unsigned.split(':').rev() {
            value += part.parse::<f64>().unwrap_or(0.0) * base;
            base *= 60.0;
        }
        return sign * value;
    }
    // The regex guarantees digits around the dot and a valid exponent.
    sign * unsigned.parse::<f64>().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(text: &str) -> Scalar {
        resolve_plain(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn booleans_are_yaml_1_1() {
        for text in [
            "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE",
        ] {
            assert_eq!(plain(text), Scalar::Bool(true), "{text}");
        }
        for text in ["no", "NO", "off", "OFF", "false", "False"] {
            assert_eq!(plain(text), Scalar::Bool(false), "{text}");
        }
        for text in ["y", "n", "yEs", "ofF"] {
            assert_eq!(plain(text), Scalar::Str(text.into()), "{text}");
        }
    }

    #[test]
    fn integers_cover_octal_hex_binary_sexagesimal_and_underscores() {
        let cases: &[(&str, i128)] = &[
            ("0", 0),
            ("-0", 0),
            ("010", 8),
            ("0777", 511),
            ("00", 0),
            ("0x1F", 31),
            ("-0x1F", -31),
            ("0b101", 5),
            ("1_000", 1000),
            ("1_", 1),
            ("+12", 12),
            ("1:30", 90),
            ("-1:30", -90),
            ("190:20:30", 685_230),
        ];
        for (text, expected) in cases {
            assert_eq!(plain(text), Scalar::Int(*expected), "{text}");
        }
    }

    #[test]
    fn strings_that_yaml_1_2_would_type() {
        for text in [
            "09", "0o17", "1e3", "1e+3", "1.e3", "-.5", "+.5", "0b", "1e400", "0x",
        ] {
            assert_eq!(plain(text), Scalar::Str(text.into()), "{text}");
        }
    }

    #[test]
    fn floats_need_a_dot() {
        let cases: &[(&str, f64)] = &[
            ("1.0e+3", 1000.0),
            ("1.e+3", 1000.0),
            ("1.5E+3", 1500.0),
            ("2.50", 2.5),
            ("3.", 3.0),
            (".5", 0.5),
            ("-0.0", -0.0),
            ("0.0000001", 1e-7),
            ("190:20:30.15", 685_230.15),
            ("1_000.5", 1000.5),
        ];
        for (text, expected) in cases {
            match plain(text) {
                Scalar::Float(f) => {
                    assert_eq!(f.to_bits(), expected.to_bits(), "{text}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        assert_eq!(plain(".inf"), Scalar::Float(f64::INFINITY));
        assert_eq!(plain("-.Inf"), Scalar::Float(f64::NEG_INFINITY));
        assert!(matches!(plain(".NaN"), Scalar::Float(f) if f.is_nan()));
    }

    #[test]
    fn nulls_timestamps_merge_and_value() {
        for text in ["", "~", "null", "Null", "NULL"] {
            assert_eq!(plain(text), Scalar::Null, "{text:?}");
        }
        assert_eq!(plain("nULL"), Scalar::Str("nULL".into()));
        for text in [
            "2024-01-01",
            "2001-12-14t21:59:43.10-05:00",
            "2001-12-14 21:59:43.10",
            "2001-1-1T1:00:00Z",
        ] {
            assert_eq!(plain(text), Scalar::Timestamp(text.to_owned()), "{text}");
        }
        assert_eq!(plain("<<"), Scalar::Merge);
        assert_eq!(resolve_plain("="), Ok(Scalar::ValueKey));
    }

    #[test]
    fn ints_without_digits_fail_like_pyyaml() {
        assert!(matches!(
            resolve_plain("0x_"),
            Err(ScalarError::IntWithoutDigits(_))
        ));
        assert!(matches!(
            resolve_plain("0b_"),
            Err(ScalarError::IntWithoutDigits(_))
        ));
        assert!(matches!(
            resolve_plain("123456789012345678901234567890123456789012"),
            Err(ScalarError::IntTooLarge(_))
        ));
    }

    #[test]
    fn explicit_tags() {
        assert_eq!(construct_tagged("int", "0x10"), Ok(Scalar::Int(16)));
        assert_eq!(construct_tagged("float", "1"), Ok(Scalar::Float(1.0)));
        assert_eq!(construct_tagged("bool", "yes"), Ok(Scalar::Bool(true)));
        assert_eq!(
            construct_tagged("str", "010"),
            Ok(Scalar::Str("010".into()))
        );
        assert_eq!(construct_tagged("null", ""), Ok(Scalar::Null));
        assert!(construct_tagged("int", "abc").is_err());
        assert_eq!(construct_tagged("int", "0o17"), Ok(Scalar::Int(15)));
        assert_eq!(construct_tagged("int", " 12 "), Ok(Scalar::Int(12)));
        assert_eq!(construct_tagged("float", " 1.5"), Ok(Scalar::Float(1.5)));
        assert_eq!(construct_tagged("bool", "TrUe"), Ok(Scalar::Bool(true)));
        assert_eq!(construct_tagged("merge", "<<"), Ok(Scalar::Merge));
        assert!(construct_tagged("binary", "AAAA").is_err());
    }
}
