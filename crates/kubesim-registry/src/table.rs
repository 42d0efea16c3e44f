//! `meta.k8s.io/v1` `Table` rendering for `kubectl get` (§5.4): the server-side printer columns
//! of the real API server for the common kinds, `Name`/`Age` for the rest, ages rendered like
//! kubectl (`5s`, `3m`, `2d`).
//!
//! Pure: the current time is a parameter; must not decide which objects are listed.

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::json::{at, i64_at, selector_string, str_at};
use crate::resources::Resource;

const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// One column: (name, type, format, priority, description).
type Col = (&'static str, &'static str, &'static str, u8, &'static str);

/// Renders one object's cells.
type RowFn = fn(&Value, Timestamp) -> Vec<Value>;

const NAME: Col = ("Name", "string", "name", 0, NAME_DESC);
const AGE: Col = ("Age", "string", "", 0, AGE_DESC);

/// Render `items` of `res` as a Table. Rows carry the objects as `PartialObjectMetadata`.
pub fn table(
    res: &Resource,
    items: &[Value],
    list_resource_version: &str,
    now: Timestamp,
) -> Value {
    let (cols, row): (Vec<Col>, RowFn) = match (res.group, res.kind) {
        ("apps", "Deployment") => (
            vec![
                NAME,
                (
                    "Ready",
                    "string",
                    "",
                    0,
                    "Number of the pod with ready state",
                ),
                (
                    "Up-to-date",
                    "integer",
                    "",
                    0,
                    "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
                ),
                (
                    "Available",
                    "integer",
                    "",
                    0,
                    "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
                ),
                AGE,
                (
                    "Containers",
                    "string",
                    "",
                    1,
                    "Names of each container in the template.",
                ),
                (
                    "Images",
                    "string",
                    "",
                    1,
                    "Images referenced by each container in the template.",
                ),
                (
                    "Selector",
                    "string",
                    "",
                    1,
                    "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
                ),
            ],
            deployment_row,
        ),
        ("apps", "ReplicaSet") => (
            vec![
                NAME,
                (
                    "Desired",
                    "integer",
                    "",
                    0,
                    "Replicas is the number of desired replicas.",
                ),
                (
                    "Current",
                    "integer",
                    "",
                    0,
                    "Replicas is the most recently observed number of replicas.",
                ),
                (
                    "Ready",
                    "integer",
                    "",
                    0,
                    "The number of ready replicas for this replica set.",
                ),
                AGE,
                (
                    "Containers",
                    "string",
                    "",
                    1,
                    "Names of each container in the template.",
                ),
                (
                    "Images",
                    "string",
                    "",
                    1,
                    "Images referenced by each container in the template.",
                ),
                (
                    "Selector",
                    "string",
                    "",
                    1,
                    "Selector is a label query over pods that should match the replica count.",
                ),
            ],
            replica_set_row,
        ),
        ("apps", "StatefulSet") => (
            vec![
                NAME,
                (
                    "Ready",
                    "string",
                    "",
                    0,
                    "Number of the pod with ready state",
                ),
                AGE,
                (
                    "Containers",
                    "string",
                    "",
                    1,
                    "Names of each container in the template.",
                ),
                (
                    "Images",
                    "string",
                    "",
                    1,
                    "Images referenced by each container in the template.",
                ),
            ],
            stateful_set_row,
        ),
        ("", "Pod") => (
            vec![
                NAME,
                (
                    "Ready",
                    "string",
                    "",
                    0,
                    "The aggregate readiness state of this pod for accepting traffic.",
                ),
                (
                    "Status",
                    "string",
                    "",
                    0,
                    "The aggregate status of the containers in this pod.",
                ),
                (
                    "Restarts",
                    "string",
                    "",
                    0,
                    "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
                ),
                AGE,
                (
                    "IP",
                    "string",
                    "",
                    1,
                    "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
                ),
                (
                    "Node",
                    "string",
                    "",
                    1,
                    "NodeName is a request to schedule this pod onto a specific node.",
                ),
                (
                    "Nominated Node",
                    "string",
                    "",
                    1,
                    "nominatedNodeName is set only when this pod preempts other pods on the node.",
                ),
                (
                    "Readiness Gates",
                    "string",
                    "",
                    1,
                    "If specified, all readiness gates will be evaluated for pod readiness.",
                ),
            ],
            pod_row,
        ),
        ("", "Service") => (
            vec![
                NAME,
                (
                    "Type",
                    "string",
                    "",
                    0,
                    "type determines how the Service is exposed.",
                ),
                (
                    "Cluster-IP",
                    "string",
                    "",
                    0,
                    "clusterIP is the IP address of the service and is usually assigned randomly.",
                ),
                (
                    "External-IP",
                    "string",
                    "",
                    0,
                    "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
                ),
                (
                    "Port(s)",
                    "string",
                    "",
                    0,
                    "The list of ports that are exposed by this service.",
                ),
                AGE,
                (
                    "Selector",
                    "string",
                    "",
                    1,
                    "Route service traffic to pods with label keys and values matching this selector.",
                ),
            ],
            service_row,
        ),
        ("", "Node") => (
            vec![
                NAME,
                ("Status", "string", "", 0, "The status of the node"),
                ("Roles", "string", "", 0, "The roles of the node"),
                AGE,
                (
                    "Version",
                    "string",
                    "",
                    0,
                    "Kubelet Version reported by the node.",
                ),
                (
                    "Internal-IP",
                    "string",
                    "",
                    1,
                    "List of addresses reachable to the node. Queried from cloud provider, if available.",
                ),
                (
                    "External-IP",
                    "string",
                    "",
                    1,
                    "List of addresses reachable to the node. Queried from cloud provider, if available.",
                ),
                (
                    "OS-Image",
                    "string",
                    "",
                    1,
                    "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
                ),
                (
                    "Kernel-Version",
                    "string",
                    "",
                    1,
                    "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
                ),
                (
                    "Container-Runtime",
                    "string",
                    "",
                    1,
                    "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
                ),
            ],
            node_row,
        ),
        ("", "ConfigMap") => (
            vec![
                NAME,
                (
                    "Data",
                    "integer",
                    "",
                    0,
                    "Data contains the configuration data.",
                ),
                AGE,
            ],
            config_map_row,
        ),
        ("", "Secret") => (
            vec![
                NAME,
                (
                    "Type",
                    "string",
                    "",
                    0,
                    "Used to facilitate programmatic handling of secret data.",
                ),
                ("Data", "integer", "", 0, "Data contains the secret data."),
                AGE,
            ],
            secret_row,
        ),
        ("", "Namespace") => (
            vec![
                NAME,
                ("Status", "string", "", 0, "The status of the namespace"),
                AGE,
            ],
            namespace_row,
        ),
        ("", "Endpoints") => (
            vec![
                NAME,
                (
                    "Endpoints",
                    "string",
                    "",
                    0,
                    "Endpoints is the list of endpoints for this service.",
                ),
                AGE,
            ],
            endpoints_row,
        ),
        ("discovery.k8s.io", "EndpointSlice") => (
            vec![
                NAME,
                (
                    "AddressType",
                    "string",
                    "",
                    0,
                    "addressType specifies the type of address carried by this EndpointSlice.",
                ),
                (
                    "Ports",
                    "string",
                    "",
                    0,
                    "ports specifies the list of network ports exposed by each endpoint in this slice.",
                ),
                (
                    "Endpoints",
                    "string",
                    "",
                    0,
                    "endpoints is a list of unique endpoints in this slice.",
                ),
                AGE,
            ],
            endpoint_slice_row,
        ),
        (_, "Event") => (
            vec![
                (
                    "Last Seen",
                    "string",
                    "",
                    0,
                    "The time at which the most recent occurrence of this event was recorded.",
                ),
                (
                    "Type",
                    "string",
                    "",
                    0,
                    "Type of this event (Normal, Warning), new types could be added in the future",
                ),
                (
                    "Reason",
                    "string",
                    "",
                    0,
                    "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
                ),
                (
                    "Object",
                    "string",
                    "",
                    0,
                    "The object that this event is about.",
                ),
                (
                    "Subobject",
                    "string",
                    "",
                    1,
                    "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement.",
                ),
                (
                    "Source",
                    "string",
                    "",
                    1,
                    "The component reporting this event.",
                ),
                (
                    "Message",
                    "string",
                    "",
                    0,
                    "A human-readable description of the status of this operation.",
                ),
                (
                    "First Seen",
                    "string",
                    "",
                    1,
                    "The time at which the event was first recorded.",
                ),
                (
                    "Count",
                    "string",
                    "",
                    1,
                    "The number of times this event has occurred.",
                ),
                ("Name", "string", "name", 1, NAME_DESC),
            ],
            if res.group.is_empty() {
                event_row
            } else {
                events_v1_row
            },
        ),
        _ => (vec![NAME, AGE], generic_row),
    };
    let column_definitions: Vec<Value> = cols
        .iter()
        .map(|(name, ty, format, priority, desc)| {
            json!({"name": name, "type": ty, "format": format, "description": desc, "priority": priority})
        })
        .collect();
    let rows: Vec<Value> = items
        .iter()
        .map(|item| json!({"cells": row(item, now), "object": partial_metadata(item)}))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": list_resource_version},
        "columnDefinitions": column_definitions,
        "rows": rows
    })
}

