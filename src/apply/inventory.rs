//! The inventory: the last synced commit of a source and the ids of the objects it manages,
//! recorded in the cluster as a ConfigMap `kubesync-inventory-<source>` (see
//! `docs/inventory.md`). It lets prune find managed objects of kinds the current commit no
//! longer contains, and lets anyone ask the cluster what is deployed.
//!
//! Pure: builds and parses the ConfigMap body; the sync writes it.
use super::baseline::Baseline;
use crate::manifest::ObjectId;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Label on the inventory ConfigMap. It deliberately does NOT carry `kubesync.io/source`, so
/// that the inventory is never a prune candidate of its own source.
pub const INVENTORY_LABEL: &str = "kubesync.io/inventory";

/// What the inventory records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    pub source: String,
    pub repo: String,
    pub path: String,
    /// Full sha of the last synced commit.
    pub commit: String,
    /// RFC 3339 time the record was written.
    pub synced_at: String,
    /// `Synced` or `RolloutFailed` / `RolloutTimeout`.
    pub status: String,
    /// Full sha of a commit whose rollout failed and was rolled back: syncs of that same
    /// commit do not re-apply it (unless forced). Empty when nothing is held.
    pub held: String,
    pub objects: BTreeSet<ObjectId>,
    /// What the desired objects looked like when the sync left them (see [`super::baseline`]):
    /// lets the next sync of the same desired state skip reading the commit.
    pub baseline: Option<Baseline>,
}

/// The ConfigMap's name for a source.
pub fn name(source: &str) -> String {
    format!("kubesync-inventory-{source}")
}

/// One id per line: `<apiVersion> <Kind> <namespace>/<name>`, or `<apiVersion> <Kind> <name>`
/// for cluster-scoped objects.
pub fn format_id(id: &ObjectId) -> String {
    let api_version = if id.group.is_empty() {
        id.version.clone()
    } else {
        format!("{}/{}", id.group, id.version)
    };
    match &id.namespace {
        Some(ns) => format!("{api_version} {} {ns}/{}", id.kind, id.name),
        None => format!("{api_version} {} {}", id.kind, id.name),
    }
}

/// Parses one line written by [`format_id`].
pub fn parse_id(line: &str) -> Option<ObjectId> {
    let mut parts = line.split_whitespace();
    let (api_version, kind, name) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let (namespace, name) = match name.split_once('/') {
        Some((ns, n)) => (Some(ns.to_string()), n.to_string()),
        None => (None, name.to_string()),
    };
    Some(ObjectId {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        namespace,
        name,
    })
}

impl Inventory {
    /// The ConfigMap to apply (server-side apply by `kubesync`).
    pub fn to_configmap(&self, namespace: &str) -> Value {
        let objects: Vec<String> = self.objects.iter().map(format_id).collect();
        let mut cm = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name(&self.source),
                "namespace": namespace,
                "labels": {"app.kubernetes.io/managed-by": "kubesync", INVENTORY_LABEL: self.source},
            },
            "data": {
                "source": self.source,
                "repo": self.repo,
                "path": self.path,
                "commit": self.commit,
                "syncedAt": self.synced_at,
                "status": self.status,
                "held": self.held,
                "objects": objects.join("\n"),
            }
        });
        if let Some(text) = self.baseline.as_ref().and_then(Baseline::to_text) {
            cm["data"]["baseline"] = Value::String(text);
        }
        cm
    }

    /// Reads an inventory ConfigMap; `None` if it is not one. Unparseable id lines are skipped.
    pub fn from_configmap(cm: &Value) -> Option<Inventory> {
        let data = cm.get("data")?;
        let field = |k: &str| {
            data.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Some(Inventory {
            source: data.get("source")?.as_str()?.to_string(),
            repo: field("repo"),
            path: field("path"),
            commit: field("commit"),
            synced_at: field("syncedAt"),
            status: field("status"),
            held: field("held"),
            objects: field("objects").lines().filter_map(parse_id).collect(),
            baseline: data
                .get("baseline")
                .and_then(Value::as_str)
                .and_then(Baseline::parse),
        })
    }

    /// Same record apart from the time and the baseline: rewriting it would be a write for
    /// nothing (a baseline is never wrong, only possibly out of date: it is rewritten with the
    /// writes of a sync, never on its own).
    pub fn same_as(&self, other: &Inventory) -> bool {
        self.same_header(other) && self.objects == other.objects
    }

    /// [`Inventory::same_as`] apart from the objects.
    pub fn same_header(&self, other: &Inventory) -> bool {
        // Every field but `synced_at`, `baseline` and `objects` (destructured so that a new
        // field is not forgotten).
        let Inventory {
            source,
            repo,
            path,
            commit,
            synced_at: _,
            status,
            held,
            objects: _,
            baseline: _,
        } = self;
        (source, repo, path, commit, status, held)
            == (
                &other.source,
                &other.repo,
                &other.path,
                &other.commit,
                &other.status,
                &other.held,
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for line in [
            "apps/v1 Deployment default/web",
            "v1 Namespace team",
            "v1 ConfigMap a/b",
        ] {
            let id = parse_id(line).unwrap();
            assert_eq!(format_id(&id), line);
        }
        let id = parse_id("v1 ConfigMap a/b").unwrap();
        assert_eq!(id.group, "");
        assert_eq!(id.namespace.as_deref(), Some("a"));
        assert!(parse_id("garbage").is_none());
    }

    #[test]
    fn configmap_round_trip() {
        let inv = Inventory {
            source: "default".into(),
            repo: ".".into(),
            path: "apps".into(),
            commit: "a".repeat(40),
            synced_at: "2026-11-21T23:00:00Z".into(),
            status: "Synced".into(),
            held: String::new(),
            objects: [
                parse_id("apps/v1 Deployment default/web").unwrap(),
                parse_id("v1 Namespace team").unwrap(),
            ]
            .into(),
            baseline: None,
        };
        let cm = inv.to_configmap("default");
        assert_eq!(cm["metadata"]["name"], "kubesync-inventory-default");
        assert!(cm["metadata"]["labels"].get("kubesync.io/source").is_none());
        assert_eq!(
            cm["data"]["objects"],
            "v1 Namespace team\napps/v1 Deployment default/web"
        );
        let back = Inventory::from_configmap(&cm).unwrap();
        assert_eq!(back, inv);
        let later = Inventory {
            synced_at: "2026-11-22T00:00:00Z".into(),
            ..inv.clone()
        };
        assert!(later.same_as(&inv));
        // The baseline goes along, and on its own is no reason to rewrite the record.
        let with_baseline = Inventory {
            baseline: Some(Baseline {
                key: "k".repeat(32),
                objects: [(parse_id("v1 Namespace team").unwrap(), "f".repeat(32))].into(),
                configs: Default::default(),
            }),
            ..inv.clone()
        };
        let cm = with_baseline.to_configmap("default");
        assert!(cm["data"]["baseline"].as_str().unwrap().starts_with("key "));
        assert_eq!(Inventory::from_configmap(&cm), Some(with_baseline.clone()));
        assert!(with_baseline.same_as(&inv));
        let mut cm = cm;
        cm["data"]["baseline"] = json!("not a baseline");
        assert_eq!(Inventory::from_configmap(&cm).unwrap().baseline, None);
    }
}
