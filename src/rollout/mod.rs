//! Rollout status: judging a Deployment's rollout from its JSON (pure, `kubectl rollout status`
//! semantics) and watching a set of Deployments to completion or a deadline (I/O).
//!
//! Owns: [`evaluate`] (pure), [`describe`] (the progress line), [`wait`] (a label-selector
//! watch per namespace through `kube::runtime::watcher`).
//! Must not: write to the cluster, or wait without a deadline.
pub mod explain;
pub mod history;
pub mod undo;

use futures::StreamExt;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Where a Deployment's rollout stands, as `kubectl rollout status` would say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Not done yet; the message is kubectl's waiting line.
    Waiting(String),
    /// Every replica updated and available, no old replica left.
    Complete,
    /// The Progressing condition says `ProgressDeadlineExceeded`.
    Failed(String),
}

/// The final state of one watched rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Complete,
    Failed,
    Timeout,
}

/// What [`wait`] found for one Deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub namespace: String,
    pub name: String,
    pub status: Status,
    /// `deployment.kubernetes.io/revision` of the last seen object.
    pub revision: Option<u64>,
    /// The last progress message (why it failed or timed out).
    pub message: String,
}

fn int(v: &Value, path: &[&str]) -> i64 {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(next) => cur = next,
            None => return 0,
        }
    }
    cur.as_i64().unwrap_or(0)
}

fn name_of(d: &Value) -> &str {
    crate::manifest::at(d, &["metadata", "name"])
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Judges a Deployment exactly as `kubectl rollout status` does (k8s-semantics §3.1).
pub fn evaluate(deployment: &Value) -> Progress {
    let name = name_of(deployment);
    let generation = int(deployment, &["metadata", "generation"]);
    let observed = int(deployment, &["status", "observedGeneration"]);
    if generation > observed
        || crate::manifest::at(deployment, &["status", "observedGeneration"]).is_none()
    {
        return Progress::Waiting("Waiting for deployment spec update to be observed...".into());
    }
    let deadline_exceeded = crate::manifest::at(deployment, &["status", "conditions"])
        .and_then(Value::as_array)
        .is_some_and(|conds| {
            conds.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Progressing")
                    && c.get("reason").and_then(Value::as_str) == Some("ProgressDeadlineExceeded")
            })
        });
    if deadline_exceeded {
        return Progress::Failed(format!(
            "deployment \"{name}\" exceeded its progress deadline"
        ));
    }
    // `spec.replicas` defaults to 1 on the server; a missing field here means "not defaulted yet".
    let desired = crate::manifest::at(deployment, &["spec", "replicas"])
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let updated = int(deployment, &["status", "updatedReplicas"]);
    let replicas = int(deployment, &["status", "replicas"]);
    let available = int(deployment, &["status", "availableReplicas"]);
    if updated < desired {
        return Progress::Waiting(format!(
            "Waiting for deployment \"{name}\" rollout to finish: {updated} out of {desired} new replicas have been updated..."
        ));
    }
    if replicas > updated {
        return Progress::Waiting(format!(
            "Waiting for deployment \"{name}\" rollout to finish: {} old replicas are pending termination...",
            replicas - updated
        ));
    }
    if available < updated {
        return Progress::Waiting(format!(
            "Waiting for deployment \"{name}\" rollout to finish: {available} of {updated} updated replicas are available..."
        ));
    }
    Progress::Complete
}

/// One progress line for humans: updated/ready/available of desired, old replicas pending.
pub fn describe(deployment: &Value) -> String {
    let ns = crate::manifest::at(deployment, &["metadata", "namespace"])
        .and_then(Value::as_str)
        .unwrap_or("");
    let desired = crate::manifest::at(deployment, &["spec", "replicas"])
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let updated = int(deployment, &["status", "updatedReplicas"]);
    let ready = int(deployment, &["status", "readyReplicas"]);
    let available = int(deployment, &["status", "availableReplicas"]);
    let old = (int(deployment, &["status", "replicas"]) - updated).max(0);
    let mut line = format!(
        "deployment {ns}/{}: {updated} updated, {ready} ready, {available} available of {desired}",
        name_of(deployment)
    );
    if old > 0 {
        line.push_str(&format!("; {old} old pending termination"));
    }
    line
}

/// The Deployment's `deployment.kubernetes.io/revision`, if set and numeric.
pub fn revision(deployment: &Value) -> Option<u64> {
    crate::manifest::at(
        deployment,
        &[
            "metadata",
            "annotations",
            "deployment.kubernetes.io/revision",
        ],
    )
    .and_then(Value::as_str)
    .and_then(|s| s.parse().ok())
}

/// Errors from watching (the deadline is an outcome, not an error).
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("deployment {namespace}/{name} was deleted while waiting for its rollout")]
    Deleted { namespace: String, name: String },
}

