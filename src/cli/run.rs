//! `kubesync run`: the long-running agent. Turns flags (a `--config` file, or one source
//! given with sync-like flags) into a validated [`AgentConfig`] once, then runs
//! [`crate::agent::run`] until SIGTERM or Ctrl-C.
//!
//! Parsing is separate from effects: [`Args::to_config`] is pure apart from reading the config
//! file; [`run`] does the I/O. Never logs credentials.
use anyhow::Context as _;
use std::path::PathBuf;
use std::sync::Arc;

use crate::agent::config::{Defaults, RawConfig, RawCredentials, RawSource};
use crate::agent::{self, AgentConfig, Syncer};
use crate::cli::Exit;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// Which cluster to sync to (as for `kubesync sync`).
    #[command(flatten)]
    pub cluster: crate::cli::sync::ClusterArgs,
    /// Agent configuration file (YAML, see docs/operations.md). Exclusive with --repo.
    #[arg(long, short = 'c', env = "KUBESYNC_CONFIG", conflicts_with = "repo")]
    pub config: Option<PathBuf>,
    /// Address of the health/metrics/status/webhook server [default: 0.0.0.0:8080].
    #[arg(long, env = "KUBESYNC_LISTEN")]
    pub listen: Option<String>,
    /// This replica's name in the leader Lease [default: $POD_NAME, else the host name].
    #[arg(long)]
    pub identity: Option<String>,
    /// Run as the only writer, without a Lease (single replica).
    #[arg(long)]
    pub no_leader_election: bool,

    /// One source without a config file: repository URL or local path.
    #[arg(long)]
    pub repo: Option<String>,
    /// Branch, tag, full ref or sha to follow [default: HEAD].
    #[arg(long = "ref", requires = "repo")]
    pub git_ref: Option<String>,
    /// Directory of manifests in the repository [default: .].
    #[arg(long, requires = "repo")]
    pub path: Option<String>,
    /// Source name (the `kubesync.io/source` label) [default: default].
    #[arg(long, requires = "repo")]
    pub name: Option<String>,
    /// How often to ask git whether the ref moved, e.g. 30s [default: 1m].
    #[arg(long, requires = "repo")]
    pub interval: Option<String>,
    /// Namespace for namespaced objects that name none.
    #[arg(long, short = 'n', requires = "repo")]
    pub namespace: Option<String>,
    /// Never delete objects that left git.
    #[arg(long, requires = "repo")]
    pub no_prune: bool,
    /// Keep a failed rollout instead of undoing it.
    #[arg(long, requires = "repo")]
    pub no_rollback: bool,
    /// File holding an https token for the repository.
    #[arg(long, requires = "repo")]
    pub token_file: Option<PathBuf>,
    /// ssh private key for the repository.
    #[arg(long, requires = "repo")]
    pub ssh_key: Option<PathBuf>,
    /// known_hosts file checked against the ssh host key.
    #[arg(long, requires = "repo")]
    pub known_hosts: Option<PathBuf>,
    /// File holding the webhook secret.
    #[arg(long, requires = "repo")]
    pub webhook_secret_file: Option<PathBuf>,
}

impl Args {
    /// The validated config these flags describe (reads the `--config` file, nothing else).
    pub fn to_config(&self, defaults: &Defaults) -> anyhow::Result<AgentConfig> {
        let mut raw = match (&self.config, &self.repo) {
            (Some(path), _) => {
                RawConfig::from_file(path).with_context(|| format!("in {}", path.display()))?
            }
            (None, Some(repo)) => RawConfig {
                webhook: crate::agent::config::RawWebhook {
                    secret_file: self.webhook_secret_file.clone(),
                    max_body_bytes: None,
                },
                sources: vec![RawSource {
                    name: Some(self.name.clone().unwrap_or_else(|| "default".to_owned())),
                    repo: Some(repo.clone()),
                    git_ref: self.git_ref.clone(),
                    path: self.path.clone(),
                    interval: self.interval.clone(),
                    namespace: self.namespace.clone(),
                    prune: Some(!self.no_prune),
                    rollback_on_failure: Some(!self.no_rollback),
                    allowed_namespaces: Vec::new(),
                    allowed_kinds: Vec::new(),
                    credentials: RawCredentials {
                        token_file: self.token_file.clone(),
                        ssh_key: self.ssh_key.clone(),
                        known_hosts: self.known_hosts.clone(),
                    },
                    webhook_secret_file: None,
                }],
                ..RawConfig::default()
            },
            (None, None) => anyhow::bail!("give --config FILE, or one source with --repo"),
        };
        if let Some(listen) = &self.listen {
            raw.listen = Some(listen.clone());
        }
        if let Some(identity) = &self.identity {
            raw.identity = Some(identity.clone());
        }
        if self.no_leader_election {
            raw.leader_election.enabled = Some(false);
        }
        let config = raw.validate(defaults)?;
        Ok(config)
    }
}

