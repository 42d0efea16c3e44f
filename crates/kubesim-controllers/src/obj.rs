//! Small accessors over stored objects (`serde_json::Value`) shared by the controllers:
//! metadata fields, owner references, label selectors, timestamps, semantic equality.
//! Must not: know about any one controller's rules.

use jiff::Timestamp;
use serde_json::{Map, Value, json};

/// The value at `path`, if every step exists.
pub(crate) fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    Some(cur)
}

/// The string at `path`.
pub(crate) fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

/// The integer at `path`.
pub(crate) fn i64_at(v: &Value, path: &[&str]) -> Option<i64> {
    at(v, path).and_then(Value::as_i64)
}

/// Sets `value` at `path`, creating (or replacing non-object) intermediate objects.
pub(crate) fn set(v: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        *v = value;
        return;
    };
    let mut cur = v;
    for key in parents {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Some(map) = cur.as_object_mut() else {
            return;
        };
        cur = map
            .entry((*key).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if !cur.is_object() {
        *cur = Value::Object(Map::new());
    }
    if let Some(map) = cur.as_object_mut() {
        map.insert((*last).to_string(), value);
    }
}

/// Removes the key at `path` if present.
pub(crate) fn remove(v: &mut Value, path: &[&str]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for key in parents {
        match cur.get_mut(key) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(map) = cur.as_object_mut() {
        map.remove(*last);
    }
}

pub(crate) fn name(v: &Value) -> &str {
    str_at(v, &["metadata", "name"]).unwrap_or_default()
}

pub(crate) fn namespace(v: &Value) -> Option<&str> {
    str_at(v, &["metadata", "namespace"])
}

pub(crate) fn uid(v: &Value) -> &str {
    str_at(v, &["metadata", "uid"]).unwrap_or_default()
}

pub(crate) fn generation(v: &Value) -> i64 {
    i64_at(v, &["metadata", "generation"]).unwrap_or(0)
}

/// A label or annotation value.
pub(crate) fn label<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    str_at(v, &["metadata", "labels", key])
}

pub(crate) fn annotation<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    str_at(v, &["metadata", "annotations", key])
}

pub(crate) fn is_deleting(v: &Value) -> bool {
    at(v, &["metadata", "deletionTimestamp"]).is_some_and(|t| !t.is_null())
}

pub(crate) fn creation(v: &Value) -> Option<Timestamp> {
    str_at(v, &["metadata", "creationTimestamp"]).and_then(parse_time)
}

/// The owner reference with `controller: true`.
pub(crate) fn controller_ref(v: &Value) -> Option<&Value> {
    at(v, &["metadata", "ownerReferences"])
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
}

/// The uid of the controlling owner.
pub(crate) fn controller_uid(v: &Value) -> Option<&str> {
    controller_ref(v)
        .and_then(|r| r.get("uid"))
        .and_then(Value::as_str)
}

