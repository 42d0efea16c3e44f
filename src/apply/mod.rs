//! Writes to the cluster: resolving kinds through discovery, listing the managed live objects,
//! deciding per object create/update/unchanged, server-side apply in stages, prune, and the
//! inventory.
//!
//! Owns every request a sync or diff makes except the rollout watch (`rollout`). Pure parts
//! live in submodules (`order`, `noop`, `prune`, `inventory`, `retry`). Must not: write an
//! object whose content is unchanged, write anything before the whole commit is validated,
//! or touch an object without this source's ownership labels when pruning.
pub mod baseline;
pub mod inventory;
pub mod listed;
pub mod noop;
pub mod order;
pub mod prune;
pub mod retry;

use crate::manifest::{Object, ObjectId};
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::{ApiResource, Discovery, Scope};
use kube::{Client, Resource};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use tokio::time::Instant;

pub use order::Stage;

/// The field manager of every kubesync write.
pub const FIELD_MANAGER: &str = "kubesync";
/// Ownership label: who manages the object.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Ownership label: which source (sync configuration) owns the object.
pub const SOURCE_LABEL: &str = "kubesync.io/source";

/// The label selector that finds every object a source manages.
pub fn selector(source: &str) -> String {
    format!("{MANAGED_BY_LABEL}=kubesync,{SOURCE_LABEL}={source}")
}

/// Errors of a sync or diff against the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("discovery of the server's API resources failed: {}", crate::errors::kube_message(.0))]
    Discovery(kube::Error),
    #[error(
        "{file}: the server does not know kind {kind} of API version {api_version} (object {name}); nothing was written"
    )]
    UnknownKind {
        file: String,
        api_version: String,
        kind: String,
        name: String,
    },
    #[error(
        "namespace {namespace} does not exist and is not in the commit (needed by {object}); nothing was written"
    )]
    MissingNamespace { namespace: String, object: String },
    /// `error` is not a `#[source]`: the message already renders it (once, readably).
    #[error("{what}: {}", crate::errors::kube_message(.error))]
    Api { what: String, error: kube::Error },
    #[error(transparent)]
    Prune(#[from] prune::PruneRefused),
}

impl ApplyError {
    /// A fixed string for metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            ApplyError::Discovery(_) => "discovery",
            ApplyError::UnknownKind { .. } => "unknown_kind",
            ApplyError::MissingNamespace { .. } => "missing_namespace",
            ApplyError::Api { .. } => "api",
            ApplyError::Prune(_) => "prune_refused",
        }
    }
}

fn api_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> ApplyError {
    let what = what.into();
    move |error| ApplyError::Api { what, error }
}

/// What happens (or happened) to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
    Unchanged,
}

/// A kind as the server serves it.
#[derive(Debug, Clone)]
pub struct Kind {
    pub resource: ApiResource,
    pub namespaced: bool,
}

/// The server's kinds, from one discovery per run.
pub struct Kinds {
    /// (group, version, kind) → the served resource.
    by_gvk: BTreeMap<(String, String, String), Kind>,
}

/// What clients send to ask for aggregated discovery (the server answers legacy JSON otherwise).
const AGGREGATED_ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

impl Kinds {
    /// Runs discovery once: aggregated (`/api` and `/apis`, each request retried on its own, so a
    /// flaky API costs one retried GET, not a restarted discovery) when the server supports it,
    /// else the classic per-group walk.
    pub async fn discover(client: &Client, deadline: Instant) -> Result<Kinds, ApplyError> {
        let (core, groups) = tokio::join!(
            aggregated_document(client, "/api", deadline),
            aggregated_document(client, "/apis", deadline)
        );
        if let (Ok(Some(core)), Ok(Some(groups))) = (&core, &groups) {
            let mut by_gvk = BTreeMap::new();
            add_aggregated(&mut by_gvk, core);
            add_aggregated(&mut by_gvk, groups);
            if !by_gvk.is_empty() {
                return Ok(Kinds { by_gvk });
            }
        }
        let discovery = retry::with_retry(deadline, "discovery", || {
            Discovery::new(client.clone()).run()
        })
        .await
        .map_err(ApplyError::Discovery)?;
        let mut by_gvk = BTreeMap::new();
        for group in discovery.groups() {
            for version in group.versions() {
                for (resource, caps) in group.versioned_resources(version) {
                    let key = (
                        resource.group.clone(),
                        resource.version.clone(),
                        resource.kind.clone(),
                    );
                    let namespaced = caps.scope == Scope::Namespaced;
                    by_gvk.insert(
                        key,
                        Kind {
                            resource,
                            namespaced,
                        },
                    );
                }
            }
        }
        Ok(Kinds { by_gvk })
    }

