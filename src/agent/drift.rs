//! Drift: watch the objects each source manages (by ownership label, with `kube` runtime
//! watchers — one list+watch per kind, no per-object polling) and, when someone other than
//! kubesync or a built-in controller changes or deletes one, make that source re-apply its
//! commit (rate limited). After the re-sync an Event on the object says what was corrected.
//!
//! Never writes objects itself: re-applying is the worker's sync. Judging whether a change is
//! drift ([`drift_manager`]) is pure.
use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::{WatchStreamExt, watcher};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::watch;
use tokio::time::Instant;

use super::Shared;
use super::config::parse_gvk;
use super::election::Role;

/// The field manager kubesync applies with (design contract).
pub const FIELD_MANAGER: &str = "kubesync";

/// A managed object someone else changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Drifted {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// Field manager of the change (`kubectl-edit`, …), or `deleted`.
    pub manager: String,
    pub reference: ObjectReference,
}

/// Publishes Events as `kubesync` (reporting instance: this replica).
#[derive(Clone)]
pub struct Publisher(Recorder);

pub fn recorder(client: kube::Client, identity: &str) -> Publisher {
    Publisher(Recorder::new(
        client,
        Reporter {
            controller: "kubesync".to_owned(),
            instance: Some(identity.to_owned()),
        },
    ))
}

/// Say on the object that its drift was corrected. Failure only logs: Events are advisory.
pub async fn publish_corrected(p: &Publisher, d: &Drifted, source: &str, short_commit: &str) {
    let note = if d.manager == "deleted" {
        format!(
            "{} {} was deleted outside git; kubesync re-created it from source {source} at {short_commit}",
            d.kind, d.name
        )
    } else {
        format!(
            "{} {} was changed outside git by {}; kubesync re-applied it from source {source} at {short_commit}",
            d.kind, d.name, d.manager
        )
    };
    let event = Event {
        type_: EventType::Normal,
        reason: "DriftCorrected".to_owned(),
        note: Some(note),
        action: "Sync".to_owned(),
        secondary: None,
    };
    if let Err(e) = p.0.publish(&event, &d.reference).await {
        tracing::warn!(error = %e, kind = %d.kind, object = %d.name, "cannot publish drift Event");
    }
}

/// Managers whose writes are part of normal operation, not drift.
fn is_system_manager(manager: &str) -> bool {
    manager == FIELD_MANAGER
        || manager.starts_with("kube-controller-manager")
        || manager.starts_with("kube-scheduler")
        || manager.starts_with("kubelet")
        || manager.starts_with("kubesim")
}

/// Who made the object's most recent non-status write, if that was neither kubesync nor a
/// built-in controller. `None` also when it cannot be told (no managedFields).
///
/// managedFields times have one-second resolution: when someone else wrote in the same
/// second as kubesync, it counts as drift. The worst case is one extra (idempotent,
/// rate-limited) re-apply; the opposite choice would miss an edit made right after a sync.
pub fn drift_manager(fields: &[ManagedFieldsEntry]) -> Option<String> {
    let writes: Vec<&ManagedFieldsEntry> = fields
        .iter()
        .filter(|f| f.subresource.as_deref().unwrap_or("").is_empty())
        .collect();
    let latest = writes.iter().filter_map(|f| f.time.as_ref()).max()?;
    let at_latest: Vec<&&ManagedFieldsEntry> = writes
        .iter()
        .filter(|f| f.time.as_ref() == Some(latest))
        .collect();
    at_latest
        .iter()
        .filter_map(|f| f.manager.as_deref())
        .find(|m| !is_system_manager(m))
        .map(str::to_owned)
}

fn reference(ar: &ApiResource, obj: &DynamicObject) -> ObjectReference {
    ObjectReference {
        api_version: Some(ar.api_version.clone()),
        kind: Some(ar.kind.clone()),
        name: obj.metadata.name.clone(),
        namespace: obj.metadata.namespace.clone(),
        uid: obj.metadata.uid.clone(),
        resource_version: obj.metadata.resource_version.clone(),
        ..ObjectReference::default()
    }
}

