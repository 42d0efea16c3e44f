//! No-op detection: would a server-side apply of `desired` by the `kubesync` field manager change
//! the live object's content? Answered from the live object alone (its values and the fields
//! `kubesync` owns in `managedFields`), so an unchanged object costs neither a write nor a
//! dry-run.
//!
//! Pure. Must not answer "unchanged" unless the apply is certainly a no-op: when unsure it
//! says "changed" (the cost is one write that the server turns into a no-op).
//!
//! An apply is a no-op when (1) every value in the applied config is already live (defaults
//! the server added are not in the config, so "desired ⊆ live") and (2) every field `kubesync`
//! owned from its previous apply is still in the config (otherwise the apply would remove it).
//! The annotations `kubesync.io/commit` and `kubernetes.io/change-cause` are ignored: they
//! change with every commit and are rewritten only with a content change.
use serde_json::{Map, Value};

/// Annotations that change with every commit; a difference only there is not a change.
pub const VOLATILE_ANNOTATIONS: [&str; 2] = ["kubesync.io/commit", "kubernetes.io/change-cause"];

/// `true` if applying `desired` with field manager `manager` would leave `live` unchanged
/// (apart from [`VOLATILE_ANNOTATIONS`]).
pub fn is_unchanged(desired: &Value, live: &Value, manager: &str) -> bool {
    let Some(entry) = apply_entry(live, manager) else {
        return false;
    };
    if entry.get("apiVersion") != desired.get("apiVersion") {
        return false;
    }
    let comparable = comparable_desired(desired);
    if !subset(&comparable, live, &mut Vec::new()) {
        return false;
    }
    match crate::manifest::at(entry, &["fieldsV1"]) {
        Some(owned) => owned_fields_present(owned, desired),
        None => false,
    }
}

/// The manager's `Apply` entry (main resource, not a subresource) in `metadata.managedFields`.
pub(crate) fn apply_entry<'a>(live: &'a Value, manager: &str) -> Option<&'a Value> {
    apply_entry_of(live.get("metadata")?, manager)
}

/// [`apply_entry`] from the object's `metadata`.
pub(crate) fn apply_entry_of<'a>(metadata: &'a Value, manager: &str) -> Option<&'a Value> {
    metadata.get("managedFields")?.as_array()?.iter().find(|e| {
        e.get("manager").and_then(Value::as_str) == Some(manager)
            && e.get("operation").and_then(Value::as_str) == Some("Apply")
            && e.get("subresource").is_none_or(|s| s.as_str() == Some(""))
    })
}

/// The desired object as the server would store it, for comparison: a Secret's write-only
/// `stringData` becomes base64 `data`. Borrowed (no copy) for every other object.
pub(crate) fn comparable_desired(desired: &Value) -> std::borrow::Cow<'_, Value> {
    if desired.get("kind").and_then(Value::as_str) != Some("Secret")
        || desired.get("apiVersion").and_then(Value::as_str) != Some("v1")
        || desired.get("stringData").is_none()
    {
        return std::borrow::Cow::Borrowed(desired);
    }
    let mut out = desired.clone();
    if let Some(Value::Object(string_data)) =
        out.as_object_mut().and_then(|o| o.remove("stringData"))
    {
        let data = out
            .as_object_mut()
            .map(|o| o.entry("data").or_insert_with(|| Value::Object(Map::new())));
        if let Some(Value::Object(data)) = data {
            for (k, v) in string_data {
                let text = v.as_str().unwrap_or_default();
                data.insert(k, Value::String(crate::base64::encode(text.as_bytes())));
            }
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Keys that identify an item of a map-list (merge key) when present in every item.
const LIST_KEYS: [&str; 5] = ["name", "containerPort", "port", "mountPath", "type"];

fn item_key<'a>(item: &'a Value, key: &str) -> Option<&'a Value> {
    item.as_object()?.get(key)
}

