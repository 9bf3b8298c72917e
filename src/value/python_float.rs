//! Python's `float.__repr__`, which `json.dumps` uses for every float.
//!
//! Both Python and Rust print the shortest digit string that reads back to the
//! same double; they differ only in layout. Python switches to exponent
//! notation when the decimal exponent is below -4 or at least 16, writes the
//! exponent with a sign and at least two digits (`1e-07`, `1e+16`), and always
//! shows a fractional part in positional notation (`1.0`).

/// Formats `value` exactly as Python's `repr(float)` (and so `json.dumps`).
#[must_use]
pub fn python_float_repr(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    let (negative, digits, exponent) = shortest_digits(value);
    let sign = if negative { "-" } else { "" };
    if !(-4..16).contains(&exponent) {
        let (first, rest) = digits.split_at(1);
        let mantissa = if rest.is_empty() {
            first.to_owned()
        } else {
            format!("{first}.{rest}")
        };
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        return format!("{sign}{mantissa}e{exponent_sign}{:02}", exponent.abs());
    }
    if exponent < 0 {
        let zeros = "0".repeat(usize::try_from(-exponent - 1).unwrap_or(0));
        return format!("{sign}0.{zeros}{digits}");
    }
    let integer_len = usize::try_from(exponent + 1).unwrap_or(1);
    if digits.len() <= integer_len {
        let zeros = "0".repeat(integer_len - digits.len());
        format!("{sign}{digits}{zeros}.0")
    } else {
        let (integer, fraction) = digits.split_at(integer_len);
        format!("{sign}{integer}.{fraction}")
    }
}

/// Splits a finite float into sign, shortest round-trip digits (no leading or
/// trailing zeros, at least one digit) and the decimal exponent of the first
/// digit.
fn shortest_digits(value: f64) -> (bool, String, i32) {
    // Rust's `{:e}` is the shortest round-trip representation, e.g. `-1.25e-7`.
    let formatted = format!("{value:e}");
    let negative = formatted.starts_with('-');
    let unsigned = formatted.trim_start_matches('-');
    let (mantissa, exponent) = unsigned.split_once('e').unwrap_or((unsigned, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    (negative, digits, exponent)
}

#[cfg(test)]
mod tests {
    use super::python_float_repr;

    #[test]
    fn matches_python_repr() {
        let cases: &[(f64, &str)] = &[
            (0.1, "0.1"),
            (1.0, "1.0"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (1e-7, "1e-07"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123_456_789_012_345_680.0, "1.2345678901234568e+17"),
            (12_345_678_901_234_567.0, "1.2345678901234568e+16"),
            (2.5, "2.5"),
            (1000.0, "1000.0"),
            (685_230.15, "685230.15"),
            (1e300, "1e+300"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (-123.456, "-123.456"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (f64::NAN, "NaN"),
            (0.30000000000000004, "0.30000000000000004"),
            (100.0, "100.0"),
            (9_999_999_999_999_998.0, "9999999999999998.0"),
        ];
        for (value, expected) in cases {
            assert_eq!(python_float_repr(*value), *expected, "repr of {value:e}");
        }
    }
}
