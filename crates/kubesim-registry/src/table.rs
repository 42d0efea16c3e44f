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
const CONTAINERS: Col = (
    "Containers",
    "string",
    "",
    1,
    "Names of each container in the template.",
);
const IMAGES: Col = (
    "Images",
    "string",
    "",
    1,
    "Images referenced by each container in the template.",
);

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
                    "integer",
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
        ("apps", "DaemonSet") => (
            vec![
                NAME,
                (
                    "Desired",
                    "integer",
                    "",
                    0,
                    "The total number of nodes that should be running the daemon pod.",
                ),
                (
                    "Current",
                    "integer",
                    "",
                    0,
                    "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
                ),
                (
                    "Ready",
                    "integer",
                    "",
                    0,
                    "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
                ),
                (
                    "Up-to-date",
                    "integer",
                    "",
                    0,
                    "The total number of nodes that are running updated daemon pod",
                ),
                (
                    "Available",
                    "integer",
                    "",
                    0,
                    "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available.",
                ),
                (
                    "Node Selector",
                    "string",
                    "",
                    0,
                    "NodeSelector is a selector which must be true for the pod to fit on a node.",
                ),
                AGE,
                CONTAINERS,
                IMAGES,
                (
                    "Selector",
                    "string",
                    "",
                    1,
                    "A label query over pods that are managed by the daemon set.",
                ),
            ],
            daemon_set_row,
        ),
        ("batch", "Job") => (
            vec![
                NAME,
                ("Status", "string", "", 0, "Status of the job."),
                (
                    "Completions",
                    "string",
                    "",
                    0,
                    "The completion status of the job.",
                ),
                (
                    "Duration",
                    "string",
                    "",
                    0,
                    "Time required to complete the job.",
                ),
                AGE,
                CONTAINERS,
                IMAGES,
                (
                    "Selector",
                    "string",
                    "",
                    1,
                    "A label query over pods that should match the pod count.",
                ),
            ],
            job_row,
        ),
        ("batch", "CronJob") => (
            vec![
                NAME,
                (
                    "Schedule",
                    "string",
                    "",
                    0,
                    "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
                ),
                (
                    "Timezone",
                    "string",
                    "",
                    0,
                    "The time zone name for the given schedule.",
                ),
                (
                    "Suspend",
                    "boolean",
                    "",
                    0,
                    "This flag tells the controller to suspend subsequent executions.",
                ),
                (
                    "Active",
                    "integer",
                    "",
                    0,
                    "A list of pointers to currently running jobs.",
                ),
                (
                    "Last Schedule",
                    "string",
                    "",
                    0,
                    "Information when was the last time the job was successfully scheduled.",
                ),
                AGE,
                CONTAINERS,
                IMAGES,
                (
                    "Selector",
                    "string",
                    "",
                    1,
                    "A label query over pods that should match the pod count.",
                ),
            ],
            cron_job_row,
        ),
        ("", "ServiceAccount") => (
            vec![
                NAME,
                (
                    "Secrets",
                    "integer",
                    "",
                    0,
                    "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
                ),
                AGE,
            ],
            service_account_row,
        ),
        ("", "PersistentVolumeClaim") => (
            vec![
                NAME,
                (
                    "Status",
                    "string",
                    "",
                    0,
                    "Phase represents the current phase of PersistentVolumeClaim.",
                ),
                (
                    "Volume",
                    "string",
                    "",
                    0,
                    "VolumeName is the binding reference to the PersistentVolume backing this claim.",
                ),
                (
                    "Capacity",
                    "string",
                    "",
                    0,
                    "Capacity represents the actual resources of the underlying volume.",
                ),
                (
                    "Access Modes",
                    "string",
                    "",
                    0,
                    "AccessModes contains the desired access modes the volume should have.",
                ),
                (
                    "StorageClass",
                    "string",
                    "",
                    0,
                    "StorageClassName is the name of the StorageClass required by the claim.",
                ),
                (
                    "VolumeAttributesClass",
                    "string",
                    "",
                    0,
                    "volumeAttributesClassName may be used to set the VolumeAttributesClass used by this claim.",
                ),
                AGE,
                (
                    "VolumeMode",
                    "string",
                    "",
                    1,
                    "volumeMode defines what type of volume is required by the claim.",
                ),
            ],
            pvc_row,
        ),
        ("coordination.k8s.io", "Lease") => (
            vec![
                NAME,
                (
                    "Holder",
                    "string",
                    "",
                    0,
                    "HolderIdentity contains the identity of the holder of a current lease.",
                ),
                AGE,
            ],
            lease_row,
        ),
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => (
            vec![NAME, ("Created At", "date", "", 0, AGE_DESC)],
            role_row,
        ),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => (
            vec![
                NAME,
                (
                    "Role",
                    "string",
                    "",
                    0,
                    "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace.",
                ),
                AGE,
                ("Users", "string", "", 1, "Users in the binding"),
                ("Groups", "string", "", 1, "Groups in the binding"),
                (
                    "ServiceAccounts",
                    "string",
                    "",
                    1,
                    "ServiceAccounts in the binding",
                ),
            ],
            role_binding_row,
        ),
        ("networking.k8s.io", "Ingress") => (
            vec![
                NAME,
                (
                    "Class",
                    "string",
                    "",
                    0,
                    "The name of the IngressClass resource.",
                ),
                (
                    "Hosts",
                    "string",
                    "",
                    0,
                    "Hosts that incoming requests are matched against before the ingress rule",
                ),
                (
                    "Address",
                    "string",
                    "",
                    0,
                    "Address is a list containing ingress points for the load-balancer",
                ),
                (
                    "Ports",
                    "string",
                    "",
                    0,
                    "Ports of TLS configurations that open",
                ),
                AGE,
            ],
            ingress_row,
        ),
        ("networking.k8s.io", "NetworkPolicy") => (
            vec![
                NAME,
                (
                    "Pod-Selector",
                    "string",
                    "",
                    0,
                    "Selects the pods to which this NetworkPolicy object applies.",
                ),
                AGE,
            ],
            network_policy_row,
        ),
        ("policy", "PodDisruptionBudget") => (
            vec![
                NAME,
                (
                    "Min Available",
                    "string",
                    "",
                    0,
                    "The minimum number of pods that must be available simultaneously.",
                ),
                (
                    "Max Unavailable",
                    "string",
                    "",
                    0,
                    "The maximum number of pods that may be unavailable simultaneously.",
                ),
                (
                    "Allowed Disruptions",
                    "integer",
                    "",
                    0,
                    "Calculated number of pod disruptions that are currently allowed.",
                ),
                AGE,
            ],
            pdb_row,
        ),
        ("autoscaling", "HorizontalPodAutoscaler") => (
            vec![
                NAME,
                (
                    "Reference",
                    "string",
                    "",
                    0,
                    "reference to scaled resource; horizontal pod autoscaler will learn the current resource consumption and will set the desired number of pods by using its Scale subresource.",
                ),
                (
                    "Targets",
                    "string",
                    "",
                    0,
                    "metrics contains the specifications for which to use to calculate the desired replica count.",
                ),
                (
                    "MinPods",
                    "string",
                    "",
                    0,
                    "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.",
                ),
                (
                    "MaxPods",
                    "integer",
                    "",
                    0,
                    "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up.",
                ),
                (
                    "Replicas",
                    "integer",
                    "",
                    0,
                    "currentReplicas is current number of replicas of pods managed by this autoscaler.",
                ),
                AGE,
            ],
            hpa_row,
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

fn strs<'a>(item: &'a Value, path: &[&str]) -> Vec<&'a str> {
    at(item, path)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn or_none(s: String) -> Value {
    if s.is_empty() {
        json!("<none>")
    } else {
        json!(s)
    }
}

