//! Desired-state transforms applied to every loaded object before planning: ownership
//! labels, the commit annotation, the Deployment change-cause, and the config hash on
//! each Deployment's pod template.
//!
//! Pure: works on in-memory objects only; never talks to git or the cluster.
use crate::manifest::{Object, ObjectId};
use crate::source::Commit;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};

/// Label every applied object carries.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "kubesync";
/// Label naming the source that owns the object (prune scope).
pub const SOURCE_LABEL: &str = "kubesync.io/source";
/// Annotation with the full sha of the commit that produced the object.
pub const COMMIT_ANNOTATION: &str = "kubesync.io/commit";
/// Annotation `kubectl rollout history` shows.
pub const CHANGE_CAUSE_ANNOTATION: &str = "kubernetes.io/change-cause";
/// Pod-template annotation holding the hash of the ConfigMaps/Secrets the pods read.
pub const CONFIG_HASH_ANNOTATION: &str = "kubesync.io/config-hash";

/// Deployment annotation: `"false"` leaves ConfigMaps/Secrets that git does not define out of
/// the config hash (by default they are read from the live cluster and hashed too).
pub const LIVE_CONFIG_HASH_ANNOTATION: &str = "kubesync.io/live-config-hash";

/// What the transforms need to know about where the objects came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// Source name (e.g. `default`), written to [`SOURCE_LABEL`].
    pub source: String,
    pub commit: Commit,
}

/// Applies every transform in place. Deterministic: the same objects and context give
/// the same bodies.
pub fn apply(objects: &mut [Object], ctx: &Context) {
    let hashes: Vec<Option<String>> = {
        let index = ConfigIndex::new(objects);
        objects
            .iter()
            .map(|o| {
                if is_deployment(&o.id) {
                    index.hash(o).map(|(h, _)| h)
                } else {
                    None
                }
            })
            .collect()
    };
    let change_cause = format!("{} {}", ctx.commit.short(), ctx.commit.subject)
        .trim_end()
        .to_string();
    for (object, hash) in objects.iter_mut().zip(hashes) {
        let deployment = is_deployment(&object.id);
        let Some(metadata) = object
            .body
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        let labels = child_map(metadata, "labels");
        labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
        labels.insert(SOURCE_LABEL.into(), ctx.source.clone().into());
        let annotations = child_map(metadata, "annotations");
        annotations.insert(COMMIT_ANNOTATION.into(), ctx.commit.sha.clone().into());
        if deployment {
            annotations.insert(CHANGE_CAUSE_ANNOTATION.into(), change_cause.clone().into());
        }
        if let Some(hash) = hash
            && let Some(template) = object
                .body
                .pointer_mut("/spec/template")
                .and_then(Value::as_object_mut)
        {
            let template_meta = child_map(template, "metadata");
            child_map(template_meta, "annotations")
                .insert(CONFIG_HASH_ANNOTATION.into(), hash.into());
        }
    }
}

/// `map[key]` as a mapping, created (or replaced, if it was not a mapping) when needed.
fn child_map<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = map
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(map) => map,
        _ => unreachable!("just made an object"),
    }
}

/// True for `apps` Deployments, whatever the version.
pub fn is_deployment(id: &ObjectId) -> bool {
    id.kind == "Deployment" && id.group == "apps"
}

fn is_config(id: &ObjectId) -> bool {
    id.group.is_empty() && (id.kind == "ConfigMap" || id.kind == "Secret")
}

/// The hash of the data of every ConfigMap/Secret in `configs` (same namespace) that the
/// Deployment's pod template reads, with the ids of those objects (sorted); `None` when it
/// reads none of them. References to objects not in `configs` are not part of the hash.
pub fn config_hash(deployment: &Object, configs: &[Object]) -> Option<(String, Vec<ObjectId>)> {
    ConfigIndex::new(configs).hash(deployment)
}

