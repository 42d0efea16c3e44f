//! JSON patch (RFC 6902, `application/json-patch+json`): `add`, `remove`, `replace`, `move`,
//! `copy`, `test`, applied in order to a copy of the target; any failure aborts the whole patch.
//!
//! Owns: JSON pointer parsing (RFC 6901) and the operations. Must not: normalise values (e.g. a
//! `"creationTimestamp": null` inside a value is kept as given; the caller normalises).

use serde_json::{Map, Value};

use crate::PatchError;

/// Applies an RFC 6902 JSON patch (an array of operations) to `target`.
pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops = patch.as_array().ok_or_else(|| {
        PatchError::Malformed("json patch must be a JSON array of operations".into())
    })?;
    let mut doc = target.clone();
    for op in ops {
        apply_op(&mut doc, op)?;
    }
    Ok(doc)
}

fn field<'a>(op: &'a Map<String, Value>, name: &str, kind: &str) -> Result<&'a Value, PatchError> {
    op.get(name).ok_or_else(|| {
        PatchError::Malformed(format!(
            "json patch {kind} operation is missing the \"{name}\" field"
        ))
    })
}

fn pointer_field<'a>(
    op: &'a Map<String, Value>,
    name: &str,
    kind: &str,
) -> Result<&'a str, PatchError> {
    field(op, name, kind)?.as_str().ok_or_else(|| {
        PatchError::Malformed(format!(
            "json patch {kind} operation: \"{name}\" must be a string"
        ))
    })
}

fn apply_op(doc: &mut Value, op: &Value) -> Result<(), PatchError> {
    let op = op.as_object().ok_or_else(|| {
        PatchError::Malformed("json patch operation must be a JSON object".into())
    })?;
    let kind = op
        .get("op")
        .and_then(Value::as_str)
        .ok_or_else(|| PatchError::Malformed("json patch operation is missing \"op\"".into()))?;
    let path = pointer_field(op, "path", kind)?;
    match kind {
        "add" => add(doc, path, field(op, "value", kind)?.clone(), kind),
        "remove" => remove(doc, path, kind).map(drop),
        "replace" => {
            let value = field(op, "value", kind)?.clone();
            let slot = get_mut(doc, path, kind)?;
            *slot = value;
            Ok(())
        }
        "move" => {
            let from = pointer_field(op, "from", kind)?;
            if path != from && path.starts_with(from) && path[from.len()..].starts_with('/') {
                return Err(PatchError::Malformed(format!(
                    "move operation: \"from\" {from} is a prefix of \"path\" {path}"
                )));
            }
            let value = remove(doc, from, kind)?;
            add(doc, path, value, kind)
        }
        "copy" => {
            let from = pointer_field(op, "from", kind)?;
            let value = get_mut(doc, from, kind)?.clone();
            add(doc, path, value, kind)
        }
        "test" => {
            let want = field(op, "value", kind)?;
            let got = get_mut(doc, path, kind)?;
            if got == want {
                Ok(())
            } else {
                Err(PatchError::TestFailed {
                    path: path.to_owned(),
                })
            }
        }
        other => Err(PatchError::Malformed(format!("Unexpected kind: {other}"))),
    }
}

/// Splits a JSON pointer into unescaped tokens.
fn tokens(path: &str) -> Result<Vec<String>, PatchError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| PatchError::Malformed(format!("invalid JSON pointer: {path:?}")))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn array_index(token: &str, len: usize, allow_end: bool) -> Option<usize> {
    if token.is_empty() || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    let i: usize = token.parse().ok()?;
    let limit = if allow_end {
        len
    } else {
        len.saturating_sub(1)
    };
    (i <= limit && (allow_end || len > 0)).then_some(i)
}

fn missing(op: &str, path: &str) -> PatchError {
    PatchError::MissingPath {
        op: op.to_owned(),
        path: path.to_owned(),
    }
}

