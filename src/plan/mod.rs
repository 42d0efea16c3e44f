//! Pure planning: normalisation, unified diffs, and the comparison of two desired states
//! (base and head commits, or desired and live) into [`Change`]s with their rollout
//! impact.
//!
//! Pure: never talks to git or the cluster; callers hand it loaded, transformed objects.
use crate::manifest::{Object, ObjectId};
use crate::source::Commit;
use crate::transform::{CHANGE_CAUSE_ANNOTATION, COMMIT_ANNOTATION};
use serde_json::Value;
use std::collections::HashMap;

mod impact;
mod revert;

pub use impact::{
    Cause, Rollout, Scale, deployment_impact, pod_template, rollout_shape, template_details,
};
pub use revert::RevertSearch;

/// What a change does to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

/// One object that differs between two states.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub id: ObjectId,
    pub action: Action,
    /// Unified diff of the normalised YAML (Secret values masked).
    pub diff: String,
    /// Set for Deployment updates that replace pods.
    pub rollout: Option<Rollout>,
    /// Set for Deployment updates that change `replicas`.
    pub scale: Option<Scale>,
}

/// The result of `kubesync preview`: every change from `base` to `head`.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    pub base: Commit,
    pub head: Commit,
    pub changes: Vec<Change>,
}

const DROPPED_METADATA: [&str; 6] = [
    "managedFields",
    "resourceVersion",
    "uid",
    "generation",
    "creationTimestamp",
    "selfLink",
];
/// Annotations that can hold a whole earlier body (and so Secret values).
const DROPPED_ANNOTATIONS: [&str; 1] = ["kubectl.kubernetes.io/last-applied-configuration"];
/// What a masked Secret value reads as.
pub const REDACTED: &str = "<redacted>";
/// What a masked Secret value that changed reads as (on the new side of a diff).
pub const REDACTED_CHANGED: &str = "<redacted, changed>";

/// Drops server-managed fields (`managedFields`, `resourceVersion`, `uid`, `generation`,
/// `creationTimestamp`, `selfLink`, `status`) and masks every Secret value: see
/// [`mask_secrets`].
pub fn normalise(obj: &Value) -> Value {
    let mut out = strip_server_fields(obj);
    mask_secrets(&mut out);
    out
}

/// Top-level fields of a Secret that never hold a secret value; every other field is masked.
const SECRET_PUBLIC_FIELDS: [&str; 5] = ["apiVersion", "kind", "metadata", "type", "immutable"];

/// Masks, conservatively, every value a Secret may hold: in any mapping whose `kind` is
/// `Secret` (any apiVersion, any case), every top-level field but `apiVersion`, `kind`,
/// `metadata`, a string `type` and a boolean `immutable` (so `data`, `stringData`, and any
/// misspelt field such as `stringdata`) is masked whatever its shape: a mapping keeps its keys
/// with every value [`REDACTED`]; anything else (a string, a list, a number) becomes
/// [`REDACTED`]. The `items` of a list (`kind: List` or any other) are masked the same way,
/// whether or not the list is well formed.
pub fn mask_secrets(value: &mut Value) {
    let secret = is_secret(value);
    let Value::Object(map) = value else {
        return;
    };
    if secret {
        for (field, v) in map.iter_mut() {
            let public = match field.as_str() {
                "type" => v.is_string(),
                "immutable" => v.is_boolean(),
                f => SECRET_PUBLIC_FIELDS.contains(&f),
            };
            if !public {
                mask_value(v);
            }
        }
    }
    match map.get_mut("items") {
        Some(Value::Array(items)) => items.iter_mut().for_each(mask_secrets),
        Some(Value::Object(items)) => items.values_mut().for_each(mask_secrets),
        _ => {}
    }
}