/// True unless the Deployment opts out with `kubesync.io/live-config-hash: "false"`.
fn wants_live_configs(deployment: &Object) -> bool {
    crate::manifest::at(&deployment.body, &["metadata", "annotations"])
        .and_then(|a| a.get(LIVE_CONFIG_HASH_ANNOTATION))
        .and_then(Value::as_str)
        != Some("false")
}

/// ConfigMaps/Secrets `(kind, namespace, name)` that a Deployment (not opted out) reads but
/// `objects` does not define: the ones to read from the live cluster.
pub fn missing_configs(objects: &[Object]) -> BTreeSet<(&'static str, String, String)> {
    let index = ConfigIndex::new(objects);
    let mut out = BTreeSet::new();
    for d in objects
        .iter()
        .filter(|o| is_deployment(&o.id) && wants_live_configs(o))
    {
        let namespace = d.id.namespace.as_deref().unwrap_or("");
        let Some(template) = crate::manifest::at(&d.body, &["spec", "template", "spec"]) else {
            continue;
        };
        for (kind, name) in referenced_configs(template) {
            if !index
                .by_name
                .contains_key(&(kind, namespace, name.as_str()))
            {
                out.insert((kind, namespace.to_string(), name));
            }
        }
    }
    out
}

/// Recomputes the config hash of every Deployment that does not opt out over the
/// ConfigMaps/Secrets of git plus `live` (those git does not define, read from the cluster), so
/// that a change to a config that only lives in the cluster restarts its readers.
pub fn hash_with_live(objects: &mut [Object], live: &[Object]) {
    if live.is_empty() {
        return;
    }
    let mut configs: Vec<Object> = objects
        .iter()
        .filter(|o| is_config(&o.id))
        .cloned()
        .collect();
    configs.extend(live.iter().filter(|l| is_config(&l.id)).cloned());
    let hashes: Vec<Option<String>> = {
        let index = ConfigIndex::new(&configs);
        objects
            .iter()
            .map(|o| {
                (is_deployment(&o.id) && wants_live_configs(o))
                    .then(|| index.hash(o).map(|(h, _)| h))
                    .flatten()
            })
            .collect()
    };
    for (object, hash) in objects.iter_mut().zip(hashes) {
        if let Some(hash) = hash
            && let Some(template) = object
                .body
                .pointer_mut("/spec/template")
                .and_then(Value::as_object_mut)
        {
            let template_meta = child_map(template, "metadata");
            child_map(template_meta, "annotations")
                .insert(CONFIG_HASH_ANNOTATION.into(), hash.into());
        }
    }
}

/// ConfigMaps and Secrets by (kind, namespace, name).
struct ConfigIndex<'a> {
    by_name: HashMap<(&'a str, &'a str, &'a str), &'a Object>,
}

impl<'a> ConfigIndex<'a> {
    fn new(objects: &'a [Object]) -> Self {
        let by_name = objects
            .iter()
            .filter(|o| is_config(&o.id))
            .map(|o| {
                (
                    (
                        o.id.kind.as_str(),
                        o.id.namespace.as_deref().unwrap_or(""),
                        o.id.name.as_str(),
                    ),
                    o,
                )
            })
            .collect();
        ConfigIndex { by_name }
    }

    fn hash(&self, deployment: &Object) -> Option<(String, Vec<ObjectId>)> {
        let namespace = deployment.id.namespace.as_deref().unwrap_or("");
        let template = crate::manifest::at(&deployment.body, &["spec", "template", "spec"])?;
        let found: Vec<&Object> = referenced_configs(template)
            .into_iter()
            .filter_map(|(kind, name)| self.by_name.get(&(kind, namespace, name.as_str())).copied())
            .collect();
        if found.is_empty() {
            return None;
        }
        let mut hasher = Sha256::new();
        for object in &found {
            hasher.update(object.id.kind.as_bytes());
            hasher.update([0]);
            hasher.update(object.id.name.as_bytes());
            hasher.update([0]);
            hash_config_data(&mut hasher, &object.body);
        }
        let hash = crate::hex(&hasher.finalize());
        Some((hash, found.iter().map(|o| o.id.clone()).collect()))
    }
}

