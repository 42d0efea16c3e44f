//! Deployment revision history: every revision of a Deployment mapped to its ReplicaSet, its
//! images and the git commit that produced it (`kubesync history`).
//!
//! Owns: [`revisions`] (pure: a Deployment and ReplicaSets → [`Revision`]s, the way
//! `kubectl rollout history` reads them, k8s-semantics §3.2 and §1.6), [`selector_string`]
//! (pure), [`render_text`] (pure) and [`fetch`] (two reads through `kube`).
//! Must not: write to the cluster, or guess a commit it cannot read from a ReplicaSet.
//!
//! A revision is a ReplicaSet controlled by the Deployment (owner uid) carrying an integer
//! `deployment.kubernetes.io/revision`. When the controller reuses an old ReplicaSet (a rollback,
//! §1.6) it bumps that revision and appends the old one to
//! `deployment.kubernetes.io/revision-history`; those earlier revisions are listed too, with the
//! same ReplicaSet. The controller copies the Deployment's annotations onto the ReplicaSet it
//! reuses, so the commit of an earlier revision is no longer readable: it is `None`.
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::ListParams;
use kube::{Api, Client};
use serde::Serialize;
use std::fmt::Write as _;

/// The revision of a ReplicaSet (and of the Deployment: its current revision).
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions of a reused ReplicaSet, comma-separated, oldest first.
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";
/// `<short sha> <subject>` written by kubesync on Deployments, copied to ReplicaSets.
pub const CHANGE_CAUSE_ANNOTATION: &str = "kubernetes.io/change-cause";
/// The full sha of the commit that produced the object.
pub const COMMIT_ANNOTATION: &str = "kubesync.io/commit";
/// How kubesync's change-cause of a revert starts (design: revert → rollout undo).
pub const ROLLBACK_PREFIX: &str = "rollback to revision";

/// The git commit behind a revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommitRef {
    /// Full sha, from `kubesync.io/commit`.
    pub sha: String,
    /// The change-cause without its leading short sha (the whole change-cause when it does not
    /// start with one, e.g. a rollback's); empty when there is none.
    pub subject: String,
}

/// One revision of a Deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    pub revision: u64,
    pub replica_set: String,
    /// `None` when the ReplicaSet has no `kubesync.io/commit` (not applied by kubesync) or the
    /// revision is an earlier one of a reused ReplicaSet (its annotations were overwritten).
    pub commit: Option<CommitRef>,
    /// Container images of the pod template, init containers first, in template order.
    pub images: Vec<String>,
    /// The ReplicaSet's creationTimestamp, RFC 3339 (UTC, seconds), or `None` if absent.
    pub created_at: Option<String>,
    /// A return to an earlier template: the change-cause says "rollback to revision …", or the
    /// ReplicaSet was reused (every revision of it but the first in its history).
    pub rollback: bool,
    /// The Deployment's current revision.
    pub current: bool,
}

/// Why the history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("deployments.apps \"{name}\" not found in namespace {namespace}")]
    NotFound { namespace: String, name: String },
    #[error("reading deployment {namespace}/{name}: {source}")]
    Deployment {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("listing the replica sets of deployment {namespace}/{name}: {source}")]
    ReplicaSets {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl HistoryError {
    /// A fixed string for metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            HistoryError::NotFound { .. } => "not_found",
            HistoryError::Deployment { .. } => "deployment",
            HistoryError::ReplicaSets { .. } => "replica_sets",
        }
    }
}

/// Reads the Deployment and its ReplicaSets (label selector = the Deployment's selector, as
/// kubectl does) and computes its revisions.
pub async fn fetch(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Vec<Revision>, HistoryError> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let deployment = deployments
        .get_opt(name)
        .await
        .map_err(|source| HistoryError::Deployment {
            namespace: namespace.to_string(),
            name: name.to_string(),
            source,
        })?
        .ok_or_else(|| HistoryError::NotFound {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })?;
    let mut params = ListParams::default();
    if let Some(selector) = deployment
        .spec
        .as_ref()
        .map(|s| selector_string(&s.selector))
        .filter(|s| !s.is_empty())
    {
        params = params.labels(&selector);
    }
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
    let list = replica_sets
        .list(&params)
        .await
        .map_err(|source| HistoryError::ReplicaSets {
            namespace: namespace.to_string(),
            name: name.to_string(),
            source,
        })?;
    Ok(revisions(&deployment, &list.items))
}

