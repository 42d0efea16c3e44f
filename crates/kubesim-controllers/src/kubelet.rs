//! Scheduler + kubelet simulation for one pod (k8s-semantics §6.1), and the simulated Node.
//!
//! Owns: binding an unscheduled pod to the Ready, schedulable node with the fewest pods,
//! the Running status (podIP, hostIP, startTime, containerStatuses, conditions), readiness
//! after a delay (`kubesim.io/ready-after`) or never (`kubesim.io/never-ready`), the
//! Unschedulable condition, and finishing termination of a pod with a deletionTimestamp.
//! Must not: run containers, allocate IPs (the driver offers `pod_ip`) or read a clock.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::obj::{self, annotation, at, fmt_time, name, namespace, parse_time, str_at, uid};
use crate::{Reconciled, Write};

/// Pod annotation: how long after start the pod turns Ready (`"2s"`, `"500ms"`, `"1m"`).
pub const READY_AFTER: &str = "kubesim.io/ready-after";
/// Pod annotation: `"true"` keeps the pod Running but never Ready.
pub const NEVER_READY: &str = "kubesim.io/never-ready";

/// Kubelet knobs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// Readiness delay for pods without a `kubesim.io/ready-after` annotation.
    pub default_ready_after: Duration,
}

/// Parses `"1m30s"`, `"500ms"`, `"2s"`, `"1h"` (Go duration subset).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += Duration::try_from_secs_f64(value * unit).ok()?;
    }
    Some(total)
}

fn node_ready(node: &Value) -> bool {
    obj::condition(node, "Ready")
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        == Some("True")
}

fn node_ip(node: &Value) -> Option<&str> {
    at(node, &["status", "addresses"])
        .and_then(Value::as_array)?
        .iter()
        .find(|a| a.get("type").and_then(Value::as_str) == Some("InternalIP"))
        .and_then(|a| a.get("address"))
        .and_then(Value::as_str)
}

