//! Turns a loaded YAML node into the [`Value`] that PaaSTA hashes and sends.
//!
//! This is where Python's `json.dumps(sort_keys=True)` would fail, so it is
//! where we fail too, but with a position and a field path: timestamps,
//! mapping keys of types that cannot be sorted together, keys JSON cannot
//! carry. Non-finite floats and integers beyond 64 bits hash fine in Python
//! but cannot be stored by the Kubernetes API, so they fail here as well.
//!
//! The field path of an error is only spelled out when there is an error:
//! converting a valid tree allocates nothing beyond the values themselves.

use super::yaml::{Mark, Node, NodeValue};
use crate::value::{Map, Text, Value, python_float_repr};
use std::cmp::Ordering;

/// A value that cannot become part of a resource.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConvertError {
    pub mark: Mark,
    /// Dotted path of the field, e.g. `main.flink_conf.start`.
    pub field: String,
    pub message: String,
}

/// Converts `node`, whose field path is `field`, into a [`Value`].
pub fn to_value(node: &Node, field: &str) -> Result<Value, ConvertError> {
    convert_ref(node, &FieldPath::Root(field))
}

/// Like [`to_value`], but consumes the node and moves its strings into the
/// value instead of copying them.
pub fn into_value(node: Node, field: &str) -> Result<Value, ConvertError> {
    convert_owned(node, &FieldPath::Root(field))
}

/// Where a node sits, spelled out only when an error needs it.
enum FieldPath<'p> {
    Root(&'p str),
    Key(&'p FieldPath<'p>, &'p str),
    Index(&'p FieldPath<'p>, usize),
}

impl FieldPath<'_> {
    /// `main.flink_conf.start`, `jobs[1].when`.
    fn render(&self) -> String {
        match self {
            FieldPath::Root(field) => (*field).to_owned(),
            FieldPath::Key(parent, text) => {
                let parent = parent.render();
                if parent.is_empty() {
                    (*text).to_owned()
                } else {
                    format!("{parent}.{text}")
                }
            }
            FieldPath::Index(parent, index) => format!("{}[{index}]", parent.render()),
        }
    }

    fn error(&self, mark: Mark, message: String) -> ConvertError {
        ConvertError {
            mark,
            field: self.render(),
            message,
        }
    }
}

fn convert_ref(node: &Node, path: &FieldPath<'_>) -> Result<Value, ConvertError> {
    convert_ref_value(&node.value, node.mark, path)
}

fn convert_ref_value(
    value: &NodeValue,
    mark: Mark,
    path: &FieldPath<'_>,
) -> Result<Value, ConvertError> {
    Ok(match value {
        NodeValue::Null => Value::Null,
        NodeValue::Bool(b) => Value::Bool(*b),
        NodeValue::Int(i) => {
            if i64::try_from(*i).is_err() && u64::try_from(*i).is_err() {
                return Err(path.error(
                    mark,
                    format!(
                        "the integer {i} does not fit in 64 bits; the Kubernetes API cannot store it"
                    ),
                ));
            }
            Value::Int(*i)
        }
        NodeValue::Float(f) => {
            if !f.is_finite() {
                return Err(path.error(
                    mark,
                    format!(
                        "`{}` is not a finite number; JSON and the Kubernetes API cannot store it (quote it to make it a string)",
                        python_float_repr(*f)
                    ),
                ));
            }
            Value::Float(*f)
        }
        NodeValue::Timestamp(text) => {
            return Err(path.error(
                mark,
                format!(
                    "`{text}` is a YAML 1.1 timestamp; PaaSTA cannot hash a date (json.dumps fails), quote it to make it a string"
                ),
            ));
        }
        NodeValue::Str(s) => Value::Str(s.clone()),
        NodeValue::Seq(items) => {
            let mut values = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                values.push(convert_ref(item, &FieldPath::Index(path, index))?);
            }
            Value::Seq(values)
        }
        NodeValue::Map(mapping) => {
            let mut entries = Vec::with_capacity(mapping.len());
            for (key, item) in mapping.iter() {
                let (sort_key, text) =
                    key_text(&key.value).map_err(|message| path.error(key.mark, message))?;
                let value = convert_ref(item, &FieldPath::Key(path, &text))?;
                entries.push((sort_key, text, value));
            }
            finish_map(entries, mark, path)?
        }
    })
}

