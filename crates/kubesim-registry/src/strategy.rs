//! Create and update strategies (`PrepareForCreate`/`PrepareForUpdate` of the real registry):
//! `metadata.generation`, which parts of an object a write to the main resource or to `/status`
//! may change, and server-allocated Service fields carried over on update.
//!
//! Pure functions over the old and new object; must not default or validate (those are
//! `defaults` and `validation`), and must not touch uid/resourceVersion/timestamps (storage does).

use serde_json::{Map, Value, json};

use crate::json::{at, semantic_eq, semantic_eq_field};
use crate::resources::Resource;

/// Kinds whose `metadata.generation` tracks spec changes.
fn has_generation(res: &Resource) -> bool {
    matches!(
        (res.group, res.kind),
        ("apps", _)
            | ("batch", _)
            | ("networking.k8s.io", "Ingress" | "NetworkPolicy")
            | ("policy", "PodDisruptionBudget")
    )
}

/// Kinds whose status is reset on create.
fn clears_status_on_create(res: &Resource) -> bool {
    matches!(
        (res.group, res.kind),
        ("apps", _)
            | ("batch", _)
            | ("autoscaling", _)
            | ("policy", _)
            | ("networking.k8s.io", "Ingress")
    )
}

/// Create strategy: `generation = 1` for kinds with a generation, status reset for workload
/// kinds (`status: {}`), and the initial status of Pods (`Pending` + QoS class), Services
/// (`loadBalancer: {}`) and PVCs (`Pending`).
pub fn prepare_create(res: &Resource, obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    if has_generation(res)
        && let Some(meta) = meta_mut(map)
    {
        meta.insert("generation".into(), json!(1));
    }
    if res.is("batch", "Job") {
        generate_job_selector(map);
    }
    if clears_status_on_create(res) {
        map.insert("status".into(), json!({}));
        return;
    }
    match (res.group, res.kind) {
        ("", "Pod") => {
            let qos = qos_class(map.get("spec"));
            map.insert(
                "status".into(),
                json!({"phase": "Pending", "qosClass": qos}),
            );
        }
        ("", "Service") => {
            map.insert("status".into(), json!({"loadBalancer": {}}));
        }
        ("", "PersistentVolumeClaim") => {
            map.insert("status".into(), json!({"phase": "Pending"}));
        }
        _ => {}
    }
}

/// Update strategy. For the main resource (`subresource == None`): status is taken from `old`
/// (for kinds with a `/status` subresource) and `generation` is bumped when the spec changed
/// (Deployments: also when `metadata.annotations` changed). For `Some("status")`: `spec` and
/// `metadata.labels` are reset to `old`, everything else comes from `new`, generation kept.
/// `Some("scale")` is treated like the main resource. Equality is semantic (nil == empty).
pub fn prepare_update(res: &Resource, old: &Value, new: &mut Value, subresource: Option<&str>) {
    let Some(map) = new.as_object_mut() else {
        return;
    };
    let old_generation = at(old, &["metadata", "generation"]).cloned();
    if subresource == Some("status") {
        restore(map, "spec", old.get("spec"));
        if let Some(meta) = meta_mut(map) {
            restore(meta, "labels", at(old, &["metadata", "labels"]));
            restore(meta, "generation", old_generation.as_ref());
        }
        return;
    }
    if res.has_subresource("status") {
        restore(map, "status", old.get("status"));
    }
    if res.is("", "Service") {
        carry_service_allocations(old, map);
    }
    if res.is("", "Namespace") {
        // `spec.finalizers` only changes through `/finalize`.
        let old_finalizers = at(old, &["spec", "finalizers"]);
        if let Some(spec) = map.get_mut("spec").and_then(Value::as_object_mut) {
            restore(spec, "finalizers", old_finalizers);
        }
    }
    if !has_generation(res) {
        return;
    }
    let mut changed = !semantic_eq(old.get("spec"), map.get("spec"));
    if res.is("apps", "Deployment") {
        changed |= !semantic_eq_field(
            "annotations",
            at(old, &["metadata", "annotations"]),
            map.get("metadata").and_then(|m| m.get("annotations")),
        );
    }
    let old_gen = old_generation.as_ref().and_then(Value::as_i64).unwrap_or(1);
    if let Some(meta) = meta_mut(map) {
        let generation = if changed { old_gen + 1 } else { old_gen };
        meta.insert("generation".into(), json!(generation));
    }
}

