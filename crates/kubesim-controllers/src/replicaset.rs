//! The ReplicaSet controller (k8s-semantics §2): one `syncReplicaSet` per call.
//!
//! Owns: claiming pods (adopt orphans that match, release owned pods that no longer match),
//! creating missing pods from the template (generateName `<rs>-`), deleting extra pods in the
//! §2.2 rank order, and the status (replicas, fullyLabeled, ready, available per
//! minReadySeconds, observedGeneration) with a requeue for minReadySeconds.
//! Must not: name pods (the driver does, from generateName), schedule or run pods, or keep
//! expectations between calls (the driver applies writes synchronously).

use std::cmp::Ordering;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

use crate::obj::{
    self, at, controller_uid, creation, i64_at, is_deleting, name, namespace, ready_since, uid,
};
use crate::{Reconciled, Write};

const BURST: usize = 500;
const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";
const COMPONENT: &str = "replicaset-controller";

/// One sync of ReplicaSet `rs` against the pods of its namespace: adoption/release (a step of
/// its own), then pod creates (all missing pods at once, generateName `<rs>-`) or ranked
/// deletes, and an `UpdateStatus` when the status changed (pods deleted in this call are
/// already left out). `requeue_at`: when the next pod passes `minReadySeconds`.
pub fn sync(rs: &Value, pods: &[Value], now: Timestamp) -> Reconciled {
    let now = obj::trunc(now);
    let mut out = Reconciled::default();
    let rs_uid = uid(rs);
    let ns = namespace(rs);
    let selector = at(rs, &["spec", "selector"]);
    let deleting = is_deleting(rs);
    let mut claimed: Vec<&Value> = Vec::new();
    for pod in pods
        .iter()
        .filter(|p| namespace(p) == ns && obj::pod_active(p))
    {
        let matches = obj::selector_matches(selector, at(pod, &["metadata", "labels"]));
        match controller_uid(pod) {
            Some(u) if u == rs_uid => {
                if matches || deleting {
                    claimed.push(pod);
                } else {
                    out.writes
                        .push(Write::Update(obj::without_owner(pod, rs_uid)));
                }
            }
            Some(_) => {}
            None => {
                if matches && !deleting {
                    let r = obj::owner_ref("apps/v1", "ReplicaSet", rs);
                    out.writes.push(Write::Update(obj::with_owner(pod, r)));
                }
            }
        }
    }
    if !out.writes.is_empty() {
        // Adoption/release is one step; the next call counts the claimed pods.
        return out;
    }

    let min_ready = i64_at(rs, &["spec", "minReadySeconds"]).unwrap_or(0);
    if !deleting {
        manage_replicas(rs, &claimed, now, &mut out.writes);
    }
    // Unlike the real controller (which counts the pods it read), pods deleted in this call
    // are left out of the status at once: the driver applies writes synchronously, and a
    // Deployment sync reading the stale count could scale down below minAvailable.
    let deleted: Vec<&str> = out
        .writes
        .iter()
        .filter_map(|w| match w {
            Write::Delete { uid, .. } => Some(uid.as_str()),
            _ => None,
        })
        .collect();
    let counted: Vec<&Value> = claimed
        .iter()
        .copied()
        .filter(|p| !deleted.contains(&uid(p)))
        .collect();
    let status = calculate_status(rs, &counted, min_ready, now);
    let old = rs.get("status").cloned().unwrap_or(Value::Null);
    if !obj::sem_eq(&zeroless(&old), &zeroless(&status)) {
        let mut copy = rs.clone();
        obj::set(&mut copy, &["status"], status);
        out.writes.push(Write::UpdateStatus(copy));
    }
    if min_ready > 0 {
        out.requeue_at = claimed
            .iter()
            .filter_map(|p| ready_since(p))
            .filter_map(|since| {
                since
                    .checked_add(SignedDuration::from_secs(min_ready + 1))
                    .ok()
            })
            .filter(|at| *at > now)
            .min();
    }
    out
}

