//! The sync engine: one sync (or one diff) of one source at one commit, as a library call.
//!
//! Owns the orchestration of the stages (source → manifest → transform → apply → rollout →
//! inventory) and returns plain reports. Must not: print, choose exit codes or parse flags
//! (the CLI and the agent do that), write anything before the whole commit is validated, or
//! decide what the stages decide (no-op detection, ordering, prune selection live in `apply`).
use crate::apply::baseline::{Baseline, ConfigRef};
use crate::apply::{self, Action, Cause, Kind, Planned, inventory::Inventory};
use crate::manifest::{self, ObjectId};
use crate::rollout;
use crate::source::{self, Commit};
use crate::transform;
use kube::Client;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::Instant;

/// What to sync and how. Built by the CLI from flags and by the agent from its config.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Source name: the value of the `kubesync.io/source` ownership label (prune scope).
    pub source_name: String,
    /// Where the repository is and how to reach it.
    pub repo: source::RepoSpec,
    /// Branch, tag or sha.
    pub rev: String,
    /// Folder of manifests inside the repository.
    pub path: String,
    /// Namespace for namespaced objects that name none.
    pub namespace: String,
    /// Namespace of the inventory ConfigMap `kubesync-inventory-<source>`.
    pub inventory_namespace: String,
    /// Delete objects of this source that the commit no longer contains.
    pub prune: bool,
    /// Allow a prune that removes more than half of the managed objects.
    pub allow_mass_prune: bool,
    /// Wait for the rollouts of Deployments whose pod template changed.
    pub wait: bool,
    /// Deadline of the whole sync: API retries and rollout waits.
    pub timeout: Duration,
    /// Concurrent requests within a stage.
    pub concurrency: usize,
    /// Do everything up to the writes and say what would happen.
    pub dry_run: bool,
    /// Undo a failed rollout to the revision that ran before the sync, and hold the commit
    /// (later syncs of the same commit do not re-apply it).
    pub rollback_on_failure: bool,
    /// Re-apply a commit even if it is held.
    pub force: bool,
    /// If non-empty, the only namespaces the commit may write to.
    pub allowed_namespaces: Vec<String>,
    /// If non-empty, the only kinds the commit may contain.
    pub allowed_kinds: Vec<String>,
}

impl SyncOptions {
    /// Options with the CLI defaults for a local or remote repository.
    pub fn new(source_name: impl Into<String>, repo: source::RepoSpec) -> Self {
        SyncOptions {
            source_name: source_name.into(),
            repo,
            rev: "HEAD".into(),
            path: ".".into(),
            namespace: "default".into(),
            inventory_namespace: "default".into(),
            prune: false,
            allow_mass_prune: false,
            wait: true,
            timeout: Duration::from_secs(300),
            concurrency: 16,
            dry_run: false,
            rollback_on_failure: false,
            force: false,
            allowed_namespaces: Vec::new(),
            allowed_kinds: Vec::new(),
        }
    }

    /// A repository spec with default credentials (none) and cache dir.
    pub fn repo_spec(url: impl Into<String>, cache_dir: impl Into<PathBuf>) -> source::RepoSpec {
        source::RepoSpec {
            url: url.into(),
            cache_dir: cache_dir.into(),
            credentials: source::Credentials::default(),
        }
    }
}