/// Feeds a ConfigMap's or Secret's data (`data`, `binaryData`, `stringData`, each canonical
/// and delimited) to `hasher`.
pub fn hash_config_data(hasher: &mut Sha256, body: &Value) {
    for field in ["data", "binaryData", "stringData"] {
        hasher.update(field.as_bytes());
        hasher.update([0]);
        if let Some(value) = body.get(field) {
            hasher.update(canonical_json(value).as_bytes());
        }
        hasher.update([0]);
    }
}

/// Every (kind, name) of ConfigMap/Secret a pod spec reads, sorted and unique.
pub fn referenced_configs(pod_spec: &Value) -> BTreeSet<(&'static str, String)> {
    let mut out = BTreeSet::new();
    let mut add = |kind: &'static str, name: Option<&Value>| {
        if let Some(name) = name.and_then(Value::as_str) {
            out.insert((kind, name.to_string()));
        }
    };
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for container in pod_spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for env in container
                .get("env")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                add(
                    "ConfigMap",
                    crate::manifest::at(env, &["valueFrom", "configMapKeyRef", "name"]),
                );
                add(
                    "Secret",
                    crate::manifest::at(env, &["valueFrom", "secretKeyRef", "name"]),
                );
            }
            for from in container
                .get("envFrom")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                add(
                    "ConfigMap",
                    crate::manifest::at(from, &["configMapRef", "name"]),
                );
                add("Secret", crate::manifest::at(from, &["secretRef", "name"]));
            }
        }
    }
    for volume in pod_spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        add(
            "ConfigMap",
            crate::manifest::at(volume, &["configMap", "name"]),
        );
        add(
            "Secret",
            crate::manifest::at(volume, &["secret", "secretName"]),
        );
        for source in crate::manifest::at(volume, &["projected", "sources"])
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            add(
                "ConfigMap",
                crate::manifest::at(source, &["configMap", "name"]),
            );
            add("Secret", crate::manifest::at(source, &["secret", "name"]));
        }
    }
    out
}