fn zeroless(st: &Value) -> Value {
    let mut n = obj::normalize(st);
    if let Some(m) = n.as_object_mut() {
        m.retain(|k, v| k == "replicas" || v.as_i64() != Some(0));
    }
    n
}

/// Available per `minReadySeconds`: Ready and Ready for longer than `min_ready` seconds.
pub(crate) fn pod_available(pod: &Value, min_ready: i64, now: Timestamp) -> bool {
    let Some(since) = ready_since(pod).or_else(|| obj::pod_ready(pod).then_some(now)) else {
        return false;
    };
    min_ready == 0
        || since
            .checked_add(SignedDuration::from_secs(min_ready))
            .is_ok_and(|t| t < now)
}

fn calculate_status(rs: &Value, pods: &[&Value], min_ready: i64, now: Timestamp) -> Value {
    let template_labels = at(rs, &["spec", "template", "metadata", "labels"])
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let fully_labeled = pods
        .iter()
        .filter(|p| {
            template_labels
                .iter()
                .all(|(k, v)| at(p, &["metadata", "labels", k]) == Some(v))
        })
        .count();
    let ready = pods.iter().filter(|p| obj::pod_ready(p)).count();
    let available = pods
        .iter()
        .filter(|p| pod_available(p, min_ready, now))
        .count();
    let mut st = Map::new();
    st.insert("replicas".into(), json!(pods.len()));
    for (k, v) in [
        ("fullyLabeledReplicas", fully_labeled),
        ("readyReplicas", ready),
        ("availableReplicas", available),
    ] {
        if v != 0 {
            st.insert(k.into(), json!(v));
        }
    }
    let generation = obj::generation(rs);
    if generation != 0 {
        st.insert("observedGeneration".into(), json!(generation));
    }
    // Pod creation never fails in the simulation, so a ReplicaFailure condition is dropped
    // on the next successful sync (§2.4).
    Value::Object(st)
}

fn manage_replicas(rs: &Value, pods: &[&Value], now: Timestamp, writes: &mut Vec<Write>) {
    let want = i64_at(rs, &["spec", "replicas"]).unwrap_or(1).max(0) as usize;
    let have = pods.len();
    if have < want {
        let n = (want - have).min(BURST);
        for _ in 0..n {
            writes.push(Write::Create(pod_from_template(rs)));
        }
    } else if have > want {
        let n = (have - want).min(BURST);
        let mut ranked: Vec<&Value> = pods.to_vec();
        if n < have {
            ranked.sort_by(|a, b| rank_cmp(a, b, pods, now));
        }
        for pod in ranked.into_iter().take(n) {
            writes.push(Write::Delete {
                api_version: "v1".into(),
                kind: "Pod".into(),
                namespace: namespace(pod).map(str::to_string),
                name: name(pod).to_string(),
                uid: uid(pod).to_string(),
            });
            writes.push(Write::Event(obj::event(
                rs,
                "Normal",
                "SuccessfulDelete",
                format!("Deleted pod: {}", name(pod)),
                COMPONENT,
            )));
        }
    }
}

/// The pod a ReplicaSet creates (`GetPodFromTemplate`).
fn pod_from_template(rs: &Value) -> Value {
    let template = at(rs, &["spec", "template"])
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut meta = Map::new();
    meta.insert("generateName".into(), json!(format!("{}-", name(rs))));
    if let Some(ns) = namespace(rs) {
        meta.insert("namespace".into(), json!(ns));
    }
    for key in ["labels", "annotations", "finalizers"] {
        if let Some(v) = at(&template, &["metadata", key]) {
            meta.insert(key.into(), v.clone());
        }
    }
    meta.insert(
        "ownerReferences".into(),
        json!([obj::owner_ref("apps/v1", "ReplicaSet", rs)]),
    );
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": Value::Object(meta),
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    })
}

