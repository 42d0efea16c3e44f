//! The controller driver: runs the pure controllers of `kubesim-controllers` against the
//! store and applies their writes through the same write path as API requests.
//!
//! Owns: which namespaces need a reconcile (dirty tracking from store events), calling the
//! Deployment, ReplicaSet, kubelet, endpoints and GC controllers with `clock.now()`, pod IP
//! allocation, Event naming, foreground deletion, requeues at `requeue_at`, the start-up
//! objects (namespaces, nodes, the `kubernetes` Service) and `settle`.
//! Must not: implement controller logic itself (only foreground finalizer bookkeeping).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kubesim_controllers::{Reconciled, Write, deployment, endpoints, gc, kubelet, replicaset};
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use crate::App;
use crate::clock::rfc3339;
use crate::sem;
use crate::write::{self, DeleteOpts, WriteOpts};

/// Managers of controller writes (as in a real cluster).
const KCM: &str = "kube-controller-manager";
const KUBELET: &str = "kubelet";

/// Resync period: every namespace is reconciled at least this often.
const RESYNC: Duration = Duration::from_secs(30);

/// The driver's progress as `settle` sees it: (resourceVersion caught up to, idle).
pub(crate) struct Progress {
    tx: watch::Sender<(u64, bool)>,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            tx: watch::channel((0, false)).0,
        }
    }
}

/// Namespaces every cluster has.
const SYSTEM_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

fn node_name(i: usize) -> String {
    if i == 0 {
        "kubesim-control-plane".to_owned()
    } else {
        format!(
            "kubesim-worker{}",
            if i == 1 { String::new() } else { i.to_string() }
        )
    }
}

/// Creates what a fresh cluster has (idempotent: a restarted cluster keeps its objects).
pub(crate) fn bootstrap(app: &App, nodes: usize) {
    let opts = WriteOpts {
        dry_run: false,
        manager: Some("kube-apiserver".into()),
        force: false,
    };
    let now = app.clock.now();
    if let Some(res) = sem::by_kind("v1", "Namespace") {
        for ns in SYSTEM_NAMESPACES {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            let _ = write::create(app, res, None, obj, &opts);
        }
    }
    if let Some(res) = sem::by_kind("v1", "Node") {
        let kubelet_opts = WriteOpts {
            manager: Some(KUBELET.into()),
            ..opts.clone()
        };
        for i in 0..nodes {
            let ip = Ipv4Addr::new(172, 18, 0, 2 + (i % 250) as u8).to_string();
            let node = kubelet::node(&node_name(i), &ip, now);
            let _ = write::create(app, res, None, node, &kubelet_opts);
        }
    }
    if let Some(res) = sem::by_kind("v1", "Service") {
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}], "type": "ClusterIP"}
        });
        let _ = write::create(app, res, Some("default"), svc, &opts);
    }
}

/// Resources whose changes can make controllers act in their namespace.
fn interesting(group: &str, resource: &str) -> bool {
    matches!(
        (group, resource),
        ("apps", "deployments" | "replicasets")
            | ("", "pods" | "services" | "endpoints" | "nodes")
            | ("discovery.k8s.io", "endpointslices")
    )
}

struct Dirty {
    all: bool,
    namespaces: BTreeSet<String>,
    /// Namespaces (and "" for cluster scope) where something was deleted: run the GC.
    gc: BTreeSet<String>,
}

impl Dirty {
    fn mark(&mut self, e: &crate::store::Event) {
        let (group, resource, ns) = (&e.key.0, &e.key.1, &e.key.2);
        let terminating = e
            .object
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null());
        if e.kind == crate::store::EventType::Deleted || terminating {
            self.gc.insert(ns.clone());
            if ns.is_empty() {
                self.all = true;
            }
        }
        if group.is_empty() && resource == "nodes" {
            self.all = true;
        } else if interesting(group, resource) {
            self.namespaces.insert(ns.clone());
        }
    }

    fn is_empty(&self) -> bool {
        !self.all && self.namespaces.is_empty() && self.gc.is_empty()
    }
}

struct Driver {
    app: Arc<App>,
    kubelet: kubelet::Config,
    next_ip: u32,
    requeue: BTreeMap<String, Timestamp>,
}