/// Every value `obj` holds as a Secret (the leaves [`mask_secrets`] would mask), in the forms
/// a message could echo: as written, JSON-escaped, base64-encoded, and base64-decoded (when
/// that is text).
/// Values under 4 characters are left out: redacting them would garble unrelated words.
pub fn secret_values(obj: &Value) -> Vec<String> {
    fn leaves(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Number(n) => out.push(n.to_string()),
            Value::Bool(_) | Value::Null => {}
            Value::Array(a) => a.iter().for_each(|x| leaves(x, out)),
            Value::Object(m) => m.values().for_each(|x| leaves(x, out)),
        }
    }
    fn walk(v: &Value, out: &mut Vec<String>) {
        let Value::Object(map) = v else {
            return;
        };
        if is_secret(v) {
            for (field, value) in map {
                let public = match field.as_str() {
                    "type" => value.is_string(),
                    "immutable" => value.is_boolean(),
                    f => SECRET_PUBLIC_FIELDS.contains(&f),
                };
                if !public {
                    leaves(value, out);
                }
            }
        }
        match map.get("items") {
            Some(Value::Array(items)) => items.iter().for_each(|x| walk(x, out)),
            Some(Value::Object(items)) => items.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut raw = Vec::new();
    walk(obj, &mut raw);
    let mut out = Vec::new();
    for value in raw {
        if let Some(decoded) = crate::base64::decode(&value).and_then(|b| String::from_utf8(b).ok())
        {
            out.push(decoded);
        }
        out.push(crate::base64::encode(value.as_bytes()));
        // As a JSON (or Go `%q`) string quotes it: escaped.
        if let Ok(quoted) = serde_json::to_string(&value) {
            out.push(quoted[1..quoted.len() - 1].to_string());
        }
        out.push(value);
    }
    out.retain(|v| v.chars().count() >= 4);
    // Longest first, so a value containing another is replaced whole.
    out.sort_by_key(|v| std::cmp::Reverse(v.len()));
    out.dedup();
    out
}

/// `message` with every [`secret_values`] of `obj` replaced by [`REDACTED`]: for errors about
/// an object (the API server, or a webhook, may quote the invalid value).
pub fn scrub_secret_values(obj: &Value, message: &str) -> String {
    let mut out = message.to_string();
    for value in secret_values(obj) {
        if out.contains(&value) {
            out = out.replace(&value, REDACTED);
        }
    }
    out
}

/// `error` with [`scrub_secret_values`] applied to the API server's message (other kinds of
/// errors do not quote objects and are returned as they are).
pub fn scrub_api_error(obj: &Value, mut error: kube::Error) -> kube::Error {
    if let kube::Error::Api(status) = &mut error {
        status.message = scrub_secret_values(obj, &status.message);
    }
    error
}

fn mask_value(value: &mut Value) {
    match value {
        Value::Null => {}
        Value::Object(map) => {
            for v in map.values_mut() {
                *v = Value::String(REDACTED.to_string());
            }
        }
        other => *other = Value::String(REDACTED.to_string()),
    }
}

fn strip_server_fields(obj: &Value) -> Value {
    let mut out = obj.clone();
    if let Value::Object(map) = &mut out {
        map.remove("status");
        if let Some(Value::Object(metadata)) = map.get_mut("metadata") {
            for field in DROPPED_METADATA {
                metadata.remove(field);
            }
            if let Some(Value::Object(annotations)) = metadata.get_mut("annotations") {
                for field in DROPPED_ANNOTATIONS {
                    annotations.remove(field);
                }
                if annotations.is_empty() {
                    metadata.remove("annotations");
                }
            }
        }
    }
    out
}

/// Whether `obj`'s kind is Secret, under any apiVersion (or none) and in any case.
pub fn is_secret(obj: &Value) -> bool {
    obj.get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.trim().eq_ignore_ascii_case("secret"))
}

/// The form two states are compared in: server fields dropped, and the per-commit
/// annotations (`kubesync.io/commit`, `kubernetes.io/change-cause`) removed, so that a
/// new commit alone never counts as a change. Secret values are kept (a changed value is
/// a change); [`unified_diff`] masks them.
pub fn comparable(obj: &Value) -> Value {
    let mut out = strip_server_fields(obj);
    if let Some(Value::Object(metadata)) = out.get_mut("metadata")
        && let Some(Value::Object(annotations)) = metadata.get_mut("annotations")
    {
        annotations.remove(COMMIT_ANNOTATION);
        annotations.remove(CHANGE_CAUSE_ANNOTATION);
        if annotations.is_empty() {
            metadata.remove("annotations");
        }
    }
    out
}

