//! The object store: every object as JSON, one global resourceVersion, the watch history.
//!
//! Owns: objects keyed by (group, resource, namespace, name), the strictly increasing
//! resourceVersion (bumped only by real writes), `uid`-free storage mechanics, the event
//! ring that watches replay from, the broadcast of live events, and the persistence log.
//! Must not: default, validate, merge or decide anything about a write — the write path
//! (`write.rs`) does that and hands the finished object to `put`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use serde_json::Value;
use tokio::sync::broadcast;

use crate::persist::Log;

/// (group, resource plural, namespace or "", name).
pub type ObjKey = (String, String, String, String);

/// Events kept for watches resuming from an older resourceVersion.
const HISTORY: usize = 50_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One stored change.
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub kind: EventType,
    pub key: ObjKey,
    /// The new state (for deletes: the last state, carrying the delete's resourceVersion).
    pub object: Arc<Value>,
    /// The state before (for selector transitions in filtered watches).
    pub prev: Option<Arc<Value>>,
    /// `object` serialized once, shared by every watcher that sends it.
    encoded: OnceLock<Vec<u8>>,
}

impl Event {
    pub fn new(
        rv: u64,
        kind: EventType,
        key: ObjKey,
        object: Arc<Value>,
        prev: Option<Arc<Value>>,
    ) -> Event {
        Event {
            rv,
            kind,
            key,
            object,
            prev,
            encoded: OnceLock::new(),
        }
    }

    /// The object as JSON bytes.
    pub fn object_json(&self) -> &[u8] {
        self.encoded
            .get_or_init(|| serde_json::to_vec(&*self.object).unwrap_or_default())
    }
}

/// What the cluster's Services hold (ClusterIPs, NodePorts, LoadBalancer IPs), counted, so
/// that allocating for a new Service does not scan every Service. Kept by `put`/`delete`.
#[derive(Debug, Default)]
pub(crate) struct Allocated {
    cluster_ips: HashMap<u32, usize>,
    node_ports: HashMap<u64, usize>,
    lb_ips: HashMap<String, usize>,
}

impl Allocated {
    fn change(&mut self, svc: &Value, add: bool) {
        fn bump<K: std::hash::Hash + Eq>(m: &mut HashMap<K, usize>, k: K, add: bool) {
            if add {
                *m.entry(k).or_default() += 1;
            } else if let Some(n) = m.get_mut(&k) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    m.remove(&k);
                }
            }
        }
        let spec = svc.get("spec");
        if let Some(ip) = spec
            .and_then(|s| s.get("clusterIP"))
            .and_then(Value::as_str)
            .and_then(|ip| ip.parse::<std::net::Ipv4Addr>().ok())
        {
            bump(&mut self.cluster_ips, u32::from(ip), add);
        }
        for p in spec
            .and_then(|s| s.get("ports"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(np) = p.get("nodePort").and_then(Value::as_u64) {
                bump(&mut self.node_ports, np, add);
            }
        }
        for ing in svc
            .pointer("/status/loadBalancer/ingress")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(ip) = ing.get("ip").and_then(Value::as_str) {
                bump(&mut self.lb_ips, ip.to_owned(), add);
            }
        }
    }

    /// Whether a Service other than `except` (the stored state of the one being written)
    /// holds ClusterIP `ip`.
    pub fn cluster_ip_taken(&self, ip: u32, except: Option<&Value>) -> bool {
        let mine = except.map_or(0, |o| usize::from(Self::ip_of(o) == Some(ip)));
        self.cluster_ips.get(&ip).copied().unwrap_or(0) > mine
    }

    /// Whether a Service other than `except` holds NodePort `port`.
    pub fn node_port_taken(&self, port: u64, except: Option<&Value>) -> bool {
        let mine = except.map_or(0, |o| {
            o.pointer("/spec/ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|p| p.get("nodePort").and_then(Value::as_u64) == Some(port))
                .count()
        });
        self.node_ports.get(&port).copied().unwrap_or(0) > mine
    }

    /// Whether a Service other than `except` holds LoadBalancer ingress IP `ip`.
    pub fn lb_ip_taken(&self, ip: &str, except: Option<&Value>) -> bool {
        let mine = except.map_or(0, |o| {
            o.pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|i| i.get("ip").and_then(Value::as_str) == Some(ip))
                .count()
        });
        self.lb_ips.get(ip).copied().unwrap_or(0) > mine
    }

    fn ip_of(svc: &Value) -> Option<u32> {
        svc.pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .and_then(|ip| ip.parse::<std::net::Ipv4Addr>().ok())
            .map(u32::from)
    }
}

fn is_service(key: &ObjKey) -> bool {
    key.0.is_empty() && key.1 == "services"
}