/// Why a sync or diff could not run to the end (a failed rollout is not an error: it is in
/// the report).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Source(#[from] source::SourceError),
    #[error("the git task failed")]
    GitTask(#[from] tokio::task::JoinError),
    #[error("commit {commit} is invalid; nothing was written")]
    Invalid {
        commit: String,
        #[source]
        errors: manifest::LoadErrors,
    },
    #[error("{object} is not allowed for source {source_name}: {reason}; nothing was written")]
    NotAllowed {
        source_name: String,
        object: String,
        reason: String,
    },
    #[error(transparent)]
    Apply(#[from] apply::ApplyError),
    #[error(transparent)]
    Prune(#[from] apply::prune::PruneRefused),
    #[error(transparent)]
    Rollout(#[from] rollout::WaitError),
    #[error(transparent)]
    Undo(#[from] rollout::undo::UndoError),
}

/// The rollout a sync caused in one Deployment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RolloutReport {
    pub cause: Cause,
    pub revision: Option<u64>,
    pub status: rollout::Status,
    /// A revert: the revision (before the sync) whose ReplicaSet the template returned to.
    #[serde(rename = "rollbackTo", skip_serializing_if = "Option::is_none")]
    pub rollback_to: Option<u64>,
    /// The rollout failed and was undone (`--rollback-on-failure`).
    #[serde(rename = "rolledBack", skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<RolledBack>,
    /// Why the rollout did not complete (kubectl's last message), when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The pods that were not ready when it failed, and why (conditions, container states).
    #[serde(rename = "notReady", skip_serializing_if = "Vec::is_empty")]
    pub not_ready: Vec<String>,
}

/// Where a failed rollout was undone to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RolledBack {
    #[serde(rename = "toRevision")]
    pub to_revision: u64,
}

/// One object the sync or diff touched (or would touch).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChangeReport {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutReport>,
    /// Unified diff (diff only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

impl ChangeReport {
    pub fn new(id: &ObjectId, action: Action) -> Self {
        ChangeReport {
            kind: id.kind.clone(),
            namespace: id.namespace.clone(),
            name: id.name.clone(),
            action,
            rollout: None,
            diff: None,
        }
    }
}

/// The result of one sync.
#[derive(Debug, Clone)]
pub struct SyncReport {
    pub commit: Commit,
    pub dry_run: bool,
    /// Sorted by object identity.
    pub changes: Vec<ChangeReport>,
    /// `Synced`, `RolloutFailed` or `RolloutTimeout` (also written to the inventory).
    pub status: String,
    /// A rollout did not complete.
    pub failed: bool,
    /// Objects written (created or updated) by this sync.
    pub applied: usize,
    /// Objects deleted by prune.
    pub pruned: usize,
    /// The commit is held (its rollout failed and was rolled back before): nothing was
    /// applied; `force` re-applies it. Also set when this sync rolled back.
    pub held: bool,
}

/// The result of one diff.
#[derive(Debug, Clone)]
pub struct DiffReport {
    pub commit: Commit,
    /// Only objects that differ, sorted by kind, namespace, name; each with its `diff`.
    pub changes: Vec<ChangeReport>,
}

/// A commit read and validated, not yet compared with the cluster.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub commit: Commit,
    /// Id of the git tree at the source's path (see [`Located::tree`]).
    pub tree: String,
    pub objects: Vec<manifest::Object>,
}

/// A commit found, with the tree at the source's path, before any file is read.
#[derive(Debug)]
pub struct Located {
    repo: source::Repo,
    pub commit: Commit,
    /// Id of the git tree at the source's path: the same id means the same files.
    pub tree: String,
}

/// Opens (and for remotes fetches) the repository and finds the commit and the tree at the
/// source's path (git2 is blocking: a blocking task). Touches no cluster.
pub async fn locate(opts: &SyncOptions) -> Result<Located, EngineError> {
    let spec = opts.repo.clone();
    let (rev, path) = (opts.rev.clone(), opts.path.clone());
    tokio::task::spawn_blocking(move || -> Result<Located, EngineError> {
        let t = Instant::now();
        let repo = source::Repo::open(&spec)?;
        repo.fetch()?;
        let commit = repo.resolve(&rev)?;
        let tree = repo.tree(&commit, &path)?;
        tracing::debug!(
            elapsed_ms = t.elapsed().as_millis() as u64,
            "commit located"
        );
        Ok(Located { repo, commit, tree })
    })
    .await?
}

/// Reads the commit (git2 is blocking: a blocking task), loads, validates and transforms
/// its objects. Touches no cluster, so callers can overlap it with connecting.
pub async fn load(opts: &SyncOptions) -> Result<Loaded, EngineError> {
    read(locate(opts).await?, opts).await
}

/// [`load`] of a commit already located.
pub async fn read(located: Located, opts: &SyncOptions) -> Result<Loaded, EngineError> {
    let path = opts.path.clone();
    let options = manifest::LoadOptions {
        default_namespace: opts.namespace.clone(),
        ..Default::default()
    };
    let source_name = opts.source_name.clone();
    // Reading git and parsing are CPU and disk work: all of it off the async task, so that
    // the cluster side joined with it (connect, discovery) keeps making progress meanwhile.
    tokio::task::spawn_blocking(move || -> Result<Loaded, EngineError> {
        let t = Instant::now();
        let Located { repo, commit, tree } = located;
        let snapshot = repo.snapshot(&commit, &path)?;
        drop(repo);
        tracing::debug!(
            elapsed_ms = t.elapsed().as_millis() as u64,
            files = snapshot.files.len(),
            "git read"
        );
        let mut objects =
            manifest::load(&snapshot, &options).map_err(|errors| EngineError::Invalid {
                commit: snapshot.commit.short().to_string(),
                errors,
            })?;
        tracing::debug!(elapsed_ms = t.elapsed().as_millis() as u64, "parsed");
        let ctx = transform::Context {
            source: source_name,
            commit: snapshot.commit.clone(),
        };
        transform::apply(&mut objects, &ctx);
        Ok(Loaded {
            commit: snapshot.commit,
            tree,
            objects,
        })
    })
    .await?
}

/// Refuses a commit with an object outside the source's allowed kinds or namespaces (after
/// `resolve`, so cluster-scoped objects have no namespace). With `allowed_namespaces` set, a
/// cluster-scoped object is refused unless it is a Namespace named in the list.
fn check_allowed(opts: &SyncOptions, targets: &[apply::Target]) -> Result<(), EngineError> {
    for t in targets {
        let id = &t.object.id;
        let refuse = |reason: String| EngineError::NotAllowed {
            source_name: opts.source_name.clone(),
            object: apply::display(id),
            reason,
        };
        if !opts.allowed_kinds.is_empty() && !opts.allowed_kinds.iter().any(|k| k == &id.kind) {
            return Err(refuse(format!("kind {} is not in allowedKinds", id.kind)));
        }
        if opts.allowed_namespaces.is_empty() {
            continue;
        }
        let ns = match (&id.namespace, id.kind.as_str()) {
            (Some(ns), _) => ns.as_str(),
            (None, "Namespace") => id.name.as_str(),
            (None, _) => {
                return Err(refuse(
                    "cluster-scoped objects are not allowed when allowedNamespaces is set".into(),
                ));
            }
        };
        if !opts.allowed_namespaces.iter().any(|a| a == ns) {
            return Err(refuse(format!(
                "namespace {ns} is not in allowedNamespaces"
            )));
        }
    }
    Ok(())
}

/// Reads the ConfigMaps/Secrets that Deployments read but git does not define from the
/// cluster (absent ones are skipped) and folds them into the Deployments' config hash
/// (unless a Deployment opts out with `kubesync.io/live-config-hash: "false"`). Returns the
/// fingerprint of each one read (for the baseline).
async fn hash_live_configs(
    client: &Client,
    loaded: &mut Loaded,
    deadline: Instant,
) -> Result<BTreeMap<ConfigRef, String>, EngineError> {
    let missing = transform::missing_configs(&loaded.objects);
    let mut live = Vec::new();
    let mut fingerprints = BTreeMap::new();
    for (kind, namespace, name) in missing {
        let body = read_config(client, kind, &namespace, &name, deadline).await?;
        fingerprints.insert(
            (kind.to_string(), namespace.clone(), name.clone()),
            apply::baseline::config_fingerprint(body.as_ref()),
        );
        let Some(body) = body else { continue };
        live.push(manifest::Object {
            id: ObjectId {
                group: String::new(),
                version: "v1".into(),
                kind: kind.into(),
                namespace: Some(namespace),
                name,
            },
            body,
            origin: manifest::Origin {
                file: "(live cluster)".into(),
                document: 0,
                line: 0,
            },
        });
    }
    transform::hash_with_live(&mut loaded.objects, &live);
    Ok(fingerprints)
}

/// A ConfigMap or Secret (`kind`) a Deployment reads, from the cluster; `None` if absent.
async fn read_config(
    client: &Client,
    kind: &str,
    namespace: &str,
    name: &str,
    deadline: Instant,
) -> Result<Option<Value>, EngineError> {
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    let failed = |error| apply::ApplyError::Api {
        what: format!("reading {kind} {namespace}/{name} (a Deployment reads it)"),
        error,
    };
    Ok(if kind == "Secret" {
        let api: kube::Api<Secret> = kube::Api::namespaced(client.clone(), namespace);
        apply::retry::with_retry(deadline, "get secret", || api.get_opt(name))
            .await
            .map_err(failed)?
            .and_then(|s| serde_json::to_value(s).ok())
    } else {
        let api: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), namespace);
        apply::retry::with_retry(deadline, "get configmap", || api.get_opt(name))
            .await
            .map_err(failed)?
            .and_then(|c| serde_json::to_value(c).ok())
    })
}

