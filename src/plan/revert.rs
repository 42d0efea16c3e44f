//! Revert detection: does a Deployment's new pod template equal one it had at an earlier
//! commit? Fed one commit at a time, newest first, along the head's first-parent history.
//!
//! Pure: the caller reads the history and hands over each commit's template.
use serde_json::Value;

/// The search for one Deployment.
///
/// Commits right before the head that already have the head's template are part of the
/// same change (a pull request of several commits), not a revert; the template must first
/// differ (or be absent) and then match again: the most recent commit where it matches
/// again is the one reverted to.
#[derive(Debug, Clone)]
pub struct RevertSearch {
    target: Value,
    left_same_run: bool,
    found: Option<String>,
}

impl RevertSearch {
    /// `target`: the head's pod template (after transforms, so including the config hash).
    pub fn new(target: Value) -> RevertSearch {
        RevertSearch {
            target,
            left_same_run: false,
            found: None,
        }
    }

    /// Feeds the next older commit and its template for this Deployment (`None` when the
    /// Deployment did not exist there or the commit could not be loaded).
    pub fn step(&mut self, sha: &str, template: Option<&Value>) {
        if self.found.is_some() {
            return;
        }
        let same = template == Some(&self.target);
        if !same {
            self.left_same_run = true;
        } else if self.left_same_run {
            self.found = Some(sha.to_string());
        }
    }

    /// The commit reverted to, once found.
    pub fn found(&self) -> Option<&str> {
        self.found.as_deref()
    }

    pub fn done(&self) -> bool {
        self.found.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_the_most_recent_earlier_match_after_a_difference() {
        let (v1, v2) = (json!({"image": "v1"}), json!({"image": "v2"}));
        let mut search = RevertSearch::new(v1.clone());
        search.step("b", Some(&v2));
        search.step("a", Some(&v1));
        search.step("older", Some(&v1));
        assert_eq!(search.found(), Some("a"));
    }

    #[test]
    fn same_template_right_before_head_is_not_a_revert() {
        let (v1, v2) = (json!({"image": "v1"}), json!({"image": "v2"}));
        let mut search = RevertSearch::new(v2.clone());
        search.step("pr-commit-1", Some(&v2));
        search.step("main", Some(&v1));
        assert_eq!(search.found(), None);
        let mut search = RevertSearch::new(v2.clone());
        search.step("gone", None);
        search.step("old", Some(&v2));
        assert_eq!(search.found(), Some("old"));
    }
}