/// The value at `path`, which must exist.
fn get_mut<'a>(doc: &'a mut Value, path: &str, op: &str) -> Result<&'a mut Value, PatchError> {
    let mut cur = doc;
    for t in tokens(path)? {
        cur = match cur {
            Value::Object(m) => m.get_mut(&t),
            Value::Array(a) => {
                let len = a.len();
                array_index(&t, len, false).and_then(|i| a.get_mut(i))
            }
            _ => None,
        }
        .ok_or_else(|| missing(op, path))?;
    }
    Ok(cur)
}

/// The parent container of `path` and the last token.
fn parent_mut<'a>(
    doc: &'a mut Value,
    path: &str,
    op: &str,
) -> Result<(&'a mut Value, String), PatchError> {
    let mut toks = tokens(path)?;
    let last = toks.pop().ok_or_else(|| missing(op, path))?;
    let mut cur = doc;
    for t in toks {
        cur = match cur {
            Value::Object(m) => m.get_mut(&t),
            Value::Array(a) => {
                let len = a.len();
                array_index(&t, len, false).and_then(|i| a.get_mut(i))
            }
            _ => None,
        }
        .ok_or_else(|| missing(op, path))?;
    }
    Ok((cur, last))
}

fn add(doc: &mut Value, path: &str, value: Value, op: &str) -> Result<(), PatchError> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = parent_mut(doc, path, op)?;
    match parent {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
                return Ok(());
            }
            let i = array_index(&last, a.len(), true).ok_or_else(|| PatchError::OutOfRange {
                op: op.to_owned(),
                path: path.to_owned(),
            })?;
            a.insert(i, value);
            Ok(())
        }
        _ => Err(missing(op, path)),
    }
}

