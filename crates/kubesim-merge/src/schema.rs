//! Per-kind structural schema: how each list is merged (atomic, map-list keyed by some fields, or
//! set) and which maps are atomic, for the kinds kubesim serves.
//!
//! Owns: the tables of §4.3 of the semantics spec (merge keys of containers, ports, env, …).
//! Must not: look at values beyond what a path names — it answers questions about *paths* only,
//! so both apply and strategic merge patch share it.

/// How a list at a path is merged (apply and strategic merge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListType {
    /// Replaced and owned as a whole.
    Atomic,
    /// A map-list: items identified by these key fields (apply uses all of them, strategic merge
    /// patch uses the first as its `patchMergeKey`).
    Map(&'static [&'static str]),
    /// A set of scalars: union on merge, each value owned separately.
    Set,
}

/// `path` = field names from the object root, list items skipped, e.g.
/// `["spec","template","spec","containers"]`.
pub fn list_type(api_version: &str, kind: &str, path: &[&str]) -> ListType {
    Schema::for_kind(api_version, kind).list_type(path)
}

/// Whether the struct/map at `path` is atomic (e.g. LabelSelector `spec.selector`): replaced and
/// owned whole.
pub fn is_atomic_map(api_version: &str, kind: &str, path: &[&str]) -> bool {
    Schema::for_kind(api_version, kind).is_atomic_map(path)
}

/// The value a map-list key field takes when an item omits it (`protocol` defaults to `TCP`).
pub(crate) fn key_default(field: &str) -> Option<&'static str> {
    (field == "protocol").then_some("TCP")
}

const NAME: &[&str] = &["name"];
const CONTAINER_PORT: &[&str] = &["containerPort", "protocol"];
const SERVICE_PORT: &[&str] = &["port", "protocol"];
const MOUNT_PATH: &[&str] = &["mountPath"];
const DEVICE_PATH: &[&str] = &["devicePath"];
const TYPE: &[&str] = &["type"];
const UID: &[&str] = &["uid"];
const IP: &[&str] = &["ip"];
const TOPOLOGY_SPREAD: &[&str] = &["topologyKey", "whenUnsatisfiable"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KindClass {
    /// Has a `spec.selector` LabelSelector and a pod template.
    Workload,
    Pod,
    Service,
    /// Known built-in kind without special lists beyond metadata/conditions.
    Builtin,
    /// Unknown kinds (CRDs, …): lists atomic, maps granular, metadata as everywhere.
    Unknown,
}

/// The resolved schema for one kind; cheap to build, so callers make one per request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schema {
    class: KindClass,
    /// Path from the root to the PodSpec, if the kind embeds one.
    pod_spec: Option<&'static [&'static str]>,
}

impl Schema {
    pub(crate) fn for_kind(api_version: &str, kind: &str) -> Schema {
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        const TEMPLATE: &[&str] = &["spec", "template", "spec"];
        let (class, pod_spec): (KindClass, Option<&'static [&'static str]>) = match (group, kind) {
            ("apps" | "extensions", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
            | ("batch", "Job") => (KindClass::Workload, Some(TEMPLATE)),
            ("", "ReplicationController") => (KindClass::Builtin, Some(TEMPLATE)),
            ("batch", "CronJob") => (
                KindClass::Builtin,
                Some(&["spec", "jobTemplate", "spec", "template", "spec"]),
            ),
            ("", "PodTemplate") => (KindClass::Builtin, Some(&["template", "spec"])),
            ("", "Pod") => (KindClass::Pod, Some(&["spec"])),
            ("", "Service") => (KindClass::Service, None),
            ("", "ConfigMap" | "Secret" | "Namespace" | "Node" | "Endpoints" | "Event")
            | ("discovery.k8s.io", "EndpointSlice")
            | ("coordination.k8s.io", "Lease")
            | ("events.k8s.io", "Event") => (KindClass::Builtin, None),
            _ => (KindClass::Unknown, None),
        };
        Schema { class, pod_spec }
    }

    pub(crate) fn list_type(&self, path: &[&str]) -> ListType {
        let n = path.len();
        if n >= 2 && path[n - 2] == "metadata" {
            match path[n - 1] {
                "ownerReferences" => return ListType::Map(UID),
                "finalizers" => return ListType::Set,
                _ => {}
            }
        }
        if self.class == KindClass::Unknown {
            return ListType::Atomic;
        }
        if path == ["status", "conditions"] {
            return ListType::Map(TYPE);
        }
        if let Some(prefix) = self.pod_spec
            && let Some(rel) = path.strip_prefix(prefix)
        {
            return pod_spec_list(rel);
        }
        if self.class == KindClass::Service && path == ["spec", "ports"] {
            return ListType::Map(SERVICE_PORT);
        }
        ListType::Atomic
    }

    pub(crate) fn is_atomic_map(&self, path: &[&str]) -> bool {
        if self.class == KindClass::Workload && path == ["spec", "selector"] {
            return true;
        }
        if let Some(prefix) = self.pod_spec
            && let Some(rel) = path.strip_prefix(prefix)
        {
            // EnvVarSource selectors are `+structType=atomic`.
            return matches!(
                rel,
                [c, "env", "valueFrom", "configMapKeyRef" | "secretKeyRef" | "fieldRef" | "resourceFieldRef"]
                    if is_container_list(c)
            );
        }
        false
    }
}

fn is_container_list(field: &str) -> bool {
    matches!(
        field,
        "containers" | "initContainers" | "ephemeralContainers"
    )
}