/// Everything known before the first write.
struct Prepared {
    commit: Commit,
    /// The git tree the desired objects were read from (the baseline's key).
    tree: String,
    planned: Vec<Planned>,
    /// Managed live objects the commit no longer contains, in deletion order.
    orphans: Vec<(ObjectId, Kind, Value)>,
    /// Number of live objects managed by this source.
    managed: usize,
    inventory: Option<Inventory>,
    deadline: Instant,
}

/// What the engine reads from the cluster before it needs the commit: the server's kinds,
/// this source's inventory, and the managed objects of every kind the inventory names.
/// [`sync`] and [`diff`] read it while git is read, which hides those round trips (in a
/// no-op sync they are the whole cluster side).
pub struct ClusterView {
    pub kinds: apply::Kinds,
    inventory: Option<Inventory>,
    /// The managed objects, as listed (see [`apply::Managed`]: read for their fingerprints
    /// only when the inventory has a baseline, and in full when needed).
    managed: apply::Managed,
}

/// Reads the [`ClusterView`] of `opts`' source.
pub async fn read_cluster(
    client: &Client,
    opts: &SyncOptions,
    deadline: Instant,
) -> Result<ClusterView, EngineError> {
    read_cluster_with(client, opts, deadline, |_| {}).await
}

/// [`read_cluster`], telling `on_inventory` the inventory as soon as it is read (before the
/// lists), so that the git side can decide early whether the commit's files are needed.
pub async fn read_cluster_with(
    client: &Client,
    opts: &SyncOptions,
    deadline: Instant,
    on_inventory: impl FnOnce(Option<&Inventory>),
) -> Result<ClusterView, EngineError> {
    let (kinds, inventory) = tokio::join!(
        apply::Kinds::discover(client, deadline),
        apply::read_inventory(
            client,
            &opts.inventory_namespace,
            &opts.source_name,
            deadline,
        )
    );
    let inventory = inventory?;
    on_inventory(inventory.as_ref());
    let kinds = kinds?;
    tracing::debug!("discovered");
    let none = BTreeSet::new();
    let named = inventory.as_ref().map_or(&none, |i| &i.objects);
    let to_list = apply::kinds_to_list(&[], named, &kinds);
    let namespaces = scope_namespaces(opts, named.iter());
    // With a baseline to check, the lists are first read for fingerprints only.
    let mode = match usable_baseline(inventory.as_ref()) {
        Some(_) => apply::ListMode::Fingerprints,
        None => apply::ListMode::Full,
    };
    let managed = apply::list_managed(
        client,
        &to_list,
        &namespaces,
        &opts.source_name,
        mode,
        deadline,
    )
    .await?;
    Ok(ClusterView {
        kinds,
        inventory,
        managed,
    })
}

/// The namespaces a source's objects can be in, as far as is known: those of `ids`, the
/// default namespace and the allowed ones (where listing across namespaces is forbidden,
/// these are listed one by one).
fn scope_namespaces<'a>(
    opts: &SyncOptions,
    ids: impl Iterator<Item = &'a ObjectId>,
) -> BTreeSet<String> {
    let distinct: HashSet<&str> = ids.filter_map(|id| id.namespace.as_deref()).collect();
    distinct
        .into_iter()
        .map(str::to_string)
        .chain(std::iter::once(opts.namespace.clone()))
        .chain(opts.allowed_namespaces.iter().cloned())
        .collect()
}

