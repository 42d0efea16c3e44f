//! The EndpointSlice and Endpoints controllers for one Service (k8s-semantics §6.2/6.3).
//!
//! Owns: the desired slices (pods matching the selector that have an IP, grouped by resolved
//! port set, at most 100 endpoints per slice) and the legacy Endpoints object, and the
//! Create/Update/Delete writes that turn the current objects into them.
//! Must not: write anything when the current objects already match (no churn), or manage
//! slices it does not own (label `endpointslice.kubernetes.io/managed-by`).

use serde_json::{Map, Value, json};

use crate::obj::{self, at, name, namespace, str_at, uid};
use crate::{Reconciled, Write};

pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
const MAX_ENDPOINTS: usize = 100;

/// Service ports resolved against one pod: `(name, port, protocol, appProtocol)`.
type Ports = Vec<(String, i64, String, Option<String>)>;

fn resolve_ports(svc: &Value, pod: &Value) -> Option<Ports> {
    let ports = at(svc, &["spec", "ports"]).and_then(Value::as_array)?;
    let mut out = Vec::new();
    for p in ports {
        let pname = p
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let protocol = p
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("TCP")
            .to_string();
        let app = p
            .get("appProtocol")
            .and_then(Value::as_str)
            .map(str::to_string);
        let port = match p.get("targetPort") {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s
                .parse::<i64>()
                .ok()
                .or_else(|| named_port(pod, s, &protocol)),
            _ => p.get("port").and_then(Value::as_i64),
        };
        // A pod lacking a named port is left out of that port's set (separate slice).
        if let Some(port) = port {
            out.push((pname, port, protocol, app));
        }
    }
    Some(out)
}

fn named_port(pod: &Value, port_name: &str, protocol: &str) -> Option<i64> {
    at(pod, &["spec", "containers"])
        .and_then(Value::as_array)?
        .iter()
        .filter_map(|c| c.get("ports").and_then(Value::as_array))
        .flatten()
        .find(|p| {
            p.get("name").and_then(Value::as_str) == Some(port_name)
                && p.get("protocol").and_then(Value::as_str).unwrap_or("TCP") == protocol
        })
        .and_then(|p| p.get("containerPort"))
        .and_then(Value::as_i64)
}

fn ports_json(ports: &Ports) -> Value {
    Value::Array(
        ports
            .iter()
            .map(|(n, port, proto, app)| {
                let mut m = Map::new();
                m.insert("name".into(), json!(n));
                m.insert("port".into(), json!(port));
                m.insert("protocol".into(), json!(proto));
                if let Some(app) = app {
                    m.insert("appProtocol".into(), json!(app));
                }
                Value::Object(m)
            })
            .collect(),
    )
}

fn pod_ip(pod: &Value) -> Option<&str> {
    str_at(pod, &["status", "podIP"]).filter(|ip| !ip.is_empty())
}

fn target_ref(pod: &Value) -> Value {
    json!({"kind": "Pod", "namespace": namespace(pod), "name": name(pod), "uid": uid(pod)})
}

/// Selected pods with an IP, sorted by name.
fn selected_pods<'a>(svc: &Value, pods: &'a [Value]) -> Vec<&'a Value> {
    let Some(selector) = at(svc, &["spec", "selector"]).and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut out: Vec<&Value> = pods
        .iter()
        .filter(|p| {
            namespace(p) == namespace(svc)
                && obj::map_selector_matches(selector, at(p, &["metadata", "labels"]))
                && !matches!(obj::pod_phase(p), "Succeeded" | "Failed")
                && pod_ip(p).is_some()
        })
        .collect();
    out.sort_by(|a, b| name(a).cmp(name(b)));
    out
}

