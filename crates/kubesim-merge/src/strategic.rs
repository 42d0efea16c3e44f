//! Strategic merge patch (`application/strategic-merge-patch+json`), as kubectl sends it for
//! `rollout restart|pause|resume` and client-side `apply`.
//!
//! Owns: `null` deletion, merging map-lists by their merge key, primitive-set union, atomic-list
//! replacement, and the directives `$patch: replace|delete|merge`, `$retainKeys`,
//! `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>`.
//! Must not: track field ownership (the caller records the write with
//! [`crate::record_update`]).

use serde_json::{Map, Value};

use crate::PatchError;
use crate::schema::{ListType, Schema};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Applies a strategic merge patch for an object of `api_version`/`kind` (which decides merge
/// keys, see [`crate::schema`]).
pub fn strategic_merge_patch(
    api_version: &str,
    kind: &str,
    target: &Value,
    patch: &Value,
) -> Result<Value, PatchError> {
    let schema = Schema::for_kind(api_version, kind);
    let Value::Object(p) = patch else {
        return Err(PatchError::Malformed(
            "strategic merge patch must be a JSON object".into(),
        ));
    };
    let mut out = match target {
        Value::Object(t) => t.clone(),
        _ => Map::new(),
    };
    let mut path = Vec::new();
    merge_map(&schema, &mut path, &mut out, p)?;
    Ok(Value::Object(out))
}

fn directive_value(p: &Map<String, Value>) -> Result<Option<&str>, PatchError> {
    match p.get(PATCH) {
        None => Ok(None),
        Some(Value::String(s)) if matches!(s.as_str(), "replace" | "delete" | "merge") => {
            Ok(Some(s))
        }
        Some(other) => Err(PatchError::BadDirective(format!(
            "invalid patch type: {other}"
        ))),
    }
}

/// Removes every `$`-directive from a value that is taken verbatim (`$patch: replace`).
fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

fn merge_map<'p>(
    schema: &Schema,
    path: &mut Vec<&'p str>,
    target: &mut Map<String, Value>,
    patch: &'p Map<String, Value>,
) -> Result<(), PatchError> {
    match directive_value(patch)? {
        Some("replace") => {
            if let Value::Object(m) = strip_directives(&Value::Object(patch.clone())) {
                *target = m;
            }
            return Ok(());
        }
        Some("delete") => {
            target.clear();
            return Ok(());
        }
        _ => {}
    }
    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let keys = retain.as_array().ok_or_else(|| {
            PatchError::BadDirective(format!("{RETAIN_KEYS} must be a list of strings"))
        })?;
        target.retain(|k, _| keys.iter().any(|r| r.as_str() == Some(k.as_str())));
    }
    for (k, v) in patch {
        if let Some(list) = k.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let values = v
                .as_array()
                .ok_or_else(|| PatchError::BadDirective(format!("{k} must be a list")))?;
            if let Some(Value::Array(items)) = target.get_mut(list) {
                items.retain(|item| !values.contains(item));
            }
        }
    }
    // `$setElementOrder/<list>`: remember the live order of each list before merging.
    let mut orders = Vec::new();
    for (k, v) in patch {
        if let Some(list) = k.strip_prefix(SET_ELEMENT_ORDER) {
            let order = v
                .as_array()
                .ok_or_else(|| PatchError::BadDirective(format!("{k} must be a list")))?;
            path.push(list);
            let merge_key = match schema.list_type(path) {
                ListType::Map(keys) => keys.first().copied(),
                _ => None,
            };
            path.pop();
            let server_ids: Vec<Option<Value>> = match target.get(list) {
                Some(Value::Array(items)) => items.iter().map(|i| identity(i, merge_key)).collect(),
                _ => Vec::new(),
            };
            orders.push((list, order, merge_key, server_ids));
        }
    }
    for (k, v) in patch {
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            target.shift_remove(k);
            continue;
        }
        path.push(k);
        let merged = match (target.get_mut(k), v) {
            (Some(Value::Object(t)), Value::Object(p)) => {
                merge_map(schema, path, t, p)?;
                None
            }
            (Some(Value::Array(t)), Value::Array(p)) => {
                merge_list(schema, path, t, p)?;
                None
            }
            (_, Value::Object(p)) => {
                let mut m = Map::new();
                merge_map(schema, path, &mut m, p)?;
                Some(Value::Object(m))
            }
            (_, Value::Array(p)) => {
                let mut items = Vec::new();
                merge_list(schema, path, &mut items, p)?;
                Some(Value::Array(items))
            }
            (_, scalar) => Some(scalar.clone()),
        };
        path.pop();
        if let Some(m) = merged {
            target.insert(k.clone(), m);
        }
    }
    for (list, order, merge_key, server_ids) in orders {
        if let Some(Value::Array(items)) = target.get_mut(list) {
            reorder(items, order, merge_key, &server_ids);
        }
    }
    Ok(())
}