fn convert_owned(node: Node, path: &FieldPath<'_>) -> Result<Value, ConvertError> {
    match node.value {
        NodeValue::Str(s) => Ok(Value::Str(s)),
        NodeValue::Seq(items) => {
            let mut values = Vec::with_capacity(items.len());
            for (index, item) in items.into_iter().enumerate() {
                values.push(convert_owned(item, &FieldPath::Index(path, index))?);
            }
            Ok(Value::Seq(values))
        }
        NodeValue::Map(mapping) => convert_owned_map(mapping.into_entries(), node.mark, path),
        other => convert_ref_value(&other, node.mark, path),
    }
}

/// Nearly every mapping has only string keys: those are sorted as they are,
/// in place. The first key of another type switches to Python's mixed-type
/// rules for the whole mapping.
fn convert_owned_map(
    pairs: Vec<(Node, Node)>,
    mark: Mark,
    path: &FieldPath<'_>,
) -> Result<Value, ConvertError> {
    let mut strings: Vec<(Text, Value)> = Vec::with_capacity(pairs.len());
    let mut pairs = pairs.into_iter();
    while let Some((key, item)) = pairs.next() {
        let text = match key.value {
            NodeValue::Str(text) => text,
            other => {
                let mut entries: Vec<(SortKey, Text, Value)> =
                    Vec::with_capacity(strings.capacity());
                entries.extend(
                    strings
                        .into_iter()
                        .map(|(text, value)| (SortKey::Str, text, value)),
                );
                let rest = std::iter::once((
                    Node {
                        value: other,
                        mark: key.mark,
                    },
                    item,
                ))
                .chain(pairs);
                for (key, item) in rest {
                    let key_mark = key.mark;
                    let (sort_key, text) = match key.value {
                        NodeValue::Str(s) => (SortKey::Str, s),
                        other => {
                            key_text(&other).map_err(|message| path.error(key_mark, message))?
                        }
                    };
                    let value = convert_owned(item, &FieldPath::Key(path, &text))?;
                    entries.push((sort_key, text, value));
                }
                return finish_map(entries, mark, path);
            }
        };
        let value = convert_owned(item, &FieldPath::Key(path, &text))?;
        strings.push((text, value));
    }
    // String keys of a mapping are distinct (the loader keeps one of each).
    strings.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
    Ok(Value::Map(Map::from_sorted(strings)))
}

fn finish_map(
    mut entries: Vec<(SortKey, Text, Value)>,
    mark: Mark,
    path: &FieldPath<'_>,
) -> Result<Value, ConvertError> {
    sort_like_python(&mut entries).map_err(|message| path.error(mark, message))?;
    // Not `collect`: it would reuse the larger allocation of `entries`, and
    // rendered resources keep these maps alive.
    let mut sorted = Vec::with_capacity(entries.len());
    sorted.extend(entries.into_iter().map(|(_, text, value)| (text, value)));
    Ok(Value::Map(Map::from_sorted(sorted)))
}

/// How Python orders a key when sorting: numbers (int, float, bool) compare
/// with each other, strings with strings (by the key's text, which is the
/// string itself), `None` with nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
enum SortKey {
    Number(f64, i128),
    Str,
    Null,
}

impl SortKey {
    fn class(&self) -> &'static str {
        match self {
            SortKey::Number(..) => "number",
            SortKey::Str => "string",
            SortKey::Null => "null",
        }
    }
}

/// The sort key and the JSON text of a mapping key, as `json.dumps` writes it.
fn key_text(key: &NodeValue) -> Result<(SortKey, Text), String> {
    Ok(match key {
        NodeValue::Str(s) => (SortKey::Str, s.clone()),
        #[allow(clippy::cast_precision_loss)]
        NodeValue::Int(i) => (SortKey::Number(*i as f64, *i), Text::from(i.to_string())),
        NodeValue::Bool(b) => (
            SortKey::Number(f64::from(u8::from(*b)), i128::from(*b)),
            Text::from(b.to_string()),
        ),
        NodeValue::Float(f) => (SortKey::Number(*f, 0), Text::from(python_float_repr(*f))),
        NodeValue::Null => (SortKey::Null, Text::const_new("null")),
        other => {
            return Err(format!(
                "a {} cannot be a mapping key in JSON; quote the key",
                other.type_name()
            ));
        }
    })
}