/// Unless `spec.manualSelector` is true, a Job selects its pods by its uid: the template gets
/// `job-name`/`controller-uid` labels (legacy and `batch.kubernetes.io/` forms) and the selector
/// `batch.kubernetes.io/controller-uid: <uid>`. Needs `metadata.uid` (set by storage first).
fn generate_job_selector(job: &mut Map<String, Value>) {
    let meta = job.get("metadata");
    let uid = meta
        .and_then(|m| m.get("uid"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let Some(spec) = job.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if uid.is_empty() || spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    if let Some(labels) = child_path(spec, &["template", "metadata", "labels"]) {
        for (k, v) in [
            ("batch.kubernetes.io/controller-uid", &uid),
            ("batch.kubernetes.io/job-name", &name),
            ("controller-uid", &uid),
            ("job-name", &name),
        ] {
            labels.entry(k).or_insert_with(|| json!(v));
        }
    }
    if let Some(ml) = child_path(spec, &["selector", "matchLabels"]) {
        ml.entry("batch.kubernetes.io/controller-uid")
            .or_insert_with(|| json!(uid));
    }
}

/// The object at a path of keys, creating empty objects (also over nulls) on the way.
fn child_path<'a>(
    map: &'a mut Map<String, Value>,
    path: &[&str],
) -> Option<&'a mut Map<String, Value>> {
    let mut cur = map;
    for key in path {
        let slot = cur.entry(*key).or_insert_with(|| json!({}));
        if slot.is_null() {
            *slot = json!({});
        }
        cur = slot.as_object_mut()?;
    }
    Some(cur)
}

/// `map[key] = old` (removing the key when `old` is absent).
fn restore(map: &mut Map<String, Value>, key: &str, old: Option<&Value>) {
    match old {
        Some(v) => {
            map.insert(key.to_string(), v.clone());
        }
        None => {
            map.remove(key);
        }
    }
}

fn meta_mut(map: &mut Map<String, Value>) -> Option<&mut Map<String, Value>> {
    let slot = map.entry("metadata").or_insert_with(|| json!({}));
    if slot.is_null() {
        *slot = json!({});
    }
    slot.as_object_mut()
}

/// A PUT of a Service that omits server-allocated fields keeps them (`patchAllocatedValues`):
/// `clusterIP`/`clusterIPs` (unless switching to ExternalName), node ports of ports with the
/// same port/protocol, and `healthCheckNodePort`.
fn carry_service_allocations(old: &Value, new: &mut Map<String, Value>) {
    let Some(old_spec) = old.get("spec") else {
        return;
    };
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if ty != "ExternalName" {
        for key in ["clusterIP", "clusterIPs"] {
            let missing = spec
                .get(key)
                .is_none_or(|v| v.is_null() || v == "" || v == &json!([]));
            if missing && let Some(v) = old_spec.get(key) {
                spec.insert(key.into(), v.clone());
            }
        }
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        let old_ports = old_spec
            .get("ports")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                if p.get("nodePort")
                    .is_some_and(|n| n.as_i64().unwrap_or(0) != 0)
                {
                    continue;
                }
                let proto = |v: &Value| {
                    v.get("protocol")
                        .and_then(Value::as_str)
                        .unwrap_or("TCP")
                        .to_string()
                };
                let this_proto = p
                    .get("protocol")
                    .and_then(Value::as_str)
                    .unwrap_or("TCP")
                    .to_string();
                if let Some(np) = old_ports
                    .iter()
                    .find(|o| o.get("port") == p.get("port") && proto(o) == this_proto)
                    .and_then(|o| o.get("nodePort"))
                {
                    p.insert("nodePort".into(), np.clone());
                }
            }
        }
        if spec.get("healthCheckNodePort").is_none()
            && let Some(h) = old_spec.get("healthCheckNodePort")
        {
            spec.insert("healthCheckNodePort".into(), h.clone());
        }
    }
}