fn container_names(pod: &Value) -> Vec<String> {
    at(pod, &["spec", "containers"])
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn pod_condition(ty: &str, status: &str, at: &str) -> Value {
    json!({"type": ty, "status": status, "lastProbeTime": null, "lastTransitionTime": at})
}

fn not_ready_condition(ty: &str, at: &str, names: &[String]) -> Value {
    json!({
        "type": ty,
        "status": "False",
        "lastProbeTime": null,
        "lastTransitionTime": at,
        "reason": "ContainersNotReady",
        "message": format!("containers with unready status: [{}]", names.join(" ")),
    })
}

fn container_statuses(pod: &Value, ready: bool, started_at: &str) -> Value {
    let containers = at(pod, &["spec", "containers"])
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let statuses: Vec<Value> = containers
        .iter()
        .map(|c| {
            let cname = c.get("name").and_then(Value::as_str).unwrap_or_default();
            let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
            let image_ref = if image.contains('/') {
                image.to_string()
            } else {
                format!("docker.io/library/{image}")
            };
            let digest = format!("{:016x}", obj::fnv1a64(image.as_bytes()));
            let cid = format!(
                "{:016x}",
                obj::fnv1a64(format!("{}/{}", uid(pod), cname).as_bytes())
            );
            json!({
                "name": cname,
                "state": {"running": {"startedAt": started_at}},
                "lastState": {},
                "ready": ready,
                "restartCount": 0,
                "image": image_ref,
                "imageID": format!("{}@sha256:{}", image_ref.split(':').next().unwrap_or_default(), digest.repeat(4)),
                "containerID": format!("containerd://{}", cid.repeat(4)),
                "started": true,
            })
        })
        .collect();
    Value::Array(statuses)
}

/// The readiness delay of `pod` (None: never ready).
fn ready_delay(pod: &Value, cfg: &Config) -> Option<Duration> {
    if annotation(pod, NEVER_READY) == Some("true") {
        return None;
    }
    Some(
        annotation(pod, READY_AFTER)
            .and_then(parse_duration)
            .unwrap_or(cfg.default_ready_after),
    )
}

/// One scheduler/kubelet step for `pod`.
pub fn sync(
    pod: &Value,
    nodes: &[Value],
    pods: &[Value],
    now: Timestamp,
    cfg: &Config,
    pod_ip: &str,
) -> Reconciled {
    let mut out = Reconciled::default();
    if obj::is_deleting(pod) {
        out.writes.push(Write::Delete {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: namespace(pod).map(str::to_string),
            name: name(pod).to_string(),
            uid: uid(pod).to_string(),
        });
        return out;
    }
    let phase = obj::pod_phase(pod);
    if matches!(phase, "Succeeded" | "Failed") {
        return out;
    }
    let now_s = fmt_time(now);
    let node_name = str_at(pod, &["spec", "nodeName"]).unwrap_or_default();
    if node_name.is_empty() {
        let candidates: Vec<&Value> = nodes
            .iter()
            .filter(|n| {
                node_ready(n)
                    && at(n, &["spec", "unschedulable"]).and_then(Value::as_bool) != Some(true)
            })
            .collect();
        let load = |n: &Value| {
            pods.iter()
                .filter(|p| str_at(p, &["spec", "nodeName"]) == Some(name(n)) && obj::pod_active(p))
                .count()
        };
        match candidates
            .into_iter()
            .min_by(|a, b| load(a).cmp(&load(b)).then_with(|| name(a).cmp(name(b))))
        {
            Some(node) => {
                let mut copy = pod.clone();
                obj::set(&mut copy, &["spec", "nodeName"], json!(name(node)));
                out.writes.push(Write::Update(copy));
            }
            None => {
                let already = obj::condition(pod, "PodScheduled")
                    .and_then(|c| c.get("reason"))
                    .and_then(Value::as_str)
                    == Some("Unschedulable");
                if !already {
                    let mut copy = pod.clone();
                    let unschedulable = nodes
                        .iter()
                        .filter(|n| {
                            at(n, &["spec", "unschedulable"]).and_then(Value::as_bool) == Some(true)
                        })
                        .count();
                    let message = if nodes.is_empty() {
                        "no nodes available to schedule pods".to_string()
                    } else if unschedulable > 0 {
                        format!(
                            "0/{} nodes are available: {} node(s) were unschedulable.",
                            nodes.len(),
                            unschedulable
                        )
                    } else {
                        format!(
                            "0/{} nodes are available: {} node(s) had untolerated taint {{node.kubernetes.io/not-ready: }}.",
                            nodes.len(),
                            nodes.len()
                        )
                    };
                    obj::set(&mut copy, &["status", "phase"], json!("Pending"));
                    obj::set(
                        &mut copy,
                        &["status", "conditions"],
                        json!([{
                            "type": "PodScheduled",
                            "status": "False",
                            "lastProbeTime": null,
                            "lastTransitionTime": now_s,
                            "reason": "Unschedulable",
                            "message": message,
                        }]),
                    );
                    obj::set(&mut copy, &["status", "qosClass"], json!("BestEffort"));
                    out.writes.push(Write::UpdateStatus(copy));
                }
            }
        }
        return out;
    }

    let delay = ready_delay(pod, cfg);
    let names = container_names(pod);
    let started = str_at(pod, &["status", "startTime"]).and_then(parse_time);
    let Some(start) = started.filter(|_| phase == "Running") else {
        // First status write: Running, possibly Ready at once.
        let host_ip = nodes
            .iter()
            .find(|n| name(n) == node_name)
            .and_then(node_ip)
            .unwrap_or_default()
            .to_string();
        let ready = delay.is_some_and(|d| d.is_zero());
        let mut copy = pod.clone();
        let mut status = json!({
            "phase": "Running",
            "conditions": [],
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": now_s,
            "containerStatuses": container_statuses(pod, ready, &now_s),
            "qosClass": "BestEffort",
        });
        let ready_conds = if ready {
            (
                pod_condition("Ready", "True", &now_s),
                pod_condition("ContainersReady", "True", &now_s),
            )
        } else {
            (
                not_ready_condition("Ready", &now_s, &names),
                not_ready_condition("ContainersReady", &now_s, &names),
            )
        };
        obj::set(
            &mut status,
            &["conditions"],
            json!([
                pod_condition("PodReadyToStartContainers", "True", &now_s),
                pod_condition("Initialized", "True", &now_s),
                ready_conds.0,
                ready_conds.1,
                pod_condition("PodScheduled", "True", &now_s),
            ]),
        );
        obj::set(&mut copy, &["status"], status);
        out.writes.push(Write::UpdateStatus(copy));
        if let Some(d) = delay.filter(|d| !d.is_zero()) {
            out.requeue_at = ready_at(obj::trunc(now), d);
        }
        return out;
    };

    // Once Ready a pod stays Ready (a changed default delay must not flip it back); only
    // `never-ready` turns it off.
    let want_ready = match delay {
        None => false,
        Some(_) if obj::pod_ready(pod) => true,
        Some(d) => ready_at(start, d).is_some_and(|t| t <= now),
    };
    if want_ready != obj::pod_ready(pod) {
        let mut copy = pod.clone();
        let conds: Vec<Value> = at(pod, &["status", "conditions"])
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|c| match c.get("type").and_then(Value::as_str) {
                Some(ty @ ("Ready" | "ContainersReady")) => {
                    if want_ready {
                        pod_condition(ty, "True", &now_s)
                    } else {
                        not_ready_condition(ty, &now_s, &names)
                    }
                }
                _ => c,
            })
            .collect();
        obj::set(&mut copy, &["status", "conditions"], Value::Array(conds));
        if let Some(cs) = at(&copy, &["status", "containerStatuses"]).cloned() {
            let cs: Vec<Value> = cs
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|mut c| {
                    obj::set(&mut c, &["ready"], json!(want_ready));
                    c
                })
                .collect();
            obj::set(
                &mut copy,
                &["status", "containerStatuses"],
                Value::Array(cs),
            );
        }
        out.writes.push(Write::UpdateStatus(copy));
    } else if !want_ready {
        out.requeue_at = delay.and_then(|d| ready_at(start, d));
    }
    out
}

