//! Revert detection ("revert → rollout undo"): does a Deployment's desired pod template equal
//! one of its older ReplicaSets' templates, the way the Deployment controller compares them
//! (ignoring `pod-template-hash`)? The change-cause kubesync writes for such a revert. And
//! [`undo_to`], `kubectl rollout undo --to-revision=N` for `--rollback-on-failure`.
//!
//! Must not: write anything but the Deployment's pod template in [`undo_to`]. Templates are compared after the server's defaulting (the
//! caller passes a server-side dry-run result) and a typed round-trip, so that defaults and
//! empty-vs-absent fields do not hide a match.
use crate::apply::retry;
use crate::source::Commit;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::ListParams;
use kube::{Api, Client};
use serde_json::Value;
use tokio::time::Instant;

/// The label the controller adds to each ReplicaSet's template (not part of the comparison).
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// A pod template in comparable form: typed round-trip, `pod-template-hash` label removed.
pub fn comparable_template(template: &Value) -> Option<Value> {
    let mut t: PodTemplateSpec = serde_json::from_value(template.clone()).ok()?;
    if let Some(meta) = t.metadata.as_mut() {
        if let Some(labels) = meta.labels.as_mut() {
            labels.remove(POD_TEMPLATE_HASH);
            if labels.is_empty() {
                meta.labels = None;
            }
        }
        meta.creation_timestamp = None;
    }
    serde_json::to_value(t).ok()
}

/// The Deployment's `deployment.kubernetes.io/revision` as a number.
fn revision_of(obj: &Value) -> Option<u64> {
    obj.pointer("/metadata/annotations/deployment.kubernetes.io~1revision")
        .and_then(Value::as_str)
        .and_then(|r| r.parse().ok())
}

/// Among `olds` (`(revision, comparable template)` of the Deployment's ReplicaSets), the
/// newest revision other than `current` whose template equals `desired`.
pub fn matching_revision(
    desired: &Value,
    current: Option<u64>,
    olds: &[(u64, Value)],
) -> Option<u64> {
    olds.iter()
        .filter(|(rev, t)| Some(*rev) != current && t == desired)
        .map(|(rev, _)| *rev)
        .max()
}

/// If applying `desired` (a server-side dry-run result of the Deployment) to `live` returns
/// its template to an older ReplicaSet's, that ReplicaSet's revision before the sync. `None`
/// when the template does not change, matches no older ReplicaSet, or the ReplicaSets cannot
/// be read (best effort: logged).
pub async fn revert_target(
    client: &Client,
    live: &Value,
    desired: &Value,
    deadline: Instant,
) -> Option<u64> {
    let want = comparable_template(desired.pointer("/spec/template")?)?;
    if comparable_template(live.pointer("/spec/template")?).as_ref() == Some(&want) {
        return None;
    }
    let ns = live
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)?;
    let uid = live.pointer("/metadata/uid").and_then(Value::as_str)?;
    let labels = crate::rollout::history::selector_string_of(live);
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels(&labels);
    let list = match retry::with_retry(deadline, "list replicasets", || api.list(&lp)).await {
        Ok(l) => l,
        Err(err) => {
            tracing::warn!(%err, namespace = ns, "cannot list ReplicaSets: revert not detected");
            return None;
        }
    };
    let olds: Vec<(u64, Value)> = list
        .items
        .iter()
        .filter(|rs| {
            rs.metadata
                .owner_references
                .as_ref()
                .is_some_and(|o| o.iter().any(|r| r.uid == uid))
        })
        .filter_map(|rs| {
            let rev = rs
                .metadata
                .annotations
                .as_ref()?
                .get("deployment.kubernetes.io/revision")?
                .parse()
                .ok()?;
            let t = serde_json::to_value(rs.spec.as_ref()?.template.as_ref()?).ok()?;
            Some((rev, comparable_template(&t)?))
        })
        .collect();
    matching_revision(&want, revision_of(live), &olds)
}