fn partial_metadata(item: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": item.get("metadata").cloned().unwrap_or_else(|| json!({}))
    })
}

/// kubectl's `HumanDuration` of `now - t`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// Age of an RFC 3339 timestamp relative to `now`, `<unknown>` when absent or unparsable.
pub fn age_of(ts: Option<&str>, now: Timestamp) -> String {
    match ts.and_then(|t| t.parse::<Timestamp>().ok()) {
        Some(t) => human_duration(now.as_second() - t.as_second()),
        None => "<unknown>".into(),
    }
}

fn age(item: &Value, now: Timestamp) -> Value {
    json!(age_of(
        str_at(item, &["metadata", "creationTimestamp"]),
        now
    ))
}

fn name(item: &Value) -> Value {
    json!(str_at(item, &["metadata", "name"]).unwrap_or(""))
}

fn generic_row(item: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(item), age(item, now)]
}

fn int(item: &Value, path: &[&str]) -> i64 {
    i64_at(item, path).unwrap_or(0)
}

/// (`Containers`, `Images`) of a pod template, comma-joined.
fn containers_images(item: &Value) -> (Value, Value) {
    let cs = at(item, &["spec", "template", "spec", "containers"])
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let names: Vec<&str> = cs
        .iter()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let images: Vec<&str> = cs
        .iter()
        .filter_map(|c| c.get("image").and_then(Value::as_str))
        .collect();
    (json!(names.join(",")), json!(images.join(",")))
}

