//! One source's loop: wait to lead, wait for a reason (interval, webhook, local ref change,
//! drift, retry), ask where the ref points, and sync when it moved — never re-applying a
//! held commit, retrying failures with capped backoff, and dropping an in-flight sync the
//! moment the lease is lost.
//!
//! Owns no cluster access of its own except publishing drift Events; everything else goes
//! through the [`Syncer`] and [`Revisions`] seams.
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

use super::backoff::Backoff;
use super::drift::{self, Publisher};
use super::election::Role;
use super::status::RolloutStatus;
use super::{Revisions, Shared, SourceConfig, SyncFailure, SyncResult, Syncer, Trigger};

pub(crate) struct Worker {
    pub source: SourceConfig,
    pub shared: Arc<Shared>,
    pub syncer: Arc<dyn Syncer>,
    pub revisions: Arc<dyn Revisions>,
    pub recorder: Publisher,
    pub stop: watch::Receiver<bool>,
}

enum Outcome {
    Done(Result<SyncResult, SyncFailure>),
    LostLease,
    Abandoned,
}

/// A fixed per-source jitter fraction, so sources that fail together do not retry together.
fn jitter(name: &str, failures: u32) -> f64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (name, failures).hash(&mut h);
    (h.finish() % 1000) as f64 / 1000.0
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

pub(crate) async fn run(w: Worker) {
    let Worker {
        source,
        shared,
        syncer,
        revisions,
        recorder,
        mut stop,
    } = w;
    let Some(trigger) = shared.trigger(&source.name).cloned() else {
        return;
    };
    let name = source.name.clone();
    let retry = shared.config.retry;
    let grace = shared.config.shutdown_grace;
    let mut role = shared.role.clone();
    let mut backoff = Backoff::new(retry.initial, retry.max);
    let mut last_synced: Option<String> = None;
    let mut next_due = Instant::now();

    loop {
        if *stop.borrow() {
            break;
        }
        if *role.borrow_and_update() != Role::Leader {
            tokio::select! {
                r = role.wait_for(|r| *r == Role::Leader) => {
                    if r.is_err() { break; }
                    // Another replica may have written meanwhile: converge again at once.
                    last_synced = None;
                    next_due = Instant::now();
                }
                _ = stop.wait_for(|s| *s) => break,
            }
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(next_due) => {}
            _ = trigger.notify.notified() => {}
            _ = role.changed() => continue,
            _ = stop.changed() => continue,
        }
        let force = trigger.take_force();

        let looked = Instant::now();
        let head = tokio::select! {
            h = revisions.head(&source) => h,
            _ = stop.wait_for(|s| *s) => break,
        };
        shared.metrics.git_fetch(&name, looked.elapsed());
        let head = match head {
            Ok(h) => h,
            Err(failure) => {
                shared.metrics.error("git");
                let delay = fail(&shared, &name, &mut backoff, &failure);
                tracing::warn!(source = %name, kind = failure.kind, error = %failure.message, retry_in = ?delay, "cannot resolve ref");
                next_due = Instant::now() + delay;
                continue;
            }
        };
        let held = shared.board.get(&name).is_some_and(|s| s.is_held(&head));
        shared.board.update(&name, |s| s.head = Some(head.clone()));
        if held || (last_synced.as_deref() == Some(head.as_str()) && !force) {
            if held && force {
                tracing::info!(source = %name, commit = %head, "drift ignored: the commit is held after a failed rollout");
            }
            next_due = Instant::now() + source.interval;
            continue;
        }

        tracing::info!(source = %name, commit = %head, drift = force, "syncing");
        shared.board.update(&name, |s| {
            s.syncing = Some(head.clone());
            s.in_flight.clear();
        });
        let progress = super::Progress {
            shared: Some(shared.clone()),
            source: name.clone(),
        };
        let started = Instant::now();
        let outcome = {
            let sync = syncer.sync_with_progress(&source, &head, &progress);
            let mut stop_for_grace = stop.clone();
            let grace_over = async move {
                let _ = stop_for_grace.wait_for(|s| *s).await;
                tokio::time::sleep(grace).await;
            };
            tokio::select! {
                r = sync => Outcome::Done(r),
                _ = role.wait_for(|r| *r != Role::Leader) => Outcome::LostLease,
                _ = grace_over => Outcome::Abandoned,
            }
        };
        let took = started.elapsed();
        shared.board.update(&name, |s| {
            s.syncing = None;
            s.in_flight.clear();
        });
        match outcome {
            Outcome::LostLease | Outcome::Abandoned => {
                let why = if matches!(outcome, Outcome::LostLease) {
                    "cancelled: this replica lost the lease"
                } else {
                    "abandoned at shutdown after the grace period"
                };
                tracing::warn!(source = %name, commit = %head, "{why}");
                shared
                    .board
                    .update(&name, |s| s.last_error = Some(why.to_owned()));
                last_synced = None;
                next_due = Instant::now();
            }
            Outcome::Done(Err(failure)) => {
                shared.metrics.sync(&name, "failed", took);
                shared.metrics.error("sync");
                let delay = fail(&shared, &name, &mut backoff, &failure);
                tracing::warn!(source = %name, commit = %head, kind = failure.kind, error = %failure.message, retry_in = ?delay, "sync failed");
                next_due = Instant::now() + delay;
            }
            Outcome::Done(Ok(result)) => {
                let label = if result.held { "held" } else { "ok" };
                shared.metrics.sync(&name, label, took);
                if let Some(fetch) = result.fetch_duration {
                    shared.metrics.git_fetch(&name, fetch);
                }
                for (_, r) in &result.rollouts {
                    shared.metrics.rollout(r.as_str());
                }
                backoff.reset();
                shared.board.update(&name, |s| {
                    s.last_result = Some(label.to_owned());
                    s.last_error = None;
                    s.consecutive_failures = 0;
                    s.last_sync_time = Some(now_rfc3339());
                    s.changed = result.changed;
                    s.rollouts = result
                        .rollouts
                        .iter()
                        .map(|(d, r)| RolloutStatus {
                            deployment: d.clone(),
                            result: *r,
                        })
                        .collect();
                    if result.held {
                        s.hold(&result.commit);
                    } else {
                        s.commit = Some(result.commit.clone());
                    }
                });
                if result.held {
                    tracing::warn!(source = %name, commit = %result.commit, "rollout failed: commit held until git moves on");
                } else {
                    shared.metrics.source_commit(&name, &result.commit);
                    tracing::info!(source = %name, commit = %result.commit, changed = result.changed, "synced");
                }
                last_synced = Some(result.commit.clone());
                if force {
                    corrected(&shared, &trigger, &recorder, &name, &result.commit).await;
                }
                next_due = Instant::now() + source.interval;
            }
        }
    }
}

