//! Renderers for [`Preview`]: the stable JSON document (see `docs/preview.md`), the
//! pull-request Markdown comment (summary table, collapsed details, size cap) and plain
//! text for terminals.
//!
//! Pure formatting; must not change what the preview says.
use crate::plan::{Action, Cause, Change, Preview, Rollout};
use serde_json::{Value, json};
use std::fmt::Write;

/// Default size cap of the Markdown comment (GitHub allows 65,536 characters).
pub const MARKDOWN_LIMIT: usize = 60_000;

/// The `--format json` document. Its shape is a documented contract.
pub fn json(preview: &Preview) -> Value {
    let changes: Vec<Value> = preview
        .changes
        .iter()
        .map(|c| {
            json!({
                "group": c.id.group,
                "kind": c.id.kind,
                "namespace": c.id.namespace,
                "name": c.id.name,
                "action": c.action.as_str(),
                "diff": c.diff,
                "rollout": c.rollout.as_ref().map(rollout_json),
                "scale": c.scale.map(|s| json!({"from": s.from, "to": s.to})),
            })
        })
        .collect();
    json!({"base": preview.base.sha, "head": preview.head.sha, "changes": changes})
}

fn rollout_json(r: &Rollout) -> Value {
    json!({
        "cause": r.cause.as_str(),
        "configs": r.configs,
        "revertOf": r.revert_of,
        "strategy": r.strategy,
        "replicas": r.replicas,
        "maxPods": r.max_pods,
        "minAvailable": r.min_available,
        "details": r.details,
    })
}

fn counts(preview: &Preview) -> (usize, usize, usize, usize) {
    let count = |a: Action| preview.changes.iter().filter(|c| c.action == a).count();
    let rollouts = preview
        .changes
        .iter()
        .filter(|c| c.rollout.is_some())
        .count();
    (
        count(Action::Create),
        count(Action::Update),
        count(Action::Delete),
        rollouts,
    )
}

fn summary_line(preview: &Preview) -> String {
    let (create, update, delete, rollouts) = counts(preview);
    format!(
        "{} object(s) change: {create} create, {update} update, {delete} delete; {rollouts} Deployment rollout(s)",
        preview.changes.len()
    )
}

fn object_name(c: &Change) -> String {
    match &c.id.namespace {
        Some(ns) => format!("{} {ns}/{}", c.id.kind, c.id.name),
        None => format!("{} {}", c.id.kind, c.id.name),
    }
}

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// One line about a rollout: `rollout (template: container web: image a → b),
/// RollingUpdate: up to 5 pods, at least 3 available`.
fn rollout_line(r: &Rollout) -> String {
    let why = match (&r.revert_of, r.cause) {
        (Some(sha), _) => format!("rollback to the template of {}", short(sha)),
        (None, Cause::Config) => format!("rollout (config: {} changed)", r.configs.join(", ")),
        (None, cause) => {
            // The first detail is the most telling one; the rest are in the details.
            let changed: Vec<&String> = r
                .details
                .iter()
                .filter(|d| !d.starts_with("Recreate:"))
                .collect();
            match changed.split_first() {
                Some((first, [])) => format!("rollout ({}: {first})", cause.as_str()),
                Some((first, rest)) => format!(
                    "rollout ({}: {first}, +{} more)",
                    cause.as_str(),
                    rest.len()
                ),
                None => format!("rollout ({})", cause.as_str()),
            }
        }
    };
    if r.strategy == "Recreate" {
        format!(
            "{why}, Recreate: downtime ({} pod(s) stopped first)",
            r.replicas
        )
    } else {
        format!(
            "{why}, {}: up to {} pods, at least {} available",
            r.strategy, r.max_pods, r.min_available
        )
    }
}

fn impact_line(c: &Change) -> String {
    let mut parts = Vec::new();
    if let Some(r) = &c.rollout {
        parts.push(rollout_line(r));
    }
    if let Some(s) = c.scale {
        parts.push(format!("scale {} → {}", s.from, s.to));
    }
    parts.join("; ")
}