/// `k=v,k2=v2` of a string map (sorted), `<none>` when empty.
fn map_selector(m: Option<&Value>) -> Value {
    let mut pairs: Vec<String> = m
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    pairs.sort();
    or_none(pairs.join(","))
}

/// Containers/images/selector of a template at `spec_path` (`spec` or `spec.jobTemplate.spec`).
fn template_cells(item: &Value, spec_path: &[&str]) -> (Value, Value, Value) {
    let Some(spec) = at(item, spec_path) else {
        return (json!(""), json!(""), json!("<none>"));
    };
    let wrapped = json!({"spec": spec});
    let (c, i) = containers_images(&wrapped);
    (c, i, selector_cell(&wrapped))
}

fn daemon_set_row(item: &Value, now: Timestamp) -> Vec<Value> {
    let (containers, images) = containers_images(item);
    vec![
        name(item),
        json!(int(item, &["status", "desiredNumberScheduled"])),
        json!(int(item, &["status", "currentNumberScheduled"])),
        json!(int(item, &["status", "numberReady"])),
        json!(int(item, &["status", "updatedNumberScheduled"])),
        json!(int(item, &["status", "numberAvailable"])),
        map_selector(at(item, &["spec", "template", "spec", "nodeSelector"])),
        age(item, now),
        containers,
        images,
        selector_cell(item),
    ]
}

