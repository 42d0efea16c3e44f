//! The controller driver: runs the pure controllers of `kubesim-controllers` against the
//! store and applies their writes through the same write path as API requests.
//!
//! Owns: the work queue (object keys enqueued from store events, as kube-controller-manager's
//! informers do, plus per-key requeues at `requeue_at` and a resync of everything every 30 s),
//! the event-fed caches of ReplicaSets and pods that controllers' inputs are cut from,
//! calling the Deployment, ReplicaSet, kubelet, endpoints and GC controllers with
//! `clock.now()`, pod IP allocation, Event naming, foreground deletion, the start-up objects
//! (namespaces, nodes, the `kubernetes` Service) and `settle`.
//! Must not: implement controller logic itself (only foreground finalizer bookkeeping), or
//! hold the runtime for long: a pass yields every few milliseconds.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
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
use crate::store::ObjKey;
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

/// The controller a work item belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Kind {
    Deployment,
    ReplicaSet,
    /// The scheduler + kubelet step of one pod.
    Pod,
    /// The endpoints controller of one Service.
    Service,
}

/// Which objects of one kind in one namespace need a sync.
#[derive(Debug, Default, Clone, PartialEq)]
struct Names {
    /// Every object of the kind in the namespace.
    every: bool,
    names: BTreeSet<String>,
}

impl Names {
    fn add(&mut self, name: &str) {
        if !self.every && !self.names.contains(name) {
            self.names.insert(name.to_owned());
        }
    }
}

/// The work queued for one namespace.
#[derive(Debug, Default)]
struct NsWork {
    deployments: Names,
    replicasets: Names,
    /// ReplicaSets whose controlling Deployment must sync too (resolved when the pass runs):
    /// a Recreate rollout waits until the old pods are gone, which changes no RS status.
    rs_parents: BTreeSet<String>,
    pods: Names,
    services: Names,
    /// Labels (before and after) of pods that changed: the Services selecting them sync.
    pod_labels: Vec<Value>,
}

impl NsWork {
    fn every() -> NsWork {
        let every = Names {
            every: true,
            names: BTreeSet::new(),
        };
        NsWork {
            deployments: every.clone(),
            replicasets: every.clone(),
            pods: every.clone(),
            services: every,
            ..NsWork::default()
        }
    }

    fn add_pod_labels(&mut self, labels: Option<&Value>) {
        if let Some(l) = labels.filter(|l| l.as_object().is_some_and(|m| !m.is_empty()))
            && !self.pod_labels.contains(l)
        {
            self.pod_labels.push(l.clone());
        }
    }
}

/// The work queue: object keys, filled from store events (as the informers of
/// kube-controller-manager fill its queues).
#[derive(Debug, Default)]
struct Dirty {
    /// Everything (start, resync, a Node change, a lagging event receiver).
    all: bool,
    work: BTreeMap<String, NsWork>,
    /// Namespaces (and "" for cluster scope) where something was deleted: run the GC.
    gc: BTreeSet<String>,
}