/// Watch every source's managed objects of the configured kinds until `stop`.
pub async fn run(client: kube::Client, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut streams = Vec::new();
    for source in &shared.config.sources {
        let selector = format!(
            "app.kubernetes.io/managed-by=kubesync,kubesync.io/source={}",
            source.name
        );
        // With namespaced RBAC a cluster-wide watch is forbidden: watch each namespace.
        let namespaces: Vec<Option<String>> = if !shared.config.drift.namespaces.is_empty() {
            shared
                .config
                .drift
                .namespaces
                .iter()
                .cloned()
                .map(Some)
                .collect()
        } else if !source.allowed_namespaces.is_empty() {
            source
                .allowed_namespaces
                .iter()
                .cloned()
                .map(Some)
                .collect()
        } else {
            vec![None]
        };
        for kind in &shared.config.drift.kinds {
            let Some((g, v, k)) = parse_gvk(kind) else {
                continue;
            };
            let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(&g, &v, &k));
            for ns in &namespaces {
                let api: kube::Api<DynamicObject> = match ns {
                    Some(ns) => kube::Api::namespaced_with(client.clone(), ns, &ar),
                    None => kube::Api::all_with(client.clone(), &ar),
                };
                let name = source.name.clone();
                // The key of this watch: kind, and namespace when watching one.
                let key = match ns {
                    Some(ns) => format!("{kind} in {ns}"),
                    None => kind.clone(),
                };
                let ar = ar.clone();
                let stream = watcher(api, watcher::Config::default().labels(&selector))
                    .default_backoff()
                    .map(move |ev| (name.clone(), key.clone(), ar.clone(), ev));
                streams.push(stream.boxed());
            }
        }
    }
    if streams.is_empty() {
        return;
    }
    let mut merged = futures::stream::select_all(streams);
    // (source, kind) whose initial list is done: only later events can be drift.
    let mut listed: HashSet<(String, String)> = HashSet::new();
    let mut warned: HashSet<(String, String)> = HashSet::new();
    // Sources with a correction waiting for its rate limit, and when each may run next.
    let mut pending: HashMap<String, Instant> = HashMap::new();
    let mut allowed_at: HashMap<String, Instant> = HashMap::new();
    let min_interval = shared.config.drift.min_interval;

    loop {
        let next_pending = pending.values().min().copied();
        let wake = async {
            match next_pending {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            item = merged.next() => {
                let Some((source, kind, ar, event)) = item else { break };
                let key = (source.clone(), kind.clone());
                let drifted = match event {
                    Ok(watcher::Event::Init) => { listed.remove(&key); None }
                    Ok(watcher::Event::InitApply(_)) => None,
                    Ok(watcher::Event::InitDone) => { listed.insert(key.clone()); warned.remove(&key); None }
                    Ok(watcher::Event::Apply(obj)) if listed.contains(&key) => {
                        let fields = obj.metadata.managed_fields.as_deref().unwrap_or(&[]);
                        drift_manager(fields).map(|manager| (obj, manager))
                    }
                    Ok(watcher::Event::Delete(obj)) if listed.contains(&key) => Some((obj, "deleted".to_owned())),
                    Ok(_) => None,
                    Err(e) => {
                        if warned.insert(key.clone()) {
                            shared.metrics.error("drift_watch");
                            tracing::warn!(source = %source, kind = %kind, error = %e, "drift watch failing; retrying with backoff");
                        }
                        None
                    }
                };
                let Some((obj, manager)) = drifted else { continue };
                // Our own sync in flight, or not leading: not ours to correct now.
                let syncing = shared.board.get(&source).is_some_and(|s| s.syncing.is_some());
                if syncing || *shared.role.borrow() != Role::Leader {
                    continue;
                }
                let Some(trigger) = shared.trigger(&source) else { continue };
                let d = Drifted {
                    kind: ar.kind.clone(),
                    namespace: obj.metadata.namespace.clone().unwrap_or_default(),
                    name: obj.metadata.name.clone().unwrap_or_default(),
                    manager,
                    reference: reference(&ar, &obj),
                };
                tracing::info!(source = %source, kind = %d.kind, namespace = %d.namespace, object = %d.name, changed_by = %d.manager, "drift detected");
                trigger.add_drifted(d);
                let now = Instant::now();
                let at = allowed_at.get(&source).copied().unwrap_or(now).max(now);
                pending.entry(source).or_insert(at);
            }
            _ = wake => {
                let now = Instant::now();
                let due: Vec<String> = pending.iter().filter(|(_, at)| **at <= now).map(|(s, _)| s.clone()).collect();
                for source in due {
                    pending.remove(&source);
                    allowed_at.insert(source.clone(), now + min_interval);
                    if let Some(trigger) = shared.trigger(&source) {
                        trigger.force();
                    }
                }
            }
            _ = stop.wait_for(|s| *s) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn entry(manager: &str, secs: i64, subresource: Option<&str>) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Update".into()),
            subresource: subresource.map(str::to_owned),
            time: Some(Time(
                k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 + secs).unwrap(),
            )),
            ..ManagedFieldsEntry::default()
        }
    }

    #[test]
    fn an_edit_in_the_same_second_as_our_apply_is_drift() {
        let f = [entry("kubesync", 5, None), entry("kubectl", 5, None)];
        assert_eq!(drift_manager(&f).as_deref(), Some("kubectl"));
    }

    #[test]
    fn a_later_edit_by_someone_else_is_drift() {
        let f = [entry("kubesync", 0, None), entry("kubectl-edit", 5, None)];
        assert_eq!(drift_manager(&f).as_deref(), Some("kubectl-edit"));
    }

    #[test]
    fn our_own_write_and_controllers_are_not_drift() {
        assert_eq!(
            drift_manager(&[entry("kubectl-edit", 0, None), entry("kubesync", 5, None)]),
            None
        );
        assert_eq!(
            drift_manager(&[
                entry("kubesync", 0, None),
                entry("kube-controller-manager", 5, None)
            ]),
            None
        );
        // Status writes never count.
        assert_eq!(
            drift_manager(&[
                entry("kubesync", 0, None),
                entry("kubectl", 9, Some("status"))
            ]),
            None
        );
        assert_eq!(drift_manager(&[]), None);
        assert_eq!(drift_manager(&[]), None);
    }
}