fn condition_true(item: &Value, ty: &str) -> bool {
    at(item, &["status", "conditions"])
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == ty && c["status"] == "True"))
}

fn job_row(item: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = int(item, &["status", "succeeded"]);
    let completions = match (
        i64_at(item, &["spec", "completions"]),
        i64_at(item, &["spec", "parallelism"]),
    ) {
        (Some(c), _) => format!("{succeeded}/{c}"),
        (None, Some(p)) if p > 1 => format!("{succeeded}/1 of {p}"),
        _ => format!("{succeeded}/1"),
    };
    let ts = |k: &str| str_at(item, &["status", k]).and_then(|t| t.parse::<Timestamp>().ok());
    let duration = match (ts("startTime"), ts("completionTime")) {
        (None, _) => String::new(),
        (Some(s), None) => human_duration(now.as_second() - s.as_second()),
        (Some(s), Some(c)) => human_duration(c.as_second() - s.as_second()),
    };
    let status = if condition_true(item, "Complete") {
        "Complete"
    } else if condition_true(item, "Failed") {
        "Failed"
    } else if at(item, &["metadata", "deletionTimestamp"]).is_some_and(|v| !v.is_null()) {
        "Terminating"
    } else if condition_true(item, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else if condition_true(item, "FailureTarget") {
        "FailureTarget"
    } else if condition_true(item, "Suspended") {
        "Suspended"
    } else {
        "Running"
    };
    let (containers, images) = containers_images(item);
    vec![
        name(item),
        json!(status),
        json!(completions),
        json!(duration),
        age(item, now),
        containers,
        images,
        selector_cell(item),
    ]
}

fn cron_job_row(item: &Value, now: Timestamp) -> Vec<Value> {
    let (containers, images, selector) = template_cells(item, &["spec", "jobTemplate", "spec"]);
    let last = match str_at(item, &["status", "lastScheduleTime"]) {
        Some(t) => age_of(Some(t), now),
        None => "<none>".into(),
    };
    vec![
        name(item),
        json!(str_at(item, &["spec", "schedule"]).unwrap_or("")),
        json!(str_at(item, &["spec", "timeZone"]).unwrap_or("<none>")),
        json!(
            at(item, &["spec", "suspend"])
                .and_then(Value::as_bool)
                .unwrap_or(false)
        ),
        json!(
            at(item, &["status", "active"])
                .and_then(Value::as_array)
                .map_or(0, Vec::len)
        ),
        json!(last),
        age(item, now),
        containers,
        images,
        selector,
    ]
}

fn service_account_row(item: &Value, now: Timestamp) -> Vec<Value> {
    let secrets = item
        .get("secrets")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    vec![name(item), json!(secrets), age(item, now)]
}

fn pvc_row(item: &Value, now: Timestamp) -> Vec<Value> {
    let phase = str_at(item, &["status", "phase"]).unwrap_or("");
    let status = if at(item, &["metadata", "deletionTimestamp"]).is_some_and(|v| !v.is_null()) {
        "Terminating"
    } else {
        phase
    };
    let bound = !str_at(item, &["spec", "volumeName"])
        .unwrap_or("")
        .is_empty();
    let capacity = if bound {
        str_at(item, &["status", "capacity", "storage"]).unwrap_or("")
    } else {
        ""
    };
    let modes: Vec<&str> = if bound {
        strs(item, &["status", "accessModes"])
            .into_iter()
            .map(|m| match m {
                "ReadWriteOnce" => "RWO",
                "ReadOnlyMany" => "ROX",
                "ReadWriteMany" => "RWX",
                "ReadWriteOncePod" => "RWOP",
                other => other,
            })
            .collect()
    } else {
        Vec::new()
    };
    let class = str_at(item, &["spec", "storageClassName"])
        .or_else(|| {
            str_at(
                item,
                &[
                    "metadata",
                    "annotations",
                    "volume.beta.kubernetes.io/storage-class",
                ],
            )
        })
        .unwrap_or("");
    vec![
        name(item),
        json!(status),
        json!(str_at(item, &["spec", "volumeName"]).unwrap_or("")),
        json!(capacity),
        json!(modes.join(",")),
        json!(class),
        json!(str_at(item, &["spec", "volumeAttributesClassName"]).unwrap_or("<unset>")),
        age(item, now),
        json!(str_at(item, &["spec", "volumeMode"]).unwrap_or("<unset>")),
    ]
}

fn lease_row(item: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(item),
        json!(str_at(item, &["spec", "holderIdentity"]).unwrap_or("")),
        age(item, now),
    ]
}

