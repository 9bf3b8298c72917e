//! The plain data that flows from `config` to `render` and out of the program.
//!
//! A [`Value`] is what Python's `json.dumps` sees after PyYAML has loaded a
//! soa-configs file: integers and floats stay distinct (`1` and `1.0` hash
//! differently in PaaSTA), mapping keys are already strings, and every mapping
//! keeps its entries in the order `json.dumps(sort_keys=True)` writes them.

mod python_float;
pub mod python_json;
pub mod yaml_out;

pub use python_float::python_float_repr;

/// The text of a string value or a mapping key. Short texts (nearly every
/// key and most values: up to 24 bytes) are stored inline rather than in an
/// allocation of their own; a rendered cluster holds hundreds of thousands.
pub type Text = compact_str::CompactString;

/// Appends the decimal digits of `value` (what `{}` formatting writes),
/// without going through the formatting machinery.
pub(crate) fn push_int(out: &mut String, value: i128) {
    let mut buf = [0u8; 40];
    let mut pos = buf.len();
    let mut n = value.unsigned_abs();
    // u64 division is much cheaper than u128; nearly every integer fits.
    if let Ok(mut small) = u64::try_from(n) {
        loop {
            pos -= 1;
            buf[pos] = b'0' + (small % 10) as u8;
            small /= 10;
            if small == 0 {
                break;
            }
        }
    } else {
        loop {
            pos -= 1;
            buf[pos] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
    }
    if value < 0 {
        pos -= 1;
        buf[pos] = b'-';
    }
    out.extend(buf[pos..].iter().map(|&b| char::from(b)));
}

/// One JSON-compatible value, in PaaSTA's (Python's) type model.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// Python integers are unbounded; soa-configs never need more than 128 bits.
    Int(i128),
    Float(f64),
    Str(Text),
    Seq(Vec<Value>),
    Map(Map),
}

/// A mapping whose entries are kept in Python `sort_keys` order.
///
/// The order is decided when the map is built (see [`Map::from_sorted`] and
/// [`Map::from_unsorted`]) because Python sorts the *original* keys: integer
/// keys sort numerically even though they are written as strings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Map {
    entries: Vec<(Text, Value)>,
}

impl Map {
    /// An empty map.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map with room for `capacity` entries: maps that live long
    /// (rendered resources) should not carry room they never use.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Vec::with_capacity(capacity),
        }
    }

    /// Builds a map from entries the caller has already put in the wanted order.
    #[must_use]
    pub fn from_sorted(entries: Vec<(Text, Value)>) -> Self {
        Self { entries }
    }

    /// Builds a map from string-keyed entries, sorting them by key (code point
    /// order, which is Python's order for `str`). Later duplicates win.
    #[must_use]
    pub fn from_unsorted<K: Into<Text>>(entries: impl IntoIterator<Item = (K, Value)>) -> Self {
        let mut map = Self::new();
        for (key, value) in entries {
            map.insert(key, value);
        }
        map
    }

    /// Inserts or replaces `key`, keeping string-sorted order.
    pub fn insert(&mut self, key: impl Into<Text>, value: Value) {
        let key = key.into();
        match self.entries.binary_search_by(|(k, _)| k.as_str().cmp(&key)) {
            Ok(index) => self.entries[index].1 = value,
            Err(index) => self.entries.insert(index, (key, value)),
        }
    }

    /// The value under `key`, if any.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.position(key).map(|index| &self.entries[index].1)
    }

    /// Mutable access to the value under `key`, if any.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.position(key).map(|index| &mut self.entries[index].1)
    }

    /// String-keyed maps are in code point order, so a binary search finds
    /// their keys; maps in Python's numeric key order (`9` before `10`) fall
    /// back to a scan when the search misses.
    fn position(&self, key: &str) -> Option<usize> {
        match self.entries.binary_search_by(|(k, _)| k.as_str().cmp(key)) {
            Ok(index) => Some(index),
            Err(_) => self.entries.iter().position(|(k, _)| k == key),
        }
    }

    /// Removes `key` and returns its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let index = self.position(key)?;
        Some(self.entries.remove(index).1)
    }

    /// Entries in their stored (sorted) order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Value {
    /// A string value.
    #[must_use]
    pub fn str(text: impl Into<Text>) -> Self {
        Value::Str(text.into())
    }

    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    #[must_use]
    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_map_mut(&mut self) -> Option<&mut Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// Follows a path of map keys.
    #[must_use]
    pub fn pointer(&self, path: &[&str]) -> Option<&Value> {
        path.iter()
            .try_fold(self, |value, key| value.as_map()?.get(key))
    }

    /// Converts to `serde_json::Value` for the Kubernetes API and other JSON
    /// consumers. Fails on values JSON cannot carry (non-finite floats,
    /// integers beyond 64 bits).
    pub fn to_json(&self) -> Result<serde_json::Value, NotJson> {
        Ok(match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => {
                if let Ok(small) = i64::try_from(*i) {
                    serde_json::Value::from(small)
                } else if let Ok(unsigned) = u64::try_from(*i) {
                    serde_json::Value::from(unsigned)
                } else {
                    return Err(NotJson::IntegerTooLarge(*i));
                }
            }
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .ok_or(NotJson::NonFiniteFloat(*f))?,
            Value::Str(s) => serde_json::Value::String(s.to_string()),
            Value::Seq(items) => serde_json::Value::Array(
                items.iter().map(Value::to_json).collect::<Result<_, _>>()?,
            ),
            Value::Map(map) => {
                let mut object = serde_json::Map::new();
                for (key, value) in map.iter() {
                    object.insert(key.to_owned(), value.to_json()?);
                }
                serde_json::Value::Object(object)
            }
        })
    }

    /// Converts a parsed JSON document (deployments.json, a live object) into a
    /// [`Value`], sorting object keys the way Python would.
    #[must_use]
    pub fn from_json(json: &serde_json::Value) -> Self {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::Int(i128::from(i))
                } else if let Some(u) = n.as_u64() {
                    Value::Int(i128::from(u))
                } else {
                    Value::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            serde_json::Value::String(s) => Value::Str(Text::from(s.as_str())),
            serde_json::Value::Array(items) => {
                Value::Seq(items.iter().map(Value::from_json).collect())
            }
            serde_json::Value::Object(object) => Value::Map(Map::from_unsorted(
                object
                    .iter()
                    .map(|(k, v)| (Text::from(k.as_str()), Value::from_json(v))),
            )),
        }
    }
}