/// JSON with object keys sorted at every level: the same data always hashes the same,
/// whatever order the YAML listed the keys in.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Origin;
    use serde_json::json;

    fn object(group: &str, kind: &str, name: &str, body: Value) -> Object {
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
                file: "x.yaml".into(),
                document: 0,
                line: 1,
            },
        }
    }

    fn deployment(pod_spec: Value) -> Object {
        object(
            "apps",
            "Deployment",
            "web",
            json!({"metadata": {"name": "web"}, "spec": {"template": {"spec": pod_spec}}}),
        )
    }

    fn ctx() -> Context {
        Context {
            source: "default".into(),
            commit: Commit {
                sha: "abcdef1234567890abcdef1234567890abcdef12".into(),
                subject: "Bump web".into(),
                time: 0,
            },
        }
    }

    #[test]
    fn labels_annotations_and_change_cause() {
        let mut objects = vec![
            deployment(json!({"containers": [{"name": "c", "image": "nginx"}]})),
            object(
                "",
                "Service",
                "svc",
                json!({"metadata": {"name": "svc", "labels": {"app": "x"}}}),
            ),
        ];
        apply(&mut objects, &ctx());
        let d = &objects[0].body["metadata"];
        assert_eq!(d["labels"][MANAGED_BY_LABEL], "kubesync");
        assert_eq!(d["labels"][SOURCE_LABEL], "default");
        assert_eq!(
            d["annotations"][COMMIT_ANNOTATION],
            "abcdef1234567890abcdef1234567890abcdef12"
        );
        assert_eq!(
            d["annotations"][CHANGE_CAUSE_ANNOTATION],
            "abcdef1 Bump web"
        );
        assert!(objects[0].body.pointer("/spec/template/metadata").is_none());
        let s = &objects[1].body["metadata"];
        assert_eq!(s["labels"]["app"], "x");
        assert!(s["annotations"].get(CHANGE_CAUSE_ANNOTATION).is_none());
    }

    #[test]
    fn config_hash_covers_every_reference_kind_and_is_order_independent() {
        let spec = json!({
            "containers": [{"name": "c",
                "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "a"}}},
                        {"name": "B", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "b"}}}],
                "envFrom": [{"configMapRef": {"name": "from-cm"}}]}],
            "volumes": [{"name": "v", "configMap": {"name": "vol-cm"}},
                        {"name": "p", "projected": {"sources": [{"secret": {"name": "proj-secret"}}]}}]
        });
        let refs = referenced_configs(&spec);
        assert_eq!(refs.len(), 5);
        let cm = |name: &str, data: Value| {
            object(
                "",
                "ConfigMap",
                name,
                json!({"metadata": {"name": name}, "data": data}),
            )
        };
        let configs = vec![
            cm("env-cm", json!({"a": "1", "b": "2"})),
            cm("vol-cm", json!({"x": "y"})),
            cm("unrelated", json!({"x": "y"})),
        ];
        let (hash, ids) = config_hash(&deployment(spec.clone()), &configs).unwrap();
        assert_eq!(
            ids.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
            ["env-cm", "vol-cm"]
        );
        let reordered = vec![
            cm("vol-cm", json!({"x": "y"})),
            cm("env-cm", json!({"b": "2", "a": "1"})),
        ];
        assert_eq!(
            config_hash(&deployment(spec.clone()), &reordered)
                .unwrap()
                .0,
            hash
        );
        let changed = vec![
            cm("env-cm", json!({"a": "1", "b": "3"})),
            cm("vol-cm", json!({"x": "y"})),
        ];
        assert_ne!(
            config_hash(&deployment(spec.clone()), &changed).unwrap().0,
            hash
        );
        assert!(config_hash(&deployment(json!({"containers": []})), &configs).is_none());
    }

    #[test]
    fn apply_puts_the_hash_on_the_pod_template() {
        let mut objects = vec![
            deployment(
                json!({"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "cm"}}]}]}),
            ),
            object(
                "",
                "ConfigMap",
                "cm",
                json!({"metadata": {"name": "cm"}, "data": {"k": "v"}}),
            ),
        ];
        apply(&mut objects, &ctx());
        let hash = objects[0]
            .body
            .pointer("/spec/template/metadata/annotations/kubesync.io~1config-hash");
        assert_eq!(hash.and_then(Value::as_str).map(str::len), Some(64));
    }

    #[test]
    fn configs_git_lacks_are_hashed_from_live_unless_opted_out() {
        let reads =
            json!({"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "live"}}]}]});
        let mut objects = vec![deployment(reads.clone())];
        let mut opted = deployment(reads);
        opted.id.name = "opted".into();
        opted.body["metadata"]["annotations"] = json!({LIVE_CONFIG_HASH_ANNOTATION: "false"});
        objects.push(opted);
        let missing = missing_configs(&objects);
        assert_eq!(missing.len(), 1);
        let (kind, ns, name) = missing.iter().next().unwrap().clone();
        assert_eq!((kind, name.as_str()), ("ConfigMap", "live"));
        let mut live = object("", "ConfigMap", "live", json!({"data": {"a": "1"}}));
        live.id.namespace = Some(ns);
        hash_with_live(&mut objects, std::slice::from_ref(&live));
        let hash = |o: &Object| {
            o.body
                .pointer("/spec/template/metadata/annotations/kubesync.io~1config-hash")
                .cloned()
        };
        let first = hash(&objects[0]).expect("hashed");
        assert_eq!(hash(&objects[1]), None);
        live.body["data"]["a"] = json!("2");
        hash_with_live(&mut objects, std::slice::from_ref(&live));
        assert_ne!(hash(&objects[0]).unwrap(), first);
    }

    #[test]
    fn canonical_json_sorts_keys() {
        assert_eq!(
            canonical_json(&json!({"b": 1, "a": [{"d": 1, "c": 2}]})),
            r#"{"a":[{"c":2,"d":1}],"b":1}"#
        );
    }
}