fn identity(v: &Value, merge_key: Option<&str>) -> Option<Value> {
    match merge_key {
        Some(k) => v.get(k).cloned(),
        None => Some(v.clone()),
    }
}

/// `$setElementOrder` as the apiserver's `normalizeElementOrder` does it: the items named in
/// `order` take that order; the other (server-only) items keep their relative order and are
/// interleaved by their position in the live list (`server_ids`).
fn reorder(
    items: &mut Vec<Value>,
    order: &[Value],
    merge_key: Option<&str>,
    server_ids: &[Option<Value>],
) {
    let mut slots: Vec<Option<Value>> = std::mem::take(items).into_iter().map(Some).collect();
    let ids: Vec<Option<Value>> = slots
        .iter()
        .map(|s| s.as_ref().and_then(|v| identity(v, merge_key)))
        .collect();
    let mut ordered: Vec<(Option<Value>, Value)> = Vec::with_capacity(slots.len());
    for o in order {
        let Some(want) = identity(o, merge_key) else {
            continue;
        };
        if let Some(i) = ids.iter().position(|id| id.as_ref() == Some(&want))
            && let Some(item) = slots[i].take()
        {
            ordered.push((Some(want), item));
        }
    }
    let server_only: Vec<(Option<Value>, Value)> = ids
        .into_iter()
        .zip(slots)
        .filter_map(|(id, slot)| slot.map(|item| (id, item)))
        .collect();
    let live_index = |id: &Option<Value>| {
        id.as_ref()
            .and_then(|id| server_ids.iter().position(|s| s.as_ref() == Some(id)))
    };
    // mergeSortedSlice(left = server-only, right = ordered patch items).
    let mut left = server_only.into_iter().peekable();
    let mut right = ordered.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((l, _)), Some((r, _))) => {
                matches!((live_index(l), live_index(r)), (Some(li), Some(ri)) if li < ri)
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        if let Some((_, item)) = next {
            items.push(item);
        }
    }
}