/// Why an undo could not be done.
#[derive(Debug, thiserror::Error)]
pub enum UndoError {
    #[error("deployment {namespace}/{name} has no ReplicaSet of revision {revision} to undo to")]
    NoRevision {
        namespace: String,
        name: String,
        revision: u64,
    },
    #[error("undoing deployment {namespace}/{name} to revision {revision}: {source}")]
    Api {
        namespace: String,
        name: String,
        revision: u64,
        #[source]
        source: kube::Error,
    },
}

/// `kubectl rollout undo deployment/<name> --to-revision=<revision>`: sets the Deployment's
/// pod template to that revision's ReplicaSet's (minus `pod-template-hash`), so the controller
/// scales that ReplicaSet back up. Retries a write conflict a few times.
pub async fn undo_to(
    client: &Client,
    namespace: &str,
    name: &str,
    revision: u64,
    deadline: Instant,
) -> Result<(), UndoError> {
    use k8s_openapi::api::apps::v1::Deployment;
    let api_err = |source| UndoError::Api {
        namespace: namespace.into(),
        name: name.into(),
        revision,
        source,
    };
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut d = retry::with_retry(deadline, "get deployment", || deployments.get(name))
            .await
            .map_err(api_err)?;
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let labels = d
            .spec
            .as_ref()
            .and_then(|s| s.selector.match_labels.as_ref())
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let lp = ListParams::default().labels(&labels);
        let list = retry::with_retry(deadline, "list replicasets", || replica_sets.list(&lp))
            .await
            .map_err(api_err)?;
        let template = list
            .items
            .into_iter()
            .filter(|rs| {
                rs.metadata
                    .owner_references
                    .as_ref()
                    .is_some_and(|o| o.iter().any(|r| r.uid == uid))
            })
            .find(|rs| {
                rs.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("deployment.kubernetes.io/revision"))
                    .and_then(|r| r.parse::<u64>().ok())
                    == Some(revision)
            })
            .and_then(|rs| rs.spec.and_then(|s| s.template));
        let Some(mut template) = template else {
            return Err(UndoError::NoRevision {
                namespace: namespace.into(),
                name: name.into(),
                revision,
            });
        };
        if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.remove(POD_TEMPLATE_HASH);
        }
        if let Some(spec) = d.spec.as_mut() {
            spec.template = template;
        }
        let pp = kube::api::PostParams {
            field_manager: Some("kubesync".into()),
            ..Default::default()
        };
        match deployments.replace(name, &pp, &d).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 && attempts < 5 => continue,
            Err(e) => return Err(api_err(e)),
        }
    }
}

/// The change-cause of a revert: `rollback to revision N (git revert <short sha>)` for a
/// `git revert` commit, else `rollback to revision N (<short sha> <subject>)`.
pub fn rollback_change_cause(revision: u64, commit: &Commit) -> String {
    if commit.subject.starts_with("Revert ") {
        format!(
            "rollback to revision {revision} (git revert {})",
            commit.short()
        )
    } else {
        format!(
            "rollback to revision {revision} ({} {})",
            commit.short(),
            commit.subject
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(image: &str, hash: Option<&str>) -> Value {
        let mut labels = json!({"app": "kubia"});
        if let Some(h) = hash {
            labels[POD_TEMPLATE_HASH] = json!(h);
        }
        json!({"metadata": {"labels": labels},
            "spec": {"containers": [{"name": "c", "image": image}]}})
    }

    #[test]
    fn the_hash_label_is_ignored_and_the_newest_other_revision_wins() {
        let want = comparable_template(&template("v1", None)).unwrap();
        let olds = vec![
            (
                1,
                comparable_template(&template("v1", Some("aaa"))).unwrap(),
            ),
            (
                2,
                comparable_template(&template("v2", Some("bbb"))).unwrap(),
            ),
            (
                3,
                comparable_template(&template("v1", Some("aaa"))).unwrap(),
            ),
        ];
        assert_eq!(matching_revision(&want, Some(4), &olds), Some(3));
        assert_eq!(matching_revision(&want, Some(3), &olds), Some(1));
        let other = comparable_template(&template("v9", None)).unwrap();
        assert_eq!(matching_revision(&other, Some(4), &olds), None);
    }
}