/// `desired ⊆ live`: every value in `desired` is present and equal in `live`. `path` holds
/// the keys walked so far (to skip volatile annotations).
fn subset<'a>(desired: &'a Value, live: &Value, path: &mut Vec<&'a str>) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d.iter().all(|(k, dv)| {
            // A null in an applied configuration is no value: the server skips it (the
            // `creationTimestamp: null` of generated manifests, for one).
            if dv.is_null() {
                return true;
            }
            if path.len() == 2
                && path[0] == "metadata"
                && path[1] == "annotations"
                && VOLATILE_ANNOTATIONS.contains(&k.as_str())
            {
                return true;
            }
            match l.get(k) {
                Some(lv) => {
                    path.push(k);
                    let ok = subset(dv, lv, path);
                    path.pop();
                    ok
                }
                // The server drops empty maps/lists and nulls: `foo: {}` is not a change.
                None => is_empty(dv),
            }
        }),
        (Value::Array(d), Value::Array(l)) => {
            let key = LIST_KEYS.iter().find(|k| {
                !d.is_empty()
                    && d.iter().all(|i| item_key(i, k).is_some())
                    && l.iter().all(|i| item_key(i, k).is_some())
            });
            match key {
                // A map-list: other managers may own other items, so match by key.
                Some(key) => {
                    d.len() <= l.len()
                        && d.iter().all(|di| {
                            let k = item_key(di, key);
                            l.iter()
                                .filter(|li| item_key(li, key) == k)
                                .any(|li| subset(di, li, path))
                        })
                }
                // An atomic list: the same items in the same order.
                None => d.len() == l.len() && d.iter().zip(l).all(|(di, li)| subset(di, li, path)),
            }
        }
        (Value::Number(d), Value::Number(l)) => d == l || d.as_f64() == l.as_f64(),
        _ => desired == live,
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

/// Every field in a `fieldsV1` set is present in `desired` (so an apply of `desired` would not
/// remove anything the manager owned before).
fn owned_fields_present(owned: &Value, desired: &Value) -> bool {
    let Some(set) = owned.as_object() else {
        return true;
    };
    set.iter().all(|(path, children)| {
        path == "."
            || match member(path, desired) {
                Member::Field(Some(child)) if !child.is_null() => {
                    owned_fields_present(children, child)
                }
                Member::Item(Some(item)) => owned_fields_present(children, item),
                Member::Present(present) => present,
                _ => false,
            }
    })
}

/// What a `fieldsV1` entry names in a value.
pub(crate) enum Member<'v> {
    /// `f:<name>`: the field of a mapping, if there.
    Field(Option<&'v Value>),
    /// `k:{…}` (by key fields) or `i:<n>` (by index): the item of a list, if there; also any
    /// entry this code does not know (never there).
    Item(Option<&'v Value>),
    /// `v:<json>`: whether the list (a set) holds the value.
    Present(bool),
}

/// Resolves one `fieldsV1` entry against `value`.
pub(crate) fn member<'v>(entry: &str, value: &'v Value) -> Member<'v> {
    if let Some(field) = entry.strip_prefix("f:") {
        return Member::Field(value.as_object().and_then(|o| o.get(field)));
    }
    let items = value.as_array();
    if let Some(key) = entry.strip_prefix("k:") {
        return Member::Item(match serde_json::from_str::<Value>(key) {
            Ok(Value::Object(key)) => items.and_then(|i| i.iter().find(|i| key_matches(&key, i))),
            _ => None,
        });
    }
    if let Some(v) = entry.strip_prefix("v:") {
        return Member::Present(
            serde_json::from_str::<Value>(v).is_ok_and(|v| items.is_some_and(|i| i.contains(&v))),
        );
    }
    if let Some(index) = entry.strip_prefix("i:") {
        return Member::Item(
            index
                .parse::<usize>()
                .ok()
                .and_then(|n| items.and_then(|i| i.get(n))),
        );
    }
    Member::Item(None)
}