/// The controlling owner reference of `obj`: (kind, name).
fn controller(obj: &Value) -> Option<(&str, &str)> {
    let r = obj
        .get("metadata")?
        .get("ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))?;
    Some((
        r.get("kind").and_then(Value::as_str).unwrap_or(""),
        r.get("name").and_then(Value::as_str).unwrap_or(""),
    ))
}

const SERVICE_NAME_LABEL: &str = "/metadata/labels/kubernetes.io~1service-name";

impl Dirty {
    fn mark(&mut self, e: &crate::store::Event) {
        let (group, resource, ns, name) = (&e.key.0, &e.key.1, &e.key.2, &e.key.3);
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
        // The object now and before: a change of owner or labels concerns both sides.
        let states = || std::iter::once(&*e.object).chain(e.prev.as_deref());
        match (group.as_str(), resource.as_str()) {
            ("", "nodes") => self.all = true,
            ("apps", "deployments") => self.ns(ns).deployments.add(name),
            ("apps", "replicasets") => {
                let w = self.ns(ns);
                w.replicasets.add(name);
                for o in states() {
                    match controller(o) {
                        Some(("Deployment", owner)) => w.deployments.add(owner),
                        Some(_) => {}
                        // An orphan may be adopted by any Deployment of its namespace.
                        None => w.deployments.every = true,
                    }
                }
            }
            ("", "pods") => {
                let w = self.ns(ns);
                w.pods.add(name);
                for o in states() {
                    match controller(o) {
                        Some(("ReplicaSet", owner)) => {
                            w.replicasets.add(owner);
                            w.rs_parents.insert(owner.to_owned());
                        }
                        Some(_) => {}
                        None => w.replicasets.every = true,
                    }
                    w.add_pod_labels(o.pointer("/metadata/labels"));
                }
            }
            ("", "services" | "endpoints") => self.ns(ns).services.add(name),
            ("discovery.k8s.io", "endpointslices") => {
                let w = self.ns(ns);
                for o in states() {
                    if let Some(svc) = o.pointer(SERVICE_NAME_LABEL).and_then(Value::as_str) {
                        w.services.add(svc);
                    }
                }
            }
            _ => {}
        }
    }

    fn ns(&mut self, ns: &str) -> &mut NsWork {
        self.work.entry(ns.to_owned()).or_default()
    }

    fn enqueue(&mut self, kind: Kind, ns: &str, name: &str) {
        let w = self.ns(ns);
        match kind {
            Kind::Deployment => w.deployments.add(name),
            Kind::ReplicaSet => w.replicasets.add(name),
            Kind::Pod => w.pods.add(name),
            Kind::Service => w.services.add(name),
        }
    }

    fn is_empty(&self) -> bool {
        !self.all && self.work.is_empty() && self.gc.is_empty()
    }
}

/// The objects of one kind in one namespace, indexed by the name of their controller.
#[derive(Default)]
struct Objs {
    by_name: BTreeMap<String, Arc<Value>>,
    /// Controller owner name → names of the objects it controls.
    by_controller: HashMap<String, BTreeSet<String>>,
    /// Objects without a controller.
    orphans: BTreeSet<String>,
}

impl Objs {
    fn load(list: Vec<Arc<Value>>) -> Objs {
        let mut objs = Objs::default();
        for o in list {
            let name = meta(&o, "name").to_owned();
            objs.set(&name, Some(o));
        }
        objs
    }

    /// Replaces (or with `None` removes) the object called `name`.
    fn set(&mut self, name: &str, obj: Option<Arc<Value>>) {
        if let Some(old) = self.by_name.remove(name) {
            match controller(&old) {
                Some((_, owner)) => {
                    if let Some(set) = self.by_controller.get_mut(owner) {
                        set.remove(name);
                        if set.is_empty() {
                            self.by_controller.remove(owner);
                        }
                    }
                }
                None => {
                    self.orphans.remove(name);
                }
            }
        }
        if let Some(obj) = obj {
            match controller(&obj) {
                Some((_, owner)) => {
                    self.by_controller
                        .entry(owner.to_owned())
                        .or_default()
                        .insert(name.to_owned());
                }
                None => {
                    self.orphans.insert(name.to_owned());
                }
            }
            self.by_name.insert(name.to_owned(), obj);
        }
    }

    fn get(&self, name: &str) -> Option<&Arc<Value>> {
        self.by_name.get(name)
    }

    fn controlled_by(&self, owner: &str) -> impl Iterator<Item = &str> {
        self.by_controller
            .get(owner)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    fn orphans(&self) -> impl Iterator<Item = &str> {
        self.orphans.iter().map(String::as_str)
    }

    fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> {
        self.by_name
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .map(|(k, _)| k.as_str())
            .take_while(move |k| k.starts_with(prefix))
    }

    /// Deep copies of the named objects, in name order.
    fn cloned<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<Value> {
        let names: BTreeSet<&str> = names.into_iter().collect();
        names
            .into_iter()
            .filter_map(|n| self.by_name.get(n))
            .map(|v| (**v).clone())
            .collect()
    }
}

/// A namespace's ReplicaSets and pods as the driver sees them (an informer cache): listed
/// once, then kept current by the store events, which the driver drains after each of its
/// own writes and whenever it yields.
struct View {
    /// The store's resourceVersion when listed: older events are already in.
    rv: u64,
    rss: Objs,
    pods: Objs,
}

impl View {
    /// What `deployment::sync` reads: the ReplicaSets it controls (matched by uid there),
    /// orphans it may adopt, and every ReplicaSet named `<deployment>-…` (its new
    /// ReplicaSet's name must not be taken); the pods of the ReplicaSets it controls
    /// (Recreate waits for old pods).
    fn deployment_inputs(&self, d: &Value) -> (Vec<Value>, Vec<Value>) {
        let name = meta(d, "name");
        let prefix = format!("{name}-");
        let rss = self.rss.cloned(
            self.rss
                .controlled_by(name)
                .chain(self.rss.orphans())
                .chain(self.rss.with_prefix(&prefix)),
        );
        let pods = self.pods.cloned(
            self.rss
                .controlled_by(name)
                .flat_map(|rs| self.pods.controlled_by(rs)),
        );
        (rss, pods)
    }

    /// What `replicaset::sync` reads: the pods it controls (matched by uid there) and the
    /// orphans it may adopt.
    fn replicaset_inputs(&self, rs: &Value) -> Vec<Value> {
        self.pods.cloned(
            self.pods
                .controlled_by(meta(rs, "name"))
                .chain(self.pods.orphans()),
        )
    }
}

/// Every pod of the cluster as the scheduler reads it (`kubelet::sync` uses the other pods
/// only to count the active pods per node: a stub keeps name, namespace, nodeName, phase and
/// deletionTimestamp), plus the pod IPs in use; listed when a pod first needs a step, then
/// kept current by the store events like [`View`].
#[derive(Default)]
struct PodLoad {
    /// The store's resourceVersion when listed: older events are already in.
    rv: u64,
    stubs: Vec<Value>,
    index: HashMap<(String, String), usize>,
    used_ips: HashSet<String>,
}

impl PodLoad {
    fn load(pods: &[Arc<Value>], rv: u64) -> PodLoad {
        let mut load = PodLoad {
            rv,
            ..PodLoad::default()
        };
        for p in pods {
            load.set(meta(p, "namespace"), meta(p, "name"), Some(p));
        }
        load
    }

    fn stub(pod: &Value) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("name".into(), json!(meta(pod, "name")));
        m.insert("namespace".into(), json!(meta(pod, "namespace")));
        if let Some(t) = pod.pointer("/metadata/deletionTimestamp") {
            m.insert("deletionTimestamp".into(), t.clone());
        }
        json!({
            "metadata": Value::Object(m),
            "spec": {"nodeName": pod.pointer("/spec/nodeName").cloned().unwrap_or(Value::Null)},
            "status": {"phase": pod.pointer("/status/phase").cloned().unwrap_or(Value::Null)},
        })
    }

    fn set(&mut self, ns: &str, name: &str, pod: Option<&Value>) {
        let key = (ns.to_owned(), name.to_owned());
        match pod {
            Some(pod) => {
                if let Some(ip) = pod.pointer("/status/podIP").and_then(Value::as_str) {
                    self.used_ips.insert(ip.to_owned());
                }
                let stub = PodLoad::stub(pod);
                match self.index.get(&key) {
                    Some(&i) => self.stubs[i] = stub,
                    None => {
                        self.index.insert(key, self.stubs.len());
                        self.stubs.push(stub);
                    }
                }
            }
            None => {
                if let Some(i) = self.index.remove(&key) {
                    self.stubs.swap_remove(i);
                    if let Some(moved) = self.stubs.get(i) {
                        let k = (
                            meta(moved, "namespace").to_owned(),
                            meta(moved, "name").to_owned(),
                        );
                        self.index.insert(k, i);
                    }
                }
            }
        }
    }
}

/// Busy this long without becoming idle: warn that the controllers do not converge.
const BUSY_WARNING: Duration = Duration::from_secs(10);

/// How long a pass may run before it yields to the runtime (API requests share it).
const SLICE: Duration = Duration::from_millis(2);

struct Driver {
    app: Arc<App>,
    kubelet: kubelet::Config,
    next_ip: u32,
    requeue: BTreeMap<(Kind, String, String), Timestamp>,
    events: broadcast::Receiver<Arc<crate::store::Event>>,
    /// The work queue, filled by `observe`.
    dirty: Dirty,
    /// The event receiver closed (the store is gone).
    closed: bool,
    /// Caches fed by events (see [`View`], [`PodLoad`]); dropped on a lagging receiver and
    /// rebuilt at each resync.
    views: HashMap<String, View>,
    load: Option<PodLoad>,
    /// The nodes, cloned once per pass.
    nodes: Option<Vec<Value>>,
    /// Keys the driver wrote since the last phase of a namespace's reconcile.
    touched: Vec<ObjKey>,
    /// Labels (before and after) of the pods the driver wrote, per namespace.
    touched_labels: BTreeMap<String, Vec<Value>>,
    last_yield: std::time::Instant,
}

/// The driver task.
pub(crate) async fn run(app: Arc<App>, ready_after: Duration) {
    let mut ticks = app.clock.subscribe();
    let mut driver = Driver::new(app.clone(), ready_after);
    let mut last_resync = tokio::time::Instant::now();
    // Passes since the driver was last idle: a controller that never converges must not
    // starve the API server of CPU.
    let mut busy_passes: u64 = 0;
    let mut busy_since = tokio::time::Instant::now();
    loop {
        driver.drain();
        if driver.closed {
            return;
        }
        let now = app.clock.now();
        let due: Vec<(Kind, String, String)> = driver
            .requeue
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            driver.requeue.remove(&key);
            driver.dirty.enqueue(key.0, &key.1, &key.2);
        }
        if last_resync.elapsed() >= RESYNC {
            last_resync = tokio::time::Instant::now();
            driver.dirty.all = true;
        }
        if driver.dirty.is_empty() {
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
                ev = driver.events.recv() => match ev {
                    Ok(e) => driver.observe(&e),
                    Err(broadcast::error::RecvError::Lagged(_)) => driver.lagged(),
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = ticks.changed() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        app.driver.tx.send_modify(|p| p.1 = false);
        let work = std::mem::take(&mut driver.dirty);
        driver.pass(work).await;
        if busy_passes == 0 {
            busy_since = tokio::time::Instant::now();
        }
        busy_passes += 1;
        if busy_passes.is_multiple_of(256) {
            // Passes are per object now, so many short ones are normal while writes stream
            // in; only a long busy stretch is worth a warning.
            if busy_since.elapsed() >= BUSY_WARNING {
                tracing::warn!(busy_passes, "kubesim: controllers have not converged yet");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        } else {
            tokio::task::yield_now().await;
        }
        driver.last_yield = std::time::Instant::now();
    }
}

fn meta<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn names_of(list: &[Arc<Value>]) -> impl Iterator<Item = String> + '_ {
    list.iter().map(|o| meta(o, "name").to_owned())
}

/// `true` when a Service's `spec.selector` (a plain map) selects `labels`.
fn service_selects(svc: &Value, labels: &Value) -> bool {
    svc.pointer("/spec/selector")
        .and_then(Value::as_object)
        .is_some_and(|sel| !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// The next free pod IP after allocation counter `next`: (new counter, IP).
fn pod_ip_candidate(next: u32, used: &HashSet<String>) -> (u32, String) {
    let mut n = next;
    loop {
        n = n.wrapping_add(1);
        let (hi, lo) = (((n / 253) % 256) as u8, (n % 253 + 2) as u8);
        let ip = Ipv4Addr::new(10, 244, hi, lo).to_string();
        if !used.contains(&ip) {
            return (n, ip);
        }
    }
}

impl Driver {
    fn new(app: Arc<App>, ready_after: Duration) -> Driver {
        Driver {
            events: app.store.subscribe(),
            dirty: Dirty {
                all: true,
                work: BTreeMap::new(),
                gc: ["".to_owned()].into(),
            },
            closed: false,
            app,
            kubelet: kubelet::Config {
                default_ready_after: ready_after,
            },
            next_ip: 0,
            requeue: BTreeMap::new(),
            views: HashMap::new(),
            load: None,
            nodes: None,
            touched: Vec::new(),
            touched_labels: BTreeMap::new(),
            last_yield: std::time::Instant::now(),
        }
    }

    /// Feeds one store event to the work queue and the caches.
    fn observe(&mut self, e: &crate::store::Event) {
        self.dirty.mark(e);
        let (group, resource, ns, name) = (&e.key.0, &e.key.1, &e.key.2, &e.key.3);
        let rs = group == "apps" && resource == "replicasets";
        let pod = group.is_empty() && resource == "pods";
        if group.is_empty() && resource == "nodes" {
            self.nodes = None;
        }
        if !rs && !pod {
            return;
        }
        let now = (e.kind != crate::store::EventType::Deleted).then(|| e.object.clone());
        if let Some(view) = self.views.get_mut(ns.as_str())
            && e.rv > view.rv
        {
            let objs = if rs { &mut view.rss } else { &mut view.pods };
            objs.set(name, now.clone());
        }
        if pod {
            if let Some(load) = self.load.as_mut()
                && e.rv > load.rv
            {
                load.set(ns, name, now.as_deref());
            }
            let labels = self.touched_labels.entry(ns.clone()).or_default();
            for o in std::iter::once(&*e.object).chain(e.prev.as_deref()) {
                if let Some(l) = o.get("metadata").and_then(|m| m.get("labels"))
                    && !labels.contains(l)
                {
                    labels.push(l.clone());
                }
            }
        }
    }

    /// The receiver lagged: events were lost, so everything is queued and the caches go.
    fn lagged(&mut self) {
        self.dirty.all = true;
        self.forget_caches();
    }

    /// Takes every event available now.
    fn drain(&mut self) {
        loop {
            match self.events.try_recv() {
                Ok(e) => self.observe(&e),
                Err(broadcast::error::TryRecvError::Empty) => break,
                Err(broadcast::error::TryRecvError::Lagged(_)) => self.lagged(),
                Err(broadcast::error::TryRecvError::Closed) => {
                    self.closed = true;
                    break;
                }
            }
        }
    }

    fn note(&mut self, kind: Kind, ns: &str, name: &str, r: &Reconciled) {
        if let Some(at) = r.requeue_at {
            let slot = self
                .requeue
                .entry((kind, ns.to_owned(), name.to_owned()))
                .or_insert(at);
            if at < *slot {
                *slot = at;
            }
        }
    }

    fn forget_caches(&mut self) {
        self.views.clear();
        self.load = None;
        self.nodes = None;
    }

    /// Lets API requests run when this pass has had the thread for a while.
    async fn maybe_yield(&mut self) {
        if self.last_yield.elapsed() >= SLICE {
            tokio::task::yield_now().await;
            self.last_yield = std::time::Instant::now();
            self.drain();
        }
    }

    fn view(&mut self, ns: &str) -> &mut View {
        let app = &self.app;
        self.views.entry(ns.to_owned()).or_insert_with(|| {
            // One lock for both lists: one resourceVersion for the view.
            let st = app.store.lock();
            View {
                rv: st.resource_version(),
                rss: Objs::load(st.list("apps", "replicasets", Some(ns))),
                pods: Objs::load(st.list("", "pods", Some(ns))),
            }
        })
    }

    fn pod_load(&mut self) -> &mut PodLoad {
        let app = &self.app;
        self.load.get_or_insert_with(|| {
            let (pods, rv) = app.store.list("", "pods", None);
            PodLoad::load(&pods, rv)
        })
    }

    /// The keys written since the last call, of one resource in one namespace.
    fn take_touched(&mut self, group: &str, resource: &str, ns: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.touched.retain(|k| {
            if k.0 == group && k.1 == resource && k.2 == ns {
                out.push(k.3.clone());
                false
            } else {
                true
            }
        });
        out
    }

    /// One pass over the queued work.
    async fn pass(&mut self, dirty: Dirty) {
        self.nodes = None;
        self.touched.clear();
        self.touched_labels.clear();
        let Dirty { all, mut work, gc } = dirty;
        if all {
            // Rebuilt from the store now and then, whatever happened.
            self.forget_caches();
            let mut namespaces: BTreeSet<String> =
                SYSTEM_NAMESPACES.iter().map(|s| (*s).to_owned()).collect();
            for ns in self.app.store.list("", "namespaces", None).0 {
                if let Some(n) = ns.pointer("/metadata/name").and_then(Value::as_str) {
                    namespaces.insert(n.to_owned());
                }
            }
            for ns in namespaces {
                work.insert(ns, NsWork::every());
            }
        }
        for ns in &gc {
            work.entry(ns.clone()).or_default();
        }
        for (ns, w) in work {
            if ns.is_empty() {
                continue;
            }
            self.reconcile(&ns, w).await;
            if all || gc.contains(&ns) {
                self.collect_garbage(&ns);
            }
        }
        if all || gc.contains("") {
            self.collect_garbage("");
        }
    }

    /// One step of every controller over the queued objects of one namespace, in the order
    /// Deployments, ReplicaSets, pods, Services; objects the driver writes in one phase are
    /// synced by the later phases of the same pass.
    async fn reconcile(&mut self, ns: &str, mut w: NsWork) {
        let app = self.app.clone();
        let now = app.clock.now();
        self.touched.clear();

        // Deployments.
        let mut deployments = std::mem::take(&mut w.deployments.names);
        if w.deployments.every {
            deployments.extend(names_of(&app.store.list("apps", "deployments", Some(ns)).0));
        }
        if !w.rs_parents.is_empty() {
            let view = self.view(ns);
            for rs in &w.rs_parents {
                if let Some(("Deployment", owner)) = view.rss.get(rs).and_then(|rs| controller(rs))
                {
                    deployments.insert(owner.to_owned());
                }
            }
        }
        for name in deployments {
            self.maybe_yield().await;
            let key = ("apps".into(), "deployments".into(), ns.to_owned(), name);
            let Some(d) = app.store.get(&key) else {
                continue;
            };
            let (rss, pods) = self.view(ns).deployment_inputs(&d);
            let r = deployment::sync(&d, &rss, &pods, now);
            self.note(Kind::Deployment, ns, &key.3, &r);
            self.apply(r.writes);
        }

        // ReplicaSets.
        let mut replicasets = std::mem::take(&mut w.replicasets.names);
        replicasets.extend(self.take_touched("apps", "replicasets", ns));
        if w.replicasets.every {
            replicasets.extend(self.view(ns).rss.by_name.keys().cloned());
        }
        for name in replicasets {
            self.maybe_yield().await;
            let view = self.view(ns);
            let Some(rs) = view.rss.get(&name).cloned() else {
                continue;
            };
            let pods = view.replicaset_inputs(&rs);
            let r = replicaset::sync(&rs, &pods, now);
            self.note(Kind::ReplicaSet, ns, &name, &r);
            self.apply(r.writes);
        }

        // Scheduler + kubelet.
        let mut pods = std::mem::take(&mut w.pods.names);
        pods.extend(self.take_touched("", "pods", ns));
        if w.pods.every {
            pods.extend(self.view(ns).pods.by_name.keys().cloned());
        }
        for name in pods {
            self.maybe_yield().await;
            let Some(pod) = self.view(ns).pods.get(&name).cloned() else {
                continue;
            };
            if self.nodes.is_none() {
                let nodes = app.store.list("", "nodes", None).0;
                self.nodes = Some(nodes.iter().map(|n| (**n).clone()).collect());
            }
            let (n, ip) = pod_ip_candidate(self.next_ip, &self.pod_load().used_ips);
            let (Some(nodes), Some(load)) = (self.nodes.as_deref(), self.load.as_ref()) else {
                continue;
            };
            let r = kubelet::sync(&pod, nodes, &load.stubs, now, &self.kubelet, &ip);
            self.note(Kind::Pod, ns, &name, &r);
            if !r.writes.is_empty() {
                let uses_ip = r.writes.iter().any(|w| matches!(w, Write::UpdateStatus(v) if v.pointer("/status/podIP").and_then(Value::as_str) == Some(ip.as_str())));
                if uses_ip {
                    self.next_ip = n;
                }
                self.apply(r.writes);
            }
        }

        // Endpoints.
        for l in self.touched_labels.remove(ns).unwrap_or_default() {
            w.add_pod_labels(Some(&l));
        }
        let mut services = std::mem::take(&mut w.services.names);
        if w.services.every || !w.pod_labels.is_empty() {
            let all = app.store.list("", "services", Some(ns)).0;
            for svc in &all {
                if w.services.every || w.pod_labels.iter().any(|l| service_selects(svc, l)) {
                    services.insert(meta(svc, "name").to_owned());
                }
            }
        }
        if services.is_empty() {
            return;
        }
        let mut slices: HashMap<String, Vec<Arc<Value>>> = HashMap::new();
        for s in app
            .store
            .list("discovery.k8s.io", "endpointslices", Some(ns))
            .0
        {
            if let Some(svc) = s.pointer(SERVICE_NAME_LABEL).and_then(Value::as_str) {
                slices.entry(svc.to_owned()).or_default().push(s.clone());
            }
        }
        for name in services {
            self.maybe_yield().await;
            let key = (String::new(), "services".into(), ns.to_owned(), name);
            let Some(svc) = app.store.get(&key) else {
                continue;
            };
            let pods: Vec<Value> = self
                .view(ns)
                .pods
                .by_name
                .values()
                .filter(|p| {
                    p.pointer("/metadata/labels")
                        .is_some_and(|l| service_selects(&svc, l))
                })
                .map(|p| (**p).clone())
                .collect();
            let own: Vec<Value> = slices
                .get(&key.3)
                .into_iter()
                .flatten()
                .map(|s| (**s).clone())
                .collect();
            let eps = app.store.get(&(
                String::new(),
                "endpoints".into(),
                ns.to_owned(),
                key.3.clone(),
            ));
            let r = endpoints::sync(&svc, &pods, &own, eps.as_deref());
            self.note(Kind::Service, ns, &key.3, &r);
            self.apply(r.writes);
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

    /// Makes the writes in order, then takes their events (caches and queue).
    fn apply(&mut self, writes: Vec<Write>) {
        for w in writes {
            let target = target_key(&w);
            let key = match self.apply_one(w) {
                Ok(created) => created.or(target),
                Err(e) => {
                    tracing::debug!(code = e.code, error = %e.message, "kubesim: controller write failed");
                    target
                }
            };
            if let Some(key) = key {
                self.touched.push(key);
            }
        }
        self.drain();
    }

    /// Makes one write; returns the key of a created object.
    fn apply_one(&mut self, w: Write) -> Result<Option<ObjKey>, crate::status::ApiError> {
        let app = self.app.clone();
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
                let created = write::create(&app, res, ns.as_deref(), obj, &kcm)?;
                return Ok(Some(write::key_of(
                    res,
                    created
                        .pointer("/metadata/namespace")
                        .and_then(Value::as_str),
                    meta(&created, "name"),
                )));
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
        Ok(None)
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

fn resource_of(v: &Value) -> Result<&'static sem::Resource, crate::status::ApiError> {
    let av = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    sem::by_kind(av, kind)
        .ok_or_else(|| crate::status::ApiError::bad_request(format!("no resource for {av} {kind}")))
}

/// The object a write targets, when its name is known before the write.
fn target_key(w: &Write) -> Option<ObjKey> {
    let (res, ns, name) = match w {
        Write::Create(obj) | Write::Update(obj) | Write::UpdateStatus(obj) => (
            resource_of(obj).ok()?,
            obj.pointer("/metadata/namespace").and_then(Value::as_str),
            meta(obj, "name"),
        ),
        Write::Delete {
            api_version,
            kind,
            namespace,
            name,
            ..
        } => (
            sem::by_kind(api_version, kind)?,
            namespace.as_deref(),
            name.as_str(),
        ),
        Write::Event(_) => return None,
    };
    (!name.is_empty()).then(|| write::key_of(res, ns, name))
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
    use crate::store::{Event, EventType};

    #[test]
    fn node_names_follow_kind() {
        assert_eq!(node_name(0), "kubesim-control-plane");
        assert_eq!(node_name(1), "kubesim-worker");
        assert_eq!(node_name(2), "kubesim-worker2");
    }

    fn event(group: &str, resource: &str, name: &str, obj: Value, prev: Option<Value>) -> Event {
        let kind = if prev.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        Event::new(
            1,
            kind,
            (group.into(), resource.into(), "ns".into(), name.into()),
            Arc::new(obj),
            prev.map(Arc::new),
        )
    }

    fn owned_by(kind: &str, owner: &str, labels: Value) -> Value {
        json!({"metadata": {
            "name": "x", "namespace": "ns", "labels": labels,
            "ownerReferences": [{"kind": kind, "name": owner, "uid": "u", "controller": true}],
        }})
    }

    fn names(n: &Names) -> Vec<&str> {
        n.names.iter().map(String::as_str).collect()
    }

    #[test]
    fn a_pod_of_a_replicaset_enqueues_the_pod_the_replicaset_and_its_parent() {
        let mut dirty = Dirty::default();
        let pod = owned_by("ReplicaSet", "web-abc", json!({"app": "web"}));
        dirty.mark(&event("", "pods", "web-abc-x", pod, None));
        let w = &dirty.work["ns"];
        assert_eq!(names(&w.pods), ["web-abc-x"]);
        assert_eq!(names(&w.replicasets), ["web-abc"]);
        assert!(!w.replicasets.every);
        // The Deployment is resolved through the ReplicaSet when the pass runs.
        assert!((w.deployments.names.is_empty() && !w.deployments.every));
        assert_eq!(w.rs_parents, BTreeSet::from(["web-abc".to_owned()]));
        assert_eq!(w.pod_labels, vec![json!({"app": "web"})]);
        assert!((w.services.names.is_empty() && !w.services.every));
        assert!(dirty.gc.is_empty() && !dirty.all);
    }

    #[test]
    fn an_orphan_pod_enqueues_every_replicaset_of_its_namespace() {
        let mut dirty = Dirty::default();
        let pod = json!({"metadata": {"name": "p", "namespace": "ns", "labels": {"a": "b"}}});
        dirty.mark(&event("", "pods", "p", pod, None));
        assert!(dirty.work["ns"].replicasets.every);
    }

    #[test]
    fn a_replicaset_enqueues_itself_and_its_deployment_and_an_orphan_every_deployment() {
        let mut dirty = Dirty::default();
        let rs = owned_by("Deployment", "web", json!({}));
        dirty.mark(&event("apps", "replicasets", "web-abc", rs, None));
        let w = &dirty.work["ns"];
        assert_eq!(names(&w.replicasets), ["web-abc"]);
        assert_eq!(names(&w.deployments), ["web"]);
        assert!(!w.deployments.every);

        // Released by its owner: the old owner and every Deployment (for adoption).
        let mut dirty = Dirty::default();
        let before = owned_by("Deployment", "web", json!({}));
        let after = json!({"metadata": {"name": "web-abc", "namespace": "ns"}});
        dirty.mark(&event(
            "apps",
            "replicasets",
            "web-abc",
            after,
            Some(before),
        ));
        assert!(dirty.work["ns"].deployments.every);
    }

    #[test]
    fn slices_and_endpoints_enqueue_their_service_and_other_kinds_nothing() {
        let mut dirty = Dirty::default();
        let slice = json!({"metadata": {"name": "web-x", "namespace": "ns",
            "labels": {"kubernetes.io/service-name": "web"}}});
        dirty.mark(&event(
            "discovery.k8s.io",
            "endpointslices",
            "web-x",
            slice,
            None,
        ));
        dirty.mark(&event("", "endpoints", "api", json!({}), None));
        assert_eq!(names(&dirty.work["ns"].services), ["api", "web"]);

        let mut dirty = Dirty::default();
        dirty.mark(&event("", "configmaps", "c", json!({}), None));
        assert!(dirty.is_empty());
        dirty.mark(&event("", "nodes", "n", json!({}), None));
        assert!(dirty.all);
    }

    #[test]
    fn deletions_queue_the_garbage_collector_of_their_namespace() {
        let mut dirty = Dirty::default();
        let e = Event::new(
            2,
            EventType::Deleted,
            ("".into(), "configmaps".into(), "ns".into(), "c".into()),
            Arc::new(json!({})),
            None,
        );
        dirty.mark(&e);
        assert_eq!(dirty.gc, BTreeSet::from(["ns".to_owned()]));
        assert!(!dirty.all);
    }

    fn named(name: &str, owner: Option<&str>) -> Arc<Value> {
        let mut v = json!({"metadata": {"name": name, "namespace": "ns"}});
        if let Some(o) = owner {
            v["metadata"]["ownerReferences"] = json!([{"name": o, "uid": o, "controller": true}]);
        }
        Arc::new(v)
    }

    #[test]
    fn objs_index_follows_owner_changes_and_deletes() {
        let mut objs = Objs::load(vec![named("a", Some("web")), named("b", None)]);
        assert_eq!(objs.controlled_by("web").collect::<Vec<_>>(), ["a"]);
        assert_eq!(objs.orphans().collect::<Vec<_>>(), ["b"]);
        objs.set("a", Some(named("a", None)));
        objs.set("b", Some(named("b", Some("web"))));
        assert_eq!(objs.controlled_by("web").collect::<Vec<_>>(), ["b"]);
        assert_eq!(objs.orphans().collect::<Vec<_>>(), ["a"]);
        objs.set("b", None);
        assert_eq!(objs.controlled_by("web").count(), 0);
        assert!(objs.by_controller.is_empty());
    }

    #[test]
    fn deployment_inputs_are_its_replicasets_orphans_and_name_collisions() {
        let view = View {
            rv: 0,
            rss: Objs::load(vec![
                named("web-1", Some("web")),
                named("web-2", Some("other")),
                named("webby-1", Some("webby")),
                named("loose", None),
                named("api-1", Some("api")),
            ]),
            pods: Objs::load(vec![
                named("web-1-a", Some("web-1")),
                named("web-2-a", Some("web-2")),
                named("api-1-a", Some("api-1")),
            ]),
        };
        let d = json!({"metadata": {"name": "web", "namespace": "ns"}});
        let (rss, pods) = view.deployment_inputs(&d);
        let rs_names: Vec<&str> = rss.iter().map(|r| meta(r, "name")).collect();
        assert_eq!(rs_names, ["loose", "web-1", "web-2"]);
        let pod_names: Vec<&str> = pods.iter().map(|p| meta(p, "name")).collect();
        assert_eq!(pod_names, ["web-1-a"]);
        let rs = json!({"metadata": {"name": "api-1", "namespace": "ns"}});
        let pods = view.replicaset_inputs(&rs);
        assert_eq!(pods.len(), 1);
    }

    #[test]
    fn pod_load_updates_in_place() {
        let a = json!({"metadata": {"name": "a", "namespace": "ns"}, "spec": {"nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "10.244.0.2"}});
        let mut load = PodLoad::load(&[Arc::new(a), named("b", None)], 1);
        assert!(load.used_ips.contains("10.244.0.2"));
        load.set("ns", "a", None);
        assert_eq!(load.stubs.len(), 1);
        assert_eq!(load.index[&("ns".to_owned(), "b".to_owned())], 0);
        let b = json!({"metadata": {"name": "b", "namespace": "ns"}, "spec": {"nodeName": "n2"}});
        load.set("ns", "b", Some(&b));
        assert_eq!(load.stubs[0]["spec"]["nodeName"], "n2");
    }

    /// 50 Deployments × 2 replicas (and a Service each) in one namespace all become
    /// available, their Endpoints list both pods, and `settle` returns.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fifty_deployments_in_one_namespace_become_available_and_settle() {
        let cluster = crate::Cluster::start(crate::Config::default())
            .await
            .unwrap();
        let app = cluster.app.clone();
        let mut events = app.store.subscribe();
        let opts = WriteOpts {
            manager: Some("test".into()),
            ..WriteOpts::default()
        };
        let dep = sem::by_kind("apps/v1", "Deployment").unwrap();
        let svc = sem::by_kind("v1", "Service").unwrap();
        for i in 0..50 {
            let app_label = format!("app-{i}");
            let d = json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": format!("web-{i}"), "namespace": "default"},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": app_label}},
                    "template": {
                        "metadata": {"labels": {"app": app_label}},
                        "spec": {"containers": [{"name": "web", "image": "nginx"}]}
                    }
                }
            });
            write::create(&app, dep, Some("default"), d, &opts).unwrap();
            let s = json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": format!("web-{i}"), "namespace": "default"},
                "spec": {"selector": {"app": app_label}, "ports": [{"port": 80}]}
            });
            write::create(&app, svc, Some("default"), s, &opts).unwrap();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let deployments = app.store.list("apps", "deployments", Some("default")).0;
            let available = deployments
                .iter()
                .filter(|d| d.pointer("/status/availableReplicas") == Some(&json!(2)))
                .count();
            if available == 50 {
                break;
            }
            tokio::select! {
                _ = events.recv() => {}
                _ = tokio::time::sleep_until(deadline) => panic!("{available} of 50 available"),
            }
        }
        assert!(cluster.settle(Duration::from_secs(60)).await);
        let pods = app.store.list("", "pods", Some("default")).0;
        assert_eq!(pods.len(), 100);
        let ips: HashSet<&str> = pods
            .iter()
            .filter_map(|p| p.pointer("/status/podIP").and_then(Value::as_str))
            .collect();
        assert_eq!(ips.len(), 100);
        for i in 0..50 {
            let key = (
                String::new(),
                "endpoints".to_owned(),
                "default".to_owned(),
                format!("web-{i}"),
            );
            let eps = app.store.get(&key).unwrap();
            let addresses = eps
                .pointer("/subsets/0/addresses")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            assert_eq!(addresses, 2, "web-{i}");
        }
        cluster.shutdown().await;
    }

    /// A rolling update of 3 slow pods (ready after 60 s) makes one step per readiness: after
    /// the image change and `settle` the Deployment reports 1 updated replica (maxSurge 1,
    /// maxUnavailable 0) until the clock moves past the new pod's readiness.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rolling_update_waits_for_readiness_between_steps() {
        let config = crate::Config {
            pod_ready_after: Duration::from_secs(60),
            ..crate::Config::default()
        };
        let cluster = crate::Cluster::start(config).await.unwrap();
        let app = cluster.app.clone();
        let opts = WriteOpts {
            manager: Some("test".into()),
            ..WriteOpts::default()
        };
        let dep = sem::by_kind("apps/v1", "Deployment").unwrap();
        let d = |image: &str| {
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {
                    "replicas": 3,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "web", "image": image}]}
                    }
                }
            })
        };
        write::create(&app, dep, Some("default"), d("nginx:1.24"), &opts).unwrap();
        let key = (
            "apps".to_owned(),
            "deployments".to_owned(),
            "default".to_owned(),
            "web".to_owned(),
        );
        let status = |app: &App| {
            let d = app.store.get(&key).unwrap();
            let st = &d["status"];
            (
                st["updatedReplicas"].as_i64().unwrap_or(0),
                st["replicas"].as_i64().unwrap_or(0),
                st["availableReplicas"].as_i64().unwrap_or(0),
            )
        };
        assert!(cluster.settle(Duration::from_secs(30)).await);
        assert_eq!(status(&app), (3, 3, 0));
        let mut events = app.store.subscribe();
        cluster.clock().advance(Duration::from_secs(61));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while status(&app) != (3, 3, 3) {
            tokio::select! {
                _ = events.recv() => {}
                _ = tokio::time::sleep_until(deadline) => panic!("{:?}", status(&app)),
            }
        }
        assert_eq!(status(&app), (3, 3, 3));
        let mut events = app.store.subscribe();
        let cur = app.store.get(&key).unwrap();
        let mut changed = (*cur).clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.25");
        write::update(&app, dep, Some("default"), "web", None, changed, &opts).unwrap();
        assert!(cluster.settle(Duration::from_secs(30)).await);
        let mut seen = Vec::new();
        while let Ok(e) = events.try_recv() {
            if e.key == key {
                let st = &e.object["status"];
                seen.push((
                    st["updatedReplicas"].as_i64().unwrap_or(0),
                    st["replicas"].as_i64().unwrap_or(0),
                    st["availableReplicas"].as_i64().unwrap_or(0),
                ));
            }
        }
        assert_eq!(status(&app), (1, 4, 3), "{seen:?}");
        // The new pod becomes ready: the next step scales the new ReplicaSet to 2.
        cluster.clock().advance(Duration::from_secs(61));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while status(&app).0 < 2 {
            tokio::select! {
                _ = events.recv() => {}
                _ = tokio::time::sleep_until(deadline) => panic!("{:?}", status(&app)),
            }
        }
        assert!(cluster.settle(Duration::from_secs(30)).await);
        cluster.shutdown().await;
    }
}