fn sort_like_python(entries: &mut [(SortKey, Text, Value)]) -> Result<(), String> {
    if entries.len() < 2 {
        return Ok(());
    }
    let first_class = entries[0].0.class();
    if first_class == "null" || entries.iter().any(|(key, _, _)| key.class() != first_class) {
        let classes: std::collections::BTreeSet<&str> =
            entries.iter().map(|(key, _, _)| key.class()).collect();
        return Err(format!(
            "mapping keys of different types ({}) cannot be sorted; PaaSTA's json.dumps(sort_keys=True) fails on them too, quote the keys",
            classes.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    entries.sort_by(|(a, x_text, _), (b, y_text, _)| match (a, b) {
        (SortKey::Str, SortKey::Str) => x_text.cmp(y_text),
        (SortKey::Number(x, xi), SortKey::Number(y, yi)) => {
            x.partial_cmp(y).unwrap_or(Ordering::Equal).then(xi.cmp(yi))
        }
        _ => Ordering::Equal,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml::{Limits, load};
    use crate::value::python_json::dumps;

    /// Converts both ways, borrowing and consuming the node, which must
    /// agree (values or errors; as Debug text, since NaN is unequal to
    /// itself).
    fn convert(text: &str) -> Result<Value, ConvertError> {
        let node = load(text, &Limits::default())
            .expect("yaml")
            .expect("document");
        let borrowed = to_value(&node, "");
        let owned = into_value(node, "");
        assert_eq!(format!("{borrowed:?}"), format!("{owned:?}"), "{text}");
        owned
    }

    #[test]
    fn integer_keys_sort_numerically_and_become_strings() {
        let value = convert("10: a\n9: b\n").expect("value");
        assert_eq!(dumps(&value), r#"{"9": "b", "10": "a"}"#);
    }

    #[test]
    fn timestamp_fails_with_field_and_position() {
        let err = convert("main:\n  start_date: 2024-01-01\n").expect_err("date");
        assert_eq!(err.field, "main.start_date");
        assert_eq!(err.mark.line, 2);
        assert!(err.message.contains("timestamp"), "{err}");
    }

    #[test]
    fn mixed_key_types_fail_like_sort_keys() {
        let err = convert("a: 1\n1: 2\n").expect_err("mixed");
        assert!(err.message.contains("cannot be sorted"), "{err}");
        // One key alone is never compared, so Python accepts it.
        assert_eq!(dumps(&convert("~: 1\n").expect("single")), r#"{"null": 1}"#);
    }

    #[test]
    fn string_keys_sort_by_code_point_at_every_level() {
        let value = convert("b: {z: 1, é: 2, A: 3}\na: [{y: 1, x: 2}]\n").expect("value");
        assert_eq!(
            dumps(&value),
            r#"{"a": [{"x": 2, "y": 1}], "b": {"A": 3, "z": 1, "\u00e9": 2}}"#
        );
    }

    /// A key of another type after string keys switches to Python's rules:
    /// the error names the mapping, and values before and after the key are
    /// still checked in order.
    #[test]
    fn a_later_non_string_key_gets_pythons_rules() {
        let err = convert("m:\n  b: 1\n  a: 2\n  3: x\n").expect_err("mixed");
        assert_eq!(err.field, "m");
        assert!(err.message.contains("number, string"), "{err}");
        let err = convert("m:\n  a: 1\n  3: x\n  b: 2020-01-01\n").expect_err("date");
        assert_eq!(err.field, "m.b");
        let numbers = convert("m:\n  10: a\n  9: b\n").expect("numbers");
        assert_eq!(dumps(&numbers), r#"{"m": {"9": "b", "10": "a"}}"#);
    }

    #[test]
    fn non_finite_floats_and_huge_integers_fail() {
        assert!(convert("a: .inf\n").is_err());
        assert!(convert("a: 123456789012345678901234\n").is_err());
    }

    #[test]
    fn sequence_paths_name_the_index() {
        let err = convert("jobs:\n- name: a\n- when: 2020-01-01\n").expect_err("date");
        assert_eq!(err.field, "jobs[1].when");
    }
}