/// The baseline key of `opts`' desired objects at `tree`: everything they are a function of
/// (the files, the options that shape them, the kubesync version that transforms them). The
/// per-commit annotations are not: the no-op check ignores them.
pub fn baseline_key(opts: &SyncOptions, tree: &str) -> String {
    apply::baseline::key(&[
        env!("CARGO_PKG_VERSION"),
        tree,
        &opts.source_name,
        &opts.namespace,
        &opts.allowed_kinds.join(","),
        &opts.allowed_namespaces.join(","),
        apply::FIELD_MANAGER,
    ])
}

/// The inventory's baseline key, if the last sync left a baseline that a sync may rely on
/// (it ended `Synced` and holds no commit).
pub fn usable_baseline(inventory: Option<&Inventory>) -> Option<&str> {
    let inventory = inventory?;
    let baseline = inventory.baseline.as_ref()?;
    (inventory.status == "Synced" && inventory.held.is_empty() && !baseline.objects.is_empty())
        .then_some(baseline.key.as_str())
}

/// The managed objects, as the baseline shows them unchanged.
struct Settled<'v> {
    /// The desired objects (all unchanged), in object order.
    desired: Vec<&'v ObjectId>,
    /// Managed live objects that are not desired (prune candidates).
    others: Vec<ObjectId>,
    /// The inventory lists exactly `desired` and `others`.
    inventoried: bool,
}

/// Whether the desired objects at `located` are all unchanged, answered from the baseline
/// (see [`apply::baseline`]) without reading the commit's files: the inventory's baseline
/// was recorded for the same desired objects, every one of them is listed with its recorded
/// fingerprint, and every ConfigMap/Secret the Deployments read from the cluster has its
/// recorded data. `None`: take the full path (read, compare).
async fn settled<'v>(
    client: &Client,
    view: &'v ClusterView,
    located: &Located,
    opts: &SyncOptions,
    deadline: Instant,
) -> Result<Option<Settled<'v>>, EngineError> {
    let key = baseline_key(opts, &located.tree);
    if usable_baseline(view.inventory.as_ref()) != Some(key.as_str()) {
        return Ok(None);
    }
    let Some(baseline) = view.inventory.as_ref().and_then(|i| i.baseline.as_ref()) else {
        return Ok(None);
    };
    let listed = &view.managed.fingerprints;
    let matches = listed.len() >= baseline.objects.len()
        && baseline
            .objects
            .iter()
            .all(|(id, fp)| listed.get(id).is_some_and(|f| f.as_ref() == Some(fp)));
    tracing::debug!("fingerprints compared");
    if !matches {
        tracing::debug!("baseline does not match the live objects");
        return Ok(None);
    }
    let configs = futures::future::try_join_all(baseline.configs.iter().map(
        |((kind, namespace, name), fp)| async move {
            let body = read_config(client, kind, namespace, name, deadline).await?;
            Ok::<_, EngineError>(&apply::baseline::config_fingerprint(body.as_ref()) == fp)
        },
    ))
    .await?;
    if !configs.into_iter().all(|ok| ok) {
        tracing::debug!("a ConfigMap or Secret read from the cluster changed");
        return Ok(None);
    }
    let others = apply::prune::select(baseline.objects.keys(), listed.keys());
    // In object order, without a sort: the inventory's objects are ordered and, after the
    // sync that recorded the baseline, include every desired object.
    let inventory = view.inventory.as_ref().map(|i| &i.objects);
    let mut desired: Vec<&ObjectId> = inventory
        .into_iter()
        .flatten()
        .filter(|id| baseline.objects.contains_key(*id))
        .collect();
    let mut inventoried = inventory.is_some_and(|all| {
        all.len() == desired.len() + others.len() && others.iter().all(|id| all.contains(id))
    });
    if desired.len() != baseline.objects.len() {
        desired = baseline.objects.keys().collect();
        desired.sort_unstable();
        inventoried = false;
    }
    tracing::debug!(objects = desired.len(), "baseline matches");
    Ok(Some(Settled {
        desired,
        others,
        inventoried,
    }))
}

/// A sync of a located commit: answered from the baseline when it shows every object
/// unchanged (nothing to write but, for a new commit, the inventory), else read and synced
/// in full ([`sync_loaded`]).
pub async fn sync_located(
    client: &Client,
    view: ClusterView,
    located: Located,
    opts: &SyncOptions,
    deadline: Instant,
    on_progress: &(dyn Fn(&str, bool) + Sync),
) -> Result<SyncReport, EngineError> {
    // With prune, a managed object that is no longer desired is a delete: the full path.
    if let Some(s) = settled(client, &view, &located, opts, deadline).await?
        && (s.others.is_empty() || !opts.prune)
    {
        let desired = s.desired;
        let changes: Vec<ChangeReport> = desired
            .iter()
            .map(|id| ChangeReport::new(id, Action::Unchanged))
            .collect();
        if !opts.dry_run
            && let Some(old) = &view.inventory
        {
            // The record the full path would write: the same objects (and not-pruned
            // others), the new commit. Built only when it differs.
            let mut inv = Inventory {
                source: opts.source_name.clone(),
                repo: opts.repo.url.clone(),
                path: opts.path.clone(),
                commit: located.commit.sha.clone(),
                synced_at: jiff::Timestamp::now().to_string(),
                status: "Synced".into(),
                held: String::new(),
                objects: BTreeSet::new(),
                baseline: None,
            };
            if !(s.inventoried && old.same_header(&inv)) {
                inv.objects = desired.iter().copied().chain(&s.others).cloned().collect();
                inv.baseline = old.baseline.clone();
                apply::write_inventory(client, &opts.inventory_namespace, &inv, deadline).await?;
            }
        }
        tracing::debug!("sync done");
        crate::dispose::dispose(view);
        return Ok(SyncReport {
            commit: located.commit,
            dry_run: opts.dry_run,
            changes,
            status: "Synced".into(),
            failed: false,
            applied: 0,
            pruned: 0,
            held: false,
        });
    }
    let loaded = read(located, opts).await?;
    sync_loaded(client, view, loaded, opts, deadline, on_progress).await
}