    /// The served kind for `group/version/kind`, if any.
    pub fn get(&self, group: &str, version: &str, kind: &str) -> Option<Kind> {
        self.by_gvk
            .get(&(group.to_string(), version.to_string(), kind.to_string()))
            .cloned()
    }
}

/// One aggregated discovery document (`APIGroupDiscoveryList`), or `None` when the server
/// answers something else (it does not serve aggregated discovery).
async fn aggregated_document(
    client: &Client,
    path: &str,
    deadline: Instant,
) -> Result<Option<Value>, kube::Error> {
    let doc = retry::with_retry(deadline, "discovery", || async move {
        let mut req = kube::core::Request::new(path)
            .list(&ListParams::default())
            .map_err(kube::Error::BuildRequest)?;
        req.headers_mut().insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static(AGGREGATED_ACCEPT),
        );
        client.request::<Value>(req).await
    })
    .await?;
    Ok((doc.get("kind").and_then(Value::as_str) == Some("APIGroupDiscoveryList")).then_some(doc))
}

/// Adds every resource (not subresource) of an aggregated discovery document.
fn add_aggregated(by_gvk: &mut BTreeMap<(String, String, String), Kind>, doc: &Value) {
    let items = doc
        .get("items")
        .and_then(Value::as_array)
        .map(Vec::as_slice);
    for group in items.unwrap_or_default() {
        let name = group
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let versions = group.get("versions").and_then(Value::as_array);
        for version in versions.map(Vec::as_slice).unwrap_or_default() {
            let Some(v) = version.get("version").and_then(Value::as_str) else {
                continue;
            };
            let resources = version.get("resources").and_then(Value::as_array);
            for r in resources.map(Vec::as_slice).unwrap_or_default() {
                let (Some(plural), Some(kind)) = (
                    r.get("resource").and_then(Value::as_str),
                    crate::manifest::at(r, &["responseKind", "kind"]).and_then(Value::as_str),
                ) else {
                    continue;
                };
                let api_version = if name.is_empty() {
                    v.to_string()
                } else {
                    format!("{name}/{v}")
                };
                let resource = ApiResource {
                    group: name.to_string(),
                    version: v.to_string(),
                    api_version,
                    kind: kind.to_string(),
                    plural: plural.to_string(),
                };
                let namespaced = r.get("scope").and_then(Value::as_str) == Some("Namespaced");
                by_gvk.insert(
                    (name.to_string(), v.to_string(), kind.to_string()),
                    Kind {
                        resource,
                        namespaced,
                    },
                );
            }
        }
    }
}

/// A desired object bound to its served kind (namespace fixed up from the kind's scope).
#[derive(Debug, Clone)]
pub struct Target {
    pub object: Object,
    pub kind: Kind,
}

impl Target {
    /// The collection URL of the object's kind (in its namespace when namespaced).
    fn url(&self) -> String {
        let ns = match &self.object.id.namespace {
            Some(ns) if self.kind.namespaced => Some(ns.as_str()),
            _ => None,
        };
        DynamicObject::url_path(&self.kind.resource, ns)
    }
}

/// A short human name: `Deployment default/web`.
pub fn display(id: &ObjectId) -> String {
    match &id.namespace {
        Some(ns) => format!("{} {ns}/{}", id.kind, id.name),
        None => format!("{} {}", id.kind, id.name),
    }
}

fn api_version(id: &ObjectId) -> String {
    if id.group.is_empty() {
        id.version.clone()
    } else {
        format!("{}/{}", id.group, id.version)
    }
}

