//! The agent's Prometheus metrics: one [`Metrics`] owning a prometheus-client registry, with
//! typed label sets whose values are bounded (source names from the config, fixed result
//! strings). Never puts error text or other unbounded data into a label.
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Mutex;
use std::time::Duration;

/// `Content-Type` of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceResult {
    source: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceCommit {
    source: String,
    commit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

fn seconds_histogram() -> Histogram {
    // 10 ms … ~5.5 min.
    Histogram::new(exponential_buckets(0.01, 2.0, 16))
}

/// Every metric the agent exports.
pub struct Metrics {
    registry: Registry,
    sync_total: Family<SourceResult, Counter>,
    sync_duration: Family<SourceLabel, Histogram, fn() -> Histogram>,
    source_info: Family<SourceCommit, Gauge>,
    /// Current commit per source, so the old `source_info` series can be removed.
    current: Mutex<std::collections::HashMap<String, String>>,
    drift_corrections: Family<SourceLabel, Counter>,
    rollouts: Family<ResultLabel, Counter>,
    git_fetch_duration: Family<SourceLabel, Histogram, fn() -> Histogram>,
    webhooks: Family<ResultLabel, Counter>,
    leader: Gauge,
    errors: Family<KindLabel, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let sync_total = Family::<SourceResult, Counter>::default();
        registry.register(
            "kubesync_sync",
            "Syncs by source and result (ok, failed, held)",
            sync_total.clone(),
        );
        let sync_duration: Family<SourceLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(seconds_histogram);
        registry.register(
            "kubesync_sync_duration_seconds",
            "Duration of one sync of a source, rollouts included",
            sync_duration.clone(),
        );
        let source_info = Family::<SourceCommit, Gauge>::default();
        registry.register(
            "kubesync_source_info",
            "The commit each source was last synced to (value is always 1)",
            source_info.clone(),
        );
        let drift_corrections = Family::<SourceLabel, Counter>::default();
        registry.register(
            "kubesync_drift_corrections",
            "Re-syncs caused by a change made to a managed object outside git",
            drift_corrections.clone(),
        );
        let rollouts = Family::<ResultLabel, Counter>::default();
        registry.register(
            "kubesync_rollouts",
            "Deployment rollouts watched to the end, by result",
            rollouts.clone(),
        );
        let git_fetch_duration: Family<SourceLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(seconds_histogram);
        registry.register(
            "kubesync_git_fetch_duration_seconds",
            "Duration of asking a remote for a ref (ls-remote) and fetching it",
            git_fetch_duration.clone(),
        );
        let webhooks = Family::<ResultLabel, Counter>::default();
        registry.register(
            "kubesync_webhook_requests",
            "Webhook requests by result (accepted, unsigned, bad_signature, no_secret, too_large, unknown_source)",
            webhooks.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "kubesync_leader",
            "1 when this replica holds the lease and writes to the cluster",
            leader.clone(),
        );
        let errors = Family::<KindLabel, Counter>::default();
        registry.register(
            "kubesync_errors",
            "Errors by kind (git, sync, lease, drift_watch)",
            errors.clone(),
        );
        Metrics {
            registry,
            sync_total,
            sync_duration,
            source_info,
            current: Mutex::new(Default::default()),
            drift_corrections,
            rollouts,
            git_fetch_duration,
            webhooks,
            leader,
            errors,
        }
    }

    /// Make a source's series exist (at zero) from the start, so dashboards see it.
    pub fn register_source(&self, source: &str) {
        for result in ["ok", "failed", "held"] {
            let _ = self.sync_total.get_or_create(&SourceResult {
                source: source.to_owned(),
                result: result.to_owned(),
            });
        }
        let _ = self.drift_corrections.get_or_create(&SourceLabel {
            source: source.to_owned(),
        });
    }

    /// One sync ended; `result` is `ok`, `failed` or `held`.
    pub fn sync(&self, source: &str, result: &'static str, took: Duration) {
        self.sync_total
            .get_or_create(&SourceResult {
                source: source.to_owned(),
                result: result.to_owned(),
            })
            .inc();
        self.sync_duration
            .get_or_create(&SourceLabel {
                source: source.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// The source now runs `commit`: its `source_info` series moves to the new commit.
    pub fn source_commit(&self, source: &str, commit: &str) {
        let mut current = match self.current.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(old) = current.insert(source.to_owned(), commit.to_owned())
            && old != commit
        {
            self.source_info.remove(&SourceCommit {
                source: source.to_owned(),
                commit: old,
            });
        }
        self.source_info
            .get_or_create(&SourceCommit {
                source: source.to_owned(),
                commit: commit.to_owned(),
            })
            .set(1);
    }

    pub fn drift_corrected(&self, source: &str) {
        self.drift_corrections
            .get_or_create(&SourceLabel {
                source: source.to_owned(),
            })
            .inc();
    }

    /// A rollout ended with `result` (`complete`, `failed`, `rolled_back`).
    pub fn rollout(&self, result: &'static str) {
        self.rollouts
            .get_or_create(&ResultLabel {
                result: result.to_owned(),
            })
            .inc();
    }

    pub fn git_fetch(&self, source: &str, took: Duration) {
        self.git_fetch_duration
            .get_or_create(&SourceLabel {
                source: source.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    pub fn webhook(&self, result: &'static str) {
        self.webhooks
            .get_or_create(&ResultLabel {
                result: result.to_owned(),
            })
            .inc();
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// `kind` is a fixed string (`git`, `sync`, `lease`, `drift_watch`).
    pub fn error(&self, kind: &'static str) {
        self.errors
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_with_its_labels() {
        let m = Metrics::new();
        m.register_source("apps");
        m.sync("apps", "ok", Duration::from_millis(250));
        m.source_commit("apps", "aaaa");
        m.drift_corrected("apps");
        m.rollout("complete");
        m.git_fetch("apps", Duration::from_millis(20));
        m.set_leader(true);
        let text = m.render();
        for line in [
            r#"kubesync_sync_total{source="apps",result="ok"} 1"#,
            r#"kubesync_sync_total{source="apps",result="failed"} 0"#,
            r#"kubesync_sync_duration_seconds_count{source="apps"} 1"#,
            r#"kubesync_source_info{source="apps",commit="aaaa"} 1"#,
            r#"kubesync_drift_corrections_total{source="apps"} 1"#,
            r#"kubesync_rollouts_total{result="complete"} 1"#,
            r#"kubesync_git_fetch_duration_seconds_count{source="apps"} 1"#,
            "kubesync_leader 1",
            "# EOF",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn source_info_moves_with_the_commit() {
        let m = Metrics::new();
        m.source_commit("apps", "aaaa");
        m.source_commit("apps", "bbbb");
        let text = m.render();
        assert!(text.contains(r#"kubesync_source_info{source="apps",commit="bbbb"} 1"#));
        assert!(!text.contains("aaaa"), "{text}");
    }
}