/// A label selector in the string form the API takes (`a=b,c in (d,e),!f`).
pub fn selector_string(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for expr in selector.match_expressions.iter().flatten() {
        let values = expr.values.clone().unwrap_or_default().join(",");
        let key = &expr.key;
        match expr.operator.as_str() {
            "In" => parts.push(format!("{key} in ({values})")),
            "NotIn" => parts.push(format!("{key} notin ({values})")),
            "Exists" => parts.push(key.clone()),
            "DoesNotExist" => parts.push(format!("!{key}")),
            // An unknown operator cannot be expressed; the owner-uid filter still applies.
            _ => {}
        }
    }
    parts.join(",")
}

/// The label selector string of a workload given as JSON (its `spec.selector`), through
/// [`selector_string`] so that `matchExpressions` count too; empty when it has none.
pub fn selector_string_of(workload: &serde_json::Value) -> String {
    workload
        .pointer("/spec/selector")
        .and_then(|s| serde_json::from_value::<LabelSelector>(s.clone()).ok())
        .map(|s| selector_string(&s))
        .unwrap_or_default()
}

/// The revisions of `deployment` among `replica_sets`, sorted by revision. Only ReplicaSets
/// controlled by the Deployment (owner reference with its uid and `controller: true`) and
/// carrying an integer revision count, as in `kubectl rollout history`.
pub fn revisions(deployment: &Deployment, replica_sets: &[ReplicaSet]) -> Vec<Revision> {
    let uid = deployment.metadata.uid.as_deref().unwrap_or_default();
    let current_revision = annotation(&deployment.metadata, REVISION_ANNOTATION)
        .and_then(|r| r.trim().parse::<u64>().ok());
    let mut out = Vec::new();
    for rs in replica_sets {
        let controlled = rs
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.controller == Some(true) && !uid.is_empty() && o.uid == uid);
        if !controlled {
            continue;
        }
        let Some(revision) = annotation(&rs.metadata, REVISION_ANNOTATION)
            .and_then(|r| r.trim().parse::<u64>().ok())
        else {
            continue;
        };
        let name = rs.metadata.name.clone().unwrap_or_default();
        let images = images(rs);
        let created_at = rs
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
        let history: Vec<u64> = annotation(&rs.metadata, REVISION_HISTORY_ANNOTATION)
            .map(|h| {
                h.split(',')
                    .filter_map(|r| r.trim().parse::<u64>().ok())
                    .filter(|r| *r < revision)
                    .collect()
            })
            .unwrap_or_default();
        let cause = annotation(&rs.metadata, CHANGE_CAUSE_ANNOTATION).unwrap_or_default();
        let commit = annotation(&rs.metadata, COMMIT_ANNOTATION)
            .filter(|s| !s.is_empty())
            .map(|sha| CommitRef {
                sha: sha.to_string(),
                subject: subject(sha, cause),
            });
        for (i, earlier) in history.iter().enumerate() {
            out.push((
                false,
                Revision {
                    revision: *earlier,
                    replica_set: name.clone(),
                    commit: None,
                    images: images.clone(),
                    created_at: created_at.clone(),
                    rollback: i > 0,
                    current: false,
                },
            ));
        }
        out.push((
            true,
            Revision {
                revision,
                replica_set: name,
                commit,
                images,
                created_at,
                rollback: !history.is_empty() || cause.starts_with(ROLLBACK_PREFIX),
                current: false,
            },
        ));
    }
    out.sort_by(|(_, a), (_, b)| {
        a.revision
            .cmp(&b.revision)
            .then_with(|| a.replica_set.cmp(&b.replica_set))
    });
    // The Deployment's revision is current; without one (not yet observed), the highest. Only
    // a ReplicaSet's own revision can be current, never an entry of its revision-history.
    let own = |r: u64| out.iter().any(|(own, x)| *own && x.revision == r);
    let current = current_revision.filter(|c| own(*c)).or_else(|| {
        out.iter()
            .rev()
            .find(|(own, _)| *own)
            .map(|(_, r)| r.revision)
    });
    out.into_iter()
        .map(|(own, mut r)| {
            r.current = own && Some(r.revision) == current;
            r
        })
        .collect()
}