fn role_row(item: &Value, _now: Timestamp) -> Vec<Value> {
    let created = str_at(item, &["metadata", "creationTimestamp"])
        .and_then(|t| t.parse::<Timestamp>().ok())
        .map_or(String::new(), |t| {
            t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
        });
    vec![name(item), json!(created)]
}

fn role_binding_row(item: &Value, now: Timestamp) -> Vec<Value> {
    let role = format!(
        "{}/{}",
        str_at(item, &["roleRef", "kind"]).unwrap_or(""),
        str_at(item, &["roleRef", "name"]).unwrap_or("")
    );
    let subjects = item
        .get("subjects")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let of_kind = |kind: &str| -> String {
        subjects
            .iter()
            .filter(|s| s.get("kind").and_then(Value::as_str) == Some(kind))
            .map(|s| {
                let n = s.get("name").and_then(Value::as_str).unwrap_or("");
                match s.get("namespace").and_then(Value::as_str) {
                    Some(ns) if kind == "ServiceAccount" => format!("{ns}/{n}"),
                    _ => n.to_string(),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        name(item),
        json!(role),
        age(item, now),
        json!(of_kind("User")),
        json!(of_kind("Group")),
        json!(of_kind("ServiceAccount")),
    ]
}

fn ingress_row(item: &Value, now: Timestamp) -> Vec<Value> {
    let class = str_at(item, &["spec", "ingressClassName"])
        .or_else(|| {
            str_at(
                item,
                &["metadata", "annotations", "kubernetes.io/ingress.class"],
            )
        })
        .unwrap_or("<none>");
    let hosts: Vec<String> = at(item, &["spec", "rules"])
        .and_then(Value::as_array)
        .map(|rs| {
            rs.iter()
                .filter_map(|r| r.get("host").and_then(Value::as_str))
                .filter(|h| !h.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let hosts = if hosts.is_empty() {
        "*".to_string()
    } else {
        first_three(&hosts)
    };
    let addresses: Vec<String> = at(item, &["status", "loadBalancer", "ingress"])
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
    let has_tls = at(item, &["spec", "tls"])
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    vec![
        name(item),
        json!(class),
        json!(hosts),
        json!(addresses.join(",")),
        json!(if has_tls { "80, 443" } else { "80" }),
        age(item, now),
    ]
}

fn network_policy_row(item: &Value, now: Timestamp) -> Vec<Value> {
    let sel = at(item, &["spec", "podSelector"])
        .and_then(selector_string)
        .unwrap_or_default();
    vec![name(item), or_none(sel), age(item, now)]
}

fn int_or_string_cell(v: Option<&Value>) -> Value {
    match v {
        Some(Value::Number(n)) => json!(n.to_string()),
        Some(Value::String(s)) => json!(s),
        _ => json!("N/A"),
    }
}

fn pdb_row(item: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(item),
        int_or_string_cell(at(item, &["spec", "minAvailable"])),
        int_or_string_cell(at(item, &["spec", "maxUnavailable"])),
        json!(int(item, &["status", "disruptionsAllowed"])),
        age(item, now),
    ]
}

fn hpa_row(item: &Value, now: Timestamp) -> Vec<Value> {
    let reference = format!(
        "{}/{}",
        str_at(item, &["spec", "scaleTargetRef", "kind"]).unwrap_or(""),
        str_at(item, &["spec", "scaleTargetRef", "name"]).unwrap_or("")
    );
    let metrics = at(item, &["spec", "metrics"])
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let targets: Vec<String> = metrics
        .iter()
        .map(|m| {
            let res = m.get("resource").or_else(|| m.get("containerResource"));
            let name = res
                .and_then(|r| r.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let target = res.and_then(|r| r.get("target"));
            let goal = match target
                .and_then(|t| t.get("averageUtilization"))
                .and_then(Value::as_i64)
            {
                Some(u) => format!("{u}%"),
                None => target
                    .and_then(|t| t.get("averageValue").or_else(|| t.get("value")))
                    .and_then(Value::as_str)
                    .unwrap_or("<unknown>")
                    .to_string(),
            };
            if name.is_empty() {
                format!("<unknown>/{goal}")
            } else {
                format!("{name}: <unknown>/{goal}")
            }
        })
        .collect();
    let targets = if targets.is_empty() {
        "<none>".to_string()
    } else {
        targets.join(", ")
    };
    let min =
        i64_at(item, &["spec", "minReplicas"]).map_or("<unset>".to_string(), |m| m.to_string());
    vec![
        name(item),
        json!(reference),
        json!(targets),
        json!(min),
        json!(int(item, &["spec", "maxReplicas"])),
        json!(int(item, &["status", "currentReplicas"])),
        age(item, now),
    ]
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
    match at(item, &["spec", "selector"]).filter(|v| !v.is_null()) {
        None => json!("<none>"),
        Some(sel) => match selector_string(sel) {
            Some(s) if !s.is_empty() => json!(s),
            Some(_) => json!("<none>"),
            None => json!("<invalid>"),
        },
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
        json!(count),
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
                json!(2),
                json!("web.1")
            ]
        );
        let ev1 = json!({"metadata": {"name": "e"}, "type": "Warning", "reason": "R", "regarding": {"kind": "Pod", "name": "p"},
            "note": "n", "eventTime": "2026-11-21T11:59:30.000000Z", "reportingController": "kubelet"});
        assert_eq!(
            cells("events.k8s.io/v1", "Event", ev1)[..4],
            [json!("30s"), json!("Warning"), json!("R"), json!("pod/p")]
        );

        // Kinds without a printer get Name/Age.
        let any = json!({"metadata": {"name": "l", "creationTimestamp": "2026-11-21T11:00:00Z"}});
        assert_eq!(generic_row(&any, now()), vec![json!("l"), json!("60m")]);
        let unknown = Resource {
            kind: "Widget",
            ..*by_kind("v1", "ConfigMap").unwrap()
        };
        let t = table(&unknown, &[any], "1", now());
        assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 2);
        assert_eq!(t["rows"][0]["cells"], json!(["l", "60m"]));
    }

    #[test]
    fn more_workload_rows() {
        let ds = json!({"metadata": {"name": "ds"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"spec": {"nodeSelector": {"os": "linux"}, "containers": [{"name": "c", "image": "i"}]}}},
            "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                "updatedNumberScheduled": 3, "numberAvailable": 2}});
        assert_eq!(
            cells("apps/v1", "DaemonSet", ds),
            vec![
                json!("ds"),
                json!(3),
                json!(3),
                json!(2),
                json!(3),
                json!(2),
                json!("os=linux"),
                json!("<unknown>"),
                json!("c"),
                json!("i"),
                json!("a=b")
            ]
        );
        let job = json!({"metadata": {"name": "j"}, "spec": {"completions": 2, "template": {"spec": {"containers": []}}},
            "status": {"succeeded": 2, "startTime": "2026-11-21T11:00:00Z", "completionTime": "2026-11-21T11:00:30Z",
                "conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(
            cells("batch/v1", "Job", job)[1..4],
            [json!("Complete"), json!("2/2"), json!("30s")]
        );
        let running = json!({"metadata": {"name": "j"}, "spec": {"parallelism": 3}, "status": {"startTime": "2026-11-21T11:59:00Z"}});
        assert_eq!(
            cells("batch/v1", "Job", running)[1..4],
            [json!("Running"), json!("0/1 of 3"), json!("60s")]
        );
        let cj = json!({"metadata": {"name": "cj"}, "spec": {"schedule": "*/5 * * * *", "suspend": false,
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}},
            "status": {"lastScheduleTime": "2026-11-21T11:55:00Z", "active": [{"name": "x"}]}});
        assert_eq!(
            cells("batch/v1", "CronJob", cj),
            vec![
                json!("cj"),
                json!("*/5 * * * *"),
                json!("<none>"),
                json!(false),
                json!(1),
                json!("5m"),
                json!("<unknown>"),
                json!("c"),
                json!("busybox"),
                json!("<none>")
            ]
        );
    }

    #[test]
    fn more_core_and_group_rows() {
        let sa = json!({"metadata": {"name": "default"}});
        assert_eq!(cells("v1", "ServiceAccount", sa)[1], 0);
        let pvc = json!({"metadata": {"name": "data"}, "spec": {"volumeName": "pv-1", "storageClassName": "standard", "volumeMode": "Filesystem"},
            "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}});
        assert_eq!(
            cells("v1", "PersistentVolumeClaim", pvc),
            vec![
                json!("data"),
                json!("Bound"),
                json!("pv-1"),
                json!("1Gi"),
                json!("RWO"),
                json!("standard"),
                json!("<unset>"),
                json!("<unknown>"),
                json!("Filesystem")
            ]
        );
        let lease = json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "kubesync-0"}});
        assert_eq!(
            cells("coordination.k8s.io/v1", "Lease", lease)[1],
            "kubesync-0"
        );
        let role = json!({"metadata": {"name": "r", "creationTimestamp": "2026-11-21T11:00:00Z"}});
        assert_eq!(
            cells("rbac.authorization.k8s.io/v1", "ClusterRole", role),
            vec![json!("r"), json!("2026-11-21T11:00:00Z")]
        );
        let rb = json!({"metadata": {"name": "rb"}, "roleRef": {"kind": "Role", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}, {"kind": "User", "name": "alice"}]});
        assert_eq!(
            cells("rbac.authorization.k8s.io/v1", "RoleBinding", rb),
            vec![
                json!("rb"),
                json!("Role/r"),
                json!("<unknown>"),
                json!("alice"),
                json!(""),
                json!("ns/sa")
            ]
        );
        let ing = json!({"metadata": {"name": "i"}, "spec": {"ingressClassName": "nginx", "rules": [{"host": "a.example.com"}]}});
        assert_eq!(
            cells("networking.k8s.io/v1", "Ingress", ing)[1..5],
            [
                json!("nginx"),
                json!("a.example.com"),
                json!(""),
                json!("80")
            ]
        );
        let np = json!({"metadata": {"name": "np"}, "spec": {"podSelector": {}}});
        assert_eq!(
            cells("networking.k8s.io/v1", "NetworkPolicy", np)[1],
            "<none>"
        );
        let pdb = json!({"metadata": {"name": "p"}, "spec": {"minAvailable": 1}, "status": {"disruptionsAllowed": 1}});
        assert_eq!(
            cells("policy/v1", "PodDisruptionBudget", pdb)[1..4],
            [json!("1"), json!("N/A"), json!(1)]
        );
        let hpa = json!({"metadata": {"name": "h"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 5,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]},
            "status": {"currentReplicas": 2}});
        assert_eq!(
            cells("autoscaling/v2", "HorizontalPodAutoscaler", hpa)[1..6],
            [
                json!("Deployment/web"),
                json!("cpu: <unknown>/80%"),
                json!("1"),
                json!(5),
                json!(2)
            ]
        );
    }
}