/// `kubesync run`: connect to the cluster the flags select, and run the agent with the sync
/// engine ([`agent::syncer::EngineSyncer`]) until SIGTERM or Ctrl-C.
pub async fn run_command(args: Args) -> anyhow::Result<Exit> {
    let config = args.to_config(&Defaults::from_env())?;
    // A long-running process: keep glibc from spreading freed memory over many arenas
    // (see `agent::memory`), unless the operator chose a value.
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        agent::memory::limit_arenas(2);
    }
    let env = crate::cluster::Environment::from_process(
        args.cluster.kubeconfig.clone(),
        Some(args.cluster.state.clone()),
    );
    let conn = crate::cluster::connect(&env, args.cluster.context.as_deref()).await?;
    let syncer = Arc::new(agent::syncer::EngineSyncer::new(
        conn.client.clone(),
        &config,
    ));
    let result = run(args, conn.client.clone(), syncer).await;
    conn.close().await;
    result
}

/// Run the agent with the given cluster client and sync engine until SIGTERM or Ctrl-C.
/// Exit 0 after a clean shutdown; start-up errors are returned (exit 2).
pub async fn run(
    args: Args,
    client: kube::Client,
    syncer: Arc<dyn Syncer>,
) -> anyhow::Result<Exit> {
    let config = args.to_config(&Defaults::from_env())?;
    config.check_files()?;
    tracing::info!(
        listen = %config.listen,
        identity = %config.identity,
        sources = config.sources.len(),
        leader_election = config.election.enabled,
        "starting agent"
    );
    let agent = agent::Agent::new(client, syncer, &config);
    agent::run(config, agent, shutdown_signal()).await?;
    Ok(Exit::Ok)
}

/// Completes on SIGTERM (what Kubernetes sends) or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn defaults() -> Defaults {
        Defaults {
            identity: "pod-a".into(),
            namespace: "ops".into(),
        }
    }

    #[test]
    fn one_source_from_flags() {
        let cli = Cli::try_parse_from([
            "run",
            "--repo",
            "/srv/repo",
            "--ref",
            "main",
            "--path",
            "apps",
            "--interval",
            "30s",
            "--no-prune",
            "--no-leader-election",
            "--listen",
            "127.0.0.1:0",
        ])
        .unwrap();
        let c = cli.args.to_config(&defaults()).unwrap();
        let s = &c.sources[0];
        assert_eq!(
            (s.name.as_str(), s.git_ref.as_str(), s.path.as_str()),
            ("default", "main", "apps")
        );
        assert_eq!(s.interval, std::time::Duration::from_secs(30));
        assert!(!s.prune && s.rollback_on_failure);
        assert!(!c.election.enabled);
        assert_eq!(c.listen.port(), 0);
    }

    #[test]
    fn config_and_repo_are_exclusive_and_one_is_required() {
        assert!(Cli::try_parse_from(["run", "--config", "a.yaml", "--repo", "r"]).is_err());
        assert!(Cli::try_parse_from(["run", "--ref", "main"]).is_err());
        let none = Cli::try_parse_from(["run"]).unwrap();
        assert!(none.args.to_config(&defaults()).is_err());
    }

    #[test]
    fn config_file_errors_name_the_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubesync.yaml");
        std::fs::write(&path, "sources: [{name: a, repo: r, interval: never}]").unwrap();
        let args = Args {
            config: Some(path.clone()),
            ..Args::default()
        };
        let e = format!("{:#}", args.to_config(&defaults()).unwrap_err());
        assert!(e.contains("sources[0].interval"), "{e}");
    }

    #[test]
    fn bad_flag_values_are_named() {
        let cli = Cli::try_parse_from(["run", "--repo", "r", "--interval", "often"]).unwrap();
        let e = cli.args.to_config(&defaults()).unwrap_err().to_string();
        assert!(e.contains("interval"), "{e}");
    }
}
