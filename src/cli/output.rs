//! Writers shared by commands: the kubectl-style JSON list and the stderr
//! report of skips and problems.

use crate::render::DesiredSet;
use crate::value::{Value, python_float_repr, python_json};
use std::io::{self, Write};

/// `{"apiVersion": "v1", "kind": "List", "items": [...]}`, indented like
/// `kubectl get -o json`.
#[must_use]
pub fn json_list<'a>(objects: impl Iterator<Item = &'a Value>) -> String {
    let mut out = String::from("{\n  \"apiVersion\": \"v1\",\n  \"items\": [");
    let mut first = true;
    for object in objects {
        out.push_str(if first { "\n    " } else { ",\n    " });
        first = false;
        pretty(&mut out, object, 2);
    }
    out.push_str(if first { "],\n" } else { "\n  ],\n" });
    out.push_str("  \"kind\": \"List\"\n}\n");
    out
}

fn pretty(out: &mut String, value: &Value, level: usize) {
    let pad = |out: &mut String, level: usize| {
        for _ in 0..level {
            out.push_str("  ");
        }
    };
    match value {
        Value::Seq(items) if !items.is_empty() => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                out.push_str(if index == 0 { "\n" } else { ",\n" });
                pad(out, level + 1);
                pretty(out, item, level + 1);
            }
            out.push('\n');
            pad(out, level);
            out.push(']');
        }
        Value::Map(map) if !map.is_empty() => {
            out.push('{');
            for (index, (key, item)) in map.iter().enumerate() {
                out.push_str(if index == 0 { "\n" } else { ",\n" });
                pad(out, level + 1);
                python_json::write_string(out, key);
                out.push_str(": ");
                pretty(out, item, level + 1);
            }
            out.push('\n');
            pad(out, level);
            out.push('}');
        }
        Value::Seq(_) => out.push_str("[]"),
        Value::Map(_) => out.push_str("{}"),
        Value::Float(f) => out.push_str(&python_float_repr(*f)),
        Value::Int(i) => crate::value::push_int(out, *i),
        scalar => out.push_str(&python_json::dumps(scalar)),
    }
}

/// Writes skips (with their reason) and every diagnostic to `stderr`.
pub fn report_problems(desired: &DesiredSet, stderr: &mut dyn Write) -> io::Result<()> {
    for skip in &desired.skipped {
        writeln!(
            stderr,
            "skipped {}.{} ({}): {}",
            skip.service, skip.instance, skip.file_prefix, skip.reason
        )?;
    }
    for service in desired.unknown_services.keys() {
        writeln!(
            stderr,
            "error: service {service} could not be loaded; its instances are unknown and left untouched"
        )?;
    }
    for diagnostic in desired.diagnostics() {
        writeln!(stderr, "{diagnostic}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Map;

    #[test]
    fn empty_list_is_valid_json() {
        let text = json_list(std::iter::empty());
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(
            parsed,
            serde_json::json!({"apiVersion": "v1", "items": [], "kind": "List"})
        );
    }

    #[test]
    fn list_items_parse_back_to_the_objects() {
        let object = Value::Map(Map::from_unsorted([
            (
                "a".to_owned(),
                Value::Seq(vec![Value::Int(1), Value::Float(1e-7)]),
            ),
            ("b".to_owned(), Value::str("é")),
            ("c".to_owned(), Value::Map(Map::new())),
        ]));
        let text = json_list([&object, &object].into_iter());
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(parsed["items"][1], object.to_json().expect("json"));
    }
}