/// Record a failure in status and return the delay before the next attempt.
fn fail(shared: &Shared, name: &str, backoff: &mut Backoff, failure: &SyncFailure) -> Duration {
    backoff.fail();
    let delay = backoff.current_with_jitter(jitter(name, backoff.failures()));
    shared.board.update(name, |s| {
        s.last_result = Some("failed".to_owned());
        s.last_error = Some(format!("{}: {}", failure.kind, failure.message));
        s.consecutive_failures = backoff.failures();
        s.last_sync_time = Some(now_rfc3339());
    });
    delay
}

/// A drift-triggered sync succeeded: count it and say on each drifted object what was done.
async fn corrected(
    shared: &Shared,
    trigger: &Trigger,
    recorder: &Publisher,
    name: &str,
    commit: &str,
) {
    let drifted = trigger.take_drifted();
    shared.metrics.drift_corrected(name);
    shared.board.update(name, |s| s.drift_corrections += 1);
    let short = commit.get(..7).unwrap_or(commit);
    for d in drifted {
        tracing::info!(source = %name, kind = %d.kind, namespace = %d.namespace, object = %d.name, changed_by = %d.manager, "drift corrected");
        drift::publish_corrected(recorder, &d, name, short).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_a_stable_fraction() {
        let j = jitter("apps", 3);
        assert!((0.0..1.0).contains(&j));
        assert_eq!(j, jitter("apps", 3));
    }
}