fn desired_slices(svc: &Value, pods: &[&Value]) -> Vec<(Ports, Vec<Value>)> {
    let publish =
        at(svc, &["spec", "publishNotReadyAddresses"]).and_then(Value::as_bool) == Some(true);
    let mut groups: Vec<(Ports, Vec<Value>)> = Vec::new();
    for pod in pods {
        let Some(ports) = resolve_ports(svc, pod) else {
            continue;
        };
        let serving = obj::pod_ready(pod);
        let terminating = obj::is_deleting(pod);
        let mut ep = Map::new();
        ep.insert("addresses".into(), json!([pod_ip(pod)]));
        ep.insert(
            "conditions".into(),
            json!({"ready": publish || (serving && !terminating), "serving": serving, "terminating": terminating}),
        );
        if let Some(node) = str_at(pod, &["spec", "nodeName"]) {
            ep.insert("nodeName".into(), json!(node));
        }
        ep.insert("targetRef".into(), target_ref(pod));
        let ep = Value::Object(ep);
        match groups
            .iter_mut()
            .find(|(p, eps)| *p == ports && eps.len() < MAX_ENDPOINTS)
        {
            Some((_, eps)) => eps.push(ep),
            None => groups.push((ports, vec![ep])),
        }
    }
    if groups.is_empty() {
        // The controller keeps a placeholder slice for a selector that matches nothing.
        groups.push((Vec::new(), Vec::new()));
    }
    groups
}

fn slice_labels(svc: &Value) -> Value {
    let mut labels = at(svc, &["metadata", "labels"])
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    labels.insert(SERVICE_NAME_LABEL.into(), json!(name(svc)));
    labels.insert(MANAGED_BY_LABEL.into(), json!(MANAGED_BY));
    Value::Object(labels)
}

/// One sync of Service `svc`: writes that make its slices and Endpoints match the pods.
pub fn sync(
    svc: &Value,
    pods: &[Value],
    slices: &[Value],
    endpoints: Option<&Value>,
) -> Reconciled {
    let mut out = Reconciled::default();
    let svc_name = name(svc);
    let mut owned: Vec<&Value> = slices
        .iter()
        .filter(|s| {
            namespace(s) == namespace(svc)
                && obj::label(s, SERVICE_NAME_LABEL) == Some(svc_name)
                && obj::label(s, MANAGED_BY_LABEL) == Some(MANAGED_BY)
        })
        .collect();
    owned.sort_by(|a, b| name(a).cmp(name(b)));
    let has_selector = at(svc, &["spec", "selector"])
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty());
    let delete = |s: &Value| Write::Delete {
        api_version: "discovery.k8s.io/v1".into(),
        kind: "EndpointSlice".into(),
        namespace: namespace(s).map(str::to_string),
        name: name(s).to_string(),
        uid: uid(s).to_string(),
    };
    if !has_selector {
        out.writes.extend(owned.iter().map(|s| delete(s)));
        return out;
    }
    let selected = selected_pods(svc, pods);
    let desired = desired_slices(svc, &selected);
    let labels = slice_labels(svc);
    for (i, (ports, eps)) in desired.iter().enumerate() {
        let body = |base: Value| {
            let mut s = base;
            obj::set(&mut s, &["metadata", "labels"], labels.clone());
            obj::set(&mut s, &["addressType"], json!("IPv4"));
            obj::set(&mut s, &["endpoints"], Value::Array(eps.clone()));
            obj::set(&mut s, &["ports"], ports_json(ports));
            s
        };
        match owned.get(i) {
            Some(cur) => {
                let same =
                    obj::sem_eq(
                        cur.get("endpoints").unwrap_or(&Value::Null),
                        &Value::Array(eps.clone()),
                    ) && obj::sem_eq(cur.get("ports").unwrap_or(&Value::Null), &ports_json(ports))
                        && obj::sem_eq(
                            at(cur, &["metadata", "labels"]).unwrap_or(&Value::Null),
                            &labels,
                        );
                if !same {
                    out.writes.push(Write::Update(body((*cur).clone())));
                }
            }
            None => {
                let mut meta = Map::new();
                meta.insert("generateName".into(), json!(format!("{svc_name}-")));
                if let Some(ns) = namespace(svc) {
                    meta.insert("namespace".into(), json!(ns));
                }
                meta.insert(
                    "ownerReferences".into(),
                    json!([obj::owner_ref("v1", "Service", svc)]),
                );
                let base = json!({
                    "apiVersion": "discovery.k8s.io/v1",
                    "kind": "EndpointSlice",
                    "metadata": Value::Object(meta),
                });
                out.writes.push(Write::Create(body(base)));
            }
        }
    }
    for extra in owned.iter().skip(desired.len()) {
        out.writes.push(delete(extra));
    }
    sync_endpoints(svc, &selected, endpoints, &mut out.writes);
    out
}