/// A diff of a located commit: empty when the baseline shows every object unchanged and no
/// other managed object (which would show as a deletion), else read and diffed in full.
pub async fn diff_located(
    client: &Client,
    view: ClusterView,
    located: Located,
    opts: &SyncOptions,
    deadline: Instant,
) -> Result<DiffReport, EngineError> {
    if let Some(s) = settled(client, &view, &located, opts, deadline).await?
        && s.others.is_empty()
    {
        crate::dispose::dispose(view);
        return Ok(DiffReport {
            commit: located.commit,
            changes: Vec::new(),
        });
    }
    let loaded = read(located, opts).await?;
    diff_loaded(client, view, loaded, opts, deadline).await
}

async fn prepare(
    client: &Client,
    view: ClusterView,
    loaded: Loaded,
    opts: &SyncOptions,
    deadline: Instant,
) -> Result<Prepared, EngineError> {
    let started = Instant::now();
    let ms = || started.elapsed().as_millis() as u64;
    let Loaded {
        commit,
        tree,
        objects,
    } = loaded;
    let ClusterView {
        kinds,
        inventory,
        mut managed,
    } = view;
    // Lists read for the baseline check only are read in full now.
    managed.complete()?;
    let apply::Managed {
        mut live, listed, ..
    } = managed;
    let targets = apply::resolve(objects, &kinds, &opts.namespace)?;
    check_allowed(opts, &targets)?;
    let scope = scope_namespaces(
        opts,
        targets
            .iter()
            .map(|t| &t.object.id)
            .chain(inventory.iter().flat_map(|i| i.objects.iter())),
    );
    // The kinds of the commit not read yet (or, where only per-namespace lists are allowed,
    // not in every namespace that matters now) are listed while the namespaces are checked.
    let to_list: Vec<apply::Kind> = apply::kinds_to_list(&targets, &BTreeSet::new(), &kinds)
        .into_iter()
        .filter(
            |k| match listed.get(&(k.resource.group.clone(), k.resource.kind.clone())) {
                None => true,
                Some(None) => false,
                Some(Some(namespaces)) => !scope.is_subset(namespaces),
            },
        )
        .collect();
    let (namespaces, more) = tokio::join!(
        apply::check_namespaces(client, &targets, &opts.inventory_namespace, deadline),
        apply::list_managed(
            client,
            &to_list,
            &scope,
            &opts.source_name,
            apply::ListMode::Full,
            deadline
        )
    );
    namespaces?;
    live.extend(more?.live);
    tracing::debug!(
        elapsed_ms = ms(),
        live = live.len(),
        "managed objects listed"
    );
    let managed = live.len();
    let orphans = apply::prune::select(targets.iter().map(|t| &t.object.id), live.keys())
        .into_iter()
        .filter_map(|id| live.remove(&id).map(|(k, v)| (id, k, v)))
        .collect();
    let planned = apply::plan(targets, live);
    tracing::debug!(elapsed_ms = ms(), "planned");
    Ok(Prepared {
        commit,
        tree,
        planned,
        orphans,
        managed,
        inventory,
        deadline,
    })
}

/// Syncs one source at one commit: load, validate, apply, wait for rollouts, prune, record
/// the inventory. `on_progress(line, done)` gets a line each time a rollout's progress changes.
pub async fn sync(
    client: &Client,
    opts: &SyncOptions,
    on_progress: &(dyn Fn(&str, bool) + Sync),
) -> Result<SyncReport, EngineError> {
    let deadline = Instant::now() + opts.timeout;
    let (located, view) = tokio::join!(locate(opts), read_cluster(client, opts, deadline));
    let (located, view) = located_first(located, view, opts).await?;
    sync_located(client, view, located, opts, deadline, on_progress).await
}

/// The results of locating the commit and reading the cluster, errors in the order a user
/// needs them: a broken commit before any cluster error (the commit is read for that when
/// the cluster could not be).
async fn located_first(
    located: Result<Located, EngineError>,
    view: Result<ClusterView, EngineError>,
    opts: &SyncOptions,
) -> Result<(Located, ClusterView), EngineError> {
    let located = located?;
    match view {
        Ok(view) => Ok((located, view)),
        Err(e) => {
            read(located, opts).await?;
            Err(e)
        }
    }
}