/// A value that JSON (and so the Kubernetes API) cannot represent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NotJson {
    #[error("the float {0} is not finite; JSON and the Kubernetes API cannot store it")]
    NonFiniteFloat(f64),
    #[error("the integer {0} does not fit in 64 bits; the Kubernetes API cannot store it")]
    IntegerTooLarge(i128),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_int_writes_what_display_writes() {
        for value in [
            0,
            7,
            -7,
            10,
            i128::from(i64::MIN),
            i128::from(u64::MAX),
            i128::from(u64::MAX) + 1,
            i128::MIN,
            i128::MAX,
        ] {
            let mut out = String::from("x");
            push_int(&mut out, value);
            assert_eq!(out, format!("x{value}"));
        }
    }

    #[test]
    fn map_insert_keeps_code_point_order_and_replaces_duplicates() {
        let mut map = Map::new();
        map.insert("b", Value::Int(1));
        map.insert("a", Value::Int(2));
        map.insert("é", Value::Int(3));
        map.insert("b", Value::Int(4));
        let keys: Vec<&str> = map.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b", "é"]);
        assert_eq!(map.get("b"), Some(&Value::Int(4)));
    }

    #[test]
    fn lookup_works_in_python_numeric_key_order_too() {
        let map = Map::from_sorted(vec![
            ("9".into(), Value::Int(1)),
            ("10".into(), Value::Int(2)),
            ("100".into(), Value::Int(3)),
        ]);
        assert_eq!(map.get("9"), Some(&Value::Int(1)));
        assert_eq!(map.get("10"), Some(&Value::Int(2)));
        assert_eq!(map.get("100"), Some(&Value::Int(3)));
        assert_eq!(map.get("11"), None);
    }

    #[test]
    fn json_conversion_rejects_what_the_api_cannot_store() {
        assert_eq!(
            Value::Float(f64::INFINITY).to_json(),
            Err(NotJson::NonFiniteFloat(f64::INFINITY))
        );
        assert!(Value::Int(i128::from(u64::MAX) + 1).to_json().is_err());
        assert_eq!(Value::Int(-5).to_json(), Ok(serde_json::json!(-5)));
    }

    #[test]
    fn json_round_trip_keeps_int_and_float_apart() {
        let json = serde_json::json!({"b": 1, "a": 1.0, "c": [true, null, "x"]});
        let value = Value::from_json(&json);
        assert_eq!(value.pointer(&["b"]), Some(&Value::Int(1)));
        assert_eq!(value.pointer(&["a"]), Some(&Value::Float(1.0)));
        assert_eq!(value.to_json(), Ok(json));
    }
}
