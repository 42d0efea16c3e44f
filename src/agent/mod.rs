//! The long-running agent (`kubesync run`): for every configured source, notice when git
//! moves (poll, local watch, webhook) or the cluster drifts, and sync; serve health, metrics,
//! status and webhooks over HTTP; and with several replicas let only the Lease holder write.
//!
//! The agent never applies anything itself: syncing one source at one commit goes through
//! the [`Syncer`] seam (the sync engine behind it), and "where does the ref point?" through
//! [`Revisions`]. It only speaks Kubernetes through `kube` and never special-cases kubesim.
use futures::future::BoxFuture as FuturesBoxFuture;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use tokio::sync::{Notify, watch};

pub mod backoff;
pub mod config;
pub mod drift;
pub mod election;
pub mod git;
pub mod health;
pub mod memory;
pub mod metrics;
pub mod server;
pub mod status;
pub mod syncer;
pub mod webhook;
mod worker;

pub use config::{AgentConfig, GitCredentials, SourceConfig};
pub use election::Role;

/// A boxed, sendable future (what the seams return, so they stay object-safe).
pub type BoxFuture<'a, T> = FuturesBoxFuture<'a, T>;

/// Syncs one source at one commit: fetch, load, plan, apply, watch rollouts. Implemented by
/// an adapter over the sync engine; tests use fakes.
///
/// The agent may drop the returned future at any await point (it lost the lease, or
/// shutdown grace ran out): an implementation must leave the cluster in a state the next
/// sync converges from (server-side apply makes that natural).
pub trait Syncer: Send + Sync + 'static {
    fn sync<'a>(
        &'a self,
        source: &'a SourceConfig,
        commit: &'a str,
    ) -> BoxFuture<'a, Result<SyncResult, SyncFailure>>;

    /// As [`Syncer::sync`], telling `progress` about rollouts as they start and end, so
    /// `/status` shows them while the sync is in flight. The default ignores `progress`.
    fn sync_with_progress<'a>(
        &'a self,
        source: &'a SourceConfig,
        commit: &'a str,
        progress: &'a Progress,
    ) -> BoxFuture<'a, Result<SyncResult, SyncFailure>> {
        let _ = progress;
        self.sync(source, commit)
    }
}

/// Where a sync in flight reports its rollouts (shown by `/status` under `rollouts`).
#[derive(Debug, Clone)]
pub struct Progress {
    shared: Option<Arc<Shared>>,
    source: String,
}

impl Progress {
    /// A reporter that reports nowhere (for tests and one-shot use).
    pub fn detached(source: impl Into<String>) -> Self {
        Progress {
            shared: None,
            source: source.into(),
        }
    }

    /// The rollout of Deployment `namespace/name` started (or is still going).
    pub fn rollout_started(&self, deployment: &str) {
        self.set(deployment, status::RolloutState::Progressing);
    }

    /// The rollout of Deployment `namespace/name` ended.
    pub fn rollout_finished(&self, deployment: &str, result: RolloutResult) {
        self.set(deployment, status::RolloutState::Done(result));
    }

    fn set(&self, deployment: &str, state: status::RolloutState) {
        let Some(shared) = &self.shared else { return };
        shared.board.update(&self.source, |s| {
            match s.in_flight.iter_mut().find(|r| r.deployment == deployment) {
                Some(r) => r.state = state,
                None => s.in_flight.push(status::InFlightRollout {
                    deployment: deployment.to_owned(),
                    state,
                }),
            }
        });
    }
}

/// Tells where a source's ref points now, as cheaply as possible (no fetch).
pub trait Revisions: Send + Sync + 'static {
    fn head<'a>(&'a self, source: &'a SourceConfig) -> BoxFuture<'a, Result<String, SyncFailure>>;
}

/// A sync that ran to the end (its rollouts may still have failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResult {
    /// Full sha that was applied.
    pub commit: String,
    /// Objects created, updated or pruned.
    pub changed: usize,
    /// `namespace/name` of each Deployment rolled out, and how its rollout ended.
    pub rollouts: Vec<(String, RolloutResult)>,
    /// The commit's rollout failed (and was undone when `rollbackOnFailure`): do not apply it
    /// again until the ref moves on.
    pub held: bool,
    /// Time spent fetching from git inside the sync, if the engine measured it.
    pub fetch_duration: Option<std::time::Duration>,
}