/// [`sync`] of a commit already loaded, with the cluster already read (the CLI overlaps
/// reading git with connecting to and reading the cluster).
pub async fn sync_loaded(
    client: &Client,
    view: ClusterView,
    loaded: Loaded,
    opts: &SyncOptions,
    deadline: Instant,
    on_progress: &(dyn Fn(&str, bool) + Sync),
) -> Result<SyncReport, EngineError> {
    let mut loaded = loaded;
    let configs = hash_live_configs(client, &mut loaded, deadline).await?;
    let mut p = prepare(client, view, loaded, opts, deadline).await?;
    if opts.prune {
        apply::prune::guard(
            p.planned.len(),
            p.managed,
            p.orphans.len(),
            opts.allow_mass_prune,
        )?;
    }
    // Keyed by id for the updates below (hashed: a thousand ordered inserts cost more than
    // one sort at the end).
    let mut rows: HashMap<ObjectId, ChangeReport> = HashMap::new();
    if opts.dry_run {
        for pl in &p.planned {
            rows.insert(
                pl.target.object.id.clone(),
                ChangeReport::new(&pl.target.object.id, pl.action),
            );
        }
        if opts.prune {
            for (id, _, _) in &p.orphans {
                rows.insert(id.clone(), ChangeReport::new(id, Action::Delete));
            }
        }
        return Ok(SyncReport {
            commit: p.commit,
            dry_run: true,
            changes: sorted_changes(rows),
            status: "Synced".into(),
            failed: false,
            applied: 0,
            pruned: 0,
            held: false,
        });
    }
    let held_before = p
        .inventory
        .as_ref()
        .is_some_and(|i| !i.held.is_empty() && i.held == p.commit.sha);
    if held_before && !opts.force {
        tracing::warn!(commit = %p.commit.sha, "commit is held: not re-applied");
        return Ok(SyncReport {
            commit: p.commit,
            dry_run: false,
            changes: Vec::new(),
            status: "Held".into(),
            failed: true,
            applied: 0,
            pruned: 0,
            held: true,
        });
    }
    // The revision each Deployment ran before the sync: where a failed rollout is undone to.
    let before: BTreeMap<ObjectId, u64> = p
        .planned
        .iter()
        .filter(|pl| pl.action != Action::Unchanged)
        .filter_map(|pl| {
            Some((
                pl.target.object.id.clone(),
                rollout::revision(pl.live.as_ref()?)?,
            ))
        })
        .collect();
    let mut rolled_back_any = false;
    let reverts = mark_reverts(client, &mut p.planned, &p.commit, p.deadline).await?;
    let written = apply::write(client, &p.planned, opts.concurrency, p.deadline).await?;
    for pl in &p.planned {
        rows.insert(
            pl.target.object.id.clone(),
            ChangeReport::new(&pl.target.object.id, pl.action),
        );
    }
    let mut rollouts: BTreeMap<(String, String), (ObjectId, Cause)> = BTreeMap::new();
    for w in &written {
        if let Some(r) = rows.get_mut(&w.id) {
            r.action = w.action;
        }
        if let (Some(cause), Some(ns)) = (apply::template_change(w), &w.id.namespace) {
            rollouts.insert((ns.clone(), w.id.name.clone()), (w.id.clone(), cause));
        }
    }
    let applied = rows
        .values()
        .filter(|r| matches!(r.action, Action::Create | Action::Update))
        .count();
    let mut failed = false;
    let mut status = "Synced";
    if opts.wait && !rollouts.is_empty() {
        let targets: Vec<(String, String)> = rollouts.keys().cloned().collect();
        let remaining = p.deadline.saturating_duration_since(Instant::now());
        let outcomes = rollout::wait(
            client,
            &targets,
            &apply::selector(&opts.source_name),
            remaining,
            on_progress,
        )
        .await?;
        for o in outcomes {
            let Some((id, cause)) = rollouts.get(&(o.namespace.clone(), o.name.clone())) else {
                continue;
            };
            let mut cause = *cause;
            let rollback_to = reverts.get(id).copied();
            if rollback_to.is_some() {
                cause = Cause::Revert;
            } else if o.status == rollout::Status::Complete && cause == Cause::Template {
                let deployment = written.iter().find(|w| &w.id == id).map(|w| &w.after);
                if let Some(d) = deployment {
                    let mut d = d.clone();
                    if let (Some(rev), Some(meta)) = (o.revision, d.get_mut("metadata")) {
                        meta["annotations"]["deployment.kubernetes.io/revision"] =
                            Value::String(rev.to_string());
                    }
                    if apply::is_revert(client, &d, p.deadline).await {
                        cause = Cause::Revert;
                    }
                }
            }
            if o.status != rollout::Status::Complete {
                failed = true;
                status = if o.status == rollout::Status::Failed {
                    "RolloutFailed"
                } else {
                    "RolloutTimeout"
                };
            }
            // Say which pods are not ready and why, before any undo replaces them.
            let (message, not_ready) = if o.status == rollout::Status::Complete {
                (None, Vec::new())
            } else {
                let pods = rollout::explain::not_ready_pods(client, &o.namespace, &o.name).await;
                for line in &pods {
                    tracing::warn!(deployment = %format!("{}/{}", o.namespace, o.name), "{line}");
                }
                (Some(o.message.clone()), pods)
            };
            let mut rolled_back = None;
            if o.status != rollout::Status::Complete
                && opts.rollback_on_failure
                && let Some(&to) = before.get(id)
                && o.revision != Some(to)
            {
                rollout::undo::undo_to(client, &o.namespace, &o.name, to, p.deadline).await?;
                tracing::warn!(
                    deployment = %format!("{}/{}", o.namespace, o.name),
                    to_revision = to,
                    "rollout failed: undone"
                );
                rolled_back = Some(RolledBack { to_revision: to });
                rolled_back_any = true;
            }
            if let Some(r) = rows.get_mut(id) {
                r.rollout = Some(RolloutReport {
                    cause,
                    revision: o.revision,
                    status: o.status,
                    rollback_to,
                    rolled_back,
                    message,
                    not_ready,
                });
            }
        }
    }
    let mut pruned = 0;
    if opts.prune && !p.orphans.is_empty() {
        if failed {
            tracing::warn!(
                count = p.orphans.len(),
                "a rollout did not complete: prune skipped"
            );
        } else {
            let doomed: Vec<(ObjectId, Kind)> = p
                .orphans
                .iter()
                .map(|(id, k, _)| (id.clone(), k.clone()))
                .collect();
            for id in apply::delete(client, &doomed, opts.concurrency, p.deadline).await? {
                pruned += 1;
                rows.insert(id.clone(), ChangeReport::new(&id, Action::Delete));
            }
        }
    }
    // The inventory: desired objects, plus orphans still alive (not pruned this time).
    let mut objects: BTreeSet<ObjectId> = p
        .planned
        .iter()
        .map(|pl| pl.target.object.id.clone())
        .collect();
    for (id, _, _) in &p.orphans {
        if rows.get(id).is_none_or(|r| r.action != Action::Delete) {
            objects.insert(id.clone());
        }
    }
    let baseline = (status == "Synced" && !rolled_back_any)
        .then(|| {
            record_baseline(
                baseline_key(opts, &p.tree),
                &mut p.planned,
                &written,
                configs,
            )
        })
        .flatten();
    let inv = Inventory {
        source: opts.source_name.clone(),
        repo: opts.repo.url.clone(),
        path: opts.path.clone(),
        commit: p.commit.sha.clone(),
        synced_at: jiff::Timestamp::now().to_string(),
        status: status.to_string(),
        held: if rolled_back_any {
            p.commit.sha.clone()
        } else {
            String::new()
        },
        objects,
        baseline,
    };
    // A new baseline alone is no reason to write (a no-op sync writes nothing); with the
    // writes of a sync it goes along.
    let wrote = applied > 0 || pruned > 0;
    if p.inventory
        .as_ref()
        .is_none_or(|old| !old.same_as(&inv) || (wrote && old.baseline != inv.baseline))
    {
        apply::write_inventory(client, &opts.inventory_namespace, &inv, p.deadline).await?;
    }
    tracing::debug!("sync done");
    crate::dispose::dispose((p.planned, p.orphans, p.inventory, written, before));
    Ok(SyncReport {
        commit: p.commit,
        dry_run: false,
        changes: sorted_changes(rows),
        status: status.to_string(),
        failed,
        applied,
        pruned,
        held: rolled_back_any,
    })
}

