//! Small helpers: number normalisation, timestamps, uids, query strings.

use serde_json::{Number, Value as Json};
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// Rewrites every integral float (`2.0`) as an integer (`2`), recursively.
///
/// kube-apiserver decodes custom resources into unstructured Go values and
/// encodes them again with `encoding/json`, which writes a float64 without a
/// fraction as a bare integer; see "Custom resources" in
/// https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema
/// (values are stored as JSON) and the JSON encoding rules in
/// https://kubernetes.io/docs/reference/using-api/api-concepts/#alternate-representations-of-resources.
/// Floats beyond the range of `i64`/`u64` stay floats.
pub fn normalize_numbers(value: &mut Json) {
    match value {
        Json::Number(n) => {
            if let Some(int) = integral(n) {
                *n = int;
            }
        }
        Json::Array(items) => items.iter_mut().for_each(normalize_numbers),
        Json::Object(map) => map.values_mut().for_each(normalize_numbers),
        _ => {}
    }
}

fn integral(n: &Number) -> Option<Number> {
    if n.is_i64() {
        return None;
    }
    if let Some(big) = n.as_u64() {
        #[allow(clippy::cast_precision_loss)]
        return Some(as_go_float(big as f64));
    }
    let f = n.as_f64()?;
    if !f.is_finite() || f.fract() != 0.0 {
        return None;
    }
    // 2^63 and 2^64 as exact f64 bounds.
    if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f) {
        #[allow(clippy::cast_possible_truncation)]
        return Some(Number::from(f as i64));
    }
    if (0.0..18_446_744_073_709_551_616.0).contains(&f) {
        return Some(as_go_float(f));
    }
    None
}

/// An integer beyond int64 as kube-apiserver keeps it: a float64 (decoding
/// JSON into `interface{}`), printed as Go's encoding/json prints a float64
/// below 1e21: its shortest round-trip digits, without an exponent
/// (`12345678901234567890` comes back as `12345678901234567000`).
fn as_go_float(value: f64) -> Number {
    // Rust prints an f64 as its shortest round-trip digits without an
    // exponent, as Go does below 1e21.
    let printed = format!("{value}");
    match printed.parse::<u64>() {
        Ok(int) => Number::from(int),
        Err(_) => Number::from_f64(value).unwrap_or_else(|| Number::from(0)),
    }
}

/// The current UTC time as RFC 3339 with second precision, the format of
/// `metadata.creationTimestamp` and `managedFields[].time`
/// (https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/object-meta/).
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil conversion.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A random RFC 4122 version-4 UUID string, the shape of `metadata.uid`.
pub fn new_uid() -> String {
    let a: u128 = rand::random();
    let hex = format!("{a:032x}");
    format!(
        "{}-{}-4{}-8{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

/// Decodes `application/x-www-form-urlencoded` text: `+` is a space and
/// `%XX` a byte. kube encodes spaces in `labelSelector` as `+`, other clients
/// as `%20`; both decode to a space.
pub fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi * 16 + lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Parses a query string into a map; a repeated key keeps its last value.
pub fn parse_query(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (form_decode(k), form_decode(v)),
            None => (form_decode(pair), String::new()),
        })
        .collect()
}

/// Lower-case hex encoding, used for opaque `continue` tokens.
pub fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Inverse of [`hex_encode`].
pub fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}