/// Watches the given Deployments (`(namespace, name)`) until each is complete or failed, or
/// until `timeout` passes (the rest are then `Timeout`). Calls `on_progress(line, done)` with a line each
/// time a Deployment's progress line changes. One watch per namespace, filtered by
/// `label_selector` (the ownership labels) so that the cost does not grow with unrelated objects.
pub async fn wait(
    client: &Client,
    targets: &[(String, String)],
    label_selector: &str,
    timeout: Duration,
    on_progress: &(dyn Fn(&str, bool) + Sync),
) -> Result<Vec<Outcome>, WaitError> {
    let mut by_ns: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (ns, name) in targets {
        by_ns.entry(ns.clone()).or_default().insert(name.clone());
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let futures = by_ns.into_iter().map(|(ns, names)| {
        let client = client.clone();
        async move { wait_namespace(client, ns, names, label_selector, deadline, on_progress).await }
    });
    let mut outcomes = Vec::new();
    for result in futures::future::join_all(futures).await {
        outcomes.extend(result?);
    }
    outcomes.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(outcomes)
}

async fn wait_namespace(
    client: Client,
    namespace: String,
    mut pending: BTreeSet<String>,
    label_selector: &str,
    deadline: tokio::time::Instant,
    on_progress: &(dyn Fn(&str, bool) + Sync),
) -> Result<Vec<Outcome>, WaitError> {
    use k8s_openapi::api::apps::v1::Deployment;
    let api: Api<Deployment> = Api::namespaced(client, &namespace);
    let stream = watcher(api, watcher::Config::default().labels(label_selector))
        .default_backoff()
        .touched_objects();
    let mut stream = std::pin::pin!(stream);
    let mut last_line: BTreeMap<String, String> = BTreeMap::new();
    let mut last_seen: BTreeMap<String, Value> = BTreeMap::new();
    let mut outcomes = Vec::new();
    while !pending.is_empty() {
        let next = match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_elapsed) => break,
            Ok(None) => break,
            Ok(Some(item)) => item,
        };
        let deployment = match next {
            Ok(d) => d,
            // The watcher re-lists/re-watches with backoff when polled again; the deadline
            // bounds how long a persistent error can last.
            Err(error) => {
                tracing::warn!(namespace, error = %error, "watch error, retrying");
                continue;
            }
        };
        let Ok(value) = serde_json::to_value(&deployment) else {
            continue;
        };
        let name = name_of(&value).to_string();
        if !pending.contains(&name) {
            continue;
        }
        if crate::manifest::at(&value, &["metadata", "deletionTimestamp"]).is_some() {
            return Err(WaitError::Deleted { namespace, name });
        }
        let line = describe(&value);
        if last_line.get(&name) != Some(&line) {
            on_progress(&line, false);
            last_line.insert(name.clone(), line);
        }
        let progress = evaluate(&value);
        let status = match &progress {
            Progress::Waiting(_) => None,
            Progress::Complete => Some((
                Status::Complete,
                format!("deployment \"{name}\" successfully rolled out"),
            )),
            Progress::Failed(msg) => Some((Status::Failed, msg.clone())),
        };
        if let Some((status, message)) = status {
            on_progress(&format!("deployment {namespace}/{name}: {message}"), true);
            pending.remove(&name);
            outcomes.push(Outcome {
                namespace: namespace.clone(),
                name: name.clone(),
                status,
                revision: revision(&value),
                message,
            });
        }
        last_seen.insert(name, value);
    }
    for name in pending {
        let last = last_seen.get(&name);
        let message = match last.map(evaluate) {
            Some(Progress::Waiting(msg)) => format!("timed out: {msg}"),
            _ => "timed out waiting for the rollout".to_string(),
        };
        on_progress(&format!("deployment {namespace}/{name}: {message}"), true);
        outcomes.push(Outcome {
            namespace: namespace.clone(),
            name,
            status: Status::Timeout,
            revision: last.and_then(revision),
            message,
        });
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dep(generation: i64, status: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "default", "generation": generation,
            "annotations": {"deployment.kubernetes.io/revision": "3"}},
            "spec": {"replicas": 3}, "status": status})
    }

    #[test]
    fn spec_update_not_observed() {
        let d = dep(2, json!({"observedGeneration": 1}));
        assert_eq!(
            evaluate(&d),
            Progress::Waiting("Waiting for deployment spec update to be observed...".into())
        );
        assert!(matches!(evaluate(&dep(1, json!({}))), Progress::Waiting(_)));
    }

    #[test]
    fn waiting_messages_follow_kubectl_order() {
        let d = dep(
            2,
            json!({"observedGeneration": 2, "updatedReplicas": 1, "replicas": 4, "availableReplicas": 1}),
        );
        assert_eq!(
            evaluate(&d),
            Progress::Waiting("Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...".into())
        );
        let d = dep(
            2,
            json!({"observedGeneration": 2, "updatedReplicas": 3, "replicas": 4, "availableReplicas": 3}),
        );
        assert_eq!(
            evaluate(&d),
            Progress::Waiting("Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination...".into())
        );
        let d = dep(
            2,
            json!({"observedGeneration": 2, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 2}),
        );
        assert_eq!(
            evaluate(&d),
            Progress::Waiting("Waiting for deployment \"web\" rollout to finish: 2 of 3 updated replicas are available...".into())
        );
    }

    #[test]
    fn complete_and_failed() {
        let d = dep(
            2,
            json!({"observedGeneration": 2, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 3}),
        );
        assert_eq!(evaluate(&d), Progress::Complete);
        assert_eq!(revision(&d), Some(3));
        let d = dep(
            2,
            json!({"observedGeneration": 2, "updatedReplicas": 1, "replicas": 3, "availableReplicas": 2,
                "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}),
        );
        assert_eq!(
            evaluate(&d),
            Progress::Failed("deployment \"web\" exceeded its progress deadline".into())
        );
    }

    #[test]
    fn zero_replicas_complete_at_once() {
        let mut d = dep(1, json!({"observedGeneration": 1}));
        d["spec"]["replicas"] = json!(0);
        assert_eq!(evaluate(&d), Progress::Complete);
    }

    #[test]
    fn describe_line() {
        let d = dep(
            2,
            json!({"observedGeneration": 2, "updatedReplicas": 1, "replicas": 3, "readyReplicas": 2, "availableReplicas": 2}),
        );
        assert_eq!(
            describe(&d),
            "deployment default/web: 1 updated, 2 ready, 2 available of 3; 2 old pending termination"
        );
    }
}