fn ready_at(start: Timestamp, delay: Duration) -> Option<Timestamp> {
    let d = SignedDuration::try_from(delay).ok()?;
    start.checked_add(d).ok()
}

/// The simulated Node object.
pub fn node(name: &str, internal_ip: &str, now: Timestamp) -> Value {
    let t = fmt_time(now);
    let resources = json!({
        "cpu": "4",
        "ephemeral-storage": "102400Mi",
        "memory": "8Gi",
        "pods": "110",
    });
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
            },
        },
        "spec": {},
        "status": {
            "capacity": resources.clone(),
            "allocatable": resources,
            "conditions": [
                {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": t, "lastTransitionTime": t,
                 "reason": "KubeletHasSufficientMemory", "message": "kubelet has sufficient memory available"},
                {"type": "DiskPressure", "status": "False", "lastHeartbeatTime": t, "lastTransitionTime": t,
                 "reason": "KubeletHasNoDiskPressure", "message": "kubelet has no disk pressure"},
                {"type": "PIDPressure", "status": "False", "lastHeartbeatTime": t, "lastTransitionTime": t,
                 "reason": "KubeletHasSufficientPID", "message": "kubelet has sufficient PID available"},
                {"type": "Ready", "status": "True", "lastHeartbeatTime": t, "lastTransitionTime": t,
                 "reason": "KubeletReady", "message": "kubelet is posting ready status"},
            ],
            "addresses": [
                {"type": "InternalIP", "address": internal_ip},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": "",
                "containerRuntimeVersion": "containerd://1.7.0",
                "kernelVersion": "6.1.0",
                "kubeProxyVersion": "v1.32.0",
                "kubeletVersion": "v1.32.0",
                "machineID": "",
                "operatingSystem": "linux",
                "osImage": "kubesim",
                "systemUUID": "",
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn pod(node: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "uid": "pu", "resourceVersion": "3"},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "nginx:1.25"}]}})
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("5"), None);
    }

    #[test]
    fn schedules_on_the_least_loaded_ready_schedulable_node() {
        let now = t("2026-01-01T00:00:00Z");
        let mut cordoned = node("a", "10.0.0.1", now);
        cordoned["spec"]["unschedulable"] = json!(true);
        let mut not_ready = node("b", "10.0.0.2", now);
        not_ready["status"]["conditions"][3]["status"] = json!("False");
        let busy = node("c", "10.0.0.3", now);
        let idle = node("d", "10.0.0.4", now);
        let mut other = pod("c");
        other["metadata"]["name"] = json!("other");
        let nodes = [cordoned, not_ready, busy, idle];
        let r = sync(
            &pod(""),
            &nodes,
            &[other],
            now,
            &Config::default(),
            "10.244.0.9",
        );
        let [Write::Update(p)] = r.writes.as_slice() else {
            panic!("{:#?}", r.writes)
        };
        assert_eq!(p["spec"]["nodeName"], json!("d"));
    }

    #[test]
    fn unschedulable_is_reported_once() {
        let now = t("2026-01-01T00:00:00Z");
        let r = sync(&pod(""), &[], &[], now, &Config::default(), "ip");
        let [Write::UpdateStatus(p)] = r.writes.as_slice() else {
            panic!("{:#?}", r.writes)
        };
        let c = obj::condition(p, "PodScheduled").unwrap();
        assert_eq!(
            (c["status"].clone(), c["reason"].clone()),
            (json!("False"), json!("Unschedulable"))
        );
        assert_eq!(p["status"]["phase"], json!("Pending"));
        assert!(
            sync(p, &[], &[], now, &Config::default(), "ip")
                .writes
                .is_empty()
        );
    }

    #[test]
    fn runs_then_turns_ready_after_the_delay() {
        let now = t("2026-01-01T00:00:00Z");
        let nodes = [node("n1", "172.18.0.2", now)];
        let mut p = pod("n1");
        p["metadata"]["annotations"] = json!({READY_AFTER: "2s"});
        let r = sync(&p, &nodes, &[], now, &Config::default(), "10.244.0.5");
        let [Write::UpdateStatus(running)] = r.writes.as_slice() else {
            panic!("{:#?}", r.writes)
        };
        assert_eq!(r.requeue_at, Some(t("2026-01-01T00:00:02Z")));
        let st = &running["status"];
        assert_eq!(st["phase"], json!("Running"));
        assert_eq!(st["podIP"], json!("10.244.0.5"));
        assert_eq!(st["podIPs"], json!([{"ip": "10.244.0.5"}]));
        assert_eq!(st["hostIP"], json!("172.18.0.2"));
        assert_eq!(st["startTime"], json!("2026-01-01T00:00:00Z"));
        let types: Vec<&str> = st["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled"
            ]
        );
        assert!(!obj::pod_ready(running));
        assert_eq!(st["containerStatuses"][0]["ready"], json!(false));
        assert_eq!(
            st["containerStatuses"][0]["state"]["running"]["startedAt"],
            json!("2026-01-01T00:00:00Z")
        );
        // Before the delay: nothing but a requeue.
        let r = sync(
            running,
            &nodes,
            &[],
            t("2026-01-01T00:00:01Z"),
            &Config::default(),
            "x",
        );
        assert!(r.writes.is_empty());
        assert_eq!(r.requeue_at, Some(t("2026-01-01T00:00:02Z")));
        let r = sync(
            running,
            &nodes,
            &[],
            t("2026-01-01T00:00:02Z"),
            &Config::default(),
            "x",
        );
        let [Write::UpdateStatus(ready)] = r.writes.as_slice() else {
            panic!("{:#?}", r.writes)
        };
        assert!(obj::pod_ready(ready));
        assert_eq!(
            obj::condition(ready, "Ready").unwrap()["lastTransitionTime"],
            json!("2026-01-01T00:00:02Z")
        );
        assert_eq!(
            ready["status"]["containerStatuses"][0]["ready"],
            json!(true)
        );
        assert_eq!(ready["status"]["podIP"], json!("10.244.0.5"));
        assert!(
            sync(
                ready,
                &nodes,
                &[],
                t("2026-01-01T00:00:09Z"),
                &Config::default(),
                "x"
            )
            .writes
            .is_empty()
        );
    }

    #[test]
    fn never_ready_pods_stay_not_ready() {
        let now = t("2026-01-01T00:00:00Z");
        let nodes = [node("n1", "172.18.0.2", now)];
        let mut p = pod("n1");
        p["metadata"]["annotations"] = json!({NEVER_READY: "true"});
        let r = sync(&p, &nodes, &[], now, &Config::default(), "10.244.0.5");
        let [Write::UpdateStatus(running)] = r.writes.as_slice() else {
            panic!()
        };
        let ready = obj::condition(running, "Ready").unwrap();
        assert_eq!(ready["reason"], json!("ContainersNotReady"));
        assert_eq!(
            ready["message"],
            json!("containers with unready status: [app]")
        );
        assert_eq!(r.requeue_at, None);
        let later = t("2026-01-01T01:00:00Z");
        let r = sync(running, &nodes, &[], later, &Config::default(), "x");
        assert!(r.writes.is_empty() && r.requeue_at.is_none());
    }

    #[test]
    fn terminating_pods_are_finished() {
        let mut p = pod("n1");
        p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let r = sync(
            &p,
            &[],
            &[],
            t("2026-01-01T00:00:00Z"),
            &Config::default(),
            "x",
        );
        assert_eq!(
            r.writes,
            vec![Write::Delete {
                api_version: "v1".into(),
                kind: "Pod".into(),
                namespace: Some("default".into()),
                name: "p".into(),
                uid: "pu".into()
            }]
        );
    }

    #[test]
    fn node_shape() {
        let n = node("kubesim-node-1", "172.18.0.2", t("2026-01-01T00:00:00Z"));
        assert_eq!(n["metadata"]["name"], json!("kubesim-node-1"));
        assert!(node_ready(&n));
        assert_eq!(node_ip(&n), Some("172.18.0.2"));
        assert_eq!(n["status"]["capacity"]["pods"], json!("110"));
    }
}
