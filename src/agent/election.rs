//! Leader election over a `coordination.k8s.io/v1` Lease, so that of several replicas
//! exactly one writes to the cluster.
//!
//! [`Elector`] is the pure state machine (what to do given the lease as read and the local
//! clock); [`run`] is the loop that reads and writes the Lease with resourceVersion
//! preconditions and publishes the [`Role`]. Expiry is judged on the *local* clock from when
//! this replica last saw the lease change (as client-go does), never by comparing another
//! node's timestamps with ours, so clock skew between nodes does not matter.
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

use super::config::ElectionConfig;
use super::metrics::Metrics;

/// What this replica is allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Not known yet (the lease has not been read): not ready, no writes.
    Unknown,
    /// Holds the lease: syncs and corrects drift.
    Leader,
    /// Another replica holds the lease: serves health and metrics, writes nothing.
    Standby,
}

/// The parts of a Lease the decision depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Empty when nobody holds it (released).
    pub holder: String,
    pub resource_version: String,
    /// The lease's own duration, if it states one.
    pub duration: Option<Duration>,
}

impl Observed {
    pub fn from_lease(lease: &Lease) -> Observed {
        let spec = lease.spec.as_ref();
        Observed {
            holder: spec
                .and_then(|s| s.holder_identity.clone())
                .unwrap_or_default(),
            resource_version: lease.metadata.resource_version.clone().unwrap_or_default(),
            duration: spec
                .and_then(|s| s.lease_duration_seconds)
                .and_then(|s| u64::try_from(s).ok())
                .map(Duration::from_secs),
        }
    }
}

/// What to do next with the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No lease exists: create it naming us.
    Create,
    /// We hold it: renew (update `renewTime`) with a resourceVersion precondition.
    Renew,
    /// Free or expired: take it over with a resourceVersion precondition.
    TakeOver,
    /// Someone else holds a valid lease: stay standby.
    Wait,
}

/// The pure election state: the last lease seen and when (local clock) it last changed.
#[derive(Debug, Clone)]
pub struct Elector {
    identity: String,
    lease_duration: Duration,
    seen: Option<(Observed, Instant)>,
}

