//! A tiny in-test driver: a Vec of objects, a settable clock, and a loop that runs every
//! controller and applies its writes (checking resourceVersions like the API server) until
//! nothing more comes out. Scenario tests over the Deployment/ReplicaSet/kubelet controllers
//! live here. Must not: be compiled outside tests.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::obj::{self, at, fmt_time, i64_at, name, namespace, str_at, uid};
use crate::{Write, deployment, gc, kubelet, replicaset};

type Check = Box<dyn Fn(&Cluster)>;

pub(crate) struct Cluster {
    pub now: Timestamp,
    pub objs: Vec<Value>,
    pub events: Vec<Value>,
    pub cfg: kubelet::Config,
    /// Invariant checked after every applied write.
    pub check: Option<Check>,
    /// `kubectl rollout status` messages, consecutive duplicates folded.
    pub rollout_log: Vec<String>,
    /// One line per applied write (printed by failing checks).
    pub trace: Vec<String>,
    counter: u64,
    ips: u64,
    rv: u64,
    writes_applied: usize,
}

fn key(v: &Value) -> (String, Option<String>, String) {
    (
        str_at(v, &["kind"]).unwrap_or_default().to_string(),
        namespace(v).map(str::to_string),
        name(v).to_string(),
    )
}

const NAME_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

impl Cluster {
    pub fn new() -> Self {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut c = Cluster {
            now,
            objs: Vec::new(),
            events: Vec::new(),
            cfg: kubelet::Config::default(),
            check: None,
            rollout_log: Vec::new(),
            trace: Vec::new(),
            counter: 0,
            ips: 0,
            rv: 0,
            writes_applied: 0,
        };
        let node = kubelet::node("kubesim-node-1", "172.18.0.2", now);
        c.apply(Write::Create(node));
        c
    }

    pub fn advance(&mut self, secs: i64) {
        self.now = self
            .now
            .checked_add(SignedDuration::from_secs(secs))
            .unwrap();
    }

    pub fn get(&self, kind: &str, name_: &str) -> Value {
        self.objs
            .iter()
            .find(|o| str_at(o, &["kind"]) == Some(kind) && name(o) == name_)
            .cloned()
            .unwrap_or_else(|| panic!("{kind}/{name_} not found"))
    }

    pub fn of_kind(&self, kind: &str) -> Vec<Value> {
        self.objs
            .iter()
            .filter(|o| str_at(o, &["kind"]) == Some(kind))
            .cloned()
            .collect()
    }

    fn next_rv(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }

    /// Applies one write as the API server would; panics on a stale resourceVersion.
    pub fn apply(&mut self, w: Write) {
        self.writes_applied += 1;
        self.trace.push(summary(&w));
        match w {
            Write::Create(mut v) => {
                self.counter += 1;
                if name(&v).is_empty() {
                    let base = str_at(&v, &["metadata", "generateName"])
                        .unwrap()
                        .to_string();
                    let mut n = self.counter;
                    let suffix: String = (0..5)
                        .map(|_| {
                            let c = NAME_CHARS[(n % 27) as usize] as char;
                            n /= 27;
                            c
                        })
                        .collect();
                    obj::set(
                        &mut v,
                        &["metadata", "name"],
                        json!(format!("{base}{suffix}")),
                    );
                }
                assert!(
                    !self.objs.iter().any(|o| key(o) == key(&v)),
                    "create of existing {:?}",
                    key(&v)
                );
                obj::set(
                    &mut v,
                    &["metadata", "uid"],
                    json!(format!("uid-{}", self.counter)),
                );
                obj::set(
                    &mut v,
                    &["metadata", "creationTimestamp"],
                    json!(fmt_time(self.now)),
                );
                obj::set(&mut v, &["metadata", "generation"], json!(1));
                let rv = self.next_rv();
                obj::set(&mut v, &["metadata", "resourceVersion"], json!(rv));
                self.objs.push(v);
            }
            Write::Update(v) => {
                let i = self.index_checked(&v);
                let old = self.objs[i].clone();
                let mut new = v;
                match old.get("status") {
                    Some(s) => obj::set(&mut new, &["status"], s.clone()),
                    None => obj::remove(&mut new, &["status"]),
                }
                let spec_changed = !obj::sem_eq(
                    old.get("spec").unwrap_or(&Value::Null),
                    new.get("spec").unwrap_or(&Value::Null),
                );
                let ann_changed = str_at(&old, &["kind"]) == Some("Deployment")
                    && !obj::sem_eq(
                        at(&old, &["metadata", "annotations"]).unwrap_or(&Value::Null),
                        at(&new, &["metadata", "annotations"]).unwrap_or(&Value::Null),
                    );
                let generation = obj::generation(&old) + i64::from(spec_changed || ann_changed);
                obj::set(&mut new, &["metadata", "generation"], json!(generation));
                let rv = self.next_rv();
                obj::set(&mut new, &["metadata", "resourceVersion"], json!(rv));
                self.objs[i] = new;
            }
            Write::UpdateStatus(v) => {
                let i = self.index_checked(&v);
                let mut new = self.objs[i].clone();
                match v.get("status") {
                    Some(s) => obj::set(&mut new, &["status"], s.clone()),
                    None => obj::remove(&mut new, &["status"]),
                }
                if str_at(&v, &["kind"]) == Some("Deployment") {
                    match at(&v, &["metadata", "annotations"]) {
                        Some(a) => obj::set(&mut new, &["metadata", "annotations"], a.clone()),
                        None => obj::remove(&mut new, &["metadata", "annotations"]),
                    }
                }
                let rv = self.next_rv();
                obj::set(&mut new, &["metadata", "resourceVersion"], json!(rv));
                self.objs[i] = new;
            }
            Write::Delete {
                kind,
                namespace: ns,
                name: n,
                uid: u,
                ..
            } => {
                let Some(i) = self.objs.iter().position(|o| {
                    str_at(o, &["kind"]) == Some(kind.as_str())
                        && namespace(o) == ns.as_deref()
                        && name(o) == n
                }) else {
                    return;
                };
                assert_eq!(uid(&self.objs[i]), u, "uid precondition");
                if kind == "Pod" && !obj::is_deleting(&self.objs[i]) {
                    let t = fmt_time(self.now);
                    obj::set(
                        &mut self.objs[i],
                        &["metadata", "deletionTimestamp"],
                        json!(t),
                    );
                    let rv = self.next_rv();
                    obj::set(
                        &mut self.objs[i],
                        &["metadata", "resourceVersion"],
                        json!(rv),
                    );
                } else {
                    self.objs.remove(i);
                }
            }
            Write::Event(e) => self.events.push(e),
        }
        self.record_rollout();
        if let Some(check) = &self.check {
            check(self);
        }
    }

    fn index_checked(&self, v: &Value) -> usize {
        let i = self
            .objs
            .iter()
            .position(|o| key(o) == key(v))
            .unwrap_or_else(|| panic!("update of missing {:?}", key(v)));
        assert_eq!(
            str_at(&self.objs[i], &["metadata", "resourceVersion"]),
            str_at(v, &["metadata", "resourceVersion"]),
            "stale write of {:?}",
            key(v)
        );
        i
    }

    fn record_rollout(&mut self) {
        for d in self.of_kind("Deployment") {
            let msg = rollout_status(&d);
            if self.rollout_log.last() != Some(&msg) {
                self.rollout_log.push(msg);
            }
        }
    }

    /// Runs every controller once over a snapshot; returns (writes, earliest requeue).
    pub fn pass(&mut self) -> (usize, Option<Timestamp>) {
        let before = self.writes_applied;
        let mut requeue: Option<Timestamp> = None;
        let mut note = |r: Option<Timestamp>| {
            if let Some(t) = r {
                requeue = Some(requeue.map_or(t, |q: Timestamp| q.min(t)));
            }
        };
        for d in self.of_kind("Deployment") {
            let Some(d) = self.objs.iter().find(|o| key(o) == key(&d)).cloned() else {
                continue;
            };
            let r = deployment::sync(
                &d,
                &self.of_kind("ReplicaSet"),
                &self.of_kind("Pod"),
                self.now,
            );
            note(r.requeue_at);
            for w in r.writes {
                self.apply(w);
            }
        }
        for rs in self.of_kind("ReplicaSet") {
            let Some(rs) = self.objs.iter().find(|o| key(o) == key(&rs)).cloned() else {
                continue;
            };
            let r = replicaset::sync(&rs, &self.of_kind("Pod"), self.now);
            note(r.requeue_at);
            for w in r.writes {
                self.apply(w);
            }
        }
        for pod in self.of_kind("Pod") {
            let Some(pod) = self.objs.iter().find(|o| key(o) == key(&pod)).cloned() else {
                continue;
            };
            self.ips += 1;
            let ip = format!("10.244.{}.{}", self.ips / 250, self.ips % 250 + 1);
            let r = kubelet::sync(
                &pod,
                &self.of_kind("Node"),
                &self.of_kind("Pod"),
                self.now,
                &self.cfg,
                &ip,
            );
            note(r.requeue_at);
            for w in r.writes {
                self.apply(w);
            }
        }
        let objs = self.objs.clone();
        let uids: Vec<String> = objs.iter().map(|o| uid(o).to_string()).collect();
        for o in &objs {
            let r = gc::sync(o, &|u| uids.iter().any(|x| x == u));
            for w in r.writes {
                self.apply(w);
            }
        }
        (self.writes_applied - before, requeue)
    }