/// Pod QoS class from container resources: `Guaranteed` when every container has cpu and
/// memory limits equal to its requests, `BestEffort` when nothing is requested or limited,
/// else `Burstable`.
pub fn qos_class(spec: Option<&Value>) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|k| spec.and_then(|s| s.get(*k)).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in &containers {
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        if requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        for r in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(r));
            let request = requests.and_then(|q| q.get(r)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_kind;

    fn deploy() -> &'static Resource {
        by_kind("apps/v1", "Deployment").unwrap()
    }

    fn d(replicas: i64, annotations: Value, status: Value) -> Value {
        json!({"metadata": {"name": "web", "generation": 3, "annotations": annotations,
                "labels": {"app": "web"}},
            "spec": {"replicas": replicas}, "status": status})
    }

    #[test]
    fn create_sets_generation_and_clears_status() {
        let mut o = json!({"metadata": {"name": "web"}, "spec": {}, "status": {"replicas": 5}});
        prepare_create(deploy(), &mut o);
        assert_eq!(o["metadata"]["generation"], 1);
        assert_eq!(o["status"], json!({}));

        let mut cm = json!({"metadata": {"name": "c"}, "data": {}});
        prepare_create(by_kind("v1", "ConfigMap").unwrap(), &mut cm);
        assert_eq!(cm, json!({"metadata": {"name": "c"}, "data": {}}));

        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Running"}});
        prepare_create(by_kind("v1", "Pod").unwrap(), &mut pod);
        assert_eq!(
            pod["status"],
            json!({"phase": "Pending", "qosClass": "BestEffort"})
        );
        assert!(pod["metadata"].get("generation").is_none());
    }

    #[test]
    fn update_keeps_status_and_bumps_generation_on_spec_change() {
        let old = d(1, json!({"a": "1"}), json!({"replicas": 1}));
        let mut new = d(2, json!({"a": "1"}), json!({"replicas": 9}));
        prepare_update(deploy(), &old, &mut new, None);
        assert_eq!(new["status"], json!({"replicas": 1}));
        assert_eq!(new["metadata"]["generation"], 4);

        // No change: generation stays.
        let mut same = d(1, json!({"a": "1"}), json!({}));
        prepare_update(deploy(), &old, &mut same, None);
        assert_eq!(same["metadata"]["generation"], 3);
        assert_eq!(same["status"], json!({"replicas": 1}));
    }

    #[test]
    fn deployment_annotation_change_bumps_generation_label_change_does_not() {
        let old = d(1, json!({"a": "1"}), json!({}));
        let mut new = d(1, json!({"a": "2"}), json!({}));
        prepare_update(deploy(), &old, &mut new, None);
        assert_eq!(new["metadata"]["generation"], 4);

        let mut new = d(1, json!({"a": "1"}), json!({}));
        new["metadata"]["labels"] = json!({"app": "other"});
        prepare_update(deploy(), &old, &mut new, None);
        assert_eq!(new["metadata"]["generation"], 3);

        // nil == empty: removing an empty annotation map is no change.
        let old = d(1, json!({}), json!({}));
        let mut new = d(1, json!(null), json!({}));
        new["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("annotations");
        prepare_update(deploy(), &old, &mut new, None);
        assert_eq!(new["metadata"]["generation"], 3);

        // An annotation with an empty value is a change.
        let old = d(1, json!({}), json!({}));
        let mut new = d(1, json!({"a": ""}), json!({}));
        prepare_update(deploy(), &old, &mut new, None);
        assert_eq!(new["metadata"]["generation"], 4);

        // ReplicaSets ignore annotations.
        let rs = by_kind("apps/v1", "ReplicaSet").unwrap();
        let old = d(1, json!({"a": "1"}), json!({}));
        let mut new = d(1, json!({"a": "2"}), json!({}));
        prepare_update(rs, &old, &mut new, None);
        assert_eq!(new["metadata"]["generation"], 3);
    }

    #[test]
    fn status_update_resets_spec_and_labels_only() {
        let old = d(1, json!({"a": "1"}), json!({}));
        let mut new = d(
            7,
            json!({"deployment.kubernetes.io/revision": "1"}),
            json!({"replicas": 1}),
        );
        new["metadata"]["labels"] = json!({"x": "y"});
        new["metadata"]["generation"] = json!(99);
        prepare_update(deploy(), &old, &mut new, Some("status"));
        assert_eq!(new["spec"], json!({"replicas": 1}));
        assert_eq!(new["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(
            new["metadata"]["annotations"],
            json!({"deployment.kubernetes.io/revision": "1"})
        );
        assert_eq!(new["status"], json!({"replicas": 1}));
        assert_eq!(new["metadata"]["generation"], 3);
    }

    #[test]
    fn kinds_without_status_subresource_take_status_as_given() {
        let cm = by_kind("v1", "ConfigMap").unwrap();
        let old = json!({"metadata": {"name": "c"}, "data": {"a": "1"}});
        let mut new = json!({"metadata": {"name": "c"}, "data": {"a": "2"}});
        prepare_update(cm, &old, &mut new, None);
        assert_eq!(new, json!({"metadata": {"name": "c"}, "data": {"a": "2"}}));
    }

    #[test]
    fn service_update_keeps_allocated_fields() {
        let svc = by_kind("v1", "Service").unwrap();
        let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}, "status": {"loadBalancer": {}}});
        let mut new = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 81}]}});
        prepare_update(svc, &old, &mut new, None);
        assert_eq!(new["spec"]["clusterIP"], "10.96.0.10");
        assert_eq!(new["spec"]["clusterIPs"], json!(["10.96.0.10"]));
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30080);
        assert!(new["spec"]["ports"][1].get("nodePort").is_none());
        assert_eq!(new["status"], json!({"loadBalancer": {}}));
        assert!(new["metadata"].get("generation").is_none());
    }

    #[test]
    fn job_selector_is_generated_from_uid() {
        let job = by_kind("batch/v1", "Job").unwrap();
        let mut j = json!({"metadata": {"name": "migrate", "uid": "u-1"},
            "spec": {"template": {"metadata": {"labels": {"app": "m"}}, "spec": {}}}});
        prepare_create(job, &mut j);
        assert_eq!(
            j["spec"]["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
        );
        assert_eq!(
            j["spec"]["template"]["metadata"]["labels"],
            json!({"app": "m", "batch.kubernetes.io/controller-uid": "u-1", "batch.kubernetes.io/job-name": "migrate",
                "controller-uid": "u-1", "job-name": "migrate"})
        );
        assert_eq!(j["metadata"]["generation"], 1);
        assert_eq!(j["status"], json!({}));
        let mut manual =
            json!({"metadata": {"name": "m", "uid": "u"}, "spec": {"manualSelector": true}});
        prepare_create(job, &mut manual);
        assert!(manual["spec"].get("selector").is_none());
    }

    #[test]
    fn qos_classes() {
        assert_eq!(qos_class(Some(&json!({"containers": [{}]}))), "BestEffort");
        let g = json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]});
        assert_eq!(qos_class(Some(&g)), "Guaranteed");
        let b = json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]});
        assert_eq!(qos_class(Some(&b)), "Burstable");
    }
}