pub(crate) struct State {
    objects: BTreeMap<ObjKey, Arc<Value>>,
    /// Allocations of the stored Services.
    pub allocated: Allocated,
    rv: u64,
    history: VecDeque<Arc<Event>>,
    /// Every event with rv > floor is in `history`.
    floor: u64,
    log: Option<Log>,
    tx: broadcast::Sender<Arc<Event>>,
    persist_error: Option<String>,
}

/// Shared store; cheap to clone via `Arc`.
pub struct Store {
    state: Mutex<State>,
    tx: broadcast::Sender<Arc<Event>>,
}

/// Past events to replay and a receiver for the live ones.
pub type Replay = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>);

/// Why a watch cannot start at the requested resourceVersion.
#[derive(Debug)]
pub struct TooOld {
    pub requested: u64,
    pub oldest: u64,
}

fn set_rv(obj: &mut Value, rv: u64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

impl Store {
    /// An empty in-memory store, or the state found in `dir`.
    pub fn open(dir: Option<&Path>) -> std::io::Result<Store> {
        let (tx, _) = broadcast::channel(16_384);
        let mut state = State {
            objects: BTreeMap::new(),
            allocated: Allocated::default(),
            rv: 0,
            history: VecDeque::new(),
            floor: 0,
            log: None,
            tx: tx.clone(),
            persist_error: None,
        };
        if let Some(dir) = dir {
            let (log, loaded) = Log::open(dir)?;
            state.rv = loaded.rv;
            state.floor = loaded.rv;
            state.objects = loaded
                .objects
                .into_iter()
                .map(|(k, v)| (k, Arc::new(v)))
                .collect();
            for (key, svc) in &state.objects {
                if is_service(key) {
                    state.allocated.change(svc, true);
                }
            }
            state.log = Some(log);
        }
        Ok(Store {
            state: Mutex::new(state),
            tx,
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    pub fn get(&self, key: &ObjKey) -> Option<Arc<Value>> {
        self.lock().get(key)
    }

    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// Objects of one resource (in one namespace or all), sorted by namespace/name, and the
    /// current resourceVersion.
    pub fn list(
        &self,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
    ) -> (Vec<Arc<Value>>, u64) {
        let st = self.lock();
        (st.list(group, resource, namespace), st.rv)
    }

    /// Events of one resource after `rv` plus a receiver for the live ones, taken atomically.
    pub fn watch_from(&self, group: &str, resource: &str, rv: u64) -> Result<Replay, TooOld> {
        let st = self.lock();
        if rv < st.floor {
            return Err(TooOld {
                requested: rv,
                oldest: st.floor + 1,
            });
        }
        let start = st.history.partition_point(|e| e.rv <= rv);
        let past = st
            .history
            .range(start..)
            .filter(|e| e.key.0 == group && e.key.1 == resource)
            .cloned()
            .collect();
        Ok((past, self.tx.subscribe()))
    }

    /// Snapshot of one resource plus a receiver for later events, taken atomically.
    pub fn list_and_subscribe(
        &self,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
    ) -> (Vec<Arc<Value>>, u64, broadcast::Receiver<Arc<Event>>) {
        let st = self.lock();
        (
            st.list(group, resource, namespace),
            st.rv,
            self.tx.subscribe(),
        )
    }
}

impl State {
    pub fn get(&self, key: &ObjKey) -> Option<Arc<Value>> {
        self.objects.get(key).cloned()
    }

    /// The resourceVersion of the last write.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    pub fn list(&self, group: &str, resource: &str, namespace: Option<&str>) -> Vec<Arc<Value>> {
        let lo = (
            group.to_owned(),
            resource.to_owned(),
            namespace.unwrap_or("").to_owned(),
            String::new(),
        );
        self.objects
            .range(lo..)
            .take_while(|(k, _)| {
                k.0 == group && k.1 == resource && namespace.is_none_or(|ns| k.2 == ns)
            })
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Stores `obj` under `key` with the next resourceVersion; returns the stored object.
    pub fn put(&mut self, key: ObjKey, mut obj: Value) -> Arc<Value> {
        self.rv += 1;
        let rv = self.rv;
        set_rv(&mut obj, rv);
        let obj = Arc::new(obj);
        let prev = self.objects.insert(key.clone(), obj.clone());
        if is_service(&key) {
            if let Some(p) = &prev {
                self.allocated.change(p, false);
            }
            self.allocated.change(&obj, true);
        }
        let kind = if prev.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(Event::new(rv, kind, key, obj.clone(), prev));
        obj
    }

    /// Removes `key`; returns its last state (with the delete's resourceVersion).
    pub fn delete(&mut self, key: &ObjKey) -> Option<Arc<Value>> {
        let prev = self.objects.remove(key)?;
        if is_service(key) {
            self.allocated.change(&prev, false);
        }
        self.rv += 1;
        let rv = self.rv;
        let mut last = (*prev).clone();
        set_rv(&mut last, rv);
        let last = Arc::new(last);
        self.record(Event::new(
            rv,
            EventType::Deleted,
            key.clone(),
            last.clone(),
            Some(prev),
        ));
        Some(last)
    }

    fn record(&mut self, event: Event) {
        if let Some(log) = self.log.as_mut() {
            let obj = (event.kind != EventType::Deleted).then_some(&*event.object);
            if let Err(e) = log.append(event.rv, &event.key, obj) {
                tracing::error!(error = %e, "kubesim: persisting a write failed");
                self.persist_error = Some(e.to_string());
            }
            if log.wants_compaction() {
                let objects = self.objects.iter().map(|(k, v)| (k, &**v));
                if let Err(e) = log.compact(self.rv, objects) {
                    tracing::error!(error = %e, "kubesim: compacting the log failed");
                }
            }
        }
        let event = Arc::new(event);
        if self.history.len() >= HISTORY
            && let Some(old) = self.history.pop_front()
        {
            self.floor = old.rv;
        }
        self.history.push_back(event.clone());
        let _ = self.tx.send(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_allocations_follow_puts_and_deletes() {
        let store = Store::open(None).expect("store");
        let mut st = store.lock();
        let key = |n: &str| {
            (
                "".to_owned(),
                "services".to_owned(),
                "default".to_owned(),
                n.to_owned(),
            )
        };
        let svc = |ip: &str, np: u64| json!({"metadata": {"name": "a"}, "spec": {"clusterIP": ip, "ports": [{"port": 80, "nodePort": np}]}});
        let ip = |s: &str| u32::from(s.parse::<std::net::Ipv4Addr>().expect("ip"));
        st.put(key("a"), svc("10.96.0.10", 30001));
        assert!(st.allocated.cluster_ip_taken(ip("10.96.0.10"), None));
        assert!(st.allocated.node_port_taken(30001, None));
        // The Service's own stored state does not count against itself.
        let stored = st.get(&key("a")).expect("stored");
        assert!(
            !st.allocated
                .cluster_ip_taken(ip("10.96.0.10"), Some(&stored))
        );
        // An update moves the allocation; a delete frees it.
        st.put(key("a"), svc("10.96.0.11", 30002));
        assert!(!st.allocated.cluster_ip_taken(ip("10.96.0.10"), None));
        assert!(st.allocated.cluster_ip_taken(ip("10.96.0.11"), None));
        assert!(!st.allocated.node_port_taken(30001, None));
        st.delete(&key("a"));
        assert!(!st.allocated.cluster_ip_taken(ip("10.96.0.11"), None));
        assert!(!st.allocated.node_port_taken(30002, None));
        // Other resources are not counted.
        st.put(
            ("".into(), "configmaps".into(), "default".into(), "x".into()),
            svc("10.96.0.12", 30003),
        );
        assert!(!st.allocated.cluster_ip_taken(ip("10.96.0.12"), None));
    }

    fn key(n: &str) -> ObjKey {
        ("".into(), "configmaps".into(), "default".into(), n.into())
    }

    #[test]
    fn rv_increases_and_list_is_sorted() {
        let store = Store::open(None).unwrap();
        let mut st = store.lock();
        let b = st.put(key("b"), json!({"metadata": {"name": "b"}}));
        let a = st.put(key("a"), json!({"metadata": {"name": "a"}}));
        assert_eq!(b["metadata"]["resourceVersion"], "1");
        assert_eq!(a["metadata"]["resourceVersion"], "2");
        st.put(
            ("".into(), "pods".into(), "default".into(), "p".into()),
            json!({"metadata": {}}),
        );
        let names: Vec<_> = st
            .list("", "configmaps", None)
            .iter()
            .map(|o| o["metadata"]["name"].clone())
            .collect();
        assert_eq!(names, vec![json!("a"), json!("b")]);
        let gone = st.delete(&key("a")).unwrap();
        assert_eq!(gone["metadata"]["resourceVersion"], "4");
    }

    #[test]
    fn watch_replays_history_after_rv() {
        let store = Store::open(None).unwrap();
        {
            let mut st = store.lock();
            st.put(key("a"), json!({"metadata": {}}));
            st.put(key("b"), json!({"metadata": {}}));
        }
        let (past, _rx) = store.watch_from("", "configmaps", 1).unwrap();
        assert_eq!(past.len(), 1);
        assert_eq!(past[0].key.3, "b");
    }

    #[test]
    fn restart_from_disk_keeps_objects_and_rv() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(Some(dir.path())).unwrap();
            let mut st = store.lock();
            st.put(key("a"), json!({"metadata": {"name": "a"}}));
        }
        let store = Store::open(Some(dir.path())).unwrap();
        assert_eq!(store.resource_version(), 1);
        assert!(store.get(&key("a")).is_some());
        assert!(store.watch_from("", "configmaps", 0).is_err());
    }
}