/// Binds every object to a served kind. Fails (before any write) on the first unknown kind.
/// Namespaced objects without a namespace get `default_namespace`; cluster-scoped objects
/// lose any namespace.
pub fn resolve(
    objects: Vec<Object>,
    kinds: &Kinds,
    default_namespace: &str,
) -> Result<Vec<Target>, ApplyError> {
    objects
        .into_iter()
        .map(|mut object| {
            let id = &object.id;
            let Some(kind) = kinds.get(&id.group, &id.version, &id.kind) else {
                return Err(ApplyError::UnknownKind {
                    file: object.origin.file.clone(),
                    api_version: api_version(id),
                    kind: id.kind.clone(),
                    name: id.name.clone(),
                });
            };
            if kind.namespaced {
                let ns = object
                    .id
                    .namespace
                    .clone()
                    .unwrap_or_else(|| default_namespace.to_string());
                object.id.namespace = Some(ns.clone());
                if let Some(meta) = object
                    .body
                    .get_mut("metadata")
                    .and_then(Value::as_object_mut)
                {
                    meta.insert("namespace".into(), Value::String(ns));
                }
            } else {
                object.id.namespace = None;
                if let Some(meta) = object
                    .body
                    .get_mut("metadata")
                    .and_then(Value::as_object_mut)
                {
                    meta.remove("namespace");
                }
            }
            Ok(Target { object, kind })
        })
        .collect()
}

/// Checks that the namespace of every namespaced object exists or is in the commit: one list
/// of Namespaces (metadata only).
pub async fn check_namespaces(
    client: &Client,
    targets: &[Target],
    inventory_namespace: &str,
    deadline: Instant,
) -> Result<(), ApplyError> {
    let in_commit: BTreeSet<&str> = targets
        .iter()
        .filter(|t| t.object.id.group.is_empty() && t.object.id.kind == "Namespace")
        .map(|t| t.object.id.name.as_str())
        .collect();
    let mut needed: BTreeMap<&str, String> = targets
        .iter()
        .filter_map(|t| {
            t.object
                .id
                .namespace
                .as_deref()
                .map(|ns| (ns, display(&t.object.id)))
        })
        .filter(|(ns, _)| !in_commit.contains(ns))
        .collect();
    if !in_commit.contains(inventory_namespace) {
        needed
            .entry(inventory_namespace)
            .or_insert_with(|| "the inventory ConfigMap".to_string());
    }
    if needed.is_empty() {
        return Ok(());
    }
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let lp = ListParams::default();
    let existing =
        match retry::with_retry(deadline, "list namespaces", || api.list_metadata(&lp)).await {
            Ok(list) => list,
            // Namespaced RBAC cannot list Namespaces: the server-side dry-run of every object
            // before the first write still refuses one whose namespace is missing.
            Err(kube::Error::Api(status)) if status.code == 403 => {
                tracing::debug!("listing namespaces is forbidden: left to the dry-run");
                return Ok(());
            }
            Err(e) => return Err(api_err("listing namespaces")(e)),
        };
    let existing: BTreeSet<String> = existing
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    for (ns, object) in needed {
        if !existing.contains(ns) {
            return Err(ApplyError::MissingNamespace {
                namespace: ns.to_string(),
                object,
            });
        }
    }
    Ok(())
}

/// Reads the source's inventory ConfigMap, if any.
pub async fn read_inventory(
    client: &Client,
    namespace: &str,
    source: &str,
    deadline: Instant,
) -> Result<Option<inventory::Inventory>, ApplyError> {
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), namespace);
    let name = inventory::name(source);
    let cm = retry::with_retry(deadline, "get inventory", || api.get_opt(&name))
        .await
        .map_err(api_err(format!(
            "reading inventory ConfigMap {namespace}/{name}"
        )))?;
    Ok(cm
        .and_then(|cm| serde_json::to_value(cm).ok())
        .and_then(|v| inventory::Inventory::from_configmap(&v)))
}

/// Writes the inventory (server-side apply; the caller skips it when unchanged).
pub async fn write_inventory(
    client: &Client,
    namespace: &str,
    inv: &inventory::Inventory,
    deadline: Instant,
) -> Result<(), ApplyError> {
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), namespace);
    let name = inventory::name(&inv.source);
    let body = inv.to_configmap(namespace);
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let patch = Patch::Apply(&body);
    retry::with_retry(deadline, "write inventory", || {
        api.patch(&name, &pp, &patch)
    })
    .await
    .map_err(api_err(format!(
        "writing inventory ConfigMap {namespace}/{name}"
    )))?;
    Ok(())
}