/// The legacy Endpoints object: one subset per port set, ready and not-ready addresses.
fn sync_endpoints(svc: &Value, pods: &[&Value], current: Option<&Value>, writes: &mut Vec<Write>) {
    let publish =
        at(svc, &["spec", "publishNotReadyAddresses"]).and_then(Value::as_bool) == Some(true);
    let mut subsets: Vec<(Ports, Vec<Value>, Vec<Value>)> = Vec::new();
    for pod in pods {
        let Some(ports) = resolve_ports(svc, pod) else {
            continue;
        };
        let terminating = obj::is_deleting(pod);
        let ready = obj::pod_ready(pod) && !terminating;
        if terminating && !publish {
            continue;
        }
        let mut addr = Map::new();
        addr.insert("ip".into(), json!(pod_ip(pod)));
        if let Some(node) = str_at(pod, &["spec", "nodeName"]) {
            addr.insert("nodeName".into(), json!(node));
        }
        addr.insert("targetRef".into(), target_ref(pod));
        let addr = Value::Object(addr);
        let idx = match subsets.iter().position(|(p, _, _)| *p == ports) {
            Some(i) => i,
            None => {
                subsets.push((ports, Vec::new(), Vec::new()));
                subsets.len() - 1
            }
        };
        if ready || publish {
            subsets[idx].1.push(addr);
        } else {
            subsets[idx].2.push(addr);
        }
    }
    let ip_of = |a: &Value| {
        a.get("ip")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let subsets: Vec<Value> = subsets
        .into_iter()
        .map(|(ports, mut ready, mut not_ready)| {
            ready.sort_by_key(ip_of);
            not_ready.sort_by_key(ip_of);
            let mut s = Map::new();
            if !ready.is_empty() {
                s.insert("addresses".into(), Value::Array(ready));
            }
            if !not_ready.is_empty() {
                s.insert("notReadyAddresses".into(), Value::Array(not_ready));
            }
            let ports = ports_json(&ports);
            if let Some(arr) = ports.as_array().filter(|a| !a.is_empty()) {
                let stripped: Vec<Value> = arr
                    .iter()
                    .map(|p| {
                        let mut p = p.clone();
                        if p.get("name").and_then(Value::as_str) == Some("") {
                            obj::remove(&mut p, &["name"]);
                        }
                        p
                    })
                    .collect();
                s.insert("ports".into(), Value::Array(stripped));
            }
            Value::Object(s)
        })
        .collect();
    let labels = at(svc, &["metadata", "labels"]).cloned();
    match current {
        Some(cur) => {
            let same = obj::sem_eq(
                cur.get("subsets").unwrap_or(&Value::Null),
                &Value::Array(subsets.clone()),
            );
            if !same {
                let mut e = cur.clone();
                if subsets.is_empty() {
                    obj::remove(&mut e, &["subsets"]);
                } else {
                    obj::set(&mut e, &["subsets"], Value::Array(subsets));
                }
                writes.push(Write::Update(e));
            }
        }
        None => {
            let mut meta = Map::new();
            meta.insert("name".into(), json!(name(svc)));
            if let Some(ns) = namespace(svc) {
                meta.insert("namespace".into(), json!(ns));
            }
            if let Some(l) = labels.filter(|l| l.as_object().is_some_and(|m| !m.is_empty())) {
                meta.insert("labels".into(), l);
            }
            let mut e =
                json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": Value::Object(meta)});
            if !subsets.is_empty() {
                obj::set(&mut e, &["subsets"], Value::Array(subsets));
            }
            writes.push(Write::Create(e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc() -> Value {
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid", "labels": {"team": "a"}},
            "spec": {"selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]}})
    }

    fn pod(name_: &str, ip: &str, ready: bool) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name_, "namespace": "default", "uid": format!("u-{name_}"),
                "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]},
            "status": {"phase": "Running", "podIP": ip,
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    /// Applies Create/Update writes to the slice list / endpoints (names from a counter).
    fn apply(writes: Vec<Write>, slices: &mut Vec<Value>, eps: &mut Option<Value>) {
        for w in writes {
            match w {
                Write::Create(mut v) | Write::Update(mut v) => {
                    if v["kind"] == json!("Endpoints") {
                        *eps = Some(v);
                        continue;
                    }
                    if name(&v).is_empty() {
                        let n = format!("web-{}", slices.len());
                        obj::set(&mut v, &["metadata", "name"], json!(n));
                    }
                    slices.retain(|s| name(s) != name(&v));
                    slices.push(v);
                }
                Write::Delete { name: n, .. } => slices.retain(|s| name(s) != n),
                _ => {}
            }
        }
    }

    #[test]
    fn slices_and_endpoints_follow_pods_without_churn() {
        let pods = vec![
            pod("b", "10.0.0.2", false),
            pod("a", "10.0.0.1", true),
            pod("x", "", true),
        ];
        let mut slices = Vec::new();
        let mut eps = None;
        let r = sync(&svc(), &pods, &slices, eps.as_ref());
        assert_eq!(r.writes.len(), 2);
        let Write::Create(slice) = &r.writes[0] else {
            panic!()
        };
        assert_eq!(slice["metadata"]["generateName"], json!("web-"));
        assert_eq!(
            slice["metadata"]["labels"],
            json!({"team": "a", SERVICE_NAME_LABEL: "web", MANAGED_BY_LABEL: MANAGED_BY})
        );
        assert_eq!(
            slice["metadata"]["ownerReferences"][0]["kind"],
            json!("Service")
        );
        assert_eq!(slice["addressType"], json!("IPv4"));
        assert_eq!(
            slice["ports"],
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
        );
        assert_eq!(
            slice["endpoints"][0],
            json!({"addresses": ["10.0.0.1"], "conditions": {"ready": true, "serving": true, "terminating": false},
                "nodeName": "n1", "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "u-a"}})
        );
        assert_eq!(slice["endpoints"][1]["conditions"]["ready"], json!(false));
        assert_eq!(
            slice["endpoints"].as_array().unwrap().len(),
            2,
            "pod without IP left out"
        );
        let Write::Create(e) = &r.writes[1] else {
            panic!()
        };
        assert_eq!(e["metadata"]["name"], json!("web"));
        assert_eq!(e["subsets"][0]["addresses"][0]["ip"], json!("10.0.0.1"));
        assert_eq!(
            e["subsets"][0]["notReadyAddresses"][0]["ip"],
            json!("10.0.0.2")
        );
        assert_eq!(
            e["subsets"][0]["ports"],
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
        );
        apply(r.writes, &mut slices, &mut eps);
        assert!(sync(&svc(), &pods, &slices, eps.as_ref()).writes.is_empty());

        // A pod starts terminating: serving stays, ready drops, Endpoints drops it.
        let mut pods2 = pods.clone();
        pods2[1]["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let r = sync(&svc(), &pods2, &slices, eps.as_ref());
        let Write::Update(s) = &r.writes[0] else {
            panic!("{:#?}", r.writes)
        };
        assert_eq!(
            s["endpoints"][0]["conditions"],
            json!({"ready": false, "serving": true, "terminating": true})
        );
        apply(r.writes, &mut slices, &mut eps);
        let e = eps.clone().unwrap();
        assert_eq!(e["subsets"][0].get("addresses"), None);
        assert!(
            sync(&svc(), &pods2, &slices, eps.as_ref())
                .writes
                .is_empty()
        );
    }

    #[test]
    fn empty_selection_keeps_a_placeholder_and_no_selector_deletes() {
        let mut slices = Vec::new();
        let mut eps = None;
        let r = sync(&svc(), &[], &slices, None);
        let Write::Create(s) = &r.writes[0] else {
            panic!()
        };
        assert_eq!(s["endpoints"], json!([]));
        apply(r.writes, &mut slices, &mut eps);
        assert!(eps.as_ref().unwrap().get("subsets").is_none());
        assert!(sync(&svc(), &[], &slices, eps.as_ref()).writes.is_empty());
        let mut headless = svc();
        obj::remove(&mut headless, &["spec", "selector"]);
        let r = sync(&headless, &[], &slices, eps.as_ref());
        assert!(
            matches!(r.writes.as_slice(), [Write::Delete { kind, .. }] if kind == "EndpointSlice")
        );
    }
}