/// The change-cause with its leading short sha removed.
fn subject(sha: &str, cause: &str) -> String {
    if let Some((first, rest)) = cause.split_once(' ')
        && first.len() >= 7
        && sha.starts_with(first)
    {
        return rest.to_string();
    }
    cause.to_string()
}

fn annotation<'a>(
    meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    key: &str,
) -> Option<&'a str> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

fn images(rs: &ReplicaSet) -> Vec<String> {
    let Some(pod) = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.as_ref())
    else {
        return Vec::new();
    };
    pod.init_containers
        .iter()
        .flatten()
        .chain(pod.containers.iter())
        .filter_map(|c| c.image.clone())
        .collect()
}

/// A table for people: one line per revision, the current one marked.
pub fn render_text(namespace: &str, name: &str, revisions: &[Revision]) -> String {
    if revisions.is_empty() {
        return format!("deployment.apps/{name} in {namespace}: no rollout history found\n");
    }
    let header = [
        "REVISION",
        "CURRENT",
        "ROLLBACK",
        "REPLICASET",
        "IMAGES",
        "CREATED",
        "COMMIT",
        "SUBJECT",
    ];
    let rows: Vec<[String; 8]> = revisions
        .iter()
        .map(|r| {
            [
                r.revision.to_string(),
                if r.current { "*".into() } else { String::new() },
                if r.rollback {
                    "yes".into()
                } else {
                    String::new()
                },
                r.replica_set.clone(),
                if r.images.is_empty() {
                    "<none>".into()
                } else {
                    r.images.join(",")
                },
                r.created_at.clone().unwrap_or_else(|| "<unknown>".into()),
                r.commit
                    .as_ref()
                    .map(|c| c.sha.chars().take(7).collect())
                    .unwrap_or_else(|| "<none>".into()),
                r.commit
                    .as_ref()
                    .map(|c| c.subject.clone())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = format!("deployment.apps/{name} in {namespace}\n");
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<w$}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&cells);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(revision: Option<&str>) -> Deployment {
        let mut annotations = serde_json::Map::new();
        if let Some(r) = revision {
            annotations.insert(REVISION_ANNOTATION.into(), json!(r));
        }
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "kubia", "namespace": "default", "uid": "uid-d",
                         "annotations": annotations},
            "spec": {"selector": {"matchLabels": {"app": "kubia"}},
                     "template": {"metadata": {"labels": {"app": "kubia"}},
                                  "spec": {"containers": [{"name": "nodejs", "image": "x"}]}}}
        }))
        .expect("deployment")
    }

    fn rs(name: &str, owner: &str, annotations: serde_json::Value, image: &str) -> ReplicaSet {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": "default",
                         "creationTimestamp": "2026-11-21T10:00:00Z",
                         "annotations": annotations,
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                             "name": "kubia", "uid": owner, "controller": true}]},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "kubia"}},
                     "template": {"metadata": {"labels": {"app": "kubia"}},
                                  "spec": {"containers": [{"name": "nodejs", "image": image}]}}}
        }))
        .expect("rs")
    }

    const SHA1: &str = "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const SHA2: &str = "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const SHA3: &str = "3333333ccccccccccccccccccccccccccccccccc";
    const SHA4: &str = "4444444ddddddddddddddddddddddddddddddddd";

    #[test]
    fn two_rollouts_map_to_their_commits() {
        let d = deployment(Some("2"));
        let list = [
            rs(
                "kubia-b",
                "uid-d",
                json!({REVISION_ANNOTATION: "2", COMMIT_ANNOTATION: SHA2,
                       CHANGE_CAUSE_ANNOTATION: "2222222 kubia v2"}),
                "luksa/kubia:v2",
            ),
            rs(
                "kubia-a",
                "uid-d",
                json!({REVISION_ANNOTATION: "1", COMMIT_ANNOTATION: SHA1,
                       CHANGE_CAUSE_ANNOTATION: "1111111 kubia v1"}),
                "luksa/kubia:v1",
            ),
        ];
        let got = revisions(&d, &list);
        assert_eq!(
            serde_json::to_value(&got).expect("json"),
            json!([
                {"revision": 1, "replicaSet": "kubia-a",
                 "commit": {"sha": SHA1, "subject": "kubia v1"},
                 "images": ["luksa/kubia:v1"], "createdAt": "2026-11-21T10:00:00Z",
                 "rollback": false, "current": false},
                {"revision": 2, "replicaSet": "kubia-b",
                 "commit": {"sha": SHA2, "subject": "kubia v2"},
                 "images": ["luksa/kubia:v2"], "createdAt": "2026-11-21T10:00:00Z",
                 "rollback": false, "current": true}
            ])
        );
    }

    #[test]
    fn a_reused_replica_set_lists_its_earlier_revision_and_is_a_rollback() {
        // v1 (1), v2 (2), v3 (3, failed), revert of v3 → RS of v2 reused as revision 4.
        let d = deployment(Some("4"));
        let list = [
            rs(
                "kubia-a",
                "uid-d",
                json!({REVISION_ANNOTATION: "1", COMMIT_ANNOTATION: SHA1,
                       CHANGE_CAUSE_ANNOTATION: "1111111 v1"}),
                "luksa/kubia:v1",
            ),
            rs(
                "kubia-b",
                "uid-d",
                json!({REVISION_ANNOTATION: "4", REVISION_HISTORY_ANNOTATION: "2",
                       COMMIT_ANNOTATION: SHA4,
                       CHANGE_CAUSE_ANNOTATION: "rollback to revision 2 (git revert 3333333)"}),
                "luksa/kubia:v2",
            ),
            rs(
                "kubia-c",
                "uid-d",
                json!({REVISION_ANNOTATION: "3", COMMIT_ANNOTATION: SHA3,
                       CHANGE_CAUSE_ANNOTATION: "3333333 v3"}),
                "luksa/kubia:v3",
            ),
        ];
        let got = revisions(&d, &list);
        let summary: Vec<(u64, &str, bool, bool, Option<&str>)> = got
            .iter()
            .map(|r| {
                (
                    r.revision,
                    r.replica_set.as_str(),
                    r.rollback,
                    r.current,
                    r.commit.as_ref().map(|c| c.subject.as_str()),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (1, "kubia-a", false, false, Some("v1")),
                (2, "kubia-b", false, false, None),
                (3, "kubia-c", false, false, Some("v3")),
                (
                    4,
                    "kubia-b",
                    true,
                    true,
                    Some("rollback to revision 2 (git revert 3333333)")
                ),
            ]
        );
        assert_eq!(got[1].images, vec!["luksa/kubia:v2".to_string()]);
    }

    #[test]
    fn a_rollback_change_cause_alone_marks_a_rollback_and_histories_chain() {
        let d = deployment(Some("5"));
        let list = [rs(
            "kubia-a",
            "uid-d",
            json!({REVISION_ANNOTATION: "5", REVISION_HISTORY_ANNOTATION: "1,3"}),
            "img",
        )];
        let got = revisions(&d, &list);
        let summary: Vec<(u64, bool, bool)> = got
            .iter()
            .map(|r| (r.revision, r.rollback, r.current))
            .collect();
        assert_eq!(
            summary,
            vec![(1, false, false), (3, true, false), (5, true, true)]
        );
        assert!(got.iter().all(|r| r.commit.is_none()));

        let plain = rs(
            "kubia-x",
            "uid-d",
            json!({REVISION_ANNOTATION: "5", CHANGE_CAUSE_ANNOTATION: "rollback to revision 2"}),
            "img",
        );
        assert!(revisions(&d, &[plain])[0].rollback);
    }

    #[test]
    fn foreign_uncontrolled_and_unrevisioned_replica_sets_are_skipped() {
        let d = deployment(Some("1"));
        let mut uncontrolled = rs("c", "uid-d", json!({REVISION_ANNOTATION: "2"}), "img");
        if let Some(refs) = uncontrolled.metadata.owner_references.as_mut() {
            refs[0].controller = None;
        }
        let list = [
            rs("a", "uid-d", json!({REVISION_ANNOTATION: "1"}), "img"),
            rs("b", "other", json!({REVISION_ANNOTATION: "3"}), "img"),
            uncontrolled,
            rs("d", "uid-d", json!({REVISION_ANNOTATION: "x"}), "img"),
            rs("e", "uid-d", json!({}), "img"),
        ];
        let got = revisions(&d, &list);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].replica_set, "a");
        assert!(got[0].current);
        assert_eq!(got[0].commit, None);
    }

    #[test]
    fn without_a_deployment_revision_the_highest_is_current() {
        let d = deployment(None);
        let list = [
            rs("a", "uid-d", json!({REVISION_ANNOTATION: "1"}), "img"),
            rs("b", "uid-d", json!({REVISION_ANNOTATION: "2"}), "img"),
        ];
        let got = revisions(&d, &list);
        assert_eq!(
            got.iter().map(|r| r.current).collect::<Vec<_>>(),
            vec![false, true]
        );
    }

    #[test]
    fn subject_strips_only_a_matching_short_sha() {
        assert_eq!(subject(SHA1, "1111111 fix: the thing"), "fix: the thing");
        assert_eq!(subject(SHA1, "2222222 other"), "2222222 other");
        assert_eq!(
            subject(SHA1, "rollback to revision 2"),
            "rollback to revision 2"
        );
        assert_eq!(subject(SHA1, ""), "");
    }

    #[test]
    fn selector_string_covers_labels_and_expressions() {
        let selector: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"app": "kubia", "tier": "web"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["a", "b"]},
                {"key": "x", "operator": "NotIn", "values": ["c"]},
                {"key": "y", "operator": "Exists"},
                {"key": "z", "operator": "DoesNotExist"}
            ]
        }))
        .expect("selector");
        assert_eq!(
            selector_string(&selector),
            "app=kubia,tier=web,env in (a,b),x notin (c),y,!z"
        );
    }

    #[test]
    fn selector_string_of_reads_a_workloads_selector_as_json() {
        let d = json!({"spec": {"selector": {"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]}}});
        assert_eq!(selector_string_of(&d), "app=web,tier in (a)");
        assert_eq!(selector_string_of(&json!({"spec": {}})), "");
    }

    #[test]
    fn text_table_marks_current_and_rollback() {
        let revs = vec![
            Revision {
                revision: 1,
                replica_set: "kubia-a".into(),
                commit: Some(CommitRef {
                    sha: SHA1.into(),
                    subject: "kubia v1".into(),
                }),
                images: vec!["luksa/kubia:v1".into()],
                created_at: Some("2026-11-21T10:00:00Z".into()),
                rollback: false,
                current: false,
            },
            Revision {
                revision: 2,
                replica_set: "kubia-b".into(),
                commit: None,
                images: vec![],
                created_at: None,
                rollback: true,
                current: true,
            },
        ];
        assert_eq!(
            render_text("default", "kubia", &revs),
            "deployment.apps/kubia in default\n\
             REVISION  CURRENT  ROLLBACK  REPLICASET  IMAGES          CREATED               COMMIT   SUBJECT\n\
             1                            kubia-a     luksa/kubia:v1  2026-11-21T10:00:00Z  1111111  kubia v1\n\
             2         *        yes       kubia-b     <none>          <unknown>             <none>\n"
        );
        assert_eq!(
            render_text("default", "kubia", &[]),
            "deployment.apps/kubia in default: no rollout history found\n"
        );
    }
}
