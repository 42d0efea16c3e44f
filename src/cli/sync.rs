//! `kubesync sync` and `kubesync diff` against a live cluster.
//!
//! Owns the flags of both commands, the wiring of the stages (source → manifest → transform →
//! apply → rollout) and their text/JSON output. Must not: write anything before the whole
//! commit is validated (load errors, unknown kinds, missing namespaces), or decide anything
//! the stages decide (no-op detection, ordering, prune selection live in `apply`).
use super::Exit;
use crate::apply::{self, Action, Cause, Kind, Planned, inventory::Inventory};
use crate::cluster::{self, Connection};
use crate::manifest::{self, ObjectId};
use crate::rollout;
use crate::source::{self, Commit};
use crate::transform;
use anyhow::Context as _;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::Instant;

/// Which cluster to talk to.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// Path to a kubeconfig file (else `KUBECONFIG`, `~/.kube/config`, in-cluster, embedded).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long)]
    pub context: Option<String>,
    /// State folder of the embedded cluster, used only when no kubeconfig is found.
    #[arg(long, default_value = ".kubesync/cluster")]
    pub state: PathBuf,
}

/// Which commit, which path, and how objects are owned.
#[derive(Debug, Clone, clap::Args)]
pub struct SourceArgs {
    /// Repository: a local path or a remote URL.
    #[arg(long, default_value = ".")]
    pub repo: String,
    /// Branch, tag or sha to sync.
    #[arg(long = "ref", default_value = "HEAD")]
    pub rev: String,
    /// Folder of manifests inside the repository.
    #[arg(long, default_value = ".")]
    pub path: String,
    /// Namespace for namespaced objects that name none.
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
    /// Source name: the value of the `kubesync.io/source` ownership label (prune scope).
    #[arg(long = "source", default_value = "default")]
    pub source_name: String,
    /// Where remote repositories are cloned.
    #[arg(long, default_value = ".kubesync/cache")]
    pub cache_dir: PathBuf,
    /// File holding an https token for the remote.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Private key for ssh remotes.
    #[arg(long)]
    pub ssh_key: Option<PathBuf>,
    /// known_hosts for ssh remotes.
    #[arg(long)]
    pub known_hosts: Option<PathBuf>,
    /// Namespace of the inventory ConfigMap `kubesync-inventory-<source>`.
    #[arg(long, default_value = "default")]
    pub inventory_namespace: String,
    /// Concurrent requests within a stage.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Deadline of the whole command: API retries and rollout waits.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Delete objects of this source that the commit no longer contains.
    #[arg(long)]
    pub prune: bool,
    /// Allow a prune that removes more than half of the managed objects.
    #[arg(long)]
    pub allow_mass_prune: bool,
    /// Wait for the rollouts of Deployments whose pod template changed (`--wait=false` to skip).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub wait: bool,
    /// Do everything up to the writes and say what would happen.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub source: SourceArgs,
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: Output,
}

/// Everything known before the first write.
struct Prepared {
    conn: Connection,
    commit: Commit,
    planned: Vec<Planned>,
    /// Managed live objects the commit no longer contains, in deletion order.
    orphans: Vec<(ObjectId, Kind, Value)>,
    /// Number of live objects managed by this source.
    managed: usize,
    inventory: Option<Inventory>,
    deadline: Instant,
}

/// Reads the commit (git2 is blocking: a blocking task) and loads its objects.
async fn load_commit(args: &SourceArgs) -> anyhow::Result<(Commit, Vec<manifest::Object>)> {
    let spec = source::RepoSpec {
        url: args.repo.clone(),
        cache_dir: args.cache_dir.clone(),
        credentials: source::Credentials {
            token_file: args.token_file.clone(),
            ssh_key: args.ssh_key.clone(),
            known_hosts: args.known_hosts.clone(),
        },
    };
    let (rev, path) = (args.rev.clone(), args.path.clone());
    let snapshot =
        tokio::task::spawn_blocking(move || -> Result<source::Snapshot, source::SourceError> {
            let repo = source::Repo::open(&spec)?;
            repo.fetch()?;
            let commit = repo.resolve(&rev)?;
            repo.snapshot(&commit, &path)
        })
        .await
        .context("the git task failed")??;
    let options = manifest::LoadOptions {
        default_namespace: args.namespace.clone(),
        ..Default::default()
    };
    let mut objects = manifest::load(&snapshot, &options).with_context(|| {
        format!(
            "commit {} is invalid; nothing was written",
            snapshot.commit.short()
        )
    })?;
    let ctx = transform::Context {
        source: args.source_name.clone(),
        commit: snapshot.commit.clone(),
    };
    transform::apply(&mut objects, &ctx);
    Ok((snapshot.commit, objects))
}

