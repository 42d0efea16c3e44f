//! `kubesync sync` and `kubesync diff` against a live cluster.
//!
//! Owns the flags of both commands (→ `engine::SyncOptions`), connecting to the cluster, and
//! the text/JSON output and exit codes of the engine's reports. Must not: orchestrate the
//! stages (that is `engine`) or decide anything the stages decide.
use super::Exit;
use crate::apply::Action;
use crate::cluster::{self, Connection};
use crate::engine;
use crate::source;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::Instant;

/// Which cluster to talk to.
#[derive(Debug, Clone, Default, clap::Args)]
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
    /// When a rollout fails, undo it to the revision that ran before, and hold the commit.
    #[arg(long)]
    pub rollback_on_failure: bool,
    /// Re-apply a held commit (one whose rollout failed and was rolled back).
    #[arg(long)]
    pub force: bool,
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

impl SourceArgs {
    /// The engine options of these flags (sync-only options at their defaults).
    pub fn options(&self) -> engine::SyncOptions {
        let repo = source::RepoSpec {
            url: self.repo.clone(),
            cache_dir: self.cache_dir.clone(),
            credentials: source::Credentials {
                token_file: self.token_file.clone(),
                ssh_key: self.ssh_key.clone(),
                known_hosts: self.known_hosts.clone(),
            },
        };
        let mut o = engine::SyncOptions::new(self.source_name.clone(), repo);
        o.rev = self.rev.clone();
        o.path = self.path.clone();
        o.namespace = self.namespace.clone();
        o.inventory_namespace = self.inventory_namespace.clone();
        o.timeout = self.timeout;
        o.concurrency = self.concurrency;
        o
    }
}

impl SyncArgs {
    pub fn options(&self) -> engine::SyncOptions {
        let mut o = self.source.options();
        o.prune = self.prune;
        o.allow_mass_prune = self.allow_mass_prune;
        o.wait = self.wait;
        o.dry_run = self.dry_run;
        o.rollback_on_failure = self.rollback_on_failure;
        o.force = self.force;
        o
    }
}

/// The commit as far as it was read: only located when the inventory's baseline was recorded
/// for the same desired objects (the engine may then answer without its files).
enum Desired {
    Located(engine::Located),
    Loaded(engine::Loaded),
}

/// Connects and discovers while the commit is read (git, blocking): nothing is written
/// before the whole commit is validated, and a broken commit is reported before any cluster
/// error. The commit's files are read only if the inventory's baseline does not describe
/// them (known as soon as the inventory is read, before the lists).
async fn connect_and_load(
    cluster_args: &ClusterArgs,
    opts: &engine::SyncOptions,
) -> anyhow::Result<(Connection, engine::ClusterView, Desired, Instant)> {
    let deadline = Instant::now() + opts.timeout;
    let env = cluster::Environment::from_process(
        cluster_args.kubeconfig.clone(),
        Some(cluster_args.state.clone()),
    );
    let started = Instant::now();
    let (baseline_tx, baseline_rx) = tokio::sync::oneshot::channel::<Option<String>>();
    let cluster_side = async {
        let conn = cluster::connect(&env, cluster_args.context.as_deref()).await?;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "client ready"
        );
        let view = engine::read_cluster_with(&conn.client, opts, deadline, |inventory| {
            let key = engine::usable_baseline(inventory).map(str::to_string);
            // The git side may have failed already; then nobody is waiting.
            let _ = baseline_tx.send(key);
        })
        .await?;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "cluster read"
        );
        anyhow::Ok((conn, view))
    };
    let git_side = async {
        let located = engine::locate(opts).await?;
        // No answer (the cluster side failed first): read, so a broken commit is reported.
        let recorded = baseline_rx.await.ok().flatten();
        let desired = if recorded.as_deref() == Some(&engine::baseline_key(opts, &located.tree)) {
            Desired::Located(located)
        } else {
            Desired::Loaded(engine::read(located, opts).await?)
        };
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "commit loaded"
        );
        Ok::<_, engine::EngineError>(desired)
    };
    let (desired, connected) = tokio::join!(git_side, cluster_side);
    let desired = desired?;
    let (conn, view) = match connected {
        Ok(c) => c,
        Err(e) => {
            if let Desired::Located(located) = desired {
                engine::read(located, opts).await?;
            }
            return Err(e);
        }
    };
    Ok((conn, view, desired, deadline))
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
    let opts = args.options();
    let (conn, view, desired, deadline) = connect_and_load(&args.cluster, &opts).await?;
    let client = &conn.client;
    let result = match desired {
        Desired::Located(l) => {
            engine::sync_located(client, view, l, &opts, deadline, &progress_line).await
        }
        Desired::Loaded(l) => {
            engine::sync_loaded(client, view, l, &opts, deadline, &progress_line).await
        }
    };
    conn.close().await;
    tracing::debug!("connection closed");
    let report = result?;
    if report.held && report.applied == 0 && report.changes.is_empty() {
        eprintln!(
            "commit {} is held: its rollout failed and was rolled back; nothing was applied \
             (`kubesync sync --force` re-applies it; a new commit clears the hold)",
            report.commit.short()
        );
    }
    print_sync(args.output, &report)?;
    Ok(if report.failed {
        Exit::Changes
    } else {
        Exit::Ok
    })
}

fn print_sync(output: Output, report: &engine::SyncReport) -> anyhow::Result<()> {
    let (commit, rows, dry_run) = (&report.commit, &report.changes, report.dry_run);
    match output {
        Output::Json => {
            let mut doc = json!({"commit": commit.sha, "dryRun": dry_run, "changes": rows});
            if report.held {
                doc["held"] = json!(true);
            }
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Output::Text => {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for r in rows {
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
                if let Some(ro) = &r.rollout {
                    if let Some(message) = &ro.message {
                        println!("  {message}");
                    }
                    for pod in &ro.not_ready {
                        println!("  {pod}");
                    }
                }
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
    let opts = args.source.options();
    let (conn, view, desired, deadline) = connect_and_load(&args.cluster, &opts).await?;
    let client = &conn.client;
    let result = match desired {
        Desired::Located(l) => engine::diff_located(client, view, l, &opts, deadline).await,
        Desired::Loaded(l) => engine::diff_loaded(client, view, l, &opts, deadline).await,
    };
    conn.close().await;
    let report = result?;
    match args.output {
        Output::Json => {
            let doc = json!({"commit": report.commit.sha, "changes": report.changes});
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Output::Text => {
            for r in &report.changes {
                print!("{}", r.diff.as_deref().unwrap_or_default());
            }
        }
    }
    Ok(if report.changes.is_empty() {
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
        assert!(!a.rollback_on_failure && !a.force);
        let T { cmd: Cmd::Sync(a) } =
            T::parse_from(["t", "sync", "--rollback-on-failure", "--force"])
        else {
            panic!()
        };
        let o = a.options();
        assert!(o.rollback_on_failure && o.force && o.wait);
        let T { cmd: Cmd::Diff(d) } = T::parse_from(["t", "diff", "-o", "json", "--ref", "main"])
        else {
            panic!()
        };
        assert_eq!(d.output, Output::Json);
        assert_eq!(d.source.rev, "main");
    }
}