fn phase_rank(pod: &Value) -> u8 {
    match obj::pod_phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    }
}

fn deletion_cost(pod: &Value) -> i64 {
    obj::annotation(pod, DELETION_COST)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn node_of(pod: &Value) -> &str {
    obj::str_at(pod, &["spec", "nodeName"]).unwrap_or_default()
}

fn max_restarts(pod: &Value) -> i64 {
    at(pod, &["status", "containerStatuses"])
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// `floor(log2(now - t))` in nanoseconds, -1 when not in the past.
fn log_bucket(t: Timestamp, now: Timestamp) -> i64 {
    let d = now.as_nanosecond() - t.as_nanosecond();
    if d > 0 { (d as f64).log2() as i64 } else { -1 }
}

/// `ActivePodsWithRanks.Less`: the pod to delete first sorts first.
fn rank_cmp(a: &Value, b: &Value, pods: &[&Value], now: Timestamp) -> Ordering {
    let assigned = |p: &Value| !node_of(p).is_empty();
    if assigned(a) != assigned(b) {
        return assigned(a).cmp(&assigned(b));
    }
    if phase_rank(a) != phase_rank(b) {
        return phase_rank(a).cmp(&phase_rank(b));
    }
    let (ra, rb) = (obj::pod_ready(a), obj::pod_ready(b));
    if ra != rb {
        return ra.cmp(&rb);
    }
    if deletion_cost(a) != deletion_cost(b) {
        return deletion_cost(a).cmp(&deletion_cost(b));
    }
    // Doubled-up pods first (rank = pods on the same node).
    let rank = |p: &Value| {
        pods.iter()
            .filter(|o| !node_of(p).is_empty() && node_of(o) == node_of(p))
            .count()
    };
    if rank(a) != rank(b) {
        return rank(b).cmp(&rank(a));
    }
    let by_uid = || uid(a).cmp(uid(b));
    if ra
        && rb
        && let (Some(ta), Some(tb)) = (ready_since(a), ready_since(b))
        && ta != tb
    {
        let diff = log_bucket(ta, now) - log_bucket(tb, now);
        return if diff == 0 { by_uid() } else { diff.cmp(&0) };
    }
    if max_restarts(a) != max_restarts(b) {
        return max_restarts(b).cmp(&max_restarts(a));
    }
    if let (Some(ca), Some(cb)) = (creation(a), creation(b))
        && ca != cb
    {
        let diff = log_bucket(ca, now) - log_bucket(cb, now);
        return if diff == 0 { by_uid() } else { diff.cmp(&0) };
    }
    by_uid()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-01-01T00:01:00Z".parse().unwrap()
    }

    fn rs(replicas: i64) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-abc", "namespace": "default", "uid": "rs-uid", "generation": 2,
                "resourceVersion": "7"},
            "spec": {"replicas": replicas, "minReadySeconds": 0,
                "selector": {"matchLabels": {"app": "web", "pod-template-hash": "abc"}},
                "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": "abc"},
                    "annotations": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
    }

    fn pod(name_: &str, node: &str, ready_since: Option<&str>) -> Value {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name_, "namespace": "default", "uid": format!("u-{name_}"),
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {"app": "web", "pod-template-hash": "abc"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc",
                    "uid": "rs-uid", "controller": true, "blockOwnerDeletion": true}]},
            "spec": {"nodeName": node}, "status": {"phase": "Running"}});
        if let Some(t) = ready_since {
            p["status"]["conditions"] =
                json!([{"type": "Ready", "status": "True", "lastTransitionTime": t}]);
        }
        p
    }

    #[test]
    fn creates_missing_pods_from_the_template() {
        let r = sync(&rs(2), &[], now());
        let creates: Vec<&Value> = r
            .writes
            .iter()
            .filter_map(|w| match w {
                Write::Create(v) => Some(v),
                _ => None,
            })
            .collect();
        assert_eq!(creates.len(), 2);
        assert_eq!(
            creates[0],
            &json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"generateName": "web-abc-", "namespace": "default",
                    "labels": {"app": "web", "pod-template-hash": "abc"}, "annotations": {"a": "b"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc",
                        "uid": "rs-uid", "controller": true, "blockOwnerDeletion": true}]},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
        );
        let Some(Write::UpdateStatus(st)) = r.writes.last() else {
            panic!("{:#?}", r.writes);
        };
        assert_eq!(
            st["status"],
            json!({"replicas": 0, "observedGeneration": 2})
        );
    }

    #[test]
    fn deletes_the_worst_pods_first() {
        let pods = vec![
            pod("ready-old", "n1", Some("2026-01-01T00:00:00Z")),
            pod("unscheduled", "", None),
            pod("not-ready", "n1", None),
            pod("ready-new", "n1", Some("2026-01-01T00:00:59Z")),
        ];
        let r = sync(&rs(1), &pods, now());
        let deleted: Vec<&str> = r
            .writes
            .iter()
            .filter_map(|w| match w {
                Write::Delete { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(deleted, vec!["unscheduled", "not-ready", "ready-new"]);
        let Some(Write::UpdateStatus(st)) = r.writes.last() else {
            panic!("{:#?}", r.writes);
        };
        assert_eq!(
            st["status"],
            json!({"replicas": 1, "fullyLabeledReplicas": 1, "readyReplicas": 1, "availableReplicas": 1,
                "observedGeneration": 2})
        );
    }

    #[test]
    fn adopts_orphans_and_releases_mismatches() {
        let mut orphan = pod("o", "n1", None);
        obj::remove(&mut orphan, &["metadata", "ownerReferences"]);
        let mut stray = pod("s", "n1", None);
        stray["metadata"]["labels"] = json!({"app": "other"});
        let r = sync(&rs(1), &[orphan, stray], now());
        assert_eq!(r.writes.len(), 2);
        let Write::Update(adopted) = &r.writes[0] else {
            panic!()
        };
        assert_eq!(controller_uid(adopted), Some("rs-uid"));
        let Write::Update(released) = &r.writes[1] else {
            panic!()
        };
        assert_eq!(released["metadata"].get("ownerReferences"), None);
    }

    #[test]
    fn min_ready_seconds_requeues_and_gates_availability() {
        let mut r = rs(1);
        r["spec"]["minReadySeconds"] = json!(30);
        r["status"] = json!({"replicas": 1, "fullyLabeledReplicas": 1, "readyReplicas": 1, "observedGeneration": 2});
        let pods = [pod("p", "n1", Some("2026-01-01T00:00:50Z"))];
        let out = sync(&r, &pods, now());
        assert!(out.writes.is_empty(), "{:#?}", out.writes);
        assert_eq!(
            out.requeue_at,
            Some("2026-01-01T00:01:21Z".parse().unwrap())
        );
        let later: Timestamp = "2026-01-01T00:01:21Z".parse().unwrap();
        let out = sync(&r, &pods, later);
        let [Write::UpdateStatus(st)] = out.writes.as_slice() else {
            panic!("{:#?}", out.writes)
        };
        assert_eq!(st["status"]["availableReplicas"], json!(1));
    }

    #[test]
    fn terminating_and_finished_pods_do_not_count() {
        let mut gone = pod("g", "n1", None);
        gone["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:30Z");
        let mut done = pod("d", "n1", None);
        done["status"]["phase"] = json!("Succeeded");
        let out = sync(&rs(0), &[gone, done], now());
        let [Write::UpdateStatus(st)] = out.writes.as_slice() else {
            panic!("{:#?}", out.writes)
        };
        assert_eq!(
            st["status"],
            json!({"replicas": 0, "observedGeneration": 2})
        );
    }
}