async fn prepare(cluster_args: &ClusterArgs, args: &SourceArgs) -> anyhow::Result<Prepared> {
    let started = Instant::now();
    let deadline = started + args.timeout;
    let ms = || started.elapsed().as_millis() as u64;
    // Reading the commit (git, blocking) and the first cluster reads (connect, discovery)
    // overlap; nothing is written before the whole commit is validated, and a broken commit
    // is reported before any cluster error.
    let env = cluster::Environment::from_process(
        cluster_args.kubeconfig.clone(),
        Some(cluster_args.state.clone()),
    );
    let cluster_side = async {
        let conn = cluster::connect(&env, cluster_args.context.as_deref()).await?;
        let kinds = apply::Kinds::discover(&conn.client, deadline).await?;
        tracing::debug!(elapsed_ms = ms(), "discovery done");
        anyhow::Ok((conn, kinds))
    };
    let (loaded, connected) = tokio::join!(load_commit(args), cluster_side);
    let (commit, objects) = loaded?;
    tracing::debug!(elapsed_ms = ms(), objects = objects.len(), "commit loaded");
    let (conn, kinds) = connected?;
    let client = &conn.client;
    let targets = apply::resolve(objects, &kinds, &args.namespace)?;
    apply::check_namespaces(client, &targets, &args.inventory_namespace, deadline).await?;
    let inventory = apply::read_inventory(
        client,
        &args.inventory_namespace,
        &args.source_name,
        deadline,
    )
    .await?;
    let extra = inventory
        .as_ref()
        .map(|i| i.objects.clone())
        .unwrap_or_default();
    let to_list = apply::kinds_to_list(&targets, &extra, &kinds);
    let live = apply::list_managed(client, &to_list, &args.source_name, deadline).await?;
    tracing::debug!(
        elapsed_ms = ms(),
        live = live.len(),
        "managed objects listed"
    );
    let desired: BTreeSet<ObjectId> = targets.iter().map(|t| t.object.id.clone()).collect();
    let managed_ids: BTreeSet<ObjectId> = live.keys().cloned().collect();
    let orphans = apply::prune::select(&desired, &managed_ids)
        .into_iter()
        .filter_map(|id| {
            live.get(&id)
                .map(|(k, v)| (id.clone(), k.clone(), v.clone()))
        })
        .collect();
    let managed = live.len();
    let planned = apply::plan(targets, &live);
    tracing::debug!(elapsed_ms = ms(), "planned");
    Ok(Prepared {
        conn,
        commit,
        planned,
        orphans,
        managed,
        inventory,
        deadline,
    })
}

/// One row of the output.
#[derive(Debug, Clone, serde::Serialize)]
struct Row {
    kind: String,
    namespace: Option<String>,
    name: String,
    action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    rollout: Option<RolloutRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    diff: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
struct RolloutRow {
    cause: Cause,
    revision: Option<u64>,
    status: rollout::Status,
}

fn row(id: &ObjectId, action: Action) -> Row {
    Row {
        kind: id.kind.clone(),
        namespace: id.namespace.clone(),
        name: id.name.clone(),
        action,
        rollout: None,
        diff: None,
    }
}

/// Progress on stderr: a line per change, or on a terminal one live line that is replaced
/// until the Deployment is done.
fn progress_line(line: &str, done: bool) {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        if done {
            eprintln!("\r\x1b[2K{line}");
        } else {
            eprint!("\r\x1b[2K{line}");
        }
    } else {
        eprintln!("{line}");
    }
}

pub async fn run_sync(args: SyncArgs) -> anyhow::Result<Exit> {
    let prepared = prepare(&args.cluster, &args.source).await?;
    let result = sync_prepared(&args, &prepared).await;
    prepared.conn.close().await;
    result
}

