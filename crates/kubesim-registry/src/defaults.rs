//! Defaulting: the fields the API server fills in on create and update before validation
//! (`SetDefaults_*` of the versioned types plus the admission defaults every pod receives).
//!
//! Must be idempotent (defaulting a defaulted object changes nothing) and must never add empty
//! `metadata.labels`/`metadata.annotations`. It must not validate: malformed values are left
//! alone for `validate` to report.

use serde_json::{Map, Value, json};

use crate::json::{base64_encode, child, child_in, existing, set_default};
use crate::resources::Resource;

/// Apply the API server's defaults for `res` to `obj` in place.
pub fn default(res: &Resource, obj: &mut Value) {
    if !obj.is_object() {
        return;
    }
    match (res.group, res.kind) {
        ("apps", "Deployment") => default_deployment(obj),
        ("apps", "ReplicaSet") => default_replica_set(obj),
        ("apps", "StatefulSet") => default_stateful_set(obj),
        ("apps", "DaemonSet") => default_daemon_set(obj),
        ("batch", "Job") => default_job(obj),
        ("batch", "CronJob") => default_cron_job(obj),
        ("", "Pod") => default_pod(obj),
        ("", "Service") => default_service(obj),
        ("", "Secret") => default_secret(obj),
        ("", "Namespace") => default_namespace(obj),
        ("", "PersistentVolumeClaim") => {
            if let Some(spec) = child(obj, "spec") {
                set_default(spec, "volumeMode", json!("Filesystem"));
            }
        }
        _ => {}
    }
}

fn default_deployment(obj: &mut Value) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
    if let Some(strategy) = child_in(spec, "strategy") {
        set_default(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(ru) = child_in(strategy, "rollingUpdate")
        {
            set_default(ru, "maxUnavailable", json!("25%"));
            set_default(ru, "maxSurge", json!("25%"));
        }
    }
    if let Some(spec) = existing(obj, "spec") {
        default_template(spec);
    }
}

fn default_replica_set(obj: &mut Value) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    set_default(spec, "replicas", json!(1));
    if let Some(spec) = existing(obj, "spec") {
        default_template(spec);
    }
}

fn default_stateful_set(obj: &mut Value) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "podManagementPolicy", json!("OrderedReady"));
    set_default(
        spec,
        "persistentVolumeClaimRetentionPolicy",
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
    );
    set_default(spec, "updateStrategy", json!({"type": "RollingUpdate"}));
    if let Some(us) = spec
        .get_mut("updateStrategy")
        .and_then(Value::as_object_mut)
        && us.get("type").and_then(Value::as_str) == Some("RollingUpdate")
    {
        set_default(us, "rollingUpdate", json!({"partition": 0}));
    }
    if let Some(spec) = existing(obj, "spec") {
        default_template(spec);
    }
}

fn default_daemon_set(obj: &mut Value) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(
        spec,
        "updateStrategy",
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
    );
    if let Some(spec) = existing(obj, "spec") {
        default_template(spec);
    }
}

fn default_job(obj: &mut Value) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    let unset = |spec: &Map<String, Value>, k: &str| spec.get(k).is_none_or(Value::is_null);
    if unset(spec, "completions") && unset(spec, "parallelism") {
        spec.insert("completions".into(), json!(1));
    }
    set_default(spec, "parallelism", json!(1));
    let backoff = if unset(spec, "backoffLimitPerIndex") {
        6
    } else {
        i64::from(i32::MAX)
    };
    set_default(spec, "backoffLimit", json!(backoff));
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    let replacement = if unset(spec, "podFailurePolicy") {
        "TerminatingOrFailed"
    } else {
        "Failed"
    };
    set_default(spec, "podReplacementPolicy", json!(replacement));
    // batch/v1 copies the template labels to an unlabelled Job.
    let template_labels = spec
        .get("template")
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .filter(|l| l.as_object().is_some_and(|m| !m.is_empty()))
        .cloned();
    if let (Some(labels), Some(meta)) = (template_labels, child(obj, "metadata"))
        && meta
            .get("labels")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty)
    {
        meta.insert("labels".into(), labels);
    }
    if let Some(spec) = existing(obj, "spec") {
        default_template(spec);
    }
}