/// The baseline of a sync that ended `Synced`: each desired object with the fingerprint of the
/// state it was left in (the apply's response, or the listed object if it was unchanged).
/// `None` when any object's state cannot be recorded (see [`apply::baseline::settled`]):
/// a partial baseline could never match.
fn record_baseline(
    key: String,
    planned: &mut [Planned],
    written: &[apply::Written],
    configs: BTreeMap<ConfigRef, String>,
) -> Option<Baseline> {
    let after: HashMap<&ObjectId, &Value> = written.iter().map(|w| (&w.id, &w.after)).collect();
    let parts = crate::in_chunks(planned, 256, |part| {
        part.iter()
            .map(|pl| {
                let id = &pl.target.object.id;
                let state = after.get(id).copied().or(pl.live.as_ref())?;
                let Some(fp) =
                    apply::baseline::settled(&pl.target.object.body, state, apply::FIELD_MANAGER)
                else {
                    tracing::debug!(object = %apply::display(id), "no baseline: its state cannot be recorded");
                    return None;
                };
                Some((id.clone(), fp))
            })
            .collect::<Option<Vec<_>>>()
    })
    .ok()?;
    let mut objects = HashMap::new();
    for part in parts {
        objects.extend(part?);
    }
    Some(Baseline {
        key,
        objects,
        configs,
    })
}

/// The change rows in object order (group, version, kind, namespace, name).
fn sorted_changes(rows: HashMap<ObjectId, ChangeReport>) -> Vec<ChangeReport> {
    let mut rows: Vec<(ObjectId, ChangeReport)> = rows.into_iter().collect();
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    rows.into_iter().map(|(_, r)| r).collect()
}

/// Finds the Deployments whose desired template (after the server's defaulting: a dry-run
/// apply) returns to an older ReplicaSet's, and gives each the change-cause
/// `rollback to revision N (…)` (on the Deployment's metadata, so the old ReplicaSet is still
/// reused). Returns the revision each returns to.
async fn mark_reverts(
    client: &Client,
    planned: &mut [Planned],
    commit: &Commit,
    deadline: Instant,
) -> Result<BTreeMap<ObjectId, u64>, EngineError> {
    let mut reverts = BTreeMap::new();
    for pl in planned.iter_mut() {
        let id = &pl.target.object.id;
        if id.group != "apps" || id.kind != "Deployment" || pl.action != Action::Update {
            continue;
        }
        let Some(live) = &pl.live else { continue };
        let dry = apply::apply_one(client, pl, true, deadline).await?;
        let Some(n) = rollout::undo::revert_target(client, live, &dry.after, deadline).await else {
            continue;
        };
        let cause = rollout::undo::rollback_change_cause(n, commit);
        if let Some(meta) = pl.target.object.body.get_mut("metadata")
            && let Some(m) = meta.as_object_mut()
        {
            let annotations = m
                .entry("annotations")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(a) = annotations.as_object_mut() {
                a.insert(
                    transform::CHANGE_CAUSE_ANNOTATION.into(),
                    Value::String(cause),
                );
            }
        }
        reverts.insert(id.clone(), n);
    }
    Ok(reverts)
}