async fn sync_prepared(args: &SyncArgs, p: &Prepared) -> anyhow::Result<Exit> {
    let client = &p.conn.client;
    let src = &args.source;
    if args.prune {
        apply::prune::guard(
            p.planned.len(),
            p.managed,
            p.orphans.len(),
            args.allow_mass_prune,
        )?;
    }
    let mut rows: BTreeMap<ObjectId, Row> = BTreeMap::new();
    if args.dry_run {
        for pl in &p.planned {
            rows.insert(
                pl.target.object.id.clone(),
                row(&pl.target.object.id, pl.action),
            );
        }
        if args.prune {
            for (id, _, _) in &p.orphans {
                rows.insert(id.clone(), row(id, Action::Delete));
            }
        }
        print_sync(args.output, &p.commit, &rows, true)?;
        return Ok(Exit::Ok);
    }
    let written = apply::write(client, &p.planned, src.concurrency, p.deadline).await?;
    for pl in &p.planned {
        rows.insert(
            pl.target.object.id.clone(),
            row(&pl.target.object.id, pl.action),
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
    let mut failed = false;
    let mut status = "Synced";
    if args.wait && !rollouts.is_empty() {
        let targets: Vec<(String, String)> = rollouts.keys().cloned().collect();
        let remaining = p.deadline.saturating_duration_since(Instant::now());
        let outcomes = rollout::wait(
            client,
            &targets,
            &apply::selector(&src.source_name),
            remaining,
            &progress_line,
        )
        .await?;
        for o in outcomes {
            let Some((id, cause)) = rollouts.get(&(o.namespace.clone(), o.name.clone())) else {
                continue;
            };
            let mut cause = *cause;
            if o.status == rollout::Status::Complete && cause == Cause::Template {
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
            if let Some(r) = rows.get_mut(id) {
                r.rollout = Some(RolloutRow {
                    cause,
                    revision: o.revision,
                    status: o.status,
                });
            }
        }
    }
    if args.prune && !p.orphans.is_empty() {
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
            for id in apply::delete(client, &doomed, src.concurrency, p.deadline).await? {
                rows.insert(id.clone(), row(&id, Action::Delete));
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
    let inv = Inventory {
        source: src.source_name.clone(),
        repo: src.repo.clone(),
        path: src.path.clone(),
        commit: p.commit.sha.clone(),
        synced_at: jiff::Timestamp::now().to_string(),
        status: status.to_string(),
        objects,
    };
    if p.inventory.as_ref().is_none_or(|old| !old.same_as(&inv)) {
        apply::write_inventory(client, &src.inventory_namespace, &inv, p.deadline).await?;
    }
    print_sync(args.output, &p.commit, &rows, false)?;
    Ok(if failed { Exit::Changes } else { Exit::Ok })
}

fn print_sync(
    output: Output,
    commit: &Commit,
    rows: &BTreeMap<ObjectId, Row>,
    dry_run: bool,
) -> anyhow::Result<()> {
    let rows: Vec<&Row> = rows.values().collect();
    match output {
        Output::Json => {
            let doc = json!({"commit": commit.sha, "dryRun": dry_run, "changes": rows});
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Output::Text => {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for r in &rows {
                let word = match r.action {
                    Action::Create => "created",
                    Action::Update => "updated",
                    Action::Delete => "deleted",
                    Action::Unchanged => "unchanged",
                };
                *counts.entry(word).or_default() += 1;
                if r.action == Action::Unchanged {
                    continue;
                }
                let object = match &r.namespace {
                    Some(ns) => format!("{} {ns}/{}", r.kind, r.name),
                    None => format!("{} {}", r.kind, r.name),
                };
                let mut line = format!("{object} {word}");
                if let Some(ro) = &r.rollout {
                    let cause = serde_json::to_value(ro.cause)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string));
                    let st = serde_json::to_value(ro.status)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string));
                    line.push_str(&format!(
                        " (rollout: {}, revision {}, {})",
                        cause.unwrap_or_default(),
                        ro.revision
                            .map(|r| r.to_string())
                            .unwrap_or_else(|| "?".into()),
                        st.unwrap_or_default()
                    ));
                }
                println!("{}{line}", if dry_run { "(dry run) " } else { "" });
            }
            let summary: Vec<String> = counts.iter().map(|(w, n)| format!("{n} {w}")).collect();
            println!(
                "{} {} {}: {}",
                if dry_run { "would sync" } else { "synced" },
                commit.short(),
                commit.subject,
                if summary.is_empty() {
                    "no objects".to_string()
                } else {
                    summary.join(", ")
                }
            );
        }
    }
    Ok(())
}

pub async fn run_diff(args: DiffArgs) -> anyhow::Result<Exit> {
    let prepared = prepare(&args.cluster, &args.source).await?;
    let result = diff_prepared(&args, &prepared).await;
    prepared.conn.close().await;
    result
}

async fn diff_prepared(args: &DiffArgs, p: &Prepared) -> anyhow::Result<Exit> {
    use futures::{StreamExt, TryStreamExt};
    let client = &p.conn.client;
    let changed: Vec<&Planned> = p
        .planned
        .iter()
        .filter(|pl| pl.action != Action::Unchanged)
        .collect();
    let deadline = p.deadline;
    let mut rows: Vec<Row> = futures::stream::iter(changed)
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
            let mut r = row(id, action);
            r.diff = Some(crate::plan::unified_diff(
                before.as_ref(),
                Some(&written.after),
                &crate::plan::label(id),
            ));
            Ok(Some(r))
        })
        .buffer_unordered(args.source.concurrency.max(1))
        .try_filter_map(|r| async move { Ok(r) })
        .try_collect()
        .await?;
    for (id, _, live) in &p.orphans {
        let mut r = row(id, Action::Delete);
        r.diff = Some(crate::plan::unified_diff(
            Some(live),
            None,
            &crate::plan::label(id),
        ));
        rows.push(r);
    }
    rows.sort_by(|a, b| (&a.kind, &a.namespace, &a.name).cmp(&(&b.kind, &b.namespace, &b.name)));
    match args.output {
        Output::Json => {
            let doc = json!({"commit": p.commit.sha, "changes": rows});
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Output::Text => {
            for r in &rows {
                print!("{}", r.diff.as_deref().unwrap_or_default());
            }
        }
    }
    Ok(if rows.is_empty() {
        Exit::Ok
    } else {
        Exit::Changes
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[command(subcommand)]
        cmd: Cmd,
    }
    #[derive(Debug, clap::Subcommand)]
    enum Cmd {
        Sync(SyncArgs),
        Diff(DiffArgs),
    }

    #[test]
    fn sync_defaults() {
        let T { cmd: Cmd::Sync(a) } = T::parse_from(["t", "sync"]) else {
            panic!()
        };
        assert_eq!(a.source.repo, ".");
        assert_eq!(a.source.rev, "HEAD");
        assert_eq!(a.source.path, ".");
        assert_eq!(a.source.namespace, "default");
        assert_eq!(a.source.source_name, "default");
        assert_eq!(a.source.concurrency, 16);
        assert_eq!(a.source.timeout, Duration::from_secs(300));
        assert!(a.wait && !a.prune && !a.dry_run);
        let T { cmd: Cmd::Sync(a) } =
            T::parse_from(["t", "sync", "--wait=false", "--timeout", "90s", "--prune"])
        else {
            panic!()
        };
        assert!(!a.wait && a.prune);
        assert_eq!(a.source.timeout, Duration::from_secs(90));
        let T { cmd: Cmd::Diff(d) } = T::parse_from(["t", "diff", "-o", "json", "--ref", "main"])
        else {
            panic!()
        };
        assert_eq!(d.output, Output::Json);
        assert_eq!(d.source.rev, "main");
    }

    #[test]
    fn json_rows() {
        let id = ObjectId {
            group: "".into(),
            version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: None,
            name: "a".into(),
        };
        let mut r = row(&id, Action::Update);
        r.rollout = Some(RolloutRow {
            cause: Cause::Config,
            revision: Some(2),
            status: rollout::Status::Complete,
        });
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"kind": "ConfigMap", "namespace": null, "name": "a", "action": "update",
                "rollout": {"cause": "config", "revision": 2, "status": "complete"}})
        );
    }
}