/// List semantics inside a PodSpec (`rel` is the path relative to the PodSpec).
fn pod_spec_list(rel: &[&str]) -> ListType {
    match rel {
        [c] if is_container_list(c) => ListType::Map(NAME),
        ["volumes" | "imagePullSecrets" | "resourceClaims" | "schedulingGates"] => {
            ListType::Map(NAME)
        }
        ["hostAliases"] => ListType::Map(IP),
        ["topologySpreadConstraints"] => ListType::Map(TOPOLOGY_SPREAD),
        [c, field] if is_container_list(c) => match *field {
            "env" => ListType::Map(NAME),
            "ports" => ListType::Map(CONTAINER_PORT),
            "volumeMounts" => ListType::Map(MOUNT_PATH),
            "volumeDevices" => ListType::Map(DEVICE_PATH),
            _ => ListType::Atomic,
        },
        [c, "resources", "claims"] if is_container_list(c) => ListType::Map(NAME),
        _ => ListType::Atomic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_types_table() {
        let cases: &[(&str, &str, &[&str], ListType)] = &[
            (
                "apps/v1",
                "Deployment",
                &["spec", "template", "spec", "containers"],
                ListType::Map(NAME),
            ),
            (
                "apps/v1",
                "Deployment",
                &["spec", "template", "spec", "initContainers"],
                ListType::Map(NAME),
            ),
            (
                "apps/v1",
                "ReplicaSet",
                &["spec", "template", "spec", "volumes"],
                ListType::Map(NAME),
            ),
            (
                "apps/v1",
                "Deployment",
                &["spec", "template", "spec", "imagePullSecrets"],
                ListType::Map(NAME),
            ),
            (
                "apps/v1",
                "Deployment",
                &["spec", "template", "spec", "containers", "env"],
                ListType::Map(NAME),
            ),
            (
                "apps/v1",
                "Deployment",
                &["spec", "template", "spec", "containers", "ports"],
                ListType::Map(CONTAINER_PORT),
            ),
            (
                "apps/v1",
                "Deployment",
                &["spec", "template", "spec", "containers", "volumeMounts"],
                ListType::Map(MOUNT_PATH),
            ),
            (
                "apps/v1",
                "Deployment",
                &["spec", "template", "spec", "containers", "command"],
                ListType::Atomic,
            ),
            (
                "apps/v1",
                "Deployment",
                &["spec", "template", "spec", "containers", "args"],
                ListType::Atomic,
            ),
            (
                "apps/v1",
                "Deployment",
                &["spec", "template", "spec", "tolerations"],
                ListType::Atomic,
            ),
            (
                "apps/v1",
                "Deployment",
                &["status", "conditions"],
                ListType::Map(TYPE),
            ),
            (
                "apps/v1",
                "Deployment",
                &["metadata", "ownerReferences"],
                ListType::Map(UID),
            ),
            (
                "apps/v1",
                "Deployment",
                &["metadata", "finalizers"],
                ListType::Set,
            ),
            (
                "apps/v1",
                "Deployment",
                &["spec", "template", "metadata", "finalizers"],
                ListType::Set,
            ),
            ("v1", "Pod", &["spec", "containers"], ListType::Map(NAME)),
            (
                "v1",
                "Pod",
                &["spec", "ephemeralContainers"],
                ListType::Map(NAME),
            ),
            (
                "v1",
                "Pod",
                &["spec", "containers", "ports"],
                ListType::Map(CONTAINER_PORT),
            ),
            ("v1", "Pod", &["status", "conditions"], ListType::Map(TYPE)),
            (
                "v1",
                "Service",
                &["spec", "ports"],
                ListType::Map(SERVICE_PORT),
            ),
            ("v1", "Service", &["spec", "clusterIPs"], ListType::Atomic),
            (
                "discovery.k8s.io/v1",
                "EndpointSlice",
                &["endpoints"],
                ListType::Atomic,
            ),
            (
                "discovery.k8s.io/v1",
                "EndpointSlice",
                &["metadata", "ownerReferences"],
                ListType::Map(UID),
            ),
            (
                "example.com/v1",
                "Widget",
                &["spec", "containers"],
                ListType::Atomic,
            ),
            (
                "example.com/v1",
                "Widget",
                &["status", "conditions"],
                ListType::Atomic,
            ),
            (
                "example.com/v1",
                "Widget",
                &["metadata", "finalizers"],
                ListType::Set,
            ),
            (
                "batch/v1",
                "CronJob",
                &[
                    "spec",
                    "jobTemplate",
                    "spec",
                    "template",
                    "spec",
                    "containers",
                ],
                ListType::Map(NAME),
            ),
        ];
        for (av, kind, path, want) in cases {
            assert_eq!(list_type(av, kind, path), *want, "{av} {kind} {path:?}");
        }
    }

    #[test]
    fn atomic_maps_table() {
        let cases: &[(&str, &str, &[&str], bool)] = &[
            ("apps/v1", "Deployment", &["spec", "selector"], true),
            ("apps/v1", "ReplicaSet", &["spec", "selector"], true),
            (
                "apps/v1",
                "Deployment",
                &["spec", "template", "metadata", "labels"],
                false,
            ),
            ("v1", "Service", &["spec", "selector"], false),
            ("v1", "ConfigMap", &["data"], false),
            (
                "v1",
                "Pod",
                &["spec", "containers", "env", "valueFrom", "secretKeyRef"],
                true,
            ),
            ("example.com/v1", "Widget", &["spec", "selector"], false),
        ];
        for (av, kind, path, want) in cases {
            assert_eq!(is_atomic_map(av, kind, path), *want, "{av} {kind} {path:?}");
        }
    }
}