/// A `k:{...}` key matches an item when every key field is equal; a missing `protocol` in the
/// item counts as `TCP` (the server's default, part of the port keys).
pub(crate) fn key_matches(key: &Map<String, Value>, item: &Value) -> bool {
    key.iter().all(|(k, v)| match item.get(k) {
        Some(iv) => iv == v || (iv.is_number() && iv.as_f64() == v.as_f64()),
        None => k == "protocol" && v.as_str() == Some("TCP"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn desired() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default",
                "labels": {"app": "web", "kubesync.io/source": "default"},
                "annotations": {"kubesync.io/commit": "bbbb", "kubernetes.io/change-cause": "bbbbbbb new"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}}}})
    }

    fn live() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "resourceVersion": "7", "generation": 1,
                "labels": {"app": "web", "kubesync.io/source": "default"},
                "annotations": {"kubesync.io/commit": "aaaa", "kubernetes.io/change-cause": "aaaaaaa old",
                    "deployment.kubernetes.io/revision": "1"},
                "managedFields": [
                    {"manager": "kubesync", "operation": "Apply", "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}, "f:kubesync.io/source": {}},
                        "f:annotations": {"f:kubesync.io/commit": {}, "f:kubernetes.io/change-cause": {}}},
                      "f:spec": {"f:replicas": {}, "f:selector": {},
                        "f:template": {"f:metadata": {"f:labels": {"f:app": {}}},
                          "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {},
                            "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}}}}}}},
                    {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "apps/v1", "subresource": "status",
                     "fieldsV1": {"f:status": {}}}]},
            "spec": {"replicas": 2, "progressDeadlineSeconds": 600, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}]}], "restartPolicy": "Always"}}},
            "status": {"replicas": 2}})
    }

    #[test]
    fn same_content_new_commit_is_unchanged() {
        assert!(is_unchanged(&desired(), &live(), "kubesync"));
    }

    #[test]
    fn changed_value_is_a_change() {
        let mut d = desired();
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
        assert!(!is_unchanged(&d, &live(), "kubesync"));
        let mut d = desired();
        d["metadata"]["annotations"]["team"] = json!("a");
        assert!(!is_unchanged(&d, &live(), "kubesync"));
    }

    #[test]
    fn removed_owned_field_is_a_change() {
        let mut d = desired();
        d["spec"].as_object_mut().map(|s| s.remove("replicas"));
        assert!(!is_unchanged(&d, &live(), "kubesync"));
        let mut d = desired();
        d["spec"]["template"]["spec"]["containers"][0]
            .as_object_mut()
            .map(|c| c.remove("ports"));
        assert!(!is_unchanged(&d, &live(), "kubesync"));
    }

    #[test]
    fn drift_by_another_writer_is_a_change() {
        let mut l = live();
        l["spec"]["replicas"] = json!(5);
        assert!(!is_unchanged(&desired(), &l, "kubesync"));
    }

    #[test]
    fn not_owned_by_kubesync_is_a_change() {
        let mut l = live();
        l["metadata"]["managedFields"][0]["manager"] = json!("kubectl");
        assert!(!is_unchanged(&desired(), &l, "kubesync"));
        let mut l = live();
        l["metadata"]["managedFields"][0]["apiVersion"] = json!("apps/v1beta1");
        assert!(!is_unchanged(&desired(), &l, "kubesync"));
    }

    #[test]
    fn extra_atomic_list_item_is_a_change() {
        let mut d = desired();
        d["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["a"]);
        let mut l = live();
        l["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["a", "b"]);
        assert!(!is_unchanged(&d, &l, "kubesync"));
    }

    #[test]
    fn a_null_is_no_value() {
        // Generated manifests carry `creationTimestamp: null`: the server skips it.
        let mut d = desired();
        d["metadata"]["creationTimestamp"] = Value::Null;
        d["status"] = json!({});
        assert!(is_unchanged(&d, &live(), "kubesync"));
        // An owned field set to null is dropped by the apply: a change.
        let mut d = desired();
        d["spec"]["replicas"] = Value::Null;
        assert!(!is_unchanged(&d, &live(), "kubesync"));
    }

    #[test]
    fn secret_string_data_compares_as_data() {
        let d = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"password": "hunter2"}});
        let l = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "managedFields": [
            {"manager": "kubesync", "operation": "Apply", "apiVersion": "v1", "fieldsV1": {"f:stringData": {"f:password": {}}}}]},
            "data": {"password": "aHVudGVyMg=="}, "type": "Opaque"});
        assert!(is_unchanged(&d, &l, "kubesync"));
        let mut l2 = l.clone();
        l2["data"]["password"] = json!("b3RoZXI=");
        assert!(!is_unchanged(&d, &l2, "kubesync"));
    }
}