/// Plain text for a terminal.
pub fn text(preview: &Preview) -> String {
    let mut out = format!(
        "preview {}..{}\n",
        short(&preview.base.sha),
        short(&preview.head.sha)
    );
    if preview.changes.is_empty() {
        out.push_str("no changes\n");
        return out;
    }
    let _ = writeln!(out, "{}\n", summary_line(preview));
    for c in &preview.changes {
        let _ = writeln!(out, "{} {}", c.action.as_str(), object_name(c));
        let impact = impact_line(c);
        if !impact.is_empty() {
            let _ = writeln!(out, "  {impact}");
        }
        for detail in c.rollout.iter().flat_map(|r| &r.details) {
            let _ = writeln!(out, "    - {detail}");
        }
        out.push_str(&c.diff);
        out.push('\n');
    }
    out
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// A code fence longer than any run of backticks inside `body`.
fn fence(body: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for ch in body.chars() {
        if ch == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    "`".repeat((longest + 1).max(3))
}

fn details_section(c: &Change) -> String {
    let mut out = String::new();
    let impact = impact_line(c);
    let suffix = if impact.is_empty() {
        String::new()
    } else {
        format!(" — {}", cell(&impact))
    };
    let _ = writeln!(
        out,
        "<details>\n<summary><b>{}</b> {}{suffix}</summary>\n",
        c.action.as_str(),
        object_name(c)
    );
    if let Some(r) = &c.rollout {
        let _ = writeln!(out, "**Pods will be replaced** — {}.", rollout_line(r));
        if !r.configs.is_empty() {
            let _ = writeln!(out, "Reads changed config: {}.", r.configs.join(", "));
        }
        out.push('\n');
        for detail in &r.details {
            let _ = writeln!(out, "- {detail}");
        }
        out.push('\n');
    } else if let Some(s) = c.scale {
        let _ = writeln!(
            out,
            "Scale only: {} → {} replicas, no pods replaced.\n",
            s.from, s.to
        );
    }
    let fence = fence(&c.diff);
    let _ = writeln!(out, "{fence}diff\n{}{fence}\n\n</details>\n", c.diff);
    out
}

/// The pull-request comment: heading, summary table, then one collapsed section per
/// object, never longer than `limit` characters (a note says what was left out).
pub fn markdown(preview: &Preview, limit: usize) -> String {
    let mut out = format!(
        "### kubesync preview: `{}` → `{}`\n\n",
        short(&preview.base.sha),
        short(&preview.head.sha)
    );
    if preview.changes.is_empty() {
        out.push_str("No changes: both commits produce the same objects.\n");
        return out;
    }
    let _ = writeln!(out, "**{}**\n", summary_line(preview));
    // Room kept for the truncation note.
    let budget = limit.saturating_sub(400);
    let mut table =
        String::from("| Action | Kind | Namespace | Name | Impact |\n|---|---|---|---|---|\n");
    let mut rows_shown = 0;
    for c in &preview.changes {
        let row = format!(
            "| {} | {} | {} | {} | {} |\n",
            c.action.as_str(),
            cell(&c.id.kind),
            cell(c.id.namespace.as_deref().unwrap_or("")),
            cell(&c.id.name),
            cell(&impact_line(c))
        );
        if out.len() + table.len() + row.len() > budget {
            break;
        }
        table.push_str(&row);
        rows_shown += 1;
    }
    out.push_str(&table);
    out.push('\n');
    let mut details_shown = 0;
    if rows_shown == preview.changes.len() {
        for c in &preview.changes {
            let section = details_section(c);
            if out.len() + section.len() > budget {
                break;
            }
            out.push_str(&section);
            details_shown += 1;
        }
    }
    if rows_shown < preview.changes.len() || details_shown < preview.changes.len() {
        let _ = writeln!(
            out,
            "\n> **Truncated:** this comment is limited to {limit} characters; {} of {} table rows and {} of {} detail sections are shown. Run `kubesync preview --format text` for everything.",
            rows_shown,
            preview.changes.len(),
            details_shown,
            preview.changes.len()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::ObjectId;
    use crate::source::Commit;

    fn commit(c: char) -> Commit {
        Commit {
            sha: c.to_string().repeat(40),
            subject: "s".into(),
            time: 0,
        }
    }

    fn change(name: &str, rollout: Option<Rollout>) -> Change {
        Change {
            id: ObjectId {
                group: "apps".into(),
                version: "v1".into(),
                kind: "Deployment".into(),
                namespace: Some("default".into()),
                name: name.into(),
            },
            action: Action::Update,
            diff: format!("--- a/{name}\n+++ b/{name}\n@@ -1 +1 @@\n-x\n+y\n"),
            rollout,
            scale: None,
        }
    }

    fn rollout() -> Rollout {
        Rollout {
            cause: Cause::Template,
            configs: vec![],
            revert_of: None,
            strategy: "RollingUpdate".into(),
            replicas: 3,
            max_pods: 4,
            min_available: 3,
            details: vec!["container web: image a → b".into()],
        }
    }

    #[test]
    fn json_has_the_documented_shape() {
        let preview = Preview {
            base: commit('a'),
            head: commit('b'),
            changes: vec![change("web", Some(rollout()))],
        };
        let doc = json(&preview);
        assert_eq!(doc["base"], "a".repeat(40));
        assert_eq!(doc["changes"][0]["action"], "update");
        assert_eq!(doc["changes"][0]["rollout"]["maxPods"], 4);
        assert_eq!(doc["changes"][0]["rollout"]["revertOf"], Value::Null);
        assert_eq!(doc["changes"][0]["scale"], Value::Null);
    }

    #[test]
    fn markdown_is_capped_with_a_note() {
        let changes = (0..500)
            .map(|i| change(&format!("web-{i}"), Some(rollout())))
            .collect();
        let preview = Preview {
            base: commit('a'),
            head: commit('b'),
            changes,
        };
        let md = markdown(&preview, 20_000);
        assert!(md.len() <= 20_000, "{}", md.len());
        assert!(md.contains("**Truncated:**"));
        let full = markdown(&preview, usize::MAX);
        assert!(!full.contains("Truncated"));
        assert_eq!(full.matches("<details>").count(), 500);
    }

    #[test]
    fn fences_outgrow_backticks_in_the_diff() {
        assert_eq!(fence("a ``` b"), "````");
        assert_eq!(fence("plain"), "```");
    }
}