    /// Passes until one makes no write; returns the earliest requeue of the last pass.
    pub fn settle(&mut self) -> Option<Timestamp> {
        for _ in 0..500 {
            let (n, requeue) = self.pass();
            if n == 0 {
                return requeue;
            }
        }
        panic!("controllers did not settle");
    }

    /// Settles, then follows requeues (advancing the clock) up to `limit_secs` from now.
    pub fn run_for(&mut self, limit_secs: i64) {
        let end = self
            .now
            .checked_add(SignedDuration::from_secs(limit_secs))
            .unwrap();
        while let Some(t) = self.settle() {
            if t > end {
                break;
            }
            if t > self.now {
                self.now = t;
            }
        }
        if self.now < end {
            self.now = end;
            self.settle();
        }
    }

    pub fn create_deployment(&mut self, d: Value) {
        self.apply(Write::Create(d));
    }

    /// A client edit of a Deployment (generation bump when spec/annotations change).
    pub fn edit(&mut self, name_: &str, f: impl FnOnce(&mut Value)) {
        let mut d = self.get("Deployment", name_);
        f(&mut d);
        self.apply(Write::Update(d));
    }

    pub fn owned_rss(&self, d: &str) -> Vec<Value> {
        let d = self.get("Deployment", d);
        let mut rss: Vec<Value> = self
            .of_kind("ReplicaSet")
            .into_iter()
            .filter(|rs| obj::controller_uid(rs) == Some(uid(&d)))
            .collect();
        rss.sort_by_key(|rs| {
            uid(rs)
                .trim_start_matches("uid-")
                .parse::<u64>()
                .unwrap_or(0)
        });
        rss
    }

    pub fn pods_of(&self, rs: &Value) -> Vec<Value> {
        self.of_kind("Pod")
            .into_iter()
            .filter(|p| obj::controller_uid(p) == Some(uid(rs)))
            .collect()
    }
}

fn summary(w: &Write) -> String {
    let brief = |v: &Value| {
        format!(
            "{}/{} spec.replicas={:?} status={} ready={}",
            str_at(v, &["kind"]).unwrap_or_default(),
            if name(v).is_empty() {
                str_at(v, &["metadata", "generateName"]).unwrap_or_default()
            } else {
                name(v)
            },
            i64_at(v, &["spec", "replicas"]),
            v.get("status")
                .map(|s| {
                    let mut s = s.clone();
                    obj::remove(&mut s, &["conditions"]);
                    obj::remove(&mut s, &["containerStatuses"]);
                    s.to_string()
                })
                .unwrap_or_default(),
            obj::pod_ready(v)
        )
    };
    match w {
        Write::Create(v) => format!("CREATE {}", brief(v)),
        Write::Update(v) => format!("UPDATE {}", brief(v)),
        Write::UpdateStatus(v) => format!("STATUS {}", brief(v)),
        Write::Delete { kind, name, .. } => format!("DELETE {kind}/{name}"),
        Write::Event(e) => format!("EVENT {}", e["message"]),
    }
}

/// `kubectl rollout status` (§3.1) for one observed Deployment.
pub(crate) fn rollout_status(d: &Value) -> String {
    let n = name(d);
    let g = |k: &str| i64_at(d, &["status", k]).unwrap_or(0);
    if obj::generation(d) > g("observedGeneration") {
        return "Waiting for deployment spec update to be observed...".into();
    }
    let progressing = obj::condition(d, "Progressing");
    if progressing
        .and_then(|c| c.get("reason"))
        .and_then(Value::as_str)
        == Some("ProgressDeadlineExceeded")
    {
        return format!("error: deployment \"{n}\" exceeded its progress deadline");
    }
    let want = i64_at(d, &["spec", "replicas"]).unwrap_or(1);
    let (updated, replicas, available) =
        (g("updatedReplicas"), g("replicas"), g("availableReplicas"));
    if updated < want {
        format!(
            "Waiting for deployment \"{n}\" rollout to finish: {updated} out of {want} new replicas have been updated..."
        )
    } else if replicas > updated {
        format!(
            "Waiting for deployment \"{n}\" rollout to finish: {} old replicas are pending termination...",
            replicas - updated
        )
    } else if available < updated {
        format!(
            "Waiting for deployment \"{n}\" rollout to finish: {available} of {updated} updated replicas are available..."
        )
    } else {
        format!("deployment \"{n}\" successfully rolled out")
    }
}

