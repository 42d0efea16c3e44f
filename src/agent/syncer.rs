//! [`EngineSyncer`]: the agent's [`Syncer`] seam implemented on the sync engine
//! ([`crate::engine`]). Turns a [`SourceConfig`] (plus the agent's cache dir and inventory
//! namespace) into [`engine::SyncOptions`] and the engine's report into a [`SyncResult`].
//!
//! Each source's syncs run on one long-lived thread of that source
//! ([`super::memory::SyncThread`]), which hands free memory back after each sync: RSS stays
//! flat from sync to sync (see `memory`).
//!
//! Must not: apply anything itself, or decide policy (allowed namespaces/kinds are enforced
//! by the engine before any write; this only passes them on).
use super::memory::{Job, SyncThread, release_free_memory};
use super::{BoxFuture, Progress, RolloutResult, SourceConfig, SyncFailure, SyncResult, Syncer};
use crate::engine::{self, EngineError};
use crate::rollout;
use crate::source;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Syncs through [`engine::sync`] with one shared client.
#[derive(Clone)]
pub struct EngineSyncer {
    pub client: kube::Client,
    /// Clones of remote repositories go under `<cache_dir>/<source name>`.
    pub cache_dir: PathBuf,
    /// Namespace of the `kubesync-inventory-<source>` ConfigMaps.
    pub inventory_namespace: String,
    /// Deadline of one sync (API retries and rollout waits).
    pub timeout: Duration,
    /// The sync thread of each source, started on its first sync.
    threads: Arc<Mutex<HashMap<String, SyncThread>>>,
}

impl EngineSyncer {
    /// A syncer using the agent config's cache dir and inventory namespace.
    pub fn new(client: kube::Client, config: &super::AgentConfig) -> Self {
        EngineSyncer {
            client,
            cache_dir: config.cache_dir.clone(),
            inventory_namespace: config.inventory_namespace.clone(),
            timeout: Duration::from_secs(600),
            threads: Arc::default(),
        }
    }

    /// Queue `job` on `source`'s sync thread, starting (or restarting) the thread if needed.
    fn submit(&self, source: &str, job: Job) -> Result<(), SyncFailure> {
        let mut threads = match self.threads.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut job = job;
        for _ in 0..2 {
            if !threads.contains_key(source) {
                let t = SyncThread::spawn(format!("sync-{source}")).map_err(|e| {
                    SyncFailure::new("engine", format!("cannot start the sync thread: {e}"))
                })?;
                threads.insert(source.to_owned(), t);
            }
            let sent = match threads.get(source) {
                Some(thread) => thread.submit(job),
                None => Err(job),
            };
            match sent {
                Ok(()) => return Ok(()),
                Err(back) => {
                    // The thread is gone: forget it and start a new one.
                    threads.remove(source);
                    job = back;
                }
            }
        }
        Err(SyncFailure::new("engine", "the sync thread is gone"))
    }

    /// The engine options for syncing `source` at `commit`.
    pub fn options(&self, source: &SourceConfig, commit: &str) -> engine::SyncOptions {
        let repo = source::RepoSpec {
            url: source.repo.clone(),
            cache_dir: self.cache_dir.join(&source.name),
            credentials: source.credentials.clone(),
        };
        let mut o = engine::SyncOptions::new(source.name.clone(), repo);
        o.rev = commit.to_owned();
        o.path = source.path.clone();
        if let Some(ns) = &source.namespace {
            o.namespace = ns.clone();
        }
        o.inventory_namespace = self.inventory_namespace.clone();
        o.prune = source.prune;
        o.wait = true;
        o.timeout = self.timeout;
        o.rollback_on_failure = source.rollback_on_failure;
        o.allowed_namespaces = source.allowed_namespaces.clone();
        o.allowed_kinds = source.allowed_kinds.clone();
        o
    }