fn default_cron_job(obj: &mut Value) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    set_default(spec, "concurrencyPolicy", json!("Allow"));
    set_default(spec, "suspend", json!(false));
    set_default(spec, "successfulJobsHistoryLimit", json!(3));
    set_default(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(job_spec) = spec
        .get_mut("jobTemplate")
        .and_then(|jt| jt.get_mut("spec"))
        .filter(|s| s.is_object())
    {
        default_template(job_spec);
    }
}

/// Pod-template defaults under `spec.template.spec` of a workload spec. Does nothing when the
/// template is absent (validation reports that).
fn default_template(spec: &mut Value) {
    if let Some(pod_spec) = spec
        .get_mut("template")
        .filter(|t| t.is_object())
        .and_then(|t| child(t, "spec"))
    {
        default_pod_spec(pod_spec);
    }
}

fn default_pod(obj: &mut Value) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    default_pod_spec(spec);
    // Admission defaults every real pod receives (ServiceAccount, Priority, DefaultTolerationSeconds).
    set_default(spec, "enableServiceLinks", json!(true));
    set_default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    set_default(spec, "priority", json!(0));
    set_default(spec, "serviceAccountName", json!("default"));
    if let Some(sa) = spec.get("serviceAccountName").cloned() {
        set_default(spec, "serviceAccount", sa);
    }
    let tolerations = spec
        .entry("tolerations")
        .or_insert_with(|| Value::Array(Vec::new()));
    if tolerations.is_null() {
        *tolerations = Value::Array(Vec::new());
    }
    if let Some(list) = tolerations.as_array_mut() {
        for key in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ] {
            let has = list.iter().any(|t| {
                t.get("key").and_then(Value::as_str) == Some(key)
                    || (t.get("operator").and_then(Value::as_str) == Some("Exists")
                        && t.get("key").is_none_or(|k| k.as_str() == Some("")))
            });
            if !has {
                list.push(
                    json!({"key": key, "operator": "Exists", "effect": "NoExecute",
                    "tolerationSeconds": 300}),
                );
            }
        }
    }
}

/// `SetDefaults_PodSpec` and friends for a pod spec (pods and templates).
fn default_pod_spec(spec: &mut Map<String, Value>) {
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "securityContext", json!({}));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                default_container(c);
            }
        }
    }
    if let Some(vols) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        for v in vols.iter_mut().filter_map(Value::as_object_mut) {
            for source in ["configMap", "secret", "downwardAPI", "projected"] {
                if let Some(s) = v.get_mut(source).and_then(Value::as_object_mut) {
                    set_default(s, "defaultMode", json!(420));
                }
            }
        }
    }
}

fn default_container(c: &mut Map<String, Value>) {
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    set_default(c, "resources", json!({}));
    let policy = image_pull_policy(c.get("image").and_then(Value::as_str).unwrap_or(""));
    set_default(c, "imagePullPolicy", json!(policy));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            set_default(p, "protocol", json!("TCP"));
        }
    }
    if let Some(env) = c.get_mut("env").and_then(Value::as_array_mut) {
        for e in env.iter_mut() {
            if let Some(fr) = e
                .get_mut("valueFrom")
                .and_then(|vf| vf.get_mut("fieldRef"))
                .and_then(Value::as_object_mut)
            {
                set_default(fr, "apiVersion", json!("v1"));
            }
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) {
            set_default(p, "timeoutSeconds", json!(1));
            set_default(p, "periodSeconds", json!(10));
            set_default(p, "successThreshold", json!(1));
            set_default(p, "failureThreshold", json!(3));
            if let Some(h) = p.get_mut("httpGet").and_then(Value::as_object_mut) {
                set_default(h, "path", json!("/"));
                set_default(h, "scheme", json!("HTTP"));
            }
        }
    }
}

/// `Always` when the image has no tag or the tag is `latest`, else `IfNotPresent`
/// (a digest without tag also means `IfNotPresent`).
pub fn image_pull_policy(image: &str) -> &'static str {
    let (name, digest) = match image.split_once('@') {
        Some((n, _)) => (n, true),
        None => (image, false),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.split_once(':') {
        Some((_, "latest")) => "Always",
        Some(_) => "IfNotPresent",
        None if digest => "IfNotPresent",
        None => "Always",
    }
}

fn default_service(obj: &mut Value) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    set_default(spec, "type", json!("ClusterIP"));
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    set_default(spec, "sessionAffinity", json!("None"));
    if ty != "ExternalName" {
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
        set_default(spec, "ipFamilies", json!(["IPv4"]));
        set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        set_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            set_default(p, "protocol", json!("TCP"));
            if let Some(port) = p.get("port").cloned() {
                set_default(p, "targetPort", port);
            }
        }
    }
    if let Some(status) = child(obj, "status") {
        set_default(status, "loadBalancer", json!({}));
    }
}