fn selector_cell(item: &Value) -> Value {
    match at(item, &["spec", "selector"]).and_then(selector_string) {
        Some(s) if !s.is_empty() => json!(s),
        Some(_) => json!("<none>"),
        None => json!("<invalid>"),
    }
}

fn deployment_row(item: &Value, now: Timestamp) -> Vec<Value> {
    let (containers, images) = containers_images(item);
    vec![
        name(item),
        json!(format!(
            "{}/{}",
            int(item, &["status", "readyReplicas"]),
            int(item, &["spec", "replicas"])
        )),
        json!(int(item, &["status", "updatedReplicas"])),
        json!(int(item, &["status", "availableReplicas"])),
        age(item, now),
        containers,
        images,
        selector_cell(item),
    ]
}

fn replica_set_row(item: &Value, now: Timestamp) -> Vec<Value> {
    let (containers, images) = containers_images(item);
    vec![
        name(item),
        json!(int(item, &["spec", "replicas"])),
        json!(int(item, &["status", "replicas"])),
        json!(int(item, &["status", "readyReplicas"])),
        age(item, now),
        containers,
        images,
        selector_cell(item),
    ]
}

fn stateful_set_row(item: &Value, now: Timestamp) -> Vec<Value> {
    let (containers, images) = containers_images(item);
    vec![
        name(item),
        json!(format!(
            "{}/{}",
            int(item, &["status", "readyReplicas"]),
            int(item, &["spec", "replicas"])
        )),
        age(item, now),
        containers,
        images,
    ]
}