fn merge_list<'p>(
    schema: &Schema,
    path: &mut Vec<&'p str>,
    target: &mut Vec<Value>,
    patch: &'p [Value],
) -> Result<(), PatchError> {
    // `[{"$patch":"replace"}, items…]`: the list becomes exactly the other items.
    let replace = patch.iter().any(|item| {
        item.as_object().is_some_and(|m| {
            m.len() == 1 && m.get(PATCH).and_then(Value::as_str) == Some("replace")
        })
    });
    if replace {
        *target = patch
            .iter()
            .filter(|item| item.get(PATCH).is_none())
            .map(strip_directives)
            .collect();
        return Ok(());
    }
    match schema.list_type(path) {
        ListType::Atomic => {
            *target = patch.iter().map(strip_directives).collect();
        }
        ListType::Set => {
            for item in patch {
                if !target.contains(item) {
                    target.push(item.clone());
                }
            }
        }
        ListType::Map(keys) => {
            let key = keys.first().copied().unwrap_or("name");
            for item in patch {
                let Value::Object(p) = item else {
                    return Err(PatchError::Malformed(format!(
                        "strategic merge patch: list item {item} of a merge list must be an object"
                    )));
                };
                let Some(id) = p.get(key) else {
                    return Err(PatchError::MissingMergeKey {
                        key: key.to_owned(),
                        item: item.to_string(),
                    });
                };
                let pos = target.iter().position(|t| t.get(key) == Some(id));
                if directive_value(p)? == Some("delete") {
                    target.retain(|t| t.get(key) != Some(id));
                    continue;
                }
                match pos.and_then(|i| target.get_mut(i)) {
                    Some(Value::Object(t)) => merge_map(schema, path, t, p)?,
                    _ => {
                        let mut m = Map::new();
                        merge_map(schema, path, &mut m, p)?;
                        target.push(Value::Object(m));
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {
                "replicas": 2, "paused": true,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [
                        {"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80}],
                         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                         "args": ["a", "b"]},
                        {"name": "sidecar", "image": "busybox"}
                    ]}
                }
            }
        })
    }

    fn smp(patch: Value) -> Result<Value, PatchError> {
        strategic_merge_patch("apps/v1", "Deployment", &deployment(), &patch)
    }

    #[test]
    fn kubectl_rollout_bodies() {
        // restart (§3.4)
        let out = smp(json!({"spec":{"template":{"metadata":{"annotations":{
            "kubectl.kubernetes.io/restartedAt":"2026-11-21T22:12:15Z"}}}}}))
        .unwrap();
        assert_eq!(
            out["spec"]["template"]["metadata"],
            json!({"labels": {"app": "web"}, "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-21T22:12:15Z"}})
        );
        assert_eq!(
            out["spec"]["template"]["spec"],
            deployment()["spec"]["template"]["spec"]
        );
        // resume (§3.5): null deletes
        let out = smp(json!({"spec":{"paused":null}})).unwrap();
        assert!(out["spec"].get("paused").is_none());
        assert_eq!(out["spec"]["replicas"], 2);
        // pause
        let out = strategic_merge_patch(
            "apps/v1",
            "Deployment",
            &smp(json!({"spec":{"paused":null}})).unwrap(),
            &json!({"spec":{"paused":true}}),
        )
        .unwrap();
        assert_eq!(out["spec"]["paused"], true);
    }

    #[test]
    fn client_side_apply_body_with_set_element_order() {
        // §3.6 client-side apply body.
        let patch = json!({"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{}"}},
            "spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"web"}],
            "containers":[{"image":"nginx:1.26","name":"web"}]}}}});
        let out = smp(patch).unwrap();
        let containers = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], "nginx:1.26");
        assert_eq!(
            containers[0]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
        );
        assert_eq!(containers[1]["name"], "sidecar");
        assert_eq!(
            out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
            "{}"
        );
        assert!(
            out["spec"]["template"]["spec"]
                .get("$setElementOrder/containers")
                .is_none()
        );
    }

    #[test]
    fn list_and_directive_rules() {
        type Check = Box<dyn Fn(&Value)>;
        let cases: Vec<(Value, Check)> = vec![
            // new map-list item appended, existing merged by key
            (
                json!({"spec":{"template":{"spec":{"containers":[{"name":"new","image":"x"},{"name":"web","image":"y"}]}}}}),
                Box::new(|o: &Value| {
                    let c = &o["spec"]["template"]["spec"]["containers"];
                    assert_eq!(c.as_array().map(Vec::len), Some(3));
                    assert_eq!(c[0]["image"], "y");
                    assert_eq!(c[2], json!({"name":"new","image":"x"}));
                }),
            ),
            // $patch: delete removes a map-list item
            (
                json!({"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}}}}),
                Box::new(|o: &Value| {
                    assert_eq!(
                        o["spec"]["template"]["spec"]["containers"]
                            .as_array()
                            .map(Vec::len),
                        Some(1)
                    );
                }),
            ),
            // $patch: replace on a list
            (
                json!({"spec":{"template":{"spec":{"containers":[{"$patch":"replace"},{"name":"only","image":"z"}]}}}}),
                Box::new(|o: &Value| {
                    assert_eq!(
                        o["spec"]["template"]["spec"]["containers"],
                        json!([{"name":"only","image":"z"}])
                    );
                }),
            ),
            // $patch: replace on a map
            (
                json!({"metadata":{"labels":{"$patch":"replace","x":"y"}}}),
                Box::new(|o: &Value| assert_eq!(o["metadata"]["labels"], json!({"x":"y"}))),
            ),
            // $patch: delete on a map empties it
            (
                json!({"spec":{"selector":{"$patch":"delete"}}}),
                Box::new(|o: &Value| assert_eq!(o["spec"]["selector"], json!({}))),
            ),
            // atomic list (args) replaced; env merged by name
            (
                json!({"spec":{"template":{"spec":{"containers":[{"name":"web","args":["c"],"env":[{"name":"B","value":"3"},{"name":"C","value":"4"}]}]}}}}),
                Box::new(|o: &Value| {
                    let c = &o["spec"]["template"]["spec"]["containers"][0];
                    assert_eq!(c["args"], json!(["c"]));
                    assert_eq!(
                        c["env"],
                        json!([{"name":"A","value":"1"},{"name":"B","value":"3"},{"name":"C","value":"4"}])
                    );
                }),
            ),
            // env item deleted with null inside + $setElementOrder reorders
            (
                json!({"spec":{"template":{"spec":{"containers":[{"name":"web","$setElementOrder/env":[{"name":"B"},{"name":"A"}],"env":[{"name":"A","value":null}]}]}}}}),
                Box::new(|o: &Value| {
                    assert_eq!(
                        o["spec"]["template"]["spec"]["containers"][0]["env"],
                        json!([{"name":"B","value":"2"},{"name":"A"}])
                    );
                }),
            ),
            // $retainKeys clears keys not listed
            (
                json!({"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$retainKeys":["name"]}]}}}}),
                Box::new(|o: &Value| {
                    assert_eq!(
                        o["spec"]["template"]["spec"]["containers"][1],
                        json!({"name":"sidecar"})
                    );
                }),
            ),
            // nested null in a new map is dropped
            (
                json!({"metadata":{"annotations":{"a":null,"b":"1"}}}),
                Box::new(|o: &Value| assert_eq!(o["metadata"]["annotations"], json!({"b":"1"}))),
            ),
            // container ports merge by containerPort
            (
                json!({"spec":{"template":{"spec":{"containers":[{"name":"web","ports":[{"containerPort":80,"name":"http"},{"containerPort":443}]}]}}}}),
                Box::new(|o: &Value| {
                    assert_eq!(
                        o["spec"]["template"]["spec"]["containers"][0]["ports"],
                        json!([{"containerPort":80,"name":"http"},{"containerPort":443}])
                    );
                }),
            ),
        ];
        for (patch, check) in cases {
            let out = smp(patch.clone()).unwrap_or_else(|e| panic!("{patch}: {e}"));
            check(&out);
        }
    }

    #[test]
    fn set_element_order_keeps_server_only_items_in_place() {
        let target = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "1"}, {"name": "injected", "image": "s"}, {"name": "b", "image": "2"}]}}}});
        let names = |patch: Value| -> Vec<String> {
            let out = strategic_merge_patch("apps/v1", "Deployment", &target, &patch).unwrap();
            out["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["name"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(
            names(json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                "containers": [{"name": "b", "image": "3"}]}}}})),
            ["a", "injected", "b"]
        );
        assert_eq!(
            names(json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "c"}, {"name": "b"}, {"name": "a"}],
                "containers": [{"name": "c", "image": "4"}]}}}})),
            ["c", "injected", "b", "a"]
        );
    }

    #[test]
    fn finalizers_set_and_delete_from_primitive_list() {
        let target = json!({"metadata":{"name":"x","finalizers":["a","b"]}});
        let out = strategic_merge_patch(
            "v1",
            "ConfigMap",
            &target,
            &json!({"metadata":{"finalizers":["b","c"]}}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
        let out = strategic_merge_patch(
            "v1",
            "ConfigMap",
            &target,
            &json!({"metadata":{"$deleteFromPrimitiveList/finalizers":["a"]}}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
    }

    #[test]
    fn errors() {
        let e =
            smp(json!({"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "map: {\"image\":\"x\"} does not contain declared merge key: name"
        );
        assert_eq!(e.code(), 400);
        let e = smp(json!({"metadata":{"$patch":"frob"}})).unwrap_err();
        assert_eq!(e.to_string(), "invalid patch type: \"frob\"");
        assert_eq!(smp(json!([1])).unwrap_err().code(), 400);
    }
}
