//! Rollout impact of a Deployment update: will its pods be replaced, why (template,
//! ConfigMap/Secret via the config hash, or a revert), and with what shape (surge and
//! availability bounds, or the downtime of `Recreate`).
//!
//! Pure: compares two bodies; never talks to git or the cluster.
use crate::transform::{CONFIG_HASH_ANNOTATION, canonical_json, referenced_configs};
use serde_json::Value;
use std::collections::BTreeSet;

/// Why a Deployment's pods will be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cause {
    /// The pod template changed.
    Template,
    /// Only the data of a ConfigMap/Secret the pods read changed (the config hash).
    Config,
    /// The new template equals the one at an earlier commit: a rollback.
    Revert,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Template => "template",
            Cause::Config => "config",
            Cause::Revert => "revert",
        }
    }
}

/// A Deployment update that replaces pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    pub cause: Cause,
    /// Names of the ConfigMaps/Secrets read by the pods whose data changed
    /// (`ConfigMap/app-config`).
    pub configs: Vec<String>,
    /// For [`Cause::Revert`]: the most recent earlier commit whose template this is.
    pub revert_of: Option<String>,
    /// `RollingUpdate` or `Recreate`.
    pub strategy: String,
    /// Desired replicas after the change.
    pub replicas: i64,
    /// Most pods that will exist during the rollout (replicas + maxSurge).
    pub max_pods: i64,
    /// Fewest pods that will be available (replicas − maxUnavailable; 0 for `Recreate`).
    pub min_available: i64,
    /// What changed, one line each (`container web: image nginx:1.25 → nginx:1.27`).
    pub details: Vec<String>,
}

/// A change of `spec.replicas`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Scale {
    pub from: i64,
    pub to: i64,
}

/// The pod template of a Deployment body, with server fields dropped (the object revert
/// detection compares).
pub fn pod_template(body: &Value) -> Option<Value> {
    body.pointer("/spec/template").cloned()
}

fn without_hash(template: &Value) -> Value {
    let mut out = template.clone();
    if let Some(Value::Object(annotations)) = out.pointer_mut("/metadata/annotations") {
        annotations.remove(CONFIG_HASH_ANNOTATION);
        if annotations.is_empty()
            && let Some(Value::Object(metadata)) = out.get_mut("metadata")
        {
            metadata.remove("annotations");
        }
    }
    if let Some(Value::Object(metadata)) = out.get_mut("metadata")
        && metadata.is_empty()
        && let Value::Object(map) = &mut out
    {
        map.remove("metadata");
    }
    out
}