/// How [`list_managed`] reads the lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListMode {
    /// Every object, as [`listed::parse`] reads it.
    Full,
    /// Only each object's fingerprint, for the baseline check ([`listed::fingerprints`]); the
    /// lists' text is kept, to be read in full by [`Managed::complete`] if needed after all.
    Fingerprints,
}

/// One list response, read as the mode asks.
enum ListBody {
    Items(Vec<Value>),
    Fingerprints(Vec<listed::Fingerprinted>, String),
}

/// The live objects a source manages, keyed by id: one label-selector list per kind (across
/// all namespaces), so the cost grows with the number of kinds, not of objects. Where
/// listing across namespaces is forbidden, a namespaced kind is listed in each of
/// `namespaces` instead.
pub async fn list_managed(
    client: &Client,
    kinds: &[Kind],
    namespaces: &BTreeSet<String>,
    source: &str,
    mode: ListMode,
    deadline: Instant,
) -> Result<Managed, ApplyError> {
    let lp = ListParams::default().labels(&selector(source));
    let list_in = |kind: &Kind, namespace: Option<&str>| {
        let lp = &lp;
        // Raw request, parsed once into JSON values (no typed detour through DynamicObject).
        let url = DynamicObject::url_path(&kind.resource, namespace);
        let kind_name = kind.resource.kind.clone();
        async move {
            retry::with_retry(deadline, "list managed", || async {
                let req = kube::core::Request::new(url.as_str())
                    .list(lp)
                    .map_err(kube::Error::BuildRequest)?;
                let text = client.request_text(req).await?;
                let kind_name = kind_name.clone();
                // On a blocking thread: the lists of several kinds parse in parallel.
                let parse = move || match mode {
                    ListMode::Full => {
                        listed::parse(&text, FIELD_MANAGER).map(|l| ListBody::Items(l.items))
                    }
                    ListMode::Fingerprints => {
                        listed::fingerprints(&text, FIELD_MANAGER, &kind_name)
                            .map(|f| ListBody::Fingerprints(f, text))
                    }
                };
                match tokio::task::spawn_blocking(parse).await {
                    Ok(list) => list.map_err(kube::Error::SerdeError),
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(e) => Err(kube::Error::Service(Box::new(e))),
                }
            })
            .await
        }
    };
    let failed = |kind: &Kind, namespace: Option<&str>| {
        api_err(format!(
            "listing {}{} with {}",
            kind.resource.plural,
            namespace.map(|n| format!(" in {n}")).unwrap_or_default(),
            selector(source)
        ))
    };
    // One list per kind, all at once: each is a round trip the others need not wait for.
    let lists = futures::future::try_join_all(kinds.iter().map(|kind| async move {
        match list_in(kind, None).await {
            Ok(body) => Ok((kind, vec![body], true)),
            // Namespaced RBAC (a Role per namespace, as the Helm chart installs by default)
            // forbids listing across namespaces: list in each namespace that matters.
            Err(kube::Error::Api(status))
                if status.code == 403 && kind.namespaced && !namespaces.is_empty() =>
            {
                tracing::debug!(kind = %kind.resource.kind, "listing across namespaces is forbidden: listing per namespace");
                let mut bodies = Vec::new();
                for ns in namespaces {
                    let body = list_in(kind, Some(ns))
                        .await
                        .map_err(failed(kind, Some(ns)))?;
                    bodies.push(body);
                }
                Ok((kind, bodies, false))
            }
            Err(e) => Err(failed(kind, None)(e)),
        }
    }))
    .await?;
    let mut out = Managed::default();
    for (kind, bodies, everywhere) in lists {
        out.listed.insert(
            (kind.resource.group.clone(), kind.resource.kind.clone()),
            (!everywhere).then(|| namespaces.clone()),
        );
        for body in bodies {
            match body {
                ListBody::Items(items) => out.insert_items(kind, items),
                ListBody::Fingerprints(fingerprints, text) => {
                    for f in fingerprints {
                        let id = listed_id(kind, f.namespace, f.name);
                        out.fingerprints.insert(id, f.fingerprint);
                    }
                    out.unparsed.push((kind.clone(), text));
                }
            }
        }
    }
    Ok(out)
}