/// `printPod` (regular containers; init containers summarised as `Init:i/n`).
fn pod_row(item: &Value, now: Timestamp) -> Vec<Value> {
    let empty = Vec::new();
    let statuses = at(item, &["status", "containerStatuses"])
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let total = at(item, &["spec", "containers"])
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut ready = 0;
    let mut restarts = 0;
    let mut last_restart: Option<Timestamp> = None;
    let mut reason = str_at(item, &["status", "reason"])
        .or_else(|| str_at(item, &["status", "phase"]))
        .unwrap_or("")
        .to_string();

    let init_statuses = at(item, &["status", "initContainerStatuses"])
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let init_total = at(item, &["spec", "initContainers"])
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut initializing = false;
    for (i, c) in init_statuses.iter().enumerate() {
        restarts += int(c, &["restartCount"]);
        if let Some(t) = str_at(c, &["lastState", "terminated", "finishedAt"])
            .and_then(|t| t.parse::<Timestamp>().ok())
        {
            last_restart = last_restart.max(Some(t));
        }
        if str_at(c, &["state", "terminated", "reason"]).is_some()
            && int(c, &["state", "terminated", "exitCode"]) == 0
        {
            continue;
        }
        if at(c, &["state", "running"]).is_some()
            && c.get("started").and_then(Value::as_bool) == Some(true)
        {
            // A started sidecar (restartable init container) does not block.
            continue;
        }
        initializing = true;
        reason = if let Some(r) = str_at(c, &["state", "waiting", "reason"])
            .filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            format!("Init:{r}")
        } else if let Some(r) =
            str_at(c, &["state", "terminated", "reason"]).filter(|r| !r.is_empty())
        {
            format!("Init:{r}")
        } else {
            format!("Init:{i}/{init_total}")
        };
        break;
    }

    if !initializing {
        let mut has_running = false;
        for c in statuses.iter().rev() {
            restarts += int(c, &["restartCount"]);
            if let Some(t) = str_at(c, &["lastState", "terminated", "finishedAt"])
                .and_then(|t| t.parse::<Timestamp>().ok())
            {
                last_restart = last_restart.max(Some(t));
            }
            if let Some(r) = str_at(c, &["state", "waiting", "reason"]).filter(|r| !r.is_empty()) {
                reason = r.to_string();
            } else if let Some(t) = at(c, &["state", "terminated"]) {
                reason = match t
                    .get("reason")
                    .and_then(Value::as_str)
                    .filter(|r| !r.is_empty())
                {
                    Some(r) => r.to_string(),
                    None => match t.get("signal").and_then(Value::as_i64).filter(|s| *s != 0) {
                        Some(s) => format!("Signal:{s}"),
                        None => format!("ExitCode:{}", int(t, &["exitCode"])),
                    },
                };
            } else if c.get("ready").and_then(Value::as_bool) == Some(true)
                && at(c, &["state", "running"]).is_some()
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = at(item, &["status", "conditions"])
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                });
            reason = if pod_ready {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    } else {
        for c in statuses {
            restarts += int(c, &["restartCount"]);
        }
    }
    if at(item, &["metadata", "deletionTimestamp"]).is_some_and(|v| !v.is_null()) {
        reason = if str_at(item, &["status", "reason"]) == Some("NodeLost") {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    let restarts_cell = match last_restart {
        Some(t) if restarts > 0 => format!(
            "{restarts} ({} ago)",
            human_duration(now.as_second() - t.as_second())
        ),
        _ => restarts.to_string(),
    };
    let ip = str_at(item, &["status", "podIP"])
        .filter(|s| !s.is_empty())
        .unwrap_or("<none>");
    let node = str_at(item, &["spec", "nodeName"])
        .filter(|s| !s.is_empty())
        .unwrap_or("<none>");
    let nominated = str_at(item, &["status", "nominatedNodeName"])
        .filter(|s| !s.is_empty())
        .unwrap_or("<none>");
    let gates = match at(item, &["spec", "readinessGates"]).and_then(Value::as_array) {
        Some(g) if !g.is_empty() => {
            let conds = at(item, &["status", "conditions"]).and_then(Value::as_array);
            let true_count = g
                .iter()
                .filter(|gate| {
                    conds.is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == gate["conditionType"] && c["status"] == "True")
                    })
                })
                .count();
            format!("{true_count}/{}", g.len())
        }
        _ => "<none>".into(),
    };
    vec![
        name(item),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_cell),
        age(item, now),
        json!(ip),
        json!(node),
        json!(nominated),
        json!(gates),
    ]
}