    /// Runs the engine on the source's sync thread (`Handle::block_on`): the engine's futures
    /// are not provably `Send` (higher-ranked closures in `apply`), which the seam requires,
    /// and one long-lived thread per source keeps its allocations in one malloc arena. If
    /// the returned future is dropped (lost lease, shutdown), the `cancel` sender drops and
    /// the engine future is dropped at its next await point too.
    async fn run(
        &self,
        source: &SourceConfig,
        commit: &str,
        progress: &Progress,
    ) -> Result<SyncResult, SyncFailure> {
        let opts = self.options(source, commit);
        let client = self.client.clone();
        let progress_in = progress.clone();
        let handle = tokio::runtime::Handle::current();
        let (cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
        let (done, finished) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let on_progress = |line: &str, done: bool| {
                if let Some(d) = deployment_of(line)
                    && !done
                {
                    progress_in.rollout_started(d);
                }
            };
            let outcome = handle.block_on(async {
                tokio::select! {
                    r = engine::sync(&client, &opts, &on_progress) => Some(r),
                    _ = cancelled => None,
                }
            });
            // The sync's working set (live objects, plans) is dropped by now: hand it back
            // before reporting, so a finished sync has returned its memory.
            release_free_memory();
            let _ = done.send(outcome);
        });
        self.submit(&source.name, job)?;
        let outcome = finished
            .await
            .map_err(|_| SyncFailure::new("engine", "the sync thread failed (panic)"))?;
        drop(cancel);
        let report = match outcome {
            Some(r) => r.map_err(failure)?,
            None => return Err(SyncFailure::new("engine", "the sync was cancelled")),
        };
        let mut rollouts = Vec::new();
        for c in &report.changes {
            let (Some(r), Some(ns)) = (&c.rollout, &c.namespace) else {
                continue;
            };
            let result = match (r.status, r.rolled_back) {
                (rollout::Status::Complete, _) => RolloutResult::Complete,
                (_, Some(_)) => RolloutResult::RolledBack,
                _ => RolloutResult::Failed,
            };
            let name = format!("{ns}/{}", c.name);
            progress.rollout_finished(&name, result);
            rollouts.push((name, result));
        }
        Ok(SyncResult {
            commit: report.commit.sha.clone(),
            changed: report.applied + report.pruned,
            rollouts,
            held: report.held,
            fetch_duration: None,
        })
    }
}

/// `namespace/name` from a progress line `deployment <ns>/<name>: …`.
fn deployment_of(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("deployment ")?;
    let (d, _) = rest.split_once(':')?;
    d.contains('/').then_some(d)
}

/// The failure kind (for metrics) and message of an engine error.
fn failure(err: EngineError) -> SyncFailure {
    let kind = match &err {
        EngineError::Source(_) | EngineError::GitTask(_) => "git",
        EngineError::Invalid { .. } => "manifest",
        EngineError::NotAllowed { .. } => "policy",
        EngineError::Apply(_) | EngineError::Prune(_) => "apply",
        EngineError::Rollout(_) | EngineError::Undo(_) => "rollout",
    };
    // The whole chain, each cause once, so the reason names the file or object.
    SyncFailure::new(kind, crate::errors::message(&err))
}

impl Syncer for EngineSyncer {
    fn sync<'a>(
        &'a self,
        source: &'a SourceConfig,
        commit: &'a str,
    ) -> BoxFuture<'a, Result<SyncResult, SyncFailure>> {
        Box::pin(async move {
            let progress = Progress::detached(source.name.clone());
            self.run(source, commit, &progress).await
        })
    }

    fn sync_with_progress<'a>(
        &'a self,
        source: &'a SourceConfig,
        commit: &'a str,
        progress: &'a Progress,
    ) -> BoxFuture<'a, Result<SyncResult, SyncFailure>> {
        Box::pin(self.run(source, commit, progress))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_of_progress_lines() {
        assert_eq!(
            deployment_of("deployment default/web: 1 updated, 0 ready, 0 available of 2"),
            Some("default/web")
        );
        assert_eq!(deployment_of("something else"), None);
    }

    #[test]
    fn not_allowed_is_a_policy_failure_naming_the_object() {
        let f = failure(EngineError::NotAllowed {
            source_name: "s".into(),
            object: "ConfigMap kube-system/x".into(),
            reason: "namespace kube-system is not in allowedNamespaces".into(),
        });
        assert_eq!(f.kind, "policy");
        assert!(f.message.contains("ConfigMap kube-system/x"));
    }
}