fn replicas(body: &Value) -> i64 {
    body.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

/// Compares two versions of a Deployment. `config_changed(kind, name)` says whether the
/// ConfigMap/Secret of that name (same namespace) differs between the two states.
pub fn deployment_impact(
    old: &Value,
    new: &Value,
    config_changed: &dyn Fn(&str, &str) -> bool,
) -> (Option<Rollout>, Option<Scale>) {
    let (from, to) = (replicas(old), replicas(new));
    let scale = (from != to).then_some(Scale { from, to });
    let (Some(old_tpl), Some(new_tpl)) = (pod_template(old), pod_template(new)) else {
        return (None, scale);
    };
    let hash = |t: &Value| {
        t.pointer("/metadata/annotations")
            .and_then(|a| a.get(CONFIG_HASH_ANNOTATION))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let template_changed = without_hash(&old_tpl) != without_hash(&new_tpl);
    let hash_changed = hash(&old_tpl) != hash(&new_tpl);
    if !template_changed && !hash_changed {
        return (None, scale);
    }
    let mut details = if template_changed {
        template_details(&old_tpl, &new_tpl)
    } else {
        Vec::new()
    };
    let mut configs = Vec::new();
    if hash_changed {
        let refs: BTreeSet<(&str, String)> = new_tpl
            .get("spec")
            .map(referenced_configs)
            .unwrap_or_default()
            .into_iter()
            .collect();
        for (kind, name) in refs {
            if config_changed(kind, &name) {
                details.push(format!("{kind} {name} changed"));
                configs.push(format!("{kind}/{name}"));
            }
        }
    }
    let cause = if template_changed {
        Cause::Template
    } else {
        Cause::Config
    };
    let (strategy, max_pods, min_available, shape_details) = rollout_shape(new);
    details.extend(shape_details);
    let rollout = Rollout {
        cause,
        configs,
        revert_of: None,
        strategy,
        replicas: to,
        max_pods,
        min_available,
        details,
    };
    (Some(rollout), scale)
}

/// `(strategy, max pods, min available, notes)` for a Deployment body, as the Deployment
/// controller resolves them: percentages of replicas, maxSurge rounded up, maxUnavailable
/// rounded down, and maxUnavailable 1 when both come to 0.
pub fn rollout_shape(body: &Value) -> (String, i64, i64, Vec<String>) {
    let replicas = replicas(body);
    let strategy = body
        .pointer("/spec/strategy/type")
        .and_then(Value::as_str)
        .unwrap_or("RollingUpdate");
    if strategy == "Recreate" {
        let note = format!(
            "Recreate: all {replicas} old pod(s) are stopped before new ones start — downtime"
        );
        return ("Recreate".to_string(), replicas, 0, vec![note]);
    }
    let rolling = body.pointer("/spec/strategy/rollingUpdate");
    let field = |name: &str| rolling.and_then(|r| r.get(name)).cloned();
    let surge = resolve(field("maxSurge").as_ref(), replicas, true);
    let mut unavailable = resolve(field("maxUnavailable").as_ref(), replicas, false);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    let unavailable = unavailable.min(replicas);
    (
        "RollingUpdate".to_string(),
        replicas + surge,
        replicas - unavailable,
        Vec::new(),
    )
}

/// An int-or-percent (default 25%) against `replicas`.
fn resolve(value: Option<&Value>, replicas: i64, round_up: bool) -> i64 {
    let percent = |p: i64| {
        let scaled = replicas * p;
        if round_up {
            (scaled + 99) / 100
        } else {
            scaled / 100
        }
    };
    match value {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0).max(0),
        Some(Value::String(s)) => match s
            .strip_suffix('%')
            .and_then(|p| p.trim().parse::<i64>().ok())
        {
            Some(p) => percent(p.max(0)),
            None => s.trim().parse::<i64>().unwrap_or(0).max(0),
        },
        _ => percent(25),
    }
}

/// Human lines saying what differs between two pod templates (config hash excluded).
pub fn template_details(old: &Value, new: &Value) -> Vec<String> {
    let (old, new) = (without_hash(old), without_hash(new));
    let mut out = Vec::new();
    for (field, what) in [("labels", "pod labels"), ("annotations", "pod annotations")] {
        if old.pointer(&format!("/metadata/{field}")) != new.pointer(&format!("/metadata/{field}"))
        {
            out.push(format!("{what} changed"));
        }
    }
    let empty = Value::Null;
    let old_spec = old.get("spec").unwrap_or(&empty);
    let new_spec = new.get("spec").unwrap_or(&empty);
    for list in ["initContainers", "containers"] {
        let named = |spec: &Value| -> Vec<(String, Value)> {
            spec.get(list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| {
                    (
                        c.get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        c.clone(),
                    )
                })
                .collect()
        };
        let (before, after) = (named(old_spec), named(new_spec));
        let noun = if list == "containers" {
            "container"
        } else {
            "init container"
        };
        for (name, container) in &after {
            match before.iter().find(|(n, _)| n == name) {
                None => out.push(format!("{noun} {name} added")),
                Some((_, previous)) => container_details(noun, name, previous, container, &mut out),
            }
        }
        for (name, _) in &before {
            if !after.iter().any(|(n, _)| n == name) {
                out.push(format!("{noun} {name} removed"));
            }
        }
    }
    let keys: BTreeSet<&String> = [old_spec, new_spec]
        .iter()
        .filter_map(|s| s.as_object())
        .flat_map(|m| m.keys())
        .filter(|k| *k != "containers" && *k != "initContainers")
        .collect();
    for key in keys {
        if old_spec.get(key) != new_spec.get(key) {
            out.push(format!("{key} changed"));
        }
    }
    if out.is_empty() {
        out.push("pod template changed".to_string());
    }
    out
}

fn container_details(noun: &str, name: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    let keys: BTreeSet<&String> = [old, new]
        .iter()
        .filter_map(|c| c.as_object())
        .flat_map(|m| m.keys())
        .collect();
    for key in keys {
        let (before, after) = (old.get(key), new.get(key));
        if before == after {
            continue;
        }
        let line = match key.as_str() {
            "image" => format!("{noun} {name}: image {} → {}", short(before), short(after)),
            "resources" | "command" | "args" | "ports" => {
                format!("{noun} {name}: {key} {} → {}", short(before), short(after))
            }
            "env" | "envFrom" | "volumeMounts" => format!("{noun} {name}: {key} changed"),
            _ => format!("{noun} {name}: {key} changed"),
        };
        out.push(line);
    }
}

/// A value in one line: plain strings bare, other values as compact JSON, long ones cut.
fn short(value: Option<&Value>) -> String {
    let text = match value {
        None => "(none)".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => canonical_json(other),
    };
    if text.chars().count() > 80 {
        let cut: String = text.chars().take(77).collect();
        format!("{cut}...")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(replicas: i64, image: &str, strategy: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"replicas": replicas, "strategy": strategy,
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "web", "image": image}]}}}})
    }

    fn never(_: &str, _: &str) -> bool {
        false
    }

    #[test]
    fn image_change_is_a_template_rollout_with_default_shape() {
        let (rollout, scale) = deployment_impact(
            &deployment(4, "nginx:1.25", json!(null)),
            &deployment(4, "nginx:1.27", json!(null)),
            &never,
        );
        let rollout = rollout.unwrap();
        assert_eq!(scale, None);
        assert_eq!(rollout.cause, Cause::Template);
        assert_eq!(
            rollout.details,
            ["container web: image nginx:1.25 → nginx:1.27"]
        );
        assert_eq!((rollout.max_pods, rollout.min_available), (5, 3));
    }

    #[test]
    fn replicas_only_is_a_scale() {
        let (rollout, scale) = deployment_impact(
            &deployment(2, "a", json!(null)),
            &deployment(5, "a", json!(null)),
            &never,
        );
        assert!(rollout.is_none());
        assert_eq!(scale, Some(Scale { from: 2, to: 5 }));
    }

    #[test]
    fn shapes_follow_the_deployment_controller() {
        let shape = |replicas, strategy| {
            let (s, max, min, _) = rollout_shape(&deployment(replicas, "a", strategy));
            (s, max, min)
        };
        let rolling = |surge: Value, unavailable: Value| json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}});
        assert_eq!(
            shape(3, rolling(json!(1), json!(0))),
            ("RollingUpdate".into(), 4, 3)
        );
        assert_eq!(
            shape(10, rolling(json!("25%"), json!("25%"))),
            ("RollingUpdate".into(), 13, 8)
        );
        assert_eq!(
            shape(1, rolling(json!("10%"), json!("10%"))),
            ("RollingUpdate".into(), 2, 1)
        );
        assert_eq!(
            shape(3, rolling(json!(0), json!(0))),
            ("RollingUpdate".into(), 3, 2)
        );
        assert_eq!(
            shape(1, rolling(json!(0), json!("50%"))),
            ("RollingUpdate".into(), 1, 0)
        );
        assert_eq!(
            shape(3, json!({"type": "Recreate"})),
            ("Recreate".into(), 3, 0)
        );
    }

    #[test]
    fn config_only_change_names_the_config() {
        let with_hash = |h: &str| {
            let mut d = deployment(2, "a", json!(null));
            d["spec"]["template"]["metadata"]["annotations"] = json!({CONFIG_HASH_ANNOTATION: h});
            d["spec"]["template"]["spec"]["containers"][0]["envFrom"] =
                json!([{"configMapRef": {"name": "app"}}]);
            d
        };
        let changed = |kind: &str, name: &str| kind == "ConfigMap" && name == "app";
        let (rollout, _) = deployment_impact(&with_hash("1"), &with_hash("2"), &changed);
        let rollout = rollout.unwrap();
        assert_eq!(rollout.cause, Cause::Config);
        assert_eq!(rollout.configs, ["ConfigMap/app"]);
        assert_eq!(rollout.details, ["ConfigMap app changed"]);
    }

    #[test]
    fn template_details_cover_probes_env_and_resources() {
        let old = json!({"spec": {"containers": [{"name": "c", "image": "a", "env": [], "resources": {"limits": {"cpu": "1"}}}]}});
        let new = json!({"spec": {"containers": [{"name": "c", "image": "a", "env": [{"name": "X", "value": "1"}],
                          "resources": {"limits": {"cpu": "2"}}, "readinessProbe": {"httpGet": {"path": "/", "port": 8080}}},
                         {"name": "side", "image": "b"}],
                         "serviceAccountName": "x"}});
        assert_eq!(
            template_details(&old, &new),
            [
                "container c: env changed",
                "container c: readinessProbe changed",
                r#"container c: resources {"limits":{"cpu":"1"}} → {"limits":{"cpu":"2"}}"#,
                "container side added",
                "serviceAccountName changed",
            ]
        );
    }
}