fn service_row(item: &Value, now: Timestamp) -> Vec<Value> {
    let ty = str_at(item, &["spec", "type"]).unwrap_or("ClusterIP");
    let cluster_ip = match str_at(item, &["spec", "clusterIP"]) {
        Some(ip) if !ip.is_empty() => ip,
        _ => "<none>",
    };
    let external_ips: Vec<&str> = at(item, &["spec", "externalIPs"])
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let external = match ty {
        "ExternalName" => str_at(item, &["spec", "externalName"])
            .unwrap_or("<none>")
            .to_string(),
        "LoadBalancer" => {
            let mut ips: Vec<String> = at(item, &["status", "loadBalancer", "ingress"])
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|i| {
                            i.get("ip")
                                .or_else(|| i.get("hostname"))
                                .and_then(Value::as_str)
                        })
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            ips.extend(external_ips.iter().map(|s| s.to_string()));
            if ips.is_empty() {
                "<pending>".into()
            } else {
                ips.join(",")
            }
        }
        _ if !external_ips.is_empty() => external_ips.join(","),
        _ => "<none>".into(),
    };
    let ports: Vec<String> = at(item, &["spec", "ports"])
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let port = int(p, &["port"]);
                    let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                    match int(p, &["nodePort"]) {
                        0 => format!("{port}/{proto}"),
                        np => format!("{port}:{np}/{proto}"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let ports = if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    };
    let selector = match at(item, &["spec", "selector"]).and_then(Value::as_object) {
        Some(m) if !m.is_empty() => {
            let mut pairs: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            pairs.sort();
            pairs.join(",")
        }
        _ => "<none>".into(),
    };
    vec![
        name(item),
        json!(ty),
        json!(cluster_ip),
        json!(external),
        json!(ports),
        age(item, now),
        json!(selector),
    ]
}

fn node_row(item: &Value, now: Timestamp) -> Vec<Value> {
    let conditions = at(item, &["status", "conditions"]).and_then(Value::as_array);
    let mut status = match conditions.and_then(|cs| cs.iter().find(|c| c["type"] == "Ready")) {
        Some(c) if c["status"] == "True" => "Ready".to_string(),
        Some(c) if c["status"] == "False" => "NotReady".to_string(),
        _ => "Unknown".to_string(),
    };
    if at(item, &["spec", "unschedulable"]).and_then(Value::as_bool) == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    let mut roles: Vec<String> = at(item, &["metadata", "labels"])
        .and_then(Value::as_object)
        .map(|l| {
            l.iter()
                .filter_map(|(k, v)| {
                    if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                        Some(role.to_string())
                    } else if k == "kubernetes.io/role" {
                        v.as_str().map(str::to_string)
                    } else {
                        None
                    }
                })
                .filter(|r| !r.is_empty())
                .collect()
        })
        .unwrap_or_default();
    roles.sort();
    roles.dedup();
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.join(",")
    };
    let address = |ty: &str| {
        at(item, &["status", "addresses"])
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|x| x["type"] == ty))
            .and_then(|x| x.get("address").and_then(Value::as_str))
            .unwrap_or("<none>")
            .to_string()
    };
    let info = |k: &str| {
        let v = str_at(item, &["status", "nodeInfo", k]).unwrap_or("");
        if v.is_empty() {
            "<unknown>".to_string()
        } else {
            v.to_string()
        }
    };
    vec![
        name(item),
        json!(status),
        json!(roles),
        age(item, now),
        json!(str_at(item, &["status", "nodeInfo", "kubeletVersion"]).unwrap_or("")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

fn count_keys(item: &Value, keys: &[&str]) -> usize {
    keys.iter()
        .map(|k| item.get(*k).and_then(Value::as_object).map_or(0, Map::len))
        .sum()
}

fn config_map_row(item: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(item),
        json!(count_keys(item, &["data", "binaryData"])),
        age(item, now),
    ]
}

fn secret_row(item: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(item),
        json!(str_at(item, &["type"]).unwrap_or("")),
        json!(count_keys(item, &["data"])),
        age(item, now),
    ]
}

fn namespace_row(item: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(item),
        json!(str_at(item, &["status", "phase"]).unwrap_or("")),
        age(item, now),
    ]
}

/// `a, b, c + N more...` formatting of kubectl for endpoint lists (at most 3 shown).
fn first_three(all: &[String]) -> String {
    if all.is_empty() {
        return "<none>".into();
    }
    let shown = all.iter().take(3).cloned().collect::<Vec<_>>().join(",");
    if all.len() > 3 {
        format!("{shown} + {} more...", all.len() - 3)
    } else {
        shown
    }
}

fn endpoints_row(item: &Value, now: Timestamp) -> Vec<Value> {
    let mut all = Vec::new();
    for subset in item
        .get("subsets")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let addrs = subset
            .get("addresses")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let ports = subset
            .get("ports")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        for a in addrs {
            let ip = a.get("ip").and_then(Value::as_str).unwrap_or("");
            if ports.is_empty() {
                all.push(ip.to_string());
            }
            for p in ports {
                all.push(format!("{ip}:{}", int(p, &["port"])));
            }
        }
    }
    vec![name(item), json!(first_three(&all)), age(item, now)]
}