/// A controller owner reference pointing at `owner`.
pub(crate) fn owner_ref(api_version: &str, kind: &str, owner: &Value) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": name(owner),
        "uid": uid(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// `obj` with `owner_ref` appended to its ownerReferences.
pub(crate) fn with_owner(obj: &Value, owner_ref: Value) -> Value {
    let mut out = obj.clone();
    let mut refs = at(obj, &["metadata", "ownerReferences"])
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    refs.push(owner_ref);
    set(
        &mut out,
        &["metadata", "ownerReferences"],
        Value::Array(refs),
    );
    out
}

/// `obj` without the owner reference to `owner_uid` (the field removed when empty).
pub(crate) fn without_owner(obj: &Value, owner_uid: &str) -> Value {
    let mut out = obj.clone();
    let refs: Vec<Value> = at(obj, &["metadata", "ownerReferences"])
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if refs.is_empty() {
        remove(&mut out, &["metadata", "ownerReferences"]);
    } else {
        set(
            &mut out,
            &["metadata", "ownerReferences"],
            Value::Array(refs),
        );
    }
    out
}

/// Whether a LabelSelector (`matchLabels` + `matchExpressions`) matches `labels` (an object
/// or absent). An absent/empty selector matches nothing here (callers treat empty selectors
/// as invalid, as validation rejects them).
pub(crate) fn selector_matches(selector: Option<&Value>, labels: Option<&Value>) -> bool {
    let Some(selector) = selector else {
        return false;
    };
    let empty = Map::new();
    let labels = labels.and_then(Value::as_object).unwrap_or(&empty);
    let match_labels = selector.get("matchLabels").and_then(Value::as_object);
    let exprs = selector.get("matchExpressions").and_then(Value::as_array);
    if match_labels.is_none_or(Map::is_empty) && exprs.is_none_or(Vec::is_empty) {
        return false;
    }
    if let Some(ml) = match_labels {
        for (k, v) in ml {
            if labels.get(k) != Some(v) {
                return false;
            }
        }
    }
    for expr in exprs.into_iter().flatten() {
        let key = expr.get("key").and_then(Value::as_str).unwrap_or_default();
        let values: Vec<&str> = expr
            .get("values")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let have = labels.get(key).and_then(Value::as_str);
        let ok = match expr.get("operator").and_then(Value::as_str) {
            Some("In") => have.is_some_and(|h| values.contains(&h)),
            Some("NotIn") => have.is_none_or(|h| !values.contains(&h)),
            Some("Exists") => have.is_some(),
            Some("DoesNotExist") => have.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Whether a plain map selector (Service `spec.selector`) matches `labels`.
pub(crate) fn map_selector_matches(selector: &Map<String, Value>, labels: Option<&Value>) -> bool {
    !selector.is_empty()
        && selector
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// RFC3339 with second precision, as the API server serializes `metav1.Time`.
pub(crate) fn fmt_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub(crate) fn parse_time(s: &str) -> Option<Timestamp> {
    s.parse().ok()
}

/// `t` truncated to whole seconds (what a stored timestamp keeps).
pub(crate) fn trunc(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// The value with nulls, empty objects and empty arrays removed recursively — Go's
/// "semantic" equality treats nil and empty the same.
pub(crate) fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                let n = normalize(&map[k]);
                if !is_empty(&n) {
                    out.insert(k.clone(), n);
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Semantic deep equality (nil == empty).
pub(crate) fn sem_eq(a: &Value, b: &Value) -> bool {
    // Wrapped so that a top-level null and an empty object/array compare equal too.
    normalize(&json!({ "v": a })) == normalize(&json!({ "v": b }))
}

/// Pod phase, `Pending` when absent.
pub(crate) fn pod_phase(pod: &Value) -> &str {
    str_at(pod, &["status", "phase"]).unwrap_or("Pending")
}

/// Not Succeeded/Failed and not terminating (controller `FilterActivePods`).
pub(crate) fn pod_active(pod: &Value) -> bool {
    !matches!(pod_phase(pod), "Succeeded" | "Failed") && !is_deleting(pod)
}

/// A pod status condition by type.
pub(crate) fn condition<'a>(obj: &'a Value, ty: &str) -> Option<&'a Value> {
    at(obj, &["status", "conditions"])
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
}

pub(crate) fn pod_ready(pod: &Value) -> bool {
    condition(pod, "Ready")
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        == Some("True")
}

/// Ready condition's lastTransitionTime for a Ready pod.
pub(crate) fn ready_since(pod: &Value) -> Option<Timestamp> {
    if !pod_ready(pod) {
        return None;
    }
    condition(pod, "Ready")
        .and_then(|c| c.get("lastTransitionTime"))
        .and_then(Value::as_str)
        .and_then(parse_time)
}

/// FNV-1a 32-bit.
pub(crate) fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// FNV-1a 64-bit (fake image/container ids).
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// An Event write's body.
pub(crate) fn event(
    involved: &Value,
    ty: &str,
    reason: &str,
    message: String,
    component: &str,
) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "involvedObject": {
            "apiVersion": involved.get("apiVersion").cloned().unwrap_or(Value::Null),
            "kind": involved.get("kind").cloned().unwrap_or(Value::Null),
            "namespace": namespace(involved),
            "name": name(involved),
            "uid": uid(involved),
            "resourceVersion": str_at(involved, &["metadata", "resourceVersion"]),
        },
        "reason": reason,
        "message": message,
        "type": ty,
        "source": {"component": component},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_semantics() {
        let sel = json!({"matchLabels": {"app": "web"}, "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "x", "operator": "DoesNotExist"}]});
        assert!(selector_matches(
            Some(&sel),
            Some(&json!({"app": "web", "tier": "a"}))
        ));
        assert!(!selector_matches(
            Some(&sel),
            Some(&json!({"app": "web", "tier": "c"}))
        ));
        assert!(!selector_matches(
            Some(&sel),
            Some(&json!({"app": "web", "tier": "a", "x": "1"}))
        ));
        assert!(!selector_matches(
            Some(&json!({})),
            Some(&json!({"app": "web"}))
        ));
    }

    #[test]
    fn normalize_drops_empty() {
        assert!(sem_eq(
            &json!({"a": {}, "b": null, "c": [], "d": 1}),
            &json!({"d": 1})
        ));
        assert!(!sem_eq(&json!({"d": 1}), &json!({"d": 2})));
        assert!(sem_eq(&Value::Null, &json!([])));
    }

    #[test]
    fn time_format_is_second_precision() {
        let t: Timestamp = "2026-01-02T03:04:05.678Z".parse().unwrap();
        assert_eq!(fmt_time(t), "2026-01-02T03:04:05Z");
    }

    #[test]
    fn set_and_remove() {
        let mut v = json!({});
        set(&mut v, &["a", "b"], json!(1));
        assert_eq!(v, json!({"a": {"b": 1}}));
        remove(&mut v, &["a", "b"]);
        assert_eq!(v, json!({"a": {}}));
    }
}
