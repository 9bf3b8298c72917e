//! JSON merge patch (RFC 7386) and JSON patch (RFC 6902), the two
//! non-apply patch types the apiserver accepts for custom resources
//! (https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/#use-a-json-merge-patch-to-update-a-deployment).

use serde_json::{Map, Value as Json};

/// RFC 7386: objects merge per key, `null` deletes, anything else replaces.
pub fn merge_patch(target: &mut Json, patch: &Json) {
    let Json::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Json::Object(Map::new());
    }
    if let Json::Object(map) = target {
        for (key, value) in patch {
            if value.is_null() {
                map.remove(key);
            } else {
                merge_patch(map.entry(key.clone()).or_insert(Json::Null), value);
            }
        }
    }
}

/// RFC 6901 pointer into reference tokens.
fn tokens(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!("invalid JSON pointer {pointer:?}"));
    };
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn index(token: &str, len: usize, allow_end: bool) -> Result<usize, String> {
    if allow_end && token == "-" {
        return Ok(len);
    }
    let i: usize = token
        .parse()
        .map_err(|_| format!("invalid array index {token:?}"))?;
    let max = if allow_end {
        len
    } else {
        len.saturating_sub(1)
    };
    if i > max || (!allow_end && len == 0) {
        return Err(format!("array index {i} out of bounds"));
    }
    Ok(i)
}

fn parent<'a>(doc: &'a mut Json, path: &[String]) -> Result<&'a mut Json, String> {
    let mut node = doc;
    for token in path {
        node = match node {
            Json::Object(map) => map
                .get_mut(token)
                .ok_or_else(|| format!("doc is missing path: missing key {token:?}"))?,
            Json::Array(items) => {
                let i = index(token, items.len(), false)?;
                &mut items[i]
            }
            _ => return Err(format!("doc is missing path: {token:?} is not a container")),
        };
    }
    Ok(node)
}

fn add(doc: &mut Json, path: &[String], value: Json) -> Result<(), String> {
    let Some((last, parents)) = path.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent(doc, parents)? {
        Json::Object(map) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Json::Array(items) => {
            let i = index(last, items.len(), true)?;
            items.insert(i, value);
            Ok(())
        }
        _ => Err("add operation does not apply: parent is not a container".to_owned()),
    }
}

fn remove(doc: &mut Json, path: &[String]) -> Result<Json, String> {
    let Some((last, parents)) = path.split_last() else {
        return Err("remove operation does not apply: cannot remove the document".to_owned());
    };
    match parent(doc, parents)? {
        Json::Object(map) => map
            .remove(last)
            .ok_or_else(|| format!("remove operation does not apply: doc is missing key {last:?}")),
        Json::Array(items) => {
            let i = index(last, items.len(), false)?;
            Ok(items.remove(i))
        }
        _ => Err("remove operation does not apply: parent is not a container".to_owned()),
    }
}

fn get<'a>(doc: &'a Json, path: &[String]) -> Option<&'a Json> {
    path.iter().try_fold(doc, |node, token| match node {
        Json::Object(map) => map.get(token),
        Json::Array(items) => items.get(token.parse::<usize>().ok()?),
        _ => None,
    })
}

/// Why a JSON patch was refused.
pub enum PatchError {
    /// Not a valid patch document: the apiserver answers 400.
    Malformed(String),
    /// An operation did not apply (a failed `test`, a missing path): 422.
    Failed(String),
}

/// RFC 6902 with `add`, `remove`, `replace`, `move`, `copy` and `test`.
/// Operations run in order on a copy; the first failing one fails the whole
/// patch and leaves `doc` untouched.
pub fn json_patch(doc: &mut Json, ops: &Json) -> Result<(), PatchError> {
    let Some(ops) = ops.as_array() else {
        return Err(PatchError::Malformed(
            "json patch must be an array of operations".to_owned(),
        ));
    };
    let mut work = doc.clone();
    for op in ops {
        let field = |name: &str| {
            op.get(name)
                .and_then(Json::as_str)
                .ok_or_else(|| PatchError::Malformed(format!("operation is missing {name:?}")))
        };
        let path = tokens(field("path")?).map_err(PatchError::Malformed)?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| PatchError::Malformed("operation is missing \"value\"".to_owned()))
        };
        let result = match field("op")? {
            "add" => add(&mut work, &path, value()?),
            "remove" => remove(&mut work, &path).map(drop),
            "replace" => {
                if get(&work, &path).is_none() {
                    Err("replace operation does not apply: doc is missing key".to_owned())
                } else {
                    let v = value()?;
                    if path.is_empty() {
                        work = v;
                        Ok(())
                    } else {
                        remove(&mut work, &path).and_then(|_| add(&mut work, &path, v))
                    }
                }
            }
            "move" => {
                let from = tokens(field("from")?).map_err(PatchError::Malformed)?;
                remove(&mut work, &from).and_then(|v| add(&mut work, &path, v))
            }
            "copy" => {
                let from = tokens(field("from")?).map_err(PatchError::Malformed)?;
                match get(&work, &from).cloned() {
                    Some(v) => add(&mut work, &path, v),
                    None => {
                        Err("copy operation does not apply: doc is missing from path".to_owned())
                    }
                }
            }
            "test" => {
                let expected = value()?;
                match get(&work, &path) {
                    Some(actual) if *actual == expected => Ok(()),
                    _ => Err(format!(
                        "testing value {} failed: test failed",
                        field("path")?
                    )),
                }
            }
            other => {
                return Err(PatchError::Malformed(format!("Unexpected kind: {other}")));
            }
        };
        result.map_err(PatchError::Failed)?;
    }
    *doc = work;
    Ok(())
}