fn endpoint_slice_row(item: &Value, now: Timestamp) -> Vec<Value> {
    let ports: Vec<String> = item
        .get("ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    p.get("port")
                        .and_then(Value::as_i64)
                        .map_or("<unset>".to_string(), |n| n.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    let ports = if ports.is_empty() {
        "<unset>".to_string()
    } else {
        first_three(&ports)
    };
    let addrs: Vec<String> = item
        .get("endpoints")
        .and_then(Value::as_array)
        .map(|es| {
            es.iter()
                .flat_map(|e| {
                    e.get("addresses")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                })
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    vec![
        name(item),
        json!(str_at(item, &["addressType"]).unwrap_or("")),
        json!(ports),
        json!(first_three(&addrs)),
        age(item, now),
    ]
}

/// The fields both Event APIs print, normalised.
struct EventView<'a> {
    involved: Option<&'a Value>,
    source: String,
    first: Option<&'a str>,
    last: Option<&'a str>,
    count: i64,
    message: &'a str,
}

fn event_cells(item: &Value, now: Timestamp, ev: EventView<'_>) -> Vec<Value> {
    let EventView {
        involved,
        source,
        first,
        last,
        count,
        message,
    } = ev;
    let first_seen = age_of(first, now);
    let last_seen = match last {
        Some(_) => age_of(last, now),
        None => first_seen.clone(),
    };
    let object = involved.map_or(String::new(), |o| {
        format!(
            "{}/{}",
            o.get("kind")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_lowercase(),
            o.get("name").and_then(Value::as_str).unwrap_or("")
        )
    });
    vec![
        json!(last_seen),
        json!(str_at(item, &["type"]).unwrap_or("")),
        json!(str_at(item, &["reason"]).unwrap_or("")),
        json!(object),
        json!(
            involved
                .and_then(|o| o.get("fieldPath"))
                .and_then(Value::as_str)
                .unwrap_or("")
        ),
        json!(source),
        json!(message.trim()),
        json!(first_seen),
        json!(count.to_string()),
        name(item),
    ]
}

fn event_row(item: &Value, now: Timestamp) -> Vec<Value> {
    let nonempty = |p: &[&str]| str_at(item, p).filter(|s| !s.is_empty());
    let first = nonempty(&["firstTimestamp"]).or_else(|| nonempty(&["eventTime"]));
    let (last, count) = match item.get("series").filter(|s| s.is_object()) {
        Some(s) => (
            s.get("lastObservedTime").and_then(Value::as_str),
            int(s, &["count"]),
        ),
        None => (nonempty(&["lastTimestamp"]), int(item, &["count"]).max(1)),
    };
    let component = str_at(item, &["source", "component"]).unwrap_or("");
    let host = str_at(item, &["source", "host"]).unwrap_or("");
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };
    let message = str_at(item, &["message"]).unwrap_or("");
    event_cells(
        item,
        now,
        EventView {
            involved: item.get("involvedObject"),
            source,
            first,
            last,
            count,
            message,
        },
    )
}

fn events_v1_row(item: &Value, now: Timestamp) -> Vec<Value> {
    let nonempty = |p: &[&str]| str_at(item, p).filter(|s| !s.is_empty());
    let first = nonempty(&["deprecatedFirstTimestamp"]).or_else(|| nonempty(&["eventTime"]));
    let (last, count) = match item.get("series").filter(|s| s.is_object()) {
        Some(s) => (
            s.get("lastObservedTime").and_then(Value::as_str),
            int(s, &["count"]),
        ),
        None => (
            nonempty(&["deprecatedLastTimestamp"]),
            int(item, &["deprecatedCount"]).max(1),
        ),
    };
    let source = str_at(item, &["reportingController"])
        .unwrap_or("")
        .to_string();
    let message = str_at(item, &["note"]).unwrap_or("");
    event_cells(
        item,
        now,
        EventView {
            involved: item.get("regarding"),
            source,
            first,
            last,
            count,
            message,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_kind;

    fn now() -> Timestamp {
        "2026-11-21T12:00:00Z".parse().unwrap()
    }

    fn cells(api_version: &str, kind: &str, item: Value) -> Vec<Value> {
        let t = table(by_kind(api_version, kind).unwrap(), &[item], "42", now());
        t["rows"][0]["cells"].as_array().unwrap().clone()
    }

    fn col_names(api_version: &str, kind: &str) -> Vec<String> {
        let t = table(by_kind(api_version, kind).unwrap(), &[], "1", now());
        t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn human_durations_match_kubectl() {
        for (s, want) in [
            (-5, "<invalid>"),
            (-1, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (150, "2m30s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (10 * 3600, "10h"),
            (2 * 86400, "2d"),
            (2 * 86400 + 3600, "2d1h"),
            (30 * 86400, "30d"),
            (3 * 365 * 86400, "3y"),
            (3 * 365 * 86400 + 86400, "3y1d"),
            (9 * 365 * 86400, "9y"),
        ] {
            assert_eq!(human_duration(s), want, "{s}");
        }
        assert_eq!(age_of(None, now()), "<unknown>");
    }

    #[test]
    fn table_shape() {
        let item = json!({"metadata": {"name": "cm", "namespace": "default", "creationTimestamp": "2026-11-21T11:57:00Z",
            "labels": {"a": "b"}}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": ""}});
        let t = table(
            by_kind("v1", "ConfigMap").unwrap(),
            std::slice::from_ref(&item),
            "42",
            now(),
        );
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["metadata"], json!({"resourceVersion": "42"}));
        assert_eq!(t["columnDefinitions"][0]["name"], "Name");
        assert_eq!(t["columnDefinitions"][0]["format"], "name");
        assert_eq!(t["columnDefinitions"][1]["type"], "integer");
        assert_eq!(t["rows"][0]["cells"], json!(["cm", 3, "3m"]));
        assert_eq!(
            t["rows"][0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": item["metadata"]})
        );
        let empty = table(by_kind("v1", "ConfigMap").unwrap(), &[], "7", now());
        assert_eq!(empty["rows"], json!([]));
    }

    #[test]
    fn deployment_and_replica_set_rows() {
        assert_eq!(
            col_names("apps/v1", "Deployment"),
            [
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        let d = json!({"metadata": {"name": "web", "creationTimestamp": "2026-11-21T11:59:55Z"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1"}, {"name": "side", "image": "busybox"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        assert_eq!(
            cells("apps/v1", "Deployment", d.clone()),
            vec![
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("5s"),
                json!("web,side"),
                json!("nginx:1,busybox"),
                json!("app=web")
            ]
        );
        assert_eq!(
            cells("apps/v1", "ReplicaSet", d),
            vec![
                json!("web"),
                json!(3),
                json!(0),
                json!(2),
                json!("5s"),
                json!("web,side"),
                json!("nginx:1,busybox"),
                json!("app=web")
            ]
        );
        let fresh = json!({"metadata": {"name": "x"}, "spec": {"replicas": 1}, "status": {}});
        assert_eq!(cells("apps/v1", "Deployment", fresh)[1], "0/1");
    }

    #[test]
    fn pod_rows() {
        assert_eq!(
            col_names("v1", "Pod"),
            [
                "Name",
                "Ready",
                "Status",
                "Restarts",
                "Age",
                "IP",
                "Node",
                "Nominated Node",
                "Readiness Gates"
            ]
        );
        let running = json!({"metadata": {"name": "p", "creationTimestamp": "2026-11-21T10:00:00Z"},
            "spec": {"nodeName": "node-1", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "podIP": "10.244.0.5", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                {"name": "b", "ready": true, "restartCount": 2, "state": {"running": {}},
                 "lastState": {"terminated": {"finishedAt": "2026-11-21T11:55:00Z"}}}]}});
        assert_eq!(
            cells("v1", "Pod", running),
            vec![
                json!("p"),
                json!("2/2"),
                json!("Running"),
                json!("2 (5m ago)"),
                json!("120m"),
                json!("10.244.0.5"),
                json!("node-1"),
                json!("<none>"),
                json!("<none>")
            ]
        );
        let pending = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Pending"}});
        let c = cells("v1", "Pod", pending);
        assert_eq!(
            (c[1].clone(), c[2].clone(), c[3].clone(), c[5].clone()),
            (json!("0/1"), json!("Pending"), json!("0"), json!("<none>"))
        );
        let crash = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "a", "ready": false, "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        assert_eq!(cells("v1", "Pod", crash)[2], "CrashLoopBackOff");
        let terminating = json!({"metadata": {"name": "p", "deletionTimestamp": "2026-11-21T12:00:00Z"},
            "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Running"}});
        assert_eq!(cells("v1", "Pod", terminating)[2], "Terminating");
        let init = json!({"metadata": {"name": "p"}, "spec": {"initContainers": [{"name": "i"}], "containers": [{"name": "a"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [{"name": "i", "state": {"waiting": {"reason": "PodInitializing"}}}]}});
        assert_eq!(cells("v1", "Pod", init)[2], "Init:0/1");
    }

    #[test]
    fn service_rows() {
        assert_eq!(
            col_names("v1", "Service"),
            [
                "Name",
                "Type",
                "Cluster-IP",
                "External-IP",
                "Port(s)",
                "Age",
                "Selector"
            ]
        );
        let svc = json!({"metadata": {"name": "web", "creationTimestamp": "2026-11-19T12:00:00Z"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "selector": {"tier": "fe", "app": "web"},
                "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 53, "protocol": "UDP"}]}});
        assert_eq!(
            cells("v1", "Service", svc),
            vec![
                json!("web"),
                json!("NodePort"),
                json!("10.96.0.10"),
                json!("<none>"),
                json!("80:30080/TCP,53/UDP"),
                json!("2d"),
                json!("app=web,tier=fe")
            ]
        );
        let lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.11", "ports": []}});
        let c = cells("v1", "Service", lb);
        assert_eq!(
            (c[3].clone(), c[4].clone()),
            (json!("<pending>"), json!("<none>"))
        );
        let ext = json!({"metadata": {"name": "x"}, "spec": {"type": "ExternalName", "externalName": "example.com"}});
        let c = cells("v1", "Service", ext);
        assert_eq!(
            (c[2].clone(), c[3].clone()),
            (json!("<none>"), json!("example.com"))
        );
    }

    #[test]
    fn other_kind_rows() {
        let node = json!({"metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.32.0"},
                "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}]}});
        let c = cells("v1", "Node", node);
        assert_eq!(
            &c[..3],
            &[
                json!("n1"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane")
            ]
        );
        assert_eq!(c[4], "v1.32.0");
        assert_eq!(c[5], "172.18.0.2");
        assert_eq!(c[6], "<none>");

        let secret = json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "eA=="}});
        assert_eq!(
            cells("v1", "Secret", secret)[1..3],
            [json!("Opaque"), json!(1)]
        );
        let ns = json!({"metadata": {"name": "default"}, "status": {"phase": "Active"}});
        assert_eq!(cells("v1", "Namespace", ns)[1], "Active");

        let ep = json!({"metadata": {"name": "web"}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
            "ports": [{"port": 80}, {"port": 443}]}]});
        assert_eq!(
            cells("v1", "Endpoints", ep)[1],
            "10.0.0.1:80,10.0.0.1:443,10.0.0.2:80 + 1 more..."
        );
        let slice = json!({"metadata": {"name": "web-abc"}, "addressType": "IPv4", "ports": [{"port": 8080}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}]});
        assert_eq!(
            cells("discovery.k8s.io/v1", "EndpointSlice", slice)[1..4],
            [json!("IPv4"), json!("8080"), json!("10.0.0.1,10.0.0.2")]
        );

        let ev = json!({"metadata": {"name": "web.1"}, "type": "Normal", "reason": "ScalingReplicaSet",
            "involvedObject": {"kind": "Deployment", "name": "web"}, "message": "Scaled up replica set web-1 to 2",
            "source": {"component": "deployment-controller"}, "firstTimestamp": "2026-11-21T11:50:00Z",
            "lastTimestamp": "2026-11-21T11:59:00Z", "count": 2});
        assert_eq!(
            cells("v1", "Event", ev),
            vec![
                json!("60s"),
                json!("Normal"),
                json!("ScalingReplicaSet"),
                json!("deployment/web"),
                json!(""),
                json!("deployment-controller"),
                json!("Scaled up replica set web-1 to 2"),
                json!("10m"),
                json!("2"),
                json!("web.1")
            ]
        );
        let ev1 = json!({"metadata": {"name": "e"}, "type": "Warning", "reason": "R", "regarding": {"kind": "Pod", "name": "p"},
            "note": "n", "eventTime": "2026-11-21T11:59:30.000000Z", "reportingController": "kubelet"});
        assert_eq!(
            cells("events.k8s.io/v1", "Event", ev1)[..4],
            [json!("30s"), json!("Warning"), json!("R"), json!("pod/p")]
        );

        let lease = json!({"metadata": {"name": "l", "creationTimestamp": "2026-11-21T11:00:00Z"}});
        assert_eq!(
            cells("coordination.k8s.io/v1", "Lease", lease),
            vec![json!("l"), json!("60m")]
        );
        assert_eq!(
            col_names("coordination.k8s.io/v1", "Lease"),
            ["Name", "Age"]
        );
    }
}