/// A Deployment in stored (defaulted) form.
pub(crate) fn deployment(name_: &str, replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name_, "namespace": "default", "annotations": {"kubesync.io/commit": "abc"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name_}},
            "template": {
                "metadata": {"labels": {"app": name_}},
                "spec": {
                    "containers": [{"name": "app", "image": image, "imagePullPolicy": "IfNotPresent",
                        "resources": {}, "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File"}],
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 30,
                    "dnsPolicy": "ClusterFirst",
                    "schedulerName": "default-scheduler",
                    "securityContext": {},
                },
            },
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
    })
}

fn set_image(d: &mut Value, image: &str) {
    obj::set(d, &["spec", "template", "spec", "containers"], {
        let mut cs = at(d, &["spec", "template", "spec", "containers"])
            .unwrap()
            .clone();
        cs[0]["image"] = json!(image);
        cs
    });
}

fn set_template_annotation(d: &mut Value, k: &str, v: &str) {
    obj::set(
        d,
        &["spec", "template", "metadata", "annotations", k],
        json!(v),
    );
}

/// Pods of a Deployment (by label), split into (non-terminating, available).
fn counts(c: &Cluster, app: &str) -> (usize, usize) {
    let pods: Vec<Value> = c
        .of_kind("Pod")
        .into_iter()
        .filter(|p| obj::label(p, "app") == Some(app) && !obj::is_deleting(p))
        .collect();
    let available = pods.iter().filter(|p| obj::pod_ready(p)).count();
    (pods.len(), available)
}