/// The id of an object listed as `kind`.
fn listed_id(kind: &Kind, namespace: Option<String>, name: String) -> ObjectId {
    ObjectId {
        group: kind.resource.group.clone(),
        version: kind.resource.version.clone(),
        kind: kind.resource.kind.clone(),
        namespace: if kind.namespaced { namespace } else { None },
        name,
    }
}

/// The managed objects [`list_managed`] found (as [`listed`] reads them: without status or
/// other managers' managedFields entries).
#[derive(Debug, Default)]
pub struct Managed {
    pub live: HashMap<ObjectId, (Kind, Value)>,
    /// (group, kind) of each kind listed → `None` when listed in every namespace, else the
    /// namespaces it was listed in (listing across namespaces was forbidden).
    pub listed: BTreeMap<(String, String), Option<BTreeSet<String>>>,
    /// [`ListMode::Fingerprints`]: each listed object's fingerprint.
    pub fingerprints: HashMap<ObjectId, Option<String>>,
    /// [`ListMode::Fingerprints`]: the lists, not yet in `live`.
    pub unparsed: Vec<(Kind, String)>,
}

impl Managed {
    fn insert_items(&mut self, kind: &Kind, items: Vec<Value>) {
        self.live.reserve(items.len());
        for mut value in items {
            let Some(o) = value.as_object_mut() else {
                continue;
            };
            // A list's items may lack apiVersion/kind; the comparison needs them.
            o.insert(
                "apiVersion".into(),
                Value::String(kind.resource.api_version.clone()),
            );
            o.insert("kind".into(), Value::String(kind.resource.kind.clone()));
            let meta = o.get("metadata");
            let field = |f: &str| {
                meta.and_then(|m| m.get(f))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            let id = listed_id(kind, field("namespace"), field("name").unwrap_or_default());
            self.live.insert(id, (kind.clone(), value));
        }
    }

    /// Reads the lists kept unparsed ([`ListMode::Fingerprints`]) into `live`, several at once.
    pub fn complete(&mut self) -> Result<(), ApplyError> {
        let mut unparsed = std::mem::take(&mut self.unparsed);
        let parsed = crate::in_chunks(&mut unparsed, 1, |part| {
            part.iter()
                .map(|(_, text)| listed::parse(text, FIELD_MANAGER))
                .collect::<Vec<_>>()
        })
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        for ((kind, _), list) in unparsed.iter().zip(parsed.into_iter().flatten()) {
            let list = list.map_err(|e| ApplyError::Api {
                what: format!("reading the list of {}", kind.resource.plural),
                error: kube::Error::SerdeError(e),
            })?;
            self.insert_items(kind, list.items);
        }
        crate::dispose::dispose(unparsed);
        Ok(())
    }
}

/// The distinct kinds of `targets`, plus `extra` kinds (from the inventory) the server knows.
pub fn kinds_to_list(targets: &[Target], extra: &BTreeSet<ObjectId>, kinds: &Kinds) -> Vec<Kind> {
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    let mut out = Vec::new();
    let ids = targets.iter().map(|t| &t.object.id).chain(extra);
    for id in ids {
        if seen.insert((&id.group, &id.kind))
            && let Some(k) = kinds.get(&id.group, &id.version, &id.kind)
        {
            out.push(k);
        }
    }
    out
}

/// One desired object with its live state and the decision for it.
#[derive(Debug, Clone)]
pub struct Planned {
    pub target: Target,
    /// The live object if it was listed as managed by this source.
    pub live: Option<Value>,
    /// `Unchanged` (no write), `Update` (managed and changed) or `Create` (not managed yet; it
    /// may still exist unmanaged, which the write reveals).
    pub action: Action,
}

/// Decides per object: no write when the live managed object already matches. The
/// comparisons are pure and independent, so a large commit is compared on several threads.
pub fn plan(targets: Vec<Target>, mut live: HashMap<ObjectId, (Kind, Value)>) -> Vec<Planned> {
    let mut planned: Vec<Planned> = targets
        .into_iter()
        .map(|target| {
            // Moved, not cloned: each live object belongs to at most one target.
            let live = live.remove(&target.object.id).map(|(_, v)| v);
            Planned {
                target,
                live,
                action: Action::Create,
            }
        })
        .collect();
    let decide = |part: &mut [Planned]| {
        for p in part {
            p.action = match &p.live {
                None => Action::Create,
                Some(l) if noop::is_unchanged(&p.target.object.body, l, FIELD_MANAGER) => {
                    Action::Unchanged
                }
                Some(_) => Action::Update,
            };
        }
    };
    if let Err(panic) = crate::in_chunks(&mut planned, 256, decide) {
        std::panic::resume_unwind(panic);
    }
    crate::dispose::dispose(live);
    planned
}

/// The result of writing one object.
#[derive(Debug, Clone)]
pub struct Written {
    pub id: ObjectId,
    pub action: Action,
    /// The live object before the write (as listed), if it was managed.
    pub before: Option<Value>,
    /// The object the server returned.
    pub after: Value,
}

/// Server-side applies every changed object, stage by stage, `concurrency` writes at a time
/// within a stage. Stops at the first failing stage.
pub async fn write(
    client: &Client,
    planned: &[Planned],
    concurrency: usize,
    deadline: Instant,
) -> Result<Vec<Written>, ApplyError> {
    validate(client, planned, concurrency, deadline).await?;
    let mut out = Vec::new();
    for stage in Stage::ALL {
        let batch: Vec<&Planned> = planned
            .iter()
            .filter(|p| p.action != Action::Unchanged)
            .filter(|p| Stage::of(&p.target.object.id.group, &p.target.object.id.kind) == stage)
            .collect();
        if batch.is_empty() {
            continue;
        }
        let written: Vec<Written> = futures::stream::iter(batch)
            .map(|p| apply_one(client, p, false, deadline))
            .buffer_unordered(concurrency.max(1))
            .try_collect()
            .await?;
        for w in &written {
            tracing::info!(object = %display(&w.id), action = ?w.action, "applied");
        }
        out.extend(written);
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// A server-side dry-run of every object [`write`] would apply, before its first write, so
/// that a commit the server rejects (422: an invalid Deployment, an object over 1 MiB, …)
/// writes nothing. Objects in a namespace the same commit creates are skipped (the server
/// could only answer 404 before the namespace exists); their real apply validates them.
pub async fn validate(
    client: &Client,
    planned: &[Planned],
    concurrency: usize,
    deadline: Instant,
) -> Result<(), ApplyError> {
    let changed = || planned.iter().filter(|p| p.action != Action::Unchanged);
    let new_namespaces: BTreeSet<&str> = changed()
        .filter(|p| p.live.is_none())
        .filter(|p| p.target.object.id.group.is_empty() && p.target.object.id.kind == "Namespace")
        .map(|p| p.target.object.id.name.as_str())
        .collect();
    let checked: Vec<()> = futures::stream::iter(changed().filter(|p| {
        p.target
            .object
            .id
            .namespace
            .as_deref()
            .is_none_or(|ns| !new_namespaces.contains(ns))
    }))
    .map(|p| async move {
        apply_one(client, p, true, deadline)
            .await
            .map(|_| ())
            .map_err(|e| match e {
                ApplyError::Api { what, error } => ApplyError::Api {
                    what: format!("{what} (server-side dry-run; nothing was written)"),
                    error,
                },
                other => other,
            })
    })
    .buffer_unordered(concurrency.max(1))
    .try_collect()
    .await?;
    tracing::debug!(objects = checked.len(), "server-side dry-run passed");
    Ok(())
}

/// One server-side apply (or its dry-run) of a planned object.
pub async fn apply_one(
    client: &Client,
    p: &Planned,
    dry_run: bool,
    deadline: Instant,
) -> Result<Written, ApplyError> {
    let id = &p.target.object.id;
    let url = p.target.url();
    let mut pp = PatchParams::apply(FIELD_MANAGER).force();
    if dry_run {
        pp = pp.dry_run();
    }
    let body = &p.target.object.body;
    let patch = Patch::Apply(body);
    let after: Value = retry::with_retry(deadline, "apply", || async {
        // Raw request: the response is parsed once, straight into JSON.
        let req = kube::core::Request::new(url.as_str())
            .patch(&id.name, &pp, &patch)
            .map_err(kube::Error::BuildRequest)?;
        client.request::<Value>(req).await
    })
    .await
    // The server may quote the object's values in its message: never a Secret's.
    .map_err(|e| crate::plan::scrub_api_error(body, e))
    .map_err(api_err(format!(
        "applying {} ({})",
        display(id),
        p.target.object.origin.file
    )))?;
    let action = match (&p.live, p.action) {
        (Some(_), _) => Action::Update,
        // Not listed as ours: a create, unless someone else had written the object before.
        (None, _) if others_own(&after) => Action::Update,
        (None, _) => Action::Create,
    };
    Ok(Written {
        id: id.clone(),
        action,
        before: p.live.clone(),
        after,
    })
}

fn others_own(obj: &Value) -> bool {
    crate::manifest::at(obj, &["metadata", "managedFields"])
        .and_then(Value::as_array)
        .is_some_and(|entries| {
            entries
                .iter()
                .any(|e| e.get("manager").and_then(Value::as_str) != Some(FIELD_MANAGER))
        })
}

/// The live object by GET (for diffs of objects that are not listed as managed).
pub async fn get_live(
    client: &Client,
    target: &Target,
    deadline: Instant,
) -> Result<Option<Value>, ApplyError> {
    let url = target.url();
    let id = &target.object.id;
    let got = retry::with_retry(deadline, "get", || async {
        let req = kube::core::Request::new(url.as_str())
            .get(&id.name, &kube::api::GetParams::default())
            .map_err(kube::Error::BuildRequest)?;
        match client.request::<Value>(req).await {
            Ok(v) => Ok(Some(v)),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
            Err(e) => Err(e),
        }
    })
    .await
    .map_err(api_err(format!("reading {}", display(id))))?;
    Ok(got)
}

/// Deletes the given managed objects (background propagation), `concurrency` at a time.
/// An object already gone counts as deleted.
pub async fn delete(
    client: &Client,
    doomed: &[(ObjectId, Kind)],
    concurrency: usize,
    deadline: Instant,
) -> Result<Vec<ObjectId>, ApplyError> {
    let dp = DeleteParams::background();
    let mut out = Vec::new();
    // Delete in prune order, one stage-group at a time (dependents first, Namespaces last).
    let mut groups: BTreeMap<std::cmp::Reverse<Stage>, Vec<&(ObjectId, Kind)>> = BTreeMap::new();
    for d in doomed {
        groups
            .entry(order::prune_order(&d.0.group, &d.0.kind))
            .or_default()
            .push(d);
    }
    for (_, batch) in groups {
        let deleted: Vec<ObjectId> = futures::stream::iter(batch)
            .map(|(id, kind)| {
                let dp = &dp;
                async move {
                    let api: Api<DynamicObject> = match &id.namespace {
                        Some(ns) if kind.namespaced => {
                            Api::namespaced_with(client.clone(), ns, &kind.resource)
                        }
                        _ => Api::all_with(client.clone(), &kind.resource),
                    };
                    let result =
                        retry::with_retry(deadline, "delete", || api.delete(&id.name, dp)).await;
                    match result {
                        Ok(_) => Ok(id.clone()),
                        Err(kube::Error::Api(s)) if s.code == 404 => Ok(id.clone()),
                        Err(e) => Err(api_err(format!("deleting {}", display(id)))(e)),
                    }
                }
            })
            .buffer_unordered(concurrency.max(1))
            .try_collect()
            .await?;
        for id in &deleted {
            tracing::info!(object = %display(id), "pruned");
        }
        out.extend(deleted);
    }
    Ok(out)
}

/// Why a Deployment's pods were replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cause {
    /// The pod template changed.
    Template,
    /// Only the config hash of the pod template changed (a ConfigMap the pods read).
    Config,
    /// The template returned to an earlier revision's (the old ReplicaSet was reused).
    Revert,
}

/// For a written Deployment: did its pod template change, and why? `None` if unchanged.
pub fn template_change(w: &Written) -> Option<Cause> {
    if w.id.group != "apps" || w.id.kind != "Deployment" {
        return None;
    }
    let after = crate::manifest::at(&w.after, &["spec", "template"])?;
    let Some(before) = w
        .before
        .as_ref()
        .and_then(|b| crate::manifest::at(b, &["spec", "template"]))
    else {
        // A new Deployment: its first rollout.
        return Some(Cause::Template);
    };
    if before == after {
        return None;
    }
    let strip = |t: &Value| {
        let mut t = t.clone();
        if let Some(a) = t
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            a.remove("kubesync.io/config-hash");
        }
        t
    };
    Some(if strip(before) == strip(after) {
        Cause::Config
    } else {
        Cause::Template
    })
}

/// `true` if the Deployment's current revision reused an old ReplicaSet (a revert): the RS of
/// the current revision carries `deployment.kubernetes.io/revision-history`.
pub async fn is_revert(client: &Client, deployment: &Value, deadline: Instant) -> bool {
    let (Some(ns), Some(rev)) = (
        deployment
            .pointer("/metadata/namespace")
            .and_then(Value::as_str),
        deployment
            .pointer("/metadata/annotations/deployment.kubernetes.io~1revision")
            .and_then(Value::as_str),
    ) else {
        return false;
    };
    let labels = crate::rollout::history::selector_string_of(deployment);
    let api: Api<k8s_openapi::api::apps::v1::ReplicaSet> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels(&labels);
    let Ok(list) = retry::with_retry(deadline, "list replicasets", || api.list_metadata(&lp)).await
    else {
        return false;
    };
    list.items.iter().any(|rs| {
        let ann = rs.metadata.annotations.as_ref();
        ann.and_then(|a| a.get("deployment.kubernetes.io/revision"))
            .map(String::as_str)
            == Some(rev)
            && ann.is_some_and(|a| a.contains_key("deployment.kubernetes.io/revision-history"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn aggregated_discovery_documents_give_kinds_with_scope() {
        let doc = json!({"kind": "APIGroupDiscoveryList", "items": [
            {"metadata": {"name": ""}, "versions": [{"version": "v1", "resources": [
                {"resource": "namespaces", "responseKind": {"kind": "Namespace"}, "scope": "Cluster"},
                {"resource": "configmaps", "responseKind": {"kind": "ConfigMap"}, "scope": "Namespaced",
                 "subresources": [{"subresource": "status"}]}]}]},
            {"metadata": {"name": "apps"}, "versions": [{"version": "v1", "resources": [
                {"resource": "deployments", "responseKind": {"kind": "Deployment"}, "scope": "Namespaced"}]}]}]});
        let mut by_gvk = BTreeMap::new();
        add_aggregated(&mut by_gvk, &doc);
        let kinds = Kinds { by_gvk };
        let ns = kinds
            .get("", "v1", "Namespace")
            .map(|k| (k.resource.plural, k.namespaced));
        assert_eq!(ns, Some(("namespaces".to_string(), false)));
        let d = kinds
            .get("apps", "v1", "Deployment")
            .map(|k| (k.resource.api_version, k.namespaced));
        assert_eq!(d, Some(("apps/v1".to_string(), true)));
        assert!(kinds.get("apps", "v1", "ReplicaSet").is_none());
    }

    fn written(before: Option<Value>, after: Value) -> Written {
        Written {
            id: ObjectId {
                group: "apps".into(),
                version: "v1".into(),
                kind: "Deployment".into(),
                namespace: Some("default".into()),
                name: "web".into(),
            },
            action: Action::Update,
            before,
            after,
        }
    }

    fn dep(image: &str, hash: &str) -> Value {
        json!({"spec": {"template": {"metadata": {"annotations": {"kubesync.io/config-hash": hash}},
            "spec": {"containers": [{"name": "web", "image": image}]}}}})
    }

    #[test]
    fn template_change_causes() {
        assert_eq!(
            template_change(&written(None, dep("a", "1"))),
            Some(Cause::Template)
        );
        assert_eq!(
            template_change(&written(Some(dep("a", "1")), dep("a", "1"))),
            None
        );
        assert_eq!(
            template_change(&written(Some(dep("a", "1")), dep("a", "2"))),
            Some(Cause::Config)
        );
        assert_eq!(
            template_change(&written(Some(dep("a", "1")), dep("b", "1"))),
            Some(Cause::Template)
        );
    }

    #[test]
    fn selector_has_both_labels() {
        assert_eq!(
            selector("prod"),
            "app.kubernetes.io/managed-by=kubesync,kubesync.io/source=prod"
        );
    }

    #[test]
    fn others_own_detects_adoption() {
        assert!(!others_own(
            &json!({"metadata": {"managedFields": [{"manager": "kubesync"}]}})
        ));
        assert!(others_own(
            &json!({"metadata": {"managedFields": [{"manager": "kubesync"}, {"manager": "kubectl"}]}})
        ));
    }
}
