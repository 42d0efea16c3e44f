//! Why a rollout did not complete: the Deployment's pods that are not ready, and why — their
//! phase, Ready condition and container states — so that a failed sync says more than "deadline
//! exceeded". Read-only: one GET of the Deployment and one LIST of its pods.
//! Must not: write to the cluster, or wait.
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client};
use serde_json::Value;

/// At most this many pods are described: a failing rollout of 100 replicas needs examples, not
/// a wall of text.
pub const MAX_PODS: usize = 10;

/// One line per pod of the Deployment that is not ready (best effort: an API error gives none).
pub async fn not_ready_pods(client: &Client, namespace: &str, name: &str) -> Vec<String> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let Ok(d) = deployments.get(name).await else {
        return Vec::new();
    };
    let Some(selector) = d
        .spec
        .as_ref()
        .map(|s| super::history::selector_string(&s.selector))
    else {
        return Vec::new();
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await else {
        return Vec::new();
    };
    let values: Vec<Value> = list
        .items
        .iter()
        .filter_map(|p| serde_json::to_value(p).ok())
        .collect();
    describe_not_ready(&values)
}

/// Pure: one line per pod that is not Ready (terminating pods are skipped), sorted by name,
/// at most [`MAX_PODS`] plus a count of the rest.
pub fn describe_not_ready(pods: &[Value]) -> Vec<String> {
    let mut lines: Vec<(String, String)> = pods
        .iter()
        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
        .filter(|p| condition(p, "Ready").and_then(|c| str_at(c, "status")) != Some("True"))
        .map(|p| {
            let name = str_at(p, "metadata/name").unwrap_or("?").to_string();
            (name.clone(), describe_pod(&name, p))
        })
        .collect();
    lines.sort();
    let total = lines.len();
    let mut out: Vec<String> = lines.into_iter().take(MAX_PODS).map(|(_, l)| l).collect();
    if total > MAX_PODS {
        out.push(format!("… and {} more pods not ready", total - MAX_PODS));
    }
    out
}

fn describe_pod(name: &str, pod: &Value) -> String {
    let mut parts = vec![format!(
        "phase {}",
        str_at(pod, "status/phase").unwrap_or("Unknown")
    )];
    match condition(pod, "Ready") {
        Some(c) => parts.push(condition_text("Ready", c)),
        None => parts.push("no Ready condition yet".to_string()),
    }
    if let Some(c) = condition(pod, "PodScheduled")
        && str_at(c, "status") != Some("True")
    {
        parts.push(condition_text("PodScheduled", c));
    }
    let statuses = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for cs in statuses {
        if cs.get("ready").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        let cname = str_at(cs, "name").unwrap_or("?");
        let restarts = cs.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
        let state = if let Some(w) = cs.pointer("/state/waiting") {
            with_detail("waiting", w)
        } else if let Some(t) = cs.pointer("/state/terminated") {
            let code = t.get("exitCode").and_then(Value::as_i64).unwrap_or(0);
            format!("{}, exit code {code}", with_detail("terminated", t))
        } else if cs.pointer("/state/running").is_some() {
            "running but not ready (readiness probe failing)".to_string()
        } else {
            "state unknown".to_string()
        };
        parts.push(format!("container {cname} {state}, {restarts} restarts"));
    }
    format!("pod {name} not ready: {}", parts.join("; "))
}

fn with_detail(word: &str, state: &Value) -> String {
    match (str_at(state, "reason"), str_at(state, "message")) {
        (Some(r), Some(m)) if !m.is_empty() => format!("{word} ({r}: {m})"),
        (Some(r), _) => format!("{word} ({r})"),
        _ => word.to_string(),
    }
}

fn condition_text(kind: &str, c: &Value) -> String {
    let status = str_at(c, "status").unwrap_or("Unknown");
    match (str_at(c, "reason"), str_at(c, "message")) {
        (Some(r), Some(m)) if !m.is_empty() => format!("{kind} {status} ({r}: {m})"),
        (Some(r), _) => format!("{kind} {status} ({r})"),
        _ => format!("{kind} {status}"),
    }
}

fn condition<'a>(pod: &'a Value, kind: &str) -> Option<&'a Value> {
    pod.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| str_at(c, "type") == Some(kind))
}

fn str_at<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    let mut cur = v;
    for p in path.split('/') {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ready: &str, containers: Value) -> Value {
        json!({"metadata": {"name": name}, "status": {"phase": "Running",
            "conditions": [{"type": "PodScheduled", "status": "True"},
                           {"type": "Ready", "status": ready, "reason": "ContainersNotReady",
                            "message": "containers with unready status: [app]"}],
            "containerStatuses": containers}})
    }

    #[test]
    fn names_each_unready_pod_with_its_condition_and_container_state() {
        let pods = vec![
            pod(
                "web-b",
                "False",
                json!([{"name": "app", "ready": false, "restartCount": 0, "state": {"running": {}}}]),
            ),
            pod(
                "web-a",
                "False",
                json!([{"name": "app", "ready": false, "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}}}]),
            ),
            pod(
                "web-ok",
                "True",
                json!([{"name": "app", "ready": true, "state": {"running": {}}}]),
            ),
        ];
        assert_eq!(
            describe_not_ready(&pods),
            vec![
                "pod web-a not ready: phase Running; Ready False (ContainersNotReady: containers with unready status: [app]); container app waiting (CrashLoopBackOff: back-off 40s), 4 restarts",
                "pod web-b not ready: phase Running; Ready False (ContainersNotReady: containers with unready status: [app]); container app running but not ready (readiness probe failing), 0 restarts",
            ]
        );
    }

    #[test]
    fn unscheduled_and_terminating_pods() {
        let pending = json!({"metadata": {"name": "p"}, "status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available"}]}});
        let terminating =
            json!({"metadata": {"name": "t", "deletionTimestamp": "2026-01-01T00:00:00Z"}});
        assert_eq!(
            describe_not_ready(&[pending, terminating]),
            vec![
                "pod p not ready: phase Pending; no Ready condition yet; PodScheduled False (Unschedulable: 0/3 nodes are available)"
            ]
        );
    }

    #[test]
    fn caps_the_list() {
        let pods: Vec<Value> = (0..15)
            .map(|i| pod(&format!("p{i:02}"), "False", json!([])))
            .collect();
        let lines = describe_not_ready(&pods);
        assert_eq!(lines.len(), MAX_PODS + 1);
        assert_eq!(lines[MAX_PODS], "… and 5 more pods not ready");
    }
}