fn cond_summary(d: &Value) -> Vec<(String, String, String)> {
    at(d, &["status", "conditions"])
        .and_then(Value::as_array)
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
                c["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn c3(a: &str, b: &str, r: &str) -> (String, String, String) {
    (a.into(), b.into(), r.into())
}

fn spec_of(rs: &Value) -> i64 {
    i64_at(rs, &["spec", "replicas"]).unwrap()
}

/// Installs a bound check: at most `max_pods` live pods and — once the first rollout is
/// complete — at least `min_avail` Ready pods.
fn bounds(c: &mut Cluster, app: &'static str, max_pods: usize, min_avail: usize) {
    c.check = Some(Box::new(move |c: &Cluster| {
        let (live, avail) = counts(c, app);
        assert!(live <= max_pods, "{live} live pods > {max_pods}");
        assert!(
            avail >= min_avail,
            "{avail} available pods < {min_avail}\n{}",
            c.trace[c.trace.len().saturating_sub(25)..].join("\n")
        );
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rolled_out(replicas: i64) -> Cluster {
        let mut c = Cluster::new();
        c.create_deployment(deployment("web", replicas, "nginx:1.24"));
        c.settle();
        c
    }

    #[test]
    fn first_rollout_of_three_replicas() {
        let mut c = Cluster::new();
        c.create_deployment(deployment("web", 3, "nginx:1.24"));
        c.settle();
        let d = c.get("Deployment", "web");
        let rss = c.owned_rss("web");
        assert_eq!(rss.len(), 1);
        let rs = &rss[0];
        let rs_name = name(rs).to_string();
        let hash = obj::label(rs, "pod-template-hash").unwrap();
        assert_eq!(rs_name, format!("web-{hash}"));
        assert_eq!(obj::annotation(rs, deployment::REVISION), Some("1"));
        assert_eq!(obj::annotation(rs, deployment::DESIRED_REPLICAS), Some("3"));
        assert_eq!(obj::annotation(rs, deployment::MAX_REPLICAS), Some("4"));
        assert_eq!(obj::annotation(rs, "kubesync.io/commit"), Some("abc"));
        assert_eq!(
            at(
                rs,
                &["spec", "selector", "matchLabels", "pod-template-hash"]
            ),
            Some(&json!(hash))
        );
        assert_eq!(obj::annotation(&d, deployment::REVISION), Some("1"));
        assert_eq!(
            d["status"],
            json!({
                "observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3,
                "availableReplicas": 3,
                "conditions": d["status"]["conditions"].clone(),
            })
        );
        assert_eq!(
            cond_summary(&d),
            vec![
                c3("Available", "True", "MinimumReplicasAvailable"),
                c3("Progressing", "True", "NewReplicaSetAvailable")
            ]
        );
        let prog = obj::condition(&d, "Progressing").unwrap();
        assert_eq!(
            prog["message"],
            json!(format!(
                "ReplicaSet \"{rs_name}\" has successfully progressed."
            ))
        );
        let pods = c.pods_of(rs);
        assert_eq!(pods.len(), 3);
        assert!(
            pods.iter()
                .all(|p| obj::pod_ready(p) && name(p).starts_with(&format!("{rs_name}-")))
        );
        assert_eq!(
            rs["status"],
            json!({"replicas": 3, "fullyLabeledReplicas": 3, "readyReplicas": 3, "availableReplicas": 3, "observedGeneration": 1})
        );
        let log: Vec<&str> = c.rollout_log.iter().map(String::as_str).collect();
        assert_eq!(
            log,
            [
                "Waiting for deployment spec update to be observed...",
                "Waiting for deployment \"web\" rollout to finish: 0 out of 3 new replicas have been updated...",
                "Waiting for deployment \"web\" rollout to finish: 0 of 3 updated replicas are available...",
                "deployment \"web\" successfully rolled out",
            ]
        );
        assert!(
            c.events
                .iter()
                .any(|e| e["message"] == json!(format!("Scaled up replica set {rs_name} to 3")))
        );
        // Fixpoint: another pass on unchanged inputs writes nothing.
        assert_eq!(c.pass().0, 0);
    }

    #[test]
    fn fresh_deployment_condition_order_before_completion() {
        let mut c = Cluster::new();
        let mut d = deployment("web", 2, "nginx:1.24");
        set_template_annotation(&mut d, kubelet::NEVER_READY, "true");
        c.create_deployment(d);
        c.settle();
        let d = c.get("Deployment", "web");
        assert_eq!(
            cond_summary(&d),
            vec![
                c3("Available", "False", "MinimumReplicasUnavailable"),
                c3("Progressing", "True", "ReplicaSetUpdated")
            ]
        );
        assert_eq!(d["status"]["unavailableReplicas"], json!(2));
    }

    #[test]
    fn image_change_with_default_strategy_respects_bounds() {
        let mut c = rolled_out(3);
        c.cfg.default_ready_after = Duration::from_secs(2);
        c.rollout_log.clear();
        bounds(&mut c, "web", 4, 3);
        c.edit("web", |d| set_image(d, "nginx:1.25"));
        c.run_for(60);
        let rss = c.owned_rss("web");
        assert_eq!(rss.len(), 2);
        assert_eq!(spec_of(&rss[0]), 0);
        assert_eq!(spec_of(&rss[1]), 3);
        assert_eq!(obj::annotation(&rss[1], deployment::REVISION), Some("2"));
        let d = c.get("Deployment", "web");
        assert_eq!(obj::annotation(&d, deployment::REVISION), Some("2"));
        assert_eq!(c.pods_of(&rss[1]).len(), 3);
        assert!(c.pods_of(&rss[0]).is_empty());
        let expected = [
            "Waiting for deployment spec update to be observed...",
            "Waiting for deployment \"web\" rollout to finish: 0 out of 3 new replicas have been updated...",
            "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...",
            "Waiting for deployment \"web\" rollout to finish: 2 out of 3 new replicas have been updated...",
            "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination...",
            "deployment \"web\" successfully rolled out",
        ];
        let log: Vec<&str> = c.rollout_log.iter().map(String::as_str).collect();
        assert_eq!(log, expected, "{log:#?}");
        // Scaling events name old and new sizes.
        assert!(
            c.events
                .iter()
                .any(|e| e["message"].as_str().unwrap().contains(" to 2 from 3"))
        );
        assert_eq!(c.pass().0, 0);
    }

    #[test]
    fn ten_replicas_with_25_percent() {
        let mut c = rolled_out(10);
        c.cfg.default_ready_after = Duration::from_secs(1);
        bounds(&mut c, "web", 13, 8);
        c.edit("web", |d| set_image(d, "nginx:1.25"));
        c.settle();
        let rss = c.owned_rss("web");
        // New RS starts at 3 (13 total), old 10→8 at once (budget 10-8), then new →5.
        assert_eq!((spec_of(&rss[0]), spec_of(&rss[1])), (8, 5));
        let first_scale = c
            .events
            .iter()
            .find(|e| {
                e["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("Scaled up replica set web-")
            })
            .map(|e| e["message"].as_str().unwrap().to_string());
        assert!(first_scale.unwrap().ends_with(" to 10"));
        assert!(c.events.iter().any(|e| {
            e["message"]
                .as_str()
                .unwrap()
                .ends_with(&format!("{} to 3", name(&rss[1])))
        }));
        c.run_for(120);
        let rss = c.owned_rss("web");
        assert_eq!((spec_of(&rss[0]), spec_of(&rss[1])), (0, 10));
        assert_eq!(
            rollout_status(&c.get("Deployment", "web")),
            "deployment \"web\" successfully rolled out"
        );
    }

    #[test]
    fn surge_three_unavailable_three() {
        let mut c = Cluster::new();
        let mut d = deployment("web", 10, "nginx:1.24");
        d["spec"]["strategy"]["rollingUpdate"] = json!({"maxSurge": 3, "maxUnavailable": 3});
        c.create_deployment(d);
        c.settle();
        c.cfg.default_ready_after = Duration::from_secs(1);
        bounds(&mut c, "web", 13, 7);
        c.edit("web", |d| set_image(d, "nginx:1.25"));
        c.run_for(120);
        let rss = c.owned_rss("web");
        assert_eq!((spec_of(&rss[0]), spec_of(&rss[1])), (0, 10));
    }

    #[test]
    fn recreate_stops_old_pods_before_new_ones() {
        let mut c = Cluster::new();
        let mut d = deployment("web", 3, "nginx:1.24");
        d["spec"]["strategy"] = json!({"type": "Recreate"});
        c.create_deployment(d);
        c.settle();
        c.check = Some(Box::new(|c: &Cluster| {
            let images: Vec<String> = c
                .of_kind("Pod")
                .iter()
                .map(|p| {
                    p["spec"]["containers"][0]["image"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect();
            assert!(
                !(images.iter().any(|i| i == "nginx:1.24")
                    && images.iter().any(|i| i == "nginx:1.25"))
            );
        }));
        c.edit("web", |d| set_image(d, "nginx:1.25"));
        c.settle();
        let rss = c.owned_rss("web");
        assert_eq!((spec_of(&rss[0]), spec_of(&rss[1])), (0, 3));
        let d = c.get("Deployment", "web");
        assert_eq!(
            obj::annotation(&rss[1], deployment::MAX_REPLICAS),
            Some("3")
        );
        assert_eq!(
            rollout_status(&d),
            "deployment \"web\" successfully rolled out"
        );
        assert_eq!(
            cond_summary(&d),
            vec![
                c3("Available", "True", "MinimumReplicasAvailable"),
                c3("Progressing", "True", "NewReplicaSetAvailable")
            ]
        );
    }

    #[test]
    fn never_ready_pod_blocks_until_progress_deadline() {
        let mut c = rolled_out(3);
        bounds(&mut c, "web", 4, 3);
        c.edit("web", |d| {
            d["spec"]["strategy"]["rollingUpdate"] = json!({"maxSurge": 1, "maxUnavailable": 0});
            set_template_annotation(d, kubelet::NEVER_READY, "true");
        });
        let requeue = c.settle().expect("deadline requeue");
        let d = c.get("Deployment", "web");
        let prog = obj::condition(&d, "Progressing").unwrap().clone();
        let lut: Timestamp = prog["lastUpdateTime"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            requeue,
            lut.checked_add(SignedDuration::from_secs(601)).unwrap()
        );
        let rss = c.owned_rss("web");
        assert_eq!((spec_of(&rss[0]), spec_of(&rss[1])), (3, 1));
        assert_eq!(
            rollout_status(&d),
            "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated..."
        );
        c.run_for(700);
        let d = c.get("Deployment", "web");
        let prog = obj::condition(&d, "Progressing").unwrap();
        assert_eq!(prog["status"], json!("False"));
        assert_eq!(prog["reason"], json!("ProgressDeadlineExceeded"));
        let new_name = name(&c.owned_rss("web")[1]).to_string();
        assert_eq!(
            prog["message"],
            json!(format!(
                "ReplicaSet \"{new_name}\" has timed out progressing."
            ))
        );
        assert_eq!(
            rollout_status(&d),
            "error: deployment \"web\" exceeded its progress deadline"
        );
        let rss = c.owned_rss("web");
        assert_eq!((spec_of(&rss[0]), spec_of(&rss[1])), (3, 1));
        assert_eq!(c.pass().0, 0);
    }

    #[test]
    fn scale_up_of_a_complete_deployment_with_stuck_pods_does_not_spin() {
        let mut c = rolled_out(2);
        c.cfg.default_ready_after = Duration::from_secs(3600);
        c.advance(3600);
        c.edit("web", |d| d["spec"]["replicas"] = json!(4));
        let requeue = c.settle();
        assert!(requeue.is_none_or(|t| t > c.now), "{requeue:?}");
        let d = c.get("Deployment", "web");
        assert_eq!(spec_of(&c.owned_rss("web")[0]), 4);
        assert_eq!(
            obj::condition(&d, "Progressing").unwrap()["reason"],
            json!("NewReplicaSetAvailable")
        );
        // 2 available of 4, maxUnavailable 1 → not available.
        assert_eq!(
            obj::condition(&d, "Available").unwrap()["status"],
            json!("False")
        );
        assert_eq!(
            rollout_status(&d),
            "Waiting for deployment \"web\" rollout to finish: 2 of 4 updated replicas are available..."
        );
        let scaled = c
            .events
            .iter()
            .any(|e| e["message"].as_str().unwrap().ends_with("to 4 from 2"));
        assert!(scaled);
    }

    #[test]
    fn scale_down_during_rollout_is_proportional() {
        let mut c = rolled_out(10);
        c.cfg.default_ready_after = Duration::from_secs(5);
        c.edit("web", |d| set_image(d, "nginx:1.25"));
        c.settle();
        c.edit("web", |d| d["spec"]["replicas"] = json!(5));
        c.pass();
        let rss = c.owned_rss("web");
        // allowed 5 + surge 2 = 7, had 8 + 5 = 13: old round(8*7/13) = 4, new round(5*7/13) = 3.
        assert_eq!((spec_of(&rss[0]), spec_of(&rss[1])), (4, 3));
        c.run_for(300);
        let rss = c.owned_rss("web");
        assert_eq!((spec_of(&rss[0]), spec_of(&rss[1])), (0, 5));
    }

    #[test]
    fn min_ready_seconds_gates_availability() {
        let mut c = Cluster::new();
        let mut d = deployment("web", 2, "nginx:1.24");
        d["spec"]["minReadySeconds"] = json!(10);
        c.create_deployment(d);
        let requeue = c.settle().expect("minReadySeconds requeue");
        let rs = &c.owned_rss("web")[0];
        assert_eq!(rs["spec"]["minReadySeconds"], json!(10));
        assert_eq!(rs["status"]["readyReplicas"], json!(2));
        assert_eq!(rs["status"].get("availableReplicas"), None);
        assert_eq!(
            requeue,
            c.now.checked_add(SignedDuration::from_secs(11)).unwrap()
        );
        c.advance(10);
        c.settle();
        assert_eq!(
            c.owned_rss("web")[0]["status"].get("availableReplicas"),
            None,
            "not yet: strict <"
        );
        c.advance(1);
        c.settle();
        let d = c.get("Deployment", "web");
        assert_eq!(d["status"]["availableReplicas"], json!(2));
        assert_eq!(
            rollout_status(&d),
            "deployment \"web\" successfully rolled out"
        );
    }

    #[test]
    fn pause_and_resume() {
        let mut c = rolled_out(3);
        c.edit("web", |d| d["spec"]["paused"] = json!(true));
        c.settle();
        let d = c.get("Deployment", "web");
        let prog = obj::condition(&d, "Progressing").unwrap();
        assert_eq!(
            (prog["status"].clone(), prog["reason"].clone()),
            (json!("Unknown"), json!("DeploymentPaused"))
        );
        assert_eq!(prog["message"], json!("Deployment is paused"));
        c.edit("web", |d| set_image(d, "nginx:1.25"));
        c.settle();
        assert_eq!(c.owned_rss("web").len(), 1, "no new RS while paused");
        let d = c.get("Deployment", "web");
        assert_eq!(
            d["status"]["observedGeneration"],
            d["metadata"]["generation"]
        );
        // Scaling still works while paused.
        c.edit("web", |d| d["spec"]["replicas"] = json!(4));
        c.settle();
        assert_eq!(spec_of(&c.owned_rss("web")[0]), 4);
        c.edit("web", |d| d["spec"]["paused"] = json!(false));
        c.pass();
        let d = c.get("Deployment", "web");
        assert!(
            c.rollout_log
                .iter()
                .any(|m| m.contains("new replicas have been updated")),
            "{:?}",
            c.rollout_log
        );
        let _ = d;
        c.settle();
        let rss = c.owned_rss("web");
        assert_eq!(rss.len(), 2);
        assert_eq!((spec_of(&rss[0]), spec_of(&rss[1])), (0, 4));
        let d = c.get("Deployment", "web");
        assert_eq!(
            rollout_status(&d),
            "deployment \"web\" successfully rolled out"
        );
        assert_eq!(
            obj::condition(&d, "Progressing").unwrap()["reason"],
            json!("NewReplicaSetAvailable")
        );
    }

    #[test]
    fn rollback_reuses_the_old_replica_set() {
        let mut c = rolled_out(2);
        c.edit("web", |d| set_image(d, "nginx:1.25"));
        c.settle();
        let created_before = c.events.len();
        c.edit("web", |d| set_image(d, "nginx:1.24"));
        c.settle();
        let rss = c.owned_rss("web");
        assert_eq!(rss.len(), 2, "no new RS on rollback");
        assert_eq!(obj::annotation(&rss[0], deployment::REVISION), Some("3"));
        assert_eq!(
            obj::annotation(&rss[0], deployment::REVISION_HISTORY),
            Some("1")
        );
        assert_eq!(obj::annotation(&rss[1], deployment::REVISION), Some("2"));
        assert_eq!((spec_of(&rss[0]), spec_of(&rss[1])), (2, 0));
        let d = c.get("Deployment", "web");
        assert_eq!(obj::annotation(&d, deployment::REVISION), Some("3"));
        assert_eq!(
            rollout_status(&d),
            "deployment \"web\" successfully rolled out"
        );
        assert!(
            c.events[created_before..]
                .iter()
                .all(|e| !e["message"].as_str().unwrap().starts_with("Created"))
        );
        // Once more: back to 1.25 → RS#2 becomes revision 4 with history "2".
        c.edit("web", |d| set_image(d, "nginx:1.25"));
        c.settle();
        let rss = c.owned_rss("web");
        assert_eq!(obj::annotation(&rss[1], deployment::REVISION), Some("4"));
        assert_eq!(
            obj::annotation(&rss[1], deployment::REVISION_HISTORY),
            Some("2")
        );
    }

    #[test]
    fn scale_during_rollout_is_proportional() {
        let mut c = rolled_out(10);
        c.cfg.default_ready_after = Duration::from_secs(5);
        c.edit("web", |d| set_image(d, "nginx:1.25"));
        c.settle();
        let rss = c.owned_rss("web");
        assert_eq!((spec_of(&rss[0]), spec_of(&rss[1])), (8, 5));
        c.edit("web", |d| d["spec"]["replicas"] = json!(20));
        c.pass();
        let rss = c.owned_rss("web");
        // allowed 25 (20 + surge 5), had 13: old 8*25/13 = 15.38 → 15, new 5*25/13 = 9.6 → 10.
        assert_eq!((spec_of(&rss[0]), spec_of(&rss[1])), (15, 10));
        assert!(
            rss.iter()
                .all(|rs| obj::annotation(rs, deployment::DESIRED_REPLICAS) == Some("20"))
        );
        assert!(
            rss.iter()
                .all(|rs| obj::annotation(rs, deployment::MAX_REPLICAS) == Some("25"))
        );
        c.run_for(300);
        let rss = c.owned_rss("web");
        assert_eq!((spec_of(&rss[0]), spec_of(&rss[1])), (0, 20));
        assert_eq!(
            rollout_status(&c.get("Deployment", "web")),
            "deployment \"web\" successfully rolled out"
        );
    }

    #[test]
    fn history_limit_deletes_oldest_replica_sets() {
        let mut c = Cluster::new();
        let mut d = deployment("web", 1, "nginx:1");
        d["spec"]["revisionHistoryLimit"] = json!(2);
        c.create_deployment(d);
        c.settle();
        for v in 2..=5 {
            c.edit("web", |d| set_image(d, &format!("nginx:{v}")));
            c.settle();
        }
        let rss = c.owned_rss("web");
        let revs: Vec<&str> = rss
            .iter()
            .map(|rs| obj::annotation(rs, deployment::REVISION).unwrap())
            .collect();
        assert_eq!(revs, vec!["3", "4", "5"]);
    }

    #[test]
    fn adopts_orphans_and_releases_non_matching() {
        let mut c = rolled_out(1);
        let rs = c.owned_rss("web")[0].clone();
        // Orphan it: the controller adopts it again.
        c.apply(Write::Update(obj::without_owner(
            &rs,
            obj::controller_uid(&rs).unwrap(),
        )));
        assert!(c.owned_rss("web").is_empty());
        c.settle();
        assert_eq!(c.owned_rss("web").len(), 1);
        assert_eq!(
            c.owned_rss("web")[0]["metadata"]["uid"],
            rs["metadata"]["uid"]
        );
    }

    #[test]
    fn gc_removes_dependents_of_a_deleted_deployment() {
        let mut c = rolled_out(2);
        let d = c.get("Deployment", "web");
        c.apply(Write::Delete {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: Some("default".into()),
            name: "web".into(),
            uid: uid(&d).into(),
        });
        c.settle();
        assert!(c.of_kind("ReplicaSet").is_empty());
        assert!(c.of_kind("Pod").is_empty());
    }
}