/// How one Deployment rollout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RolloutResult {
    Complete,
    /// Progress deadline exceeded (or the pods never became available).
    Failed,
    /// Failed and then undone to the last complete revision.
    RolledBack,
}

impl RolloutResult {
    /// Fixed string for metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutResult::Complete => "complete",
            RolloutResult::Failed => "failed",
            RolloutResult::RolledBack => "rolled_back",
        }
    }
}

/// A sync or ref lookup that failed; retried with backoff.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SyncFailure {
    /// Fixed string (`git`, `manifest`, `apply`, `cluster`…) for metrics and logs.
    pub kind: &'static str,
    /// Human reason; never contains secrets.
    pub message: String,
}

impl SyncFailure {
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        SyncFailure {
            kind,
            message: message.into(),
        }
    }
}

/// What the agent needs from outside: a cluster client (for the Lease, drift watches and
/// Events), the sync engine, and ref lookups.
#[derive(Clone)]
pub struct Agent {
    pub client: kube::Client,
    pub syncer: Arc<dyn Syncer>,
    pub revisions: Arc<dyn Revisions>,
}

impl Agent {
    /// An agent using git2 ref lookups with the config's git timeout.
    pub fn new(client: kube::Client, syncer: Arc<dyn Syncer>, config: &AgentConfig) -> Self {
        Agent {
            client,
            syncer,
            revisions: Arc::new(git::GitRevisions {
                timeout: config.git_timeout,
            }),
        }
    }
}

/// The agent failed to start (once running, errors are retried and shown in status).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read webhook secret {path}: {source}")]
    Secret {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// Wakes a source's worker: a poll is due early (webhook, local ref change) or the cluster
/// drifted (`force`: re-apply even if the commit has not moved).
#[derive(Debug, Default)]
pub struct Trigger {
    notify: Notify,
    force: AtomicBool,
    /// Objects found drifted since the last correction, for the Events that follow it.
    drifted: std::sync::Mutex<Vec<drift::Drifted>>,
}

impl Trigger {
    /// Look at git now.
    pub fn poke(&self) {
        self.notify.notify_one();
    }

    /// Re-apply the current commit now (drift).
    pub fn force(&self) {
        self.force.store(true, std::sync::atomic::Ordering::SeqCst);
        self.notify.notify_one();
    }

    fn take_force(&self) -> bool {
        self.force.swap(false, std::sync::atomic::Ordering::SeqCst)
    }

    fn add_drifted(&self, d: drift::Drifted) {
        let mut list = match self.drifted.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Bounded: one Event per object is enough.
        if list.len() < 100
            && !list
                .iter()
                .any(|x| x.kind == d.kind && x.namespace == d.namespace && x.name == d.name)
        {
            list.push(d);
        }
    }

    fn take_drifted(&self) -> Vec<drift::Drifted> {
        let mut list = match self.drifted.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        std::mem::take(&mut *list)
    }
}

/// State shared by the server, the workers and the election.
#[derive(Debug)]
pub struct Shared {
    pub config: AgentConfig,
    pub metrics: Arc<metrics::Metrics>,
    pub board: status::Board,
    /// Per source, in config order.
    pub triggers: Vec<(String, Arc<Trigger>)>,
    pub role: watch::Receiver<Role>,
    /// Whether the API server answers (kept current while the agent runs).
    pub api: health::ApiHealth,
    /// Webhook secrets, read once at start: global, then per source.
    pub secrets: webhook::Secrets,
}

impl Shared {
    pub fn trigger(&self, source: &str) -> Option<&Arc<Trigger>> {
        self.triggers
            .iter()
            .find(|(n, _)| n == source)
            .map(|(_, t)| t)
    }

    pub fn ready(&self) -> bool {
        self.not_ready().is_none()
    }

    /// Why the agent is not ready (`None`: ready): the API server does not answer, or the
    /// leader/standby state is not known yet.
    pub fn not_ready(&self) -> Option<String> {
        if let Some(why) = self.api.reason(tokio::time::Instant::now()) {
            return Some(why);
        }
        (*self.role.borrow() == Role::Unknown)
            .then(|| "leader election state not known yet".to_owned())
    }
}

/// Run the agent until `shutdown` completes: bind `config.listen`, then as [`serve`].
pub async fn run(
    config: AgentConfig,
    agent: Agent,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    let addr = config.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| AgentError::Listen { addr, source })?;
    serve(config, agent, listener, shutdown).await
}

