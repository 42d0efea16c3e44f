//! What `/status` reports: the state of every source (commit, last result, held commits,
//! the sync in flight and its rollouts), kept in memory by the workers.
//!
//! Only a view: the truth lives in git and in the cluster, so losing it on restart is fine.
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;

use super::RolloutResult;
use super::election::Role;

/// Held commits remembered per source (oldest dropped first).
const MAX_HELD: usize = 16;

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SourceStatus {
    pub name: String,
    pub repo: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The commit the cluster was last synced to successfully.
    pub commit: Option<String>,
    /// The commit the ref pointed at when last looked at.
    pub head: Option<String>,
    /// `ok`, `failed` or `held`.
    pub last_result: Option<String>,
    pub last_error: Option<String>,
    /// RFC 3339 time of the last sync attempt's end.
    pub last_sync_time: Option<String>,
    pub consecutive_failures: u32,
    /// Commits whose rollout failed and that are not re-applied until git moves on.
    pub held_commits: Vec<String>,
    /// The commit being synced right now, if any.
    pub syncing: Option<String>,
    /// Rollouts of the last finished sync and how they ended.
    pub rollouts: Vec<RolloutStatus>,
    /// Rollouts of the sync in flight, as the engine reports them.
    pub in_flight: Vec<InFlightRollout>,
    /// Objects the last sync changed.
    pub changed: usize,
    pub drift_corrections: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RolloutStatus {
    pub deployment: String,
    pub result: RolloutResult,
}

/// A rollout of the sync in flight.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct InFlightRollout {
    pub deployment: String,
    pub state: RolloutState,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum RolloutState {
    Progressing,
    Done(RolloutResult),
}

/// The whole `/status` document.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub identity: String,
    pub role: Role,
    pub ready: bool,
    /// Why not ready (absent when ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_ready: Option<String>,
    pub sources: Vec<SourceStatus>,
}

/// Shared, lock-protected status of every source, by name.
#[derive(Debug, Default)]
pub struct Board {
    sources: Mutex<BTreeMap<String, SourceStatus>>,
}

impl Board {
    pub fn new(sources: impl IntoIterator<Item = SourceStatus>) -> Self {
        Board {
            sources: Mutex::new(sources.into_iter().map(|s| (s.name.clone(), s)).collect()),
        }
    }

    /// Change one source's status.
    pub fn update(&self, source: &str, change: impl FnOnce(&mut SourceStatus)) {
        let mut map = match self.sources.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(status) = map.get_mut(source) {
            change(status);
        }
    }

    pub fn get(&self, source: &str) -> Option<SourceStatus> {
        let map = match self.sources.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.get(source).cloned()
    }

    pub fn all(&self) -> Vec<SourceStatus> {
        let map = match self.sources.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.values().cloned().collect()
    }
}

impl SourceStatus {
    /// Remember `commit` as held (failed rollout), without duplicates, bounded.
    pub fn hold(&mut self, commit: &str) {
        if !self.held_commits.iter().any(|c| c == commit) {
            self.held_commits.push(commit.to_owned());
        }
        if self.held_commits.len() > MAX_HELD {
            self.held_commits.remove(0);
        }
    }

    pub fn is_held(&self, commit: &str) -> bool {
        self.held_commits.iter().any(|c| c == commit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_commits_are_unique_and_bounded() {
        let mut s = SourceStatus::default();
        s.hold("a");
        s.hold("a");
        assert_eq!(s.held_commits, vec!["a"]);
        for i in 0..40 {
            s.hold(&format!("c{i}"));
        }
        assert_eq!(s.held_commits.len(), MAX_HELD);
        assert!(s.is_held("c39") && !s.is_held("a"));
    }

    #[test]
    fn status_json_uses_camel_case() {
        let board = Board::new([SourceStatus {
            name: "apps".into(),
            git_ref: "main".into(),
            ..SourceStatus::default()
        }]);
        board.update("apps", |s| {
            s.commit = Some("abc".into());
            s.rollouts = vec![RolloutStatus {
                deployment: "web/api".into(),
                result: RolloutResult::Complete,
            }];
        });
        let json = serde_json::to_value(board.all()).unwrap();
        assert_eq!(json[0]["commit"], "abc");
        assert_eq!(json[0]["ref"], "main");
        assert_eq!(json[0]["heldCommits"], serde_json::json!([]));
        assert_eq!(json[0]["rollouts"][0]["result"], "complete");
    }
}