/// Shows what a sync would change in the live cluster (server-side apply dry-run), writing
/// nothing. Orphans (managed objects the commit no longer contains) show as deletes.
pub async fn diff(client: &Client, opts: &SyncOptions) -> Result<DiffReport, EngineError> {
    let deadline = Instant::now() + opts.timeout;
    let (located, view) = tokio::join!(locate(opts), read_cluster(client, opts, deadline));
    let (located, view) = located_first(located, view, opts).await?;
    diff_located(client, view, located, opts, deadline).await
}

/// [`diff`] of a commit already loaded, with the cluster already read.
pub async fn diff_loaded(
    client: &Client,
    view: ClusterView,
    loaded: Loaded,
    opts: &SyncOptions,
    deadline: Instant,
) -> Result<DiffReport, EngineError> {
    use futures::{StreamExt, TryStreamExt};
    let mut loaded = loaded;
    hash_live_configs(client, &mut loaded, deadline).await?;
    let p = prepare(client, view, loaded, opts, deadline).await?;
    let changed: Vec<&Planned> = p
        .planned
        .iter()
        .filter(|pl| pl.action != Action::Unchanged)
        .collect();
    let deadline = p.deadline;
    let mut rows: Vec<ChangeReport> = futures::stream::iter(changed)
        .map(|pl| async move {
            let before = match &pl.live {
                Some(l) => Some(l.clone()),
                None => apply::get_live(client, &pl.target, deadline).await?,
            };
            let written = apply::apply_one(client, pl, true, deadline).await?;
            // Equal apart from server fields and the per-commit annotations: a sync would not
            // change the object's content, so there is nothing to show.
            if before.as_ref().map(crate::plan::comparable)
                == Some(crate::plan::comparable(&written.after))
            {
                return Ok::<_, apply::ApplyError>(None);
            }
            let id = &pl.target.object.id;
            let action = if before.is_some() {
                Action::Update
            } else {
                Action::Create
            };
            let mut r = ChangeReport::new(id, action);
            r.diff = Some(crate::plan::unified_diff(
                before.as_ref(),
                Some(&written.after),
                &crate::plan::label(id),
            ));
            Ok(Some(r))
        })
        .buffer_unordered(opts.concurrency.max(1))
        .try_filter_map(|r| async move { Ok(r) })
        .try_collect()
        .await?;
    for (id, _, live) in &p.orphans {
        let mut r = ChangeReport::new(id, Action::Delete);
        r.diff = Some(crate::plan::unified_diff(
            Some(live),
            None,
            &crate::plan::label(id),
        ));
        rows.push(r);
    }
    rows.sort_by(|a, b| (&a.kind, &a.namespace, &a.name).cmp(&(&b.kind, &b.namespace, &b.name)));
    crate::dispose::dispose((p.planned, p.orphans, p.inventory));
    Ok(DiffReport {
        commit: p.commit,
        changes: rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opts() -> SyncOptions {
        SyncOptions::new("s", SyncOptions::repo_spec(".", "/tmp/cache"))
    }

    #[test]
    fn change_report_json() {
        let id = ObjectId {
            group: "".into(),
            version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: None,
            name: "a".into(),
        };
        let mut r = ChangeReport::new(&id, Action::Update);
        r.rollout = Some(RolloutReport {
            cause: Cause::Config,
            revision: Some(2),
            status: rollout::Status::Complete,
            rollback_to: None,
            rolled_back: None,
            message: None,
            not_ready: Vec::new(),
        });
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"kind": "ConfigMap", "namespace": null, "name": "a", "action": "update",
                "rollout": {"cause": "config", "revision": 2, "status": "complete"}})
        );
    }

    fn target(kind: &str, namespace: Option<&str>, name: &str) -> apply::Target {
        apply::Target {
            object: manifest::Object {
                id: ObjectId {
                    group: String::new(),
                    version: "v1".into(),
                    kind: kind.into(),
                    namespace: namespace.map(str::to_string),
                    name: name.into(),
                },
                body: json!({}),
                origin: manifest::Origin {
                    file: "a.yaml".into(),
                    document: 0,
                    line: 1,
                },
            },
            kind: apply::Kind {
                resource: kube::discovery::ApiResource::erase::<
                    k8s_openapi::api::core::v1::ConfigMap,
                >(&()),
                namespaced: namespace.is_some(),
            },
        }
    }

    #[test]
    fn allowed_namespaces_and_kinds_name_the_object() {
        let mut o = opts();
        let ok = target("ConfigMap", Some("team"), "a");
        assert!(check_allowed(&o, std::slice::from_ref(&ok)).is_ok());
        o.allowed_namespaces = vec!["team".into()];
        assert!(check_allowed(&o, &[ok.clone(), target("Namespace", None, "team")]).is_ok());
        let err = check_allowed(&o, &[target("ConfigMap", Some("other"), "b")]).unwrap_err();
        assert!(err.to_string().contains("ConfigMap other/b"), "{err}");
        assert!(check_allowed(&o, &[target("ClusterRole", None, "r")]).is_err());
        o.allowed_kinds = vec!["Secret".into()];
        let err = check_allowed(&o, &[ok]).unwrap_err();
        assert!(err.to_string().contains("allowedKinds"), "{err}");
    }

    #[test]
    fn defaults_match_the_cli() {
        let o = opts();
        assert_eq!(o.rev, "HEAD");
        assert_eq!(o.concurrency, 16);
        assert!(o.wait && !o.prune && !o.dry_run);
        assert!(o.allowed_kinds.is_empty() && o.allowed_namespaces.is_empty());
    }
}