impl Elector {
    pub fn new(identity: impl Into<String>, lease_duration: Duration) -> Self {
        Elector {
            identity: identity.into(),
            lease_duration,
            seen: None,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Decide given the lease as just read (`None`: it does not exist) at local time `now`.
    pub fn decide(&mut self, lease: Option<&Observed>, now: Instant) -> Decision {
        let Some(lease) = lease else {
            self.seen = None;
            return Decision::Create;
        };
        let changed_at = match &self.seen {
            Some((prev, at)) if prev == lease => *at,
            _ => now,
        };
        self.seen = Some((lease.clone(), changed_at));
        if lease.holder == self.identity {
            return Decision::Renew;
        }
        if lease.holder.is_empty() {
            return Decision::TakeOver;
        }
        let duration = lease.duration.unwrap_or(self.lease_duration);
        if now.duration_since(changed_at) >= duration {
            Decision::TakeOver
        } else {
            Decision::Wait
        }
    }
}

/// How long a leader keeps writing without a successful renewal: two thirds of the lease
/// duration, so it stops well before another replica may take over.
pub fn renew_deadline(lease_duration: Duration) -> Duration {
    lease_duration * 2 / 3
}

/// An error talking to the API server about the lease.
#[derive(Debug, thiserror::Error)]
#[error("lease {namespace}/{name}: {source}")]
pub struct LeaseError {
    namespace: String,
    name: String,
    #[source]
    source: kube::Error,
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

fn lease_duration_seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)
}

/// The label on the leader's pod (with `leaderElection.labelPod`), for a leader-only Service.
pub const LEADER_LABEL: &str = "kubesync.io/leader";

/// Set or remove [`LEADER_LABEL`] on this replica's own pod.
async fn label_pod(pods: &Api<Pod>, pod: &str, leader: bool) -> Result<(), kube::Error> {
    let value = if leader {
        serde_json::json!("true")
    } else {
        serde_json::Value::Null
    };
    let patch = serde_json::json!({ "metadata": { "labels": { LEADER_LABEL: value } } });
    pods.patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

/// One read–decide–write round. `Ok(true)`: we hold the lease now.
async fn round(
    api: &Api<Lease>,
    cfg: &ElectionConfig,
    elector: &mut Elector,
) -> Result<bool, LeaseError> {
    let err = |source| LeaseError {
        namespace: cfg.namespace.clone(),
        name: cfg.lease_name.clone(),
        source,
    };
    let current = api.get_opt(&cfg.lease_name).await.map_err(err)?;
    let observed = current.as_ref().map(Observed::from_lease);
    let decision = elector.decide(observed.as_ref(), Instant::now());
    let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
    let result = match (decision, current) {
        (Decision::Wait, _) => return Ok(false),
        (Decision::Create, _) | (_, None) => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.lease_name.clone()),
                    namespace: Some(cfg.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(elector.identity().to_owned()),
                    lease_duration_seconds: Some(lease_duration_seconds(cfg.lease_duration)),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            api.create(&PostParams::default(), &lease).await
        }
        (decision, Some(mut lease)) => {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if decision == Decision::TakeOver {
                spec.holder_identity = Some(elector.identity().to_owned());
                spec.acquire_time = Some(now.clone());
                spec.lease_transitions =
                    Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
            }
            spec.lease_duration_seconds = Some(lease_duration_seconds(cfg.lease_duration));
            spec.renew_time = Some(now);
            // `lease` keeps the resourceVersion we read: the write fails with 409 if anyone
            // wrote in between.
            api.replace(&cfg.lease_name, &PostParams::default(), &lease)
                .await
        }
    };
    match result {
        Ok(_) => Ok(true),
        Err(e) if is_conflict(&e) => Ok(false),
        Err(e) => Err(err(e)),
    }
}

/// Give the lease up (holder cleared) if we still hold it, so a standby takes over at once.
async fn release(
    api: &Api<Lease>,
    cfg: &ElectionConfig,
    identity: &str,
) -> Result<(), kube::Error> {
    let Some(mut lease) = api.get_opt(&cfg.lease_name).await? else {
        return Ok(());
    };
    let Some(spec) = lease.spec.as_mut() else {
        return Ok(());
    };
    if spec.holder_identity.as_deref() != Some(identity) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(MicroTime(k8s_openapi::jiff::Timestamp::now()));
    api.replace(&cfg.lease_name, &PostParams::default(), &lease)
        .await
        .map(|_| ())
}

/// Hold elections until `stop` turns true, publishing the role on `role`; then release the
/// lease if held. A leader that cannot renew within [`renew_deadline`] steps down at once.
pub async fn run(
    api: Api<Lease>,
    cfg: ElectionConfig,
    identity: String,
    role: watch::Sender<Role>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let pods: Api<Pod> = Api::namespaced(api.clone().into_client(), &cfg.namespace);
    // What the pod label says now (`None`: not known); re-tried every round until it matches.
    let mut labelled: Option<bool> = None;
    let mut elector = Elector::new(identity.clone(), cfg.lease_duration);
    let mut last_renewal: Option<Instant> = None;
    let deadline = renew_deadline(cfg.lease_duration);
    loop {
        if *stop.borrow() {
            break;
        }
        let started = Instant::now();
        let outcome = tokio::select! {
            r = round(&api, &cfg, &mut elector) => r,
            _ = stop.changed() => break,
        };
        let next = match outcome {
            Ok(true) => {
                if last_renewal.is_none() {
                    tracing::info!(lease = %cfg.lease_name, identity = %identity, "acquired the lease: leading");
                }
                last_renewal = Some(started);
                Role::Leader
            }
            Ok(false) => {
                if last_renewal.take().is_some() {
                    tracing::warn!(lease = %cfg.lease_name, "lost the lease: standing by");
                }
                Role::Standby
            }
            Err(e) => {
                metrics.error("lease");
                tracing::warn!(error = %e, "lease round failed");
                match last_renewal {
                    Some(at) if started.duration_since(at) < deadline => Role::Leader,
                    Some(_) => {
                        tracing::warn!(lease = %cfg.lease_name, "could not renew the lease in time: standing by");
                        last_renewal = None;
                        Role::Standby
                    }
                    // Not leading and the API is failing: stay as we are (Unknown stays not ready).
                    None => *role.borrow(),
                }
            }
        };
        role.send_if_modified(|r| std::mem::replace(r, next) != next);
        metrics.set_leader(next == Role::Leader);
        let want = next == Role::Leader;
        if cfg.label_pod && labelled != Some(want) {
            match label_pod(&pods, &identity, want).await {
                Ok(()) => labelled = Some(want),
                Err(e) => tracing::warn!(error = %e, pod = %identity, "cannot label own pod"),
            }
        }
        let wait = if next == Role::Leader {
            cfg.renew_interval
        } else {
            cfg.retry_interval
        };
        tokio::select! {
            _ = tokio::time::sleep_until(started + wait) => {}
            _ = stop.changed() => break,
        }
    }
    let was_leader = *role.borrow() == Role::Leader;
    role.send_replace(Role::Standby);
    metrics.set_leader(false);
    if cfg.label_pod
        && labelled != Some(false)
        && let Err(e) = label_pod(&pods, &identity, false).await
    {
        tracing::warn!(error = %e, pod = %identity, "cannot remove the leader label from own pod");
    }
    if was_leader {
        match release(&api, &cfg, &identity).await {
            Ok(()) => tracing::info!(lease = %cfg.lease_name, "released the lease"),
            Err(e) => tracing::warn!(error = %e, "could not release the lease; it will expire"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, rv: &str) -> Observed {
        Observed {
            holder: holder.into(),
            resource_version: rv.into(),
            duration: None,
        }
    }

    const D: Duration = Duration::from_secs(15);

    #[test]
    fn creates_a_missing_lease_and_renews_its_own() {
        let mut e = Elector::new("me", D);
        let t0 = Instant::now();
        assert_eq!(e.decide(None, t0), Decision::Create);
        assert_eq!(e.decide(Some(&lease("me", "1")), t0), Decision::Renew);
    }

    #[test]
    fn waits_for_a_live_holder_and_takes_over_once_it_stops_renewing() {
        let mut e = Elector::new("b", D);
        let t0 = Instant::now();
        assert_eq!(e.decide(Some(&lease("a", "1")), t0), Decision::Wait);
        // The holder renews (resourceVersion moves): the clock restarts.
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(e.decide(Some(&lease("a", "2")), t1), Decision::Wait);
        assert_eq!(
            e.decide(Some(&lease("a", "2")), t1 + Duration::from_secs(14)),
            Decision::Wait
        );
        // No change for a whole lease duration since we saw it change: expired.
        assert_eq!(e.decide(Some(&lease("a", "2")), t1 + D), Decision::TakeOver);
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        let mut e = Elector::new("b", D);
        let t0 = Instant::now();
        assert_eq!(e.decide(Some(&lease("a", "1")), t0), Decision::Wait);
        assert_eq!(e.decide(Some(&lease("", "2")), t0), Decision::TakeOver);
    }

    #[test]
    fn the_lease_own_duration_wins() {
        let mut e = Elector::new("b", D);
        let t0 = Instant::now();
        let short = Observed {
            duration: Some(Duration::from_secs(2)),
            ..lease("a", "1")
        };
        assert_eq!(e.decide(Some(&short), t0), Decision::Wait);
        assert_eq!(
            e.decide(Some(&short), t0 + Duration::from_secs(2)),
            Decision::TakeOver
        );
    }

    #[test]
    fn a_fresh_replica_never_takes_over_on_first_sight() {
        // Even if the lease looks old, we have not watched it for a full duration yet.
        let mut e = Elector::new("b", D);
        assert_eq!(
            e.decide(Some(&lease("a", "7")), Instant::now()),
            Decision::Wait
        );
    }

    #[test]
    fn renew_deadline_is_before_expiry() {
        assert_eq!(renew_deadline(D), Duration::from_secs(10));
    }

    #[test]
    fn observed_reads_the_lease() {
        let l = Lease {
            metadata: ObjectMeta {
                resource_version: Some("42".into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some("a".into()),
                lease_duration_seconds: Some(15),
                ..LeaseSpec::default()
            }),
        };
        assert_eq!(
            Observed::from_lease(&l),
            Observed {
                holder: "a".into(),
                resource_version: "42".into(),
                duration: Some(D)
            }
        );
    }
}