fn remove(doc: &mut Value, path: &str, op: &str) -> Result<Value, PatchError> {
    let (parent, last) = parent_mut(doc, path, op)?;
    match parent {
        Value::Object(m) => m.shift_remove(&last).ok_or_else(|| missing(op, path)),
        Value::Array(a) => {
            let i = array_index(&last, a.len(), false).ok_or_else(|| PatchError::OutOfRange {
                op: op.to_owned(),
                path: path.to_owned(),
            })?;
            Ok(a.remove(i))
        }
        _ => Err(missing(op, path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operations_table() {
        let doc = json!({"a": {"b": 1, "c": [1, 2, 3]}, "x~/y": true});
        let cases = [
            (
                json!([{"op":"add","path":"/a/d","value":4}]),
                json!({"a":{"b":1,"c":[1,2,3],"d":4},"x~/y":true}),
            ),
            (
                json!([{"op":"add","path":"/a/c/1","value":9}]),
                json!({"a":{"b":1,"c":[1,9,2,3]},"x~/y":true}),
            ),
            (
                json!([{"op":"add","path":"/a/c/-","value":9}]),
                json!({"a":{"b":1,"c":[1,2,3,9]},"x~/y":true}),
            ),
            (
                json!([{"op":"add","path":"/a/c/3","value":9}]),
                json!({"a":{"b":1,"c":[1,2,3,9]},"x~/y":true}),
            ),
            (
                json!([{"op":"add","path":"/a/b","value":2}]),
                json!({"a":{"b":2,"c":[1,2,3]},"x~/y":true}),
            ),
            (
                json!([{"op":"remove","path":"/a/b"}]),
                json!({"a":{"c":[1,2,3]},"x~/y":true}),
            ),
            (
                json!([{"op":"remove","path":"/a/c/0"}]),
                json!({"a":{"b":1,"c":[2,3]},"x~/y":true}),
            ),
            (
                json!([{"op":"remove","path":"/x~0~1y"}]),
                json!({"a":{"b":1,"c":[1,2,3]}}),
            ),
            (
                json!([{"op":"replace","path":"/a/b","value":"s"}]),
                json!({"a":{"b":"s","c":[1,2,3]},"x~/y":true}),
            ),
            (
                json!([{"op":"move","from":"/a/b","path":"/z"}]),
                json!({"a":{"c":[1,2,3]},"x~/y":true,"z":1}),
            ),
            (
                json!([{"op":"copy","from":"/a/c","path":"/a/e"}]),
                json!({"a":{"b":1,"c":[1,2,3],"e":[1,2,3]},"x~/y":true}),
            ),
            (
                json!([{"op":"test","path":"/a/b","value":1},{"op":"remove","path":"/a"}]),
                json!({"x~/y":true}),
            ),
            (json!([{"op":"replace","path":"","value":[1]}]), json!([1])),
            (json!([]), doc.clone()),
        ];
        for (patch, want) in cases {
            assert_eq!(json_patch(&doc, &patch).unwrap(), want, "{patch}");
        }
    }

    #[test]
    fn failures_table() {
        let doc = json!({"a": {"b": 1, "c": [1]}});
        let cases: [(Value, &str, u16); 9] = [
            (
                json!([{"op":"replace","path":"/metadata/annotations","value":{}}]),
                "jsonpatch replace operation does not apply: doc is missing path: /metadata/annotations: missing value",
                422,
            ),
            (
                json!([{"op":"remove","path":"/a/x"}]),
                "jsonpatch remove operation does not apply: doc is missing path: /a/x: missing value",
                422,
            ),
            (
                json!([{"op":"test","path":"/a/b","value":2}]),
                "testing value /a/b failed: test failed",
                422,
            ),
            (
                json!([{"op":"add","path":"/a/c/5","value":2}]),
                "jsonpatch add operation does not apply: index out of range for path: /a/c/5",
                422,
            ),
            (
                json!([{"op":"add","path":"/q/r","value":2}]),
                "jsonpatch add operation does not apply: doc is missing path: /q/r: missing value",
                422,
            ),
            (
                json!({"op":"add"}),
                "json patch must be a JSON array of operations",
                400,
            ),
            (
                json!([{"op":"frob","path":"/a"}]),
                "Unexpected kind: frob",
                400,
            ),
            (
                json!([{"op":"add","path":"/a/z"}]),
                "json patch add operation is missing the \"value\" field",
                400,
            ),
            (
                json!([{"op":"move","from":"/a","path":"/a/b/c"}]),
                "move operation: \"from\" /a is a prefix of \"path\" /a/b/c",
                400,
            ),
        ];
        for (patch, msg, code) in cases {
            let err = json_patch(&doc, &patch).unwrap_err();
            assert_eq!(err.to_string(), msg, "{patch}");
            assert_eq!(err.code(), code, "{patch}");
        }
    }

    #[test]
    fn rollout_undo_body_keeps_null_creation_timestamp() {
        // §3.3: the template value is a typed serialization with `creationTimestamp: null`.
        let live = json!({
            "metadata": {"name": "web", "annotations": {"deployment.kubernetes.io/revision": "2"}},
            "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}}
        });
        let tmpl = json!({"metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.24", "resources": {}}]}});
        let patch = json!([
            {"op": "replace", "path": "/spec/template", "value": tmpl},
            {"op": "replace", "path": "/metadata/annotations",
             "value": {"deployment.kubernetes.io/revision": "1", "kubernetes.io/change-cause": "set image nginx:1.24"}}
        ]);
        let out = json_patch(&live, &patch).unwrap();
        assert_eq!(out["spec"]["template"], tmpl);
        assert!(
            out["spec"]["template"]["metadata"]
                .as_object()
                .unwrap()
                .contains_key("creationTimestamp")
        );
        assert_eq!(
            out["metadata"]["annotations"]["kubernetes.io/change-cause"],
            "set image nginx:1.24"
        );
        assert_eq!(out["spec"]["replicas"], 2);
        // Without annotations on the live object, `replace` must fail.
        let mut bare = live.clone();
        bare["metadata"]
            .as_object_mut()
            .unwrap()
            .shift_remove("annotations");
        assert_eq!(json_patch(&bare, &patch).unwrap_err().code(), 422);
    }
}