/// A unified diff (3 lines of context) of the normalised YAML of two versions of an
/// object; `None` stands for "absent" (create or delete). Secret values never appear:
/// a value that differs shows as `<redacted>` → `<redacted, changed>`.
pub fn unified_diff(old: Option<&Value>, new: Option<&Value>, label: &str) -> String {
    let old_norm = old.map(normalise);
    let mut new_norm = new.map(normalise);
    if let (Some(old), Some(new), Some(Value::Object(masked))) = (old, new, new_norm.as_mut())
        && is_secret(new)
    {
        for (field, out) in masked.iter_mut() {
            if out == new.get(field).unwrap_or(&Value::Null) {
                continue; // not masked
            }
            let before = old.get(field);
            match (before, new.get(field), out) {
                (Some(Value::Object(before)), Some(Value::Object(after)), Value::Object(out)) => {
                    for (key, value) in after {
                        if before.get(key).is_some_and(|b| b != value)
                            && let Some(slot) = out.get_mut(key)
                        {
                            *slot = Value::String(REDACTED_CHANGED.to_string());
                        }
                    }
                }
                (Some(before), Some(after), out) if before != after && !out.is_object() => {
                    *out = Value::String(REDACTED_CHANGED.to_string());
                }
                _ => {}
            }
        }
    }
    let render = |v: &Option<Value>| {
        v.as_ref()
            .map(crate::manifest::yaml::render)
            .unwrap_or_default()
    };
    let (old_text, new_text) = (render(&old_norm), render(&new_norm));
    let old_header = if old.is_some() {
        format!("a/{label}")
    } else {
        "/dev/null".to_string()
    };
    let new_header = if new.is_some() {
        format!("b/{label}")
    } else {
        "/dev/null".to_string()
    };
    similar::TextDiff::from_lines(&old_text, &new_text)
        .unified_diff()
        .context_radius(3)
        .header(&old_header, &new_header)
        .to_string()
}

/// `namespace/Kind/name` (or `Kind/name`), the label diffs are headed with.
pub fn label(id: &ObjectId) -> String {
    match &id.namespace {
        Some(ns) => format!("{ns}/{}/{}", id.kind, id.name),
        None => format!("{}/{}", id.kind, id.name),
    }
}

type Key<'a> = (&'a str, &'a str, Option<&'a str>, &'a str);

/// Every object that differs between `base` and `head` (both loaded and transformed),
/// with diffs and rollout impact, ordered by namespace, kind, name. Rollouts are not yet
/// checked for reverts (that needs history: see [`RevertSearch`]).
pub fn compare(base: &[Object], head: &[Object]) -> Vec<Change> {
    let base_by_key: HashMap<Key<'_>, &Object> = base.iter().map(|o| (o.id.key(), o)).collect();
    let head_by_key: HashMap<Key<'_>, &Object> = head.iter().map(|o| (o.id.key(), o)).collect();
    let configs_changed = |kind: &str, namespace: &str, name: &str| {
        let key = ("", kind, Some(namespace), name);
        match (base_by_key.get(&key), head_by_key.get(&key)) {
            (Some(b), Some(h)) => comparable(&b.body) != comparable(&h.body),
            (None, None) => false,
            _ => true,
        }
    };
    let mut changes = Vec::new();
    for object in head {
        let key = object.id.key();
        match base_by_key.get(&key) {
            None => changes.push(Change {
                id: object.id.clone(),
                action: Action::Create,
                diff: unified_diff(None, Some(&comparable(&object.body)), &label(&object.id)),
                rollout: None,
                scale: None,
            }),
            Some(old) => {
                let (before, after) = (comparable(&old.body), comparable(&object.body));
                if before == after {
                    continue;
                }
                let (rollout, scale) = if crate::transform::is_deployment(&object.id) {
                    let namespace = object.id.namespace.as_deref().unwrap_or("");
                    deployment_impact(&old.body, &object.body, &|kind, name| {
                        configs_changed(kind, namespace, name)
                    })
                } else {
                    (None, None)
                };
                changes.push(Change {
                    id: object.id.clone(),
                    action: Action::Update,
                    diff: unified_diff(Some(&before), Some(&after), &label(&object.id)),
                    rollout,
                    scale,
                });
            }
        }
    }
    for object in base {
        if !head_by_key.contains_key(&object.id.key()) {
            changes.push(Change {
                id: object.id.clone(),
                action: Action::Delete,
                diff: unified_diff(Some(&comparable(&object.body)), None, &label(&object.id)),
                rollout: None,
                scale: None,
            });
        }
    }
    changes.sort_by(|a, b| order_key(&a.id).cmp(&order_key(&b.id)));
    changes
}