/// The driver task.
pub(crate) async fn run(app: Arc<App>, ready_after: Duration) {
    let mut events = app.store.subscribe();
    let mut ticks = app.clock.subscribe();
    let mut driver = Driver {
        app: app.clone(),
        kubelet: kubelet::Config {
            default_ready_after: ready_after,
        },
        next_ip: 0,
        requeue: BTreeMap::new(),
    };
    let mut dirty = Dirty {
        all: true,
        namespaces: BTreeSet::new(),
        gc: ["".to_owned()].into(),
    };
    let mut last_resync = tokio::time::Instant::now();
    // Passes since the driver was last idle: a controller that never converges must not
    // starve the API server of CPU.
    let mut busy_passes: u64 = 0;
    loop {
        loop {
            match events.try_recv() {
                Ok(e) => dirty.mark(&e),
                Err(broadcast::error::TryRecvError::Empty) => break,
                Err(broadcast::error::TryRecvError::Lagged(_)) => dirty.all = true,
                Err(broadcast::error::TryRecvError::Closed) => return,
            }
        }
        let now = app.clock.now();
        let due: Vec<String> = driver
            .requeue
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(ns, _)| ns.clone())
            .collect();
        for ns in due {
            driver.requeue.remove(&ns);
            dirty.namespaces.insert(ns);
        }
        if last_resync.elapsed() >= RESYNC {
            last_resync = tokio::time::Instant::now();
            dirty.all = true;
        }
        if dirty.is_empty() {
            let rv = app.store.resource_version();
            app.driver.tx.send_replace((rv, true));
            busy_passes = 0;
            let wait = driver
                .requeue
                .values()
                .min()
                .map(|at| Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO))
                .unwrap_or(RESYNC)
                .min(RESYNC);
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(e) => dirty.mark(&e),
                    Err(broadcast::error::RecvError::Lagged(_)) => dirty.all = true,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = ticks.changed() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        app.driver.tx.send_modify(|p| p.1 = false);
        let namespaces: BTreeSet<String> = if dirty.all {
            let mut all: BTreeSet<String> =
                SYSTEM_NAMESPACES.iter().map(|s| (*s).to_owned()).collect();
            for ns in app.store.list("", "namespaces", None).0 {
                if let Some(n) = ns.pointer("/metadata/name").and_then(Value::as_str) {
                    all.insert(n.to_owned());
                }
            }
            all.extend(dirty.gc.iter().cloned());
            all
        } else {
            dirty
                .namespaces
                .iter()
                .chain(dirty.gc.iter())
                .cloned()
                .collect()
        };
        let gc_namespaces = std::mem::take(&mut dirty.gc);
        let gc_all = dirty.all;
        dirty.all = false;
        dirty.namespaces.clear();
        for ns in namespaces {
            if ns.is_empty() {
                continue;
            }
            driver.reconcile(&ns);
            if gc_all || gc_namespaces.contains(&ns) {
                driver.collect_garbage(&ns);
            }
        }
        if gc_all || gc_namespaces.contains("") {
            driver.collect_garbage("");
        }
        busy_passes += 1;
        if busy_passes.is_multiple_of(256) {
            tracing::warn!(busy_passes, "kubesim: controllers have not converged yet");
            tokio::time::sleep(Duration::from_millis(10)).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
}

fn listed(app: &App, group: &str, resource: &str, ns: Option<&str>) -> Vec<Value> {
    app.store
        .list(group, resource, ns)
        .0
        .iter()
        .map(|v| (**v).clone())
        .collect()
}

fn meta<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

impl Driver {
    fn note(&mut self, ns: &str, r: &Reconciled) {
        if let Some(at) = r.requeue_at {
            let slot = self.requeue.entry(ns.to_owned()).or_insert(at);
            if at < *slot {
                *slot = at;
            }
        }
    }

    fn pod_ip_candidate(&self, used: &HashSet<String>) -> (u32, String) {
        let mut n = self.next_ip;
        loop {
            n = n.wrapping_add(1);
            let (hi, lo) = (((n / 253) % 256) as u8, (n % 253 + 2) as u8);
            let ip = Ipv4Addr::new(10, 244, hi, lo).to_string();
            if !used.contains(&ip) {
                return (n, ip);
            }
        }
    }

    /// One step of every controller over one namespace.
    fn reconcile(&mut self, ns: &str) {
        let app = self.app.clone();
        let now = app.clock.now();
        let deployments = listed(&app, "apps", "deployments", Some(ns));
        for d in &deployments {
            let rss = listed(&app, "apps", "replicasets", Some(ns));
            let pods = listed(&app, "", "pods", Some(ns));
            let r = deployment::sync(d, &rss, &pods, now);
            self.note(ns, &r);
            self.apply(r.writes);
        }
        for rs in &listed(&app, "apps", "replicasets", Some(ns)) {
            let pods = listed(&app, "", "pods", Some(ns));
            let r = replicaset::sync(rs, &pods, now);
            self.note(ns, &r);
            self.apply(r.writes);
        }
        let nodes = listed(&app, "", "nodes", None);
        let ns_pods = listed(&app, "", "pods", Some(ns));
        if !ns_pods.is_empty() {
            let mut all_pods = listed(&app, "", "pods", None);
            let mut used: HashSet<String> = all_pods
                .iter()
                .filter_map(|p| {
                    p.pointer("/status/podIP")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .collect();
            for pod in &ns_pods {
                let (n, ip) = self.pod_ip_candidate(&used);
                let r = kubelet::sync(pod, &nodes, &all_pods, now, &self.kubelet, &ip);
                self.note(ns, &r);
                if !r.writes.is_empty() {
                    let uses_ip = r.writes.iter().any(|w| matches!(w, Write::UpdateStatus(v) if v.pointer("/status/podIP").and_then(Value::as_str) == Some(ip.as_str())));
                    if uses_ip {
                        self.next_ip = n;
                        used.insert(ip);
                    }
                    self.apply(r.writes);
                    all_pods = listed(&app, "", "pods", None);
                }
            }
        }
        let services = listed(&app, "", "services", Some(ns));
        if !services.is_empty() {
            let pods = listed(&app, "", "pods", Some(ns));
            for svc in &services {
                let name = meta(svc, "name");
                let slices: Vec<Value> =
                    listed(&app, "discovery.k8s.io", "endpointslices", Some(ns))
                        .into_iter()
                        .filter(|s| {
                            s.pointer("/metadata/labels/kubernetes.io~1service-name")
                                .and_then(Value::as_str)
                                == Some(name)
                        })
                        .collect();
                let eps = app.store.get(&(
                    String::new(),
                    "endpoints".into(),
                    ns.to_owned(),
                    name.to_owned(),
                ));
                let r = endpoints::sync(svc, &pods, &slices, eps.as_deref());
                self.note(ns, &r);
                self.apply(r.writes);
            }
        }
    }

    /// Background GC of orphans and foreground-deletion bookkeeping in one namespace ("" =
    /// cluster-scoped objects).
    fn collect_garbage(&mut self, ns: &str) {
        let app = self.app.clone();
        let scope = |r: &sem::Resource| {
            if r.namespaced {
                (!ns.is_empty()).then_some(ns)
            } else {
                ns.is_empty().then_some("")
            }
        };
        let mut uids: HashSet<String> = HashSet::new();
        let mut objects = Vec::new();
        for r in sem::resources() {
            let Some(s) = scope(r) else { continue };
            for o in app
                .store
                .list(r.group, r.plural, if r.namespaced { Some(s) } else { None })
                .0
            {
                uids.insert(meta(&o, "uid").to_owned());
                objects.push(o);
            }
        }
        if !ns.is_empty() {
            for r in sem::resources().iter().filter(|r| !r.namespaced) {
                for o in app.store.list(r.group, r.plural, None).0 {
                    uids.insert(meta(&o, "uid").to_owned());
                }
            }
        }
        let exists = |uid: &str| uids.contains(uid);
        for o in &objects {
            if o.pointer("/metadata/ownerReferences").is_some() {
                let r = gc::sync(o, &exists);
                self.apply(r.writes);
            }
            let foreground = o
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| f.iter().any(|x| x == "foregroundDeletion"));
            if foreground
                && o.pointer("/metadata/deletionTimestamp")
                    .is_some_and(|v| !v.is_null())
            {
                self.finish_foreground(o);
            }
        }
    }

    fn finish_foreground(&mut self, owner: &Value) {
        let app = self.app.clone();
        let uid = meta(owner, "uid");
        let deps = {
            let st = app.store.lock();
            write::dependents_of(&st, meta(owner, "namespace"), uid)
        };
        if deps.is_empty() {
            let Some(res) = sem::by_kind(
                owner
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
                owner.get("kind").and_then(Value::as_str).unwrap_or(""),
            ) else {
                return;
            };
            let mut o = owner.clone();
            if let Some(f) = o
                .pointer_mut("/metadata/finalizers")
                .and_then(Value::as_array_mut)
            {
                f.retain(|x| x != "foregroundDeletion");
            }
            let ns = owner.pointer("/metadata/namespace").and_then(Value::as_str);
            let opts = WriteOpts {
                manager: Some("kube-controller-manager".into()),
                ..WriteOpts::default()
            };
            if let Err(e) = write::update(&app, res, ns, meta(owner, "name"), None, o, &opts) {
                tracing::debug!(error = %e.message, "kubesim: removing the foreground finalizer failed");
            }
            return;
        }
        for (key, dep) in deps {
            if dep
                .pointer("/metadata/deletionTimestamp")
                .is_some_and(|v| !v.is_null())
            {
                continue;
            }
            let Some(res) = sem::by_plural(&key.0, "v1", &key.1) else {
                continue;
            };
            let ns = (!key.2.is_empty()).then_some(key.2.as_str());
            let _ = write::delete(
                &app,
                res,
                ns,
                &key.3,
                &DeleteOpts {
                    propagation: write::Propagation::Foreground,
                    ..DeleteOpts::default()
                },
            );
        }
    }

    fn apply(&mut self, writes: Vec<Write>) {
        for w in writes {
            if let Err(e) = self.apply_one(w) {
                tracing::debug!(code = e.code, error = %e.message, "kubesim: controller write failed");
            }
        }
    }

    fn apply_one(&mut self, w: Write) -> Result<(), crate::status::ApiError> {
        let app = self.app.clone();
        let resource_of = |v: &Value| {
            let av = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
            let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
            sem::by_kind(av, kind).ok_or_else(|| {
                crate::status::ApiError::bad_request(format!("no resource for {av} {kind}"))
            })
        };
        let kcm = WriteOpts {
            manager: Some(KCM.into()),
            ..WriteOpts::default()
        };
        match w {
            Write::Create(obj) => {
                let res = resource_of(&obj)?;
                let ns = obj
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                write::create(&app, res, ns.as_deref(), obj, &kcm)?;
            }
            Write::Update(obj) => {
                let res = resource_of(&obj)?;
                let ns = obj
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let name = meta(&obj, "name").to_owned();
                write::update(&app, res, ns.as_deref(), &name, None, obj, &kcm)?;
            }
            Write::UpdateStatus(obj) => {
                let res = resource_of(&obj)?;
                let ns = obj
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let name = meta(&obj, "name").to_owned();
                let opts = if res.kind == "Pod" && res.group.is_empty() {
                    WriteOpts {
                        manager: Some(KUBELET.into()),
                        ..kcm
                    }
                } else {
                    kcm
                };
                write::update(&app, res, ns.as_deref(), &name, Some("status"), obj, &opts)?;
            }
            Write::Delete {
                api_version,
                kind,
                namespace,
                name,
                uid,
            } => {
                let res = sem::by_kind(&api_version, &kind).ok_or_else(|| {
                    crate::status::ApiError::bad_request(format!(
                        "no resource for {api_version} {kind}"
                    ))
                })?;
                let opts = DeleteOpts {
                    precondition_uid: Some(uid),
                    ..DeleteOpts::default()
                };
                write::delete(&app, res, namespace.as_deref(), &name, &opts)?;
            }
            Write::Event(ev) => self.record_event(ev)?,
        }
        Ok(())
    }

    fn record_event(&mut self, mut ev: Value) -> Result<(), crate::status::ApiError> {
        let Some(res) = sem::by_kind("v1", "Event") else {
            return Ok(());
        };
        let now = rfc3339(self.app.clock.now());
        let involved = ev.get("involvedObject").cloned().unwrap_or(json!({}));
        let ns = involved
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_owned();
        let base = involved
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("event")
            .to_owned();
        let suffix: String = (0..16)
            .map(|_| format!("{:x}", rand::random::<u8>() % 16))
            .collect();
        ev["apiVersion"] = json!("v1");
        ev["kind"] = json!("Event");
        let meta = ev.get("metadata").cloned().unwrap_or(json!({}));
        let mut meta = meta.as_object().cloned().unwrap_or_default();
        meta.entry("name")
            .or_insert(json!(format!("{base}.{suffix}")));
        meta.insert("namespace".into(), json!(ns));
        ev["metadata"] = Value::Object(meta);
        for (k, v) in [
            ("firstTimestamp", json!(now)),
            ("lastTimestamp", json!(now)),
            ("count", json!(1)),
            ("source", json!({"component": "deployment-controller"})),
            ("reportingComponent", json!("deployment-controller")),
            ("reportingInstance", json!("")),
        ] {
            if ev.get(k).is_none_or(Value::is_null) {
                ev[k] = v;
            }
        }
        let opts = WriteOpts {
            manager: Some(KCM.into()),
            ..WriteOpts::default()
        };
        write::create(&self.app, res, Some(&ns), ev, &opts)?;
        Ok(())
    }
}

/// Waits until the driver is idle and has seen every write; `false` on timeout.
pub(crate) async fn settle(app: &App, timeout: Duration) -> bool {
    let mut rx = app.driver.tx.subscribe();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let (seen, idle) = *rx.borrow_and_update();
        if idle && seen >= app.store.resource_version() {
            return true;
        }
        tokio::select! {
            r = rx.changed() => if r.is_err() { return false },
            _ = tokio::time::sleep_until(deadline) => return false,
            // A write may land without the driver waking yet; poll briefly.
            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_follow_kind() {
        assert_eq!(node_name(0), "kubesim-control-plane");
        assert_eq!(node_name(1), "kubesim-worker");
        assert_eq!(node_name(2), "kubesim-worker2");
    }
}
