//! The `/scale` subresource: the `autoscaling/v1` `Scale` view of a Deployment, ReplicaSet or
//! StatefulSet, and writing a Scale's `spec.replicas` back into the object.
//!
//! Pure; preconditions (resourceVersion) and storage are the caller's business.

use serde_json::{Map, Value, json};

use crate::json::selector_string;
use crate::resources::Resource;
use crate::validation::{Cause, Invalid};

/// The Scale for `obj`, or `None` when `res` has no `/scale` subresource.
pub fn scale_of(res: &Resource, obj: &Value) -> Option<Value> {
    if !res.has_subresource("scale") {
        return None;
    }
    let mut meta = Map::new();
    for key in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = obj
            .get("metadata")
            .and_then(|m| m.get(key))
            .filter(|v| !v.is_null())
        {
            meta.insert(key.into(), v.clone());
        }
    }
    let replicas = obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let current = obj
        .pointer("/status/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let mut status = Map::new();
    status.insert("replicas".into(), json!(current));
    if let Some(sel) = obj
        .pointer("/spec/selector")
        .and_then(selector_string)
        .filter(|s| !s.is_empty())
    {
        status.insert("selector".into(), json!(sel));
    }
    Some(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": meta,
        "spec": {"replicas": replicas},
        "status": status,
    }))
}

/// Write `scale.spec.replicas` into `obj.spec.replicas` (absent means 0, as the Go type has no
/// pointer). Negative or non-integer replicas → 422 on `Scale.autoscaling`; so is a kind
/// without a `/scale` subresource (`spec.replicas: Forbidden`), which callers should have
/// routed to 404 already.
pub fn apply_scale(res: &Resource, obj: &mut Value, scale: &Value) -> Result<(), Invalid> {
    let name = scale
        .pointer("/metadata/name")
        .or_else(|| obj.pointer("/metadata/name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let invalid = |cause: Cause| Invalid {
        kind: "Scale".into(),
        group: "autoscaling".into(),
        name: name.clone(),
        causes: vec![cause],
    };
    if !res.has_subresource("scale") {
        return Err(invalid(Cause::forbidden(
            "spec.replicas",
            &format!("{} has no scale subresource", res.group_resource()),
        )));
    }
    let replicas = match scale.pointer("/spec/replicas") {
        None | Some(Value::Null) => 0,
        Some(v) => match v.as_i64() {
            Some(n) if n < 0 => {
                return Err(invalid(Cause::invalid(
                    "spec.replicas",
                    &n.to_string(),
                    "must be greater than or equal to 0",
                )));
            }
            Some(n) => n,
            None => {
                return Err(invalid(Cause::invalid(
                    "spec.replicas",
                    &v.to_string(),
                    "must be an integer",
                )));
            }
        },
    };
    let Some(map) = obj.as_object_mut() else {
        return Ok(());
    };
    let spec = map.entry("spec").or_insert_with(|| json!({}));
    if !spec.is_object() {
        *spec = json!({});
    }
    if let Some(spec) = spec.as_object_mut() {
        spec.insert("replicas".into(), json!(replicas));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_kind;

    fn deployment() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "7",
                "creationTimestamp": "2026-11-21T22:00:00Z", "labels": {"a": "b"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "tier": "fe"}}},
            "status": {"replicas": 2}})
    }

    #[test]
    fn scale_view() {
        let d = by_kind("apps/v1", "Deployment").unwrap();
        assert_eq!(
            scale_of(d, &deployment()).unwrap(),
            json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "7",
                    "creationTimestamp": "2026-11-21T22:00:00Z"},
                "spec": {"replicas": 3},
                "status": {"replicas": 2, "selector": "app=web,tier=fe"}})
        );
        assert!(scale_of(by_kind("v1", "Pod").unwrap(), &deployment()).is_none());
    }

    #[test]
    fn apply_scale_writes_replicas() {
        let res = by_kind("apps/v1", "Deployment").unwrap();
        let mut d = deployment();
        apply_scale(res, &mut d, &json!({"spec": {"replicas": 5}})).unwrap();
        assert_eq!(d["spec"]["replicas"], 5);
        apply_scale(res, &mut d, &json!({"spec": {}})).unwrap();
        assert_eq!(d["spec"]["replicas"], 0);
        let err = apply_scale(
            res,
            &mut d,
            &json!({"metadata": {"name": "web"}, "spec": {"replicas": -1}}),
        )
        .unwrap_err();
        assert_eq!(
            err.message(),
            "Scale.autoscaling \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(d["spec"]["replicas"], 0);
        let pod = by_kind("v1", "Pod").unwrap();
        assert!(apply_scale(pod, &mut d, &json!({"spec": {"replicas": 1}})).is_err());
    }
}