fn order_key(id: &ObjectId) -> (&str, &str, &str, &str) {
    (
        id.namespace.as_deref().unwrap_or(""),
        &id.kind,
        &id.name,
        &id.group,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Origin;
    use serde_json::json;

    fn obj(kind: &str, name: &str, body: Value) -> Object {
        let group = if kind == "Deployment" { "apps" } else { "" };
        Object {
            id: ObjectId {
                group: group.into(),
                version: "v1".into(),
                kind: kind.into(),
                namespace: Some("default".into()),
                name: name.into(),
            },
            body,
            origin: Origin {
                file: "f.yaml".into(),
                document: 0,
                line: 1,
            },
        }
    }

    #[test]
    fn normalise_drops_server_fields_and_masks_secrets() {
        let live = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "uid": "u", "resourceVersion": "7", "managedFields": [], "generation": 2,
                         "creationTimestamp": "t", "selfLink": "/x",
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"p\":\"c2VjcmV0\"}}"}},
            "data": {"p": "c2VjcmV0"}, "stringData": {"q": "plain"}, "status": {}});
        assert_eq!(
            normalise(&live),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                   "data": {"p": REDACTED}, "stringData": {"q": REDACTED}})
        );
    }

    #[test]
    fn secret_diff_shows_which_key_changed_but_no_value() {
        let old = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "b2xk", "same": "eA=="}});
        let new = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "bmV3", "same": "eA=="}});
        let diff = unified_diff(Some(&old), Some(&new), "default/Secret/s");
        assert!(diff.contains("-  a: <redacted>"), "{diff}");
        assert!(diff.contains("+  a: <redacted, changed>"), "{diff}");
        assert!(
            !diff.contains("bmV3") && !diff.contains("b2xk") && !diff.contains("eA=="),
            "{diff}"
        );
    }

    /// Every string (and number) anywhere in `v`.
    fn leaves(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Number(n) => out.push(n.to_string()),
            Value::Array(a) => a.iter().for_each(|x| leaves(x, out)),
            Value::Object(m) => m.values().for_each(|x| leaves(x, out)),
            _ => {}
        }
    }

    #[test]
    fn malformed_secrets_are_masked_whatever_their_shape() {
        let cases = [
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": ["CANARY"]}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": "CANARY"}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"pin": 73918462}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"p": {"n": "CANARY"}}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"t": [{"n": "CANARY"}]}}),
            json!({"kind": "Secret", "metadata": {"name": "s"}, "stringData": {"t": "CANARY"}}),
            json!({"apiVersion": "v1beta1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"t": "CANARY"}}),
            json!({"apiVersion": "v1", "kind": "secret", "metadata": {"name": "s"}, "data": {"t": "CANARY"}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringdata": {"t": "CANARY"}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": {"x": "CANARY"}}),
            json!({"apiVersion": "v1", "kind": "List", "items": [
                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": ["CANARY"]}]}),
            json!({"apiVersion": "v1", "kind": "List", "items": {"a":
                {"apiVersion": "v1", "kind": "List", "items": [
                    {"kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "CANARY"}}]}}}),
        ];
        for case in &cases {
            let mut found = Vec::new();
            leaves(&normalise(case), &mut found);
            assert!(
                found
                    .iter()
                    .all(|s| !s.contains("CANARY") && s != "73918462"),
                "{case} -> {found:?}"
            );
            let diff = unified_diff(None, Some(case), "x");
            assert!(
                !diff.contains("CANARY") && !diff.contains("73918462"),
                "{diff}"
            );
        }
        // The public fields stay readable.
        let masked = normalise(&cases[0]);
        assert_eq!(masked["metadata"]["name"], "s");
        assert_eq!(masked["data"], REDACTED);
        // Other kinds are untouched.
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}});
        assert_eq!(normalise(&cm), cm);
    }

    #[test]
    fn errors_about_a_secret_do_not_quote_its_values() {
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hunter"},
            "data": {"pin": 7391846205u64, "pw": crate::base64::encode(b"s3cr3t-pw")},
            "stringData": {"t": {"nested": "tok-123"}}});
        let message = "Secret \"hunter\" is invalid: data[pin]: Invalid value: 7391846205; \
                       data[pw]: czNjcjN0LXB3 is s3cr3t-pw; stringData[t]: {\"nested\":\"tok-123\"}";
        let scrubbed = scrub_secret_values(&secret, message);
        for leak in ["7391846205", "czNjcjN0LXB3", "s3cr3t-pw", "tok-123"] {
            assert!(!scrubbed.contains(leak), "{scrubbed}");
        }
        // Names and keys stay.
        assert!(
            scrubbed
                .starts_with("Secret \"hunter\" is invalid: data[pin]: Invalid value: <redacted>"),
            "{scrubbed}"
        );
        let error = kube::Error::Api(Box::new(
            kube::core::Status::failure(message, "Invalid").with_code(422),
        ));
        assert!(
            !scrub_api_error(&secret, error)
                .to_string()
                .contains("s3cr3t")
        );
        let quoted = json!({"kind": "Secret", "stringData": {"t": "line1\n\"pw\""}});
        let message = r#"stringData[t]: Invalid value: "line1\n\"pw\"""#;
        assert_eq!(
            scrub_secret_values(&quoted, message),
            r#"stringData[t]: Invalid value: "<redacted>""#
        );
        // Not a Secret: nothing to scrub.
        let cm = json!({"kind": "ConfigMap", "data": {"pin": "7391846205"}});
        assert_eq!(scrub_secret_values(&cm, message), message);
    }

    #[test]
    fn a_malformed_secret_value_that_changed_is_marked() {
        let old = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": "b2xk"});
        let new = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": "bmV3"});
        let diff = unified_diff(Some(&old), Some(&new), "default/Secret/s");
        assert!(diff.contains("-data: <redacted>"), "{diff}");
        assert!(diff.contains("+data: <redacted, changed>"), "{diff}");
        assert!(!diff.contains("bmV3") && !diff.contains("b2xk"), "{diff}");
    }

    #[test]
    fn commit_annotations_alone_are_not_a_change() {
        let a = obj(
            "ConfigMap",
            "c",
            json!({"metadata": {"name": "c", "annotations": {COMMIT_ANNOTATION: "1"}}, "data": {"k": "v"}}),
        );
        let b = obj(
            "ConfigMap",
            "c",
            json!({"metadata": {"name": "c", "annotations": {COMMIT_ANNOTATION: "2"}}, "data": {"k": "v"}}),
        );
        assert!(compare(std::slice::from_ref(&a), &[b]).is_empty());
        let c = obj(
            "ConfigMap",
            "c",
            json!({"metadata": {"name": "c"}, "data": {"k": "w"}}),
        );
        let changes = compare(&[a], &[c]);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].action, Action::Update);
        assert!(
            changes[0].diff.contains("-  k: v\n+  k: w\n"),
            "{}",
            changes[0].diff
        );
    }

    #[test]
    fn creates_and_deletes_are_sorted() {
        let changes = compare(
            &[obj("Service", "old", json!({"metadata": {"name": "old"}}))],
            &[obj(
                "ConfigMap",
                "new",
                json!({"metadata": {"name": "new"}}),
            )],
        );
        let actions: Vec<_> = changes
            .iter()
            .map(|c| (c.id.name.as_str(), c.action))
            .collect();
        assert_eq!(actions, [("new", Action::Create), ("old", Action::Delete)]);
        assert!(
            changes[0]
                .diff
                .starts_with("--- /dev/null\n+++ b/default/ConfigMap/new\n"),
            "{}",
            changes[0].diff
        );
    }
}