/// Run the agent on an already bound listener until `shutdown` completes. On shutdown: no
/// new syncs start; an in-flight sync gets `shutdownGrace` to finish and is then abandoned;
/// the lease is released; the HTTP server stops last.
pub async fn serve(
    config: AgentConfig,
    agent: Agent,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    let secrets = webhook::Secrets::load(&config)?;
    let metrics = Arc::new(metrics::Metrics::new());
    for s in &config.sources {
        metrics.register_source(&s.name);
    }
    let board = status::Board::new(config.sources.iter().map(|s| status::SourceStatus {
        name: s.name.clone(),
        repo: s.repo.clone(),
        git_ref: s.git_ref.clone(),
        ..status::SourceStatus::default()
    }));
    let triggers = config
        .sources
        .iter()
        .map(|s| (s.name.clone(), Arc::new(Trigger::default())))
        .collect();
    let (role_tx, role_rx) = watch::channel(Role::Unknown);
    let shared = Arc::new(Shared {
        config: config.clone(),
        metrics: metrics.clone(),
        board,
        triggers,
        role: role_rx,
        api: health::ApiHealth::default(),
        secrets,
    });

    // Shutdown fans out through a watch channel; the server stops only after the lease is
    // released, so probes keep answering meanwhile.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (server_stop_tx, mut server_stop_rx) = watch::channel(false);
    let app = server::router(shared.clone());
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = server_stop_rx.wait_for(|s| *s).await;
            })
            .await
    });

    // Readiness: the API server answers (probed for as long as the agent runs).
    let api_probe = tokio::spawn(health::probe(
        agent.client.clone(),
        shared.clone(),
        stop_rx.clone(),
    ));

    let (election_stop_tx, election_stop_rx) = watch::channel(false);
    let election = if config.election.enabled {
        let api = kube::Api::namespaced(agent.client.clone(), &config.election.namespace);
        tokio::spawn(election::run(
            api,
            config.election.clone(),
            config.identity.clone(),
            role_tx,
            metrics.clone(),
            election_stop_rx,
        ))
    } else {
        role_tx.send_replace(Role::Leader);
        metrics.set_leader(true);
        tokio::spawn(async move {
            let mut stop = election_stop_rx;
            let _ = stop.wait_for(|s| *s).await;
            role_tx.send_replace(Role::Standby);
        })
    };

    let mut watchers = Vec::new();
    for source in &config.sources {
        let Some(path) = source.local_path() else {
            continue;
        };
        let Some(trigger) = shared.trigger(&source.name).cloned() else {
            continue;
        };
        match git::watch_local(&path, Arc::new(move || trigger.poke())) {
            Ok(w) => watchers.push(w),
            Err(e) => {
                tracing::warn!(source = %source.name, error = %e, "cannot watch local repository; polling only")
            }
        }
    }

    let drift = if config.drift.enabled {
        Some(tokio::spawn(drift::run(
            agent.client.clone(),
            shared.clone(),
            stop_rx.clone(),
        )))
    } else {
        None
    };

    let recorder = drift::recorder(agent.client.clone(), &config.identity);
    let workers: Vec<_> = config
        .sources
        .iter()
        .map(|source| {
            tokio::spawn(worker::run(worker::Worker {
                source: source.clone(),
                shared: shared.clone(),
                syncer: agent.syncer.clone(),
                revisions: agent.revisions.clone(),
                recorder: recorder.clone(),
                stop: stop_rx.clone(),
            }))
        })
        .collect();

    shutdown.await;
    tracing::info!("shutting down: finishing in-flight syncs");
    let _ = stop_tx.send(true);
    for w in workers {
        let _ = w.await;
    }
    drop(watchers);
    if let Some(d) = drift {
        let _ = d.await;
    }
    let _ = api_probe.await;
    let _ = election_stop_tx.send(true);
    let _ = election.await;
    let _ = server_stop_tx.send(true);
    match server.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(AgentError::Serve(e)),
        Err(e) => Err(AgentError::Serve(std::io::Error::other(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollout_results_have_fixed_labels() {
        assert_eq!(RolloutResult::RolledBack.as_str(), "rolled_back");
        assert_eq!(
            serde_json::to_value(RolloutResult::RolledBack).unwrap(),
            "rolledBack"
        );
    }

    #[test]
    fn trigger_force_is_taken_once() {
        let t = Trigger::default();
        t.force();
        assert!(t.take_force());
        assert!(!t.take_force());
    }
}