fn default_secret(obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    set_default(map, "type", json!("Opaque"));
    // `stringData` is write-only: folded into `data` (overriding same keys), never stored.
    if let Some(Value::Object(sd)) = map.remove("stringData") {
        let data = map
            .entry("data")
            .or_insert_with(|| Value::Object(Map::new()));
        if data.is_null() {
            *data = Value::Object(Map::new());
        }
        if let Some(data) = data.as_object_mut() {
            for (k, v) in sd {
                let s = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                data.insert(k, Value::String(base64_encode(s.as_bytes())));
            }
        }
    }
}

fn default_namespace(obj: &mut Value) {
    if let Some(name) = obj
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        && let Some(labels) = obj.get_mut("metadata").and_then(|m| child(m, "labels"))
    {
        labels.insert("kubernetes.io/metadata.name".into(), Value::String(name));
    }
    if let Some(spec) = child(obj, "spec") {
        set_default(spec, "finalizers", json!(["kubernetes"]));
    }
    if let Some(status) = child(obj, "status") {
        set_default(status, "phase", json!("Active"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_kind;

    fn defaulted(api_version: &str, kind: &str, mut obj: Value) -> Value {
        let res = by_kind(api_version, kind).unwrap();
        default(res, &mut obj);
        let again = {
            let mut o = obj.clone();
            default(res, &mut o);
            o
        };
        assert_eq!(obj, again, "defaulting must be idempotent");
        obj
    }

    #[test]
    fn deployment_defaults() {
        let d = defaulted(
            "apps/v1",
            "Deployment",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                            "ports": [{"containerPort": 80}]}]}}}}),
        );
        assert_eq!(
            d["spec"],
            json!({"selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File", "resources": {},
                        "imagePullPolicy": "IfNotPresent"}],
                        "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                        "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
                        "securityContext": {}}},
                "replicas": 1, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
                "strategy": {"type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}})
        );
        // Never adds empty labels/annotations.
        assert!(d["metadata"].get("labels").is_none());
        assert!(d["metadata"].get("annotations").is_none());
    }

    #[test]
    fn deployment_keeps_given_values_and_recreate_gets_no_rolling_update() {
        let d = defaulted(
            "apps/v1",
            "Deployment",
            json!({"spec": {"replicas": 0, "strategy": {"type": "Recreate"},
                "template": {"spec": {"containers": []}}}}),
        );
        assert_eq!(d["spec"]["replicas"], 0);
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
        let d = defaulted(
            "apps/v1",
            "Deployment",
            json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 0}}}}),
        );
        assert_eq!(
            d["spec"]["strategy"],
            json!({"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "25%"}, "type": "RollingUpdate"})
        );
        // No template: nothing invented under it.
        assert!(d["spec"].get("template").is_none());
    }

    #[test]
    fn image_pull_policy_by_tag() {
        assert_eq!(image_pull_policy("nginx"), "Always");
        assert_eq!(image_pull_policy("nginx:latest"), "Always");
        assert_eq!(image_pull_policy("nginx:1.27"), "IfNotPresent");
        assert_eq!(image_pull_policy("localhost:5000/nginx"), "Always");
        assert_eq!(image_pull_policy("localhost:5000/nginx:v2"), "IfNotPresent");
        assert_eq!(image_pull_policy("nginx@sha256:abc"), "IfNotPresent");
        let d = defaulted(
            "apps/v1",
            "ReplicaSet",
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "a", "image": "nginx"},
                {"name": "b", "image": "nginx:1", "imagePullPolicy": "Never"}]}}}}),
        );
        assert_eq!(d["spec"]["replicas"], 1);
        let cs = &d["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs[0]["imagePullPolicy"], "Always");
        assert_eq!(cs[1]["imagePullPolicy"], "Never");
    }

    #[test]
    fn pod_defaults_include_admission_fields() {
        let p = defaulted(
            "v1",
            "Pod",
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox:1",
                "readinessProbe": {"httpGet": {"port": 80}},
                "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}],
                "volumes": [{"name": "v", "configMap": {"name": "cm"}}]}}),
        );
        let spec = &p["spec"];
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["serviceAccountName"], "default");
        assert_eq!(spec["serviceAccount"], "default");
        assert_eq!(spec["enableServiceLinks"], true);
        assert_eq!(spec["priority"], 0);
        assert_eq!(spec["tolerations"].as_array().unwrap().len(), 2);
        assert_eq!(spec["tolerations"][0]["tolerationSeconds"], 300);
        assert_eq!(spec["volumes"][0]["configMap"]["defaultMode"], 420);
        let c = &spec["containers"][0];
        assert_eq!(c["readinessProbe"]["periodSeconds"], 10);
        assert_eq!(c["readinessProbe"]["httpGet"]["scheme"], "HTTP");
        assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
    }

    #[test]
    fn service_defaults() {
        let s = defaulted(
            "v1",
            "Service",
            json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"},
                "ports": [{"port": 80}, {"port": 443, "targetPort": "https", "protocol": "TCP"}]}}),
        );
        assert_eq!(
            s["spec"],
            json!({"selector": {"app": "web"},
                "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80},
                          {"port": 443, "targetPort": "https", "protocol": "TCP"}],
                "type": "ClusterIP", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
                "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"})
        );
        assert_eq!(s["status"], json!({"loadBalancer": {}}));
        let s = defaulted(
            "v1",
            "Service",
            json!({"spec": {"type": "NodePort", "ports": [{"port": 80}]}}),
        );
        assert_eq!(s["spec"]["externalTrafficPolicy"], "Cluster");
        let s = defaulted(
            "v1",
            "Service",
            json!({"spec": {"type": "ExternalName", "externalName": "example.com"}}),
        );
        assert!(s["spec"].get("ipFamilies").is_none());
        assert!(s["spec"].get("externalTrafficPolicy").is_none());
    }

    #[test]
    fn secret_string_data_is_folded_into_data() {
        let s = defaulted(
            "v1",
            "Secret",
            json!({"metadata": {"name": "s"}, "data": {"a": "eA==", "b": "eA=="},
                "stringData": {"b": "hello", "c": "x"}}),
        );
        assert_eq!(s["type"], "Opaque");
        assert!(s.get("stringData").is_none());
        assert_eq!(
            s["data"],
            json!({"a": "eA==", "b": "aGVsbG8=", "c": "eA=="})
        );
        let s = defaulted(
            "v1",
            "Secret",
            json!({"type": "kubernetes.io/tls", "stringData": {"k": "v"}}),
        );
        assert_eq!(s["type"], "kubernetes.io/tls");
        assert_eq!(s["data"], json!({"k": "dg=="}));
    }

    #[test]
    fn namespace_defaults() {
        let n = defaulted("v1", "Namespace", json!({"metadata": {"name": "team-a"}}));
        assert_eq!(n["spec"], json!({"finalizers": ["kubernetes"]}));
        assert_eq!(n["status"], json!({"phase": "Active"}));
        assert_eq!(
            n["metadata"]["labels"],
            json!({"kubernetes.io/metadata.name": "team-a"})
        );
    }

    #[test]
    fn job_defaults() {
        let j = defaulted(
            "batch/v1",
            "Job",
            json!({"metadata": {"name": "j"}, "spec": {"template": {"metadata": {"labels": {"app": "m"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1"}]}}}}),
        );
        assert_eq!(j["metadata"]["labels"], json!({"app": "m"}));
        assert_eq!(j["spec"]["completions"], 1);
        assert_eq!(j["spec"]["parallelism"], 1);
        assert_eq!(j["spec"]["backoffLimit"], 6);
        assert_eq!(j["spec"]["completionMode"], "NonIndexed");
        assert_eq!(j["spec"]["suspend"], false);
        assert_eq!(j["spec"]["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(j["spec"]["template"]["spec"]["restartPolicy"], "Never");
        let p = defaulted(
            "batch/v1",
            "Job",
            json!({"metadata": {"name": "j", "labels": {"x": "y"}}, "spec": {"parallelism": 3}}),
        );
        assert!(p["spec"].get("completions").is_none());
        assert_eq!(p["metadata"]["labels"], json!({"x": "y"}));
    }

    #[test]
    fn other_kinds_stored_as_given() {
        let obj = json!({"metadata": {"name": "cm"}, "data": {"a": "b"}});
        assert_eq!(defaulted("v1", "ConfigMap", obj.clone()), obj);
        let obj = json!({"metadata": {"name": "sa"}});
        assert_eq!(defaulted("v1", "ServiceAccount", obj.clone()), obj);
    }
}
