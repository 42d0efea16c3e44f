//! `kubesync preview`: the offline pull-request preview. Loads the base and head commits
//! through the same `source` → `manifest` → `transform` stages a sync uses, compares them
//! with `plan`, searches the head's history for reverts, and renders with `report`.
//!
//! Owns the wiring only; must not talk to a cluster.
use super::Exit;
use crate::manifest::{self, LoadOptions, Object};
use crate::plan::{self, Cause, Preview, RevertSearch};
use crate::source::{Commit, Credentials, Repo, RepoSpec, Snapshot, SourceError};
use crate::transform::{self, Context};
use anyhow::Context as _;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The repository: a local path, or a remote URL (https://, ssh://, git@host:path).
    #[arg(long, default_value = ".")]
    pub repo: String,
    /// The commit the change starts from (branch, tag, sha, HEAD~1, …).
    #[arg(long)]
    pub base: String,
    /// The commit the change ends at.
    #[arg(long, default_value = "HEAD")]
    pub head: String,
    /// Folder inside the repository holding the manifests (default: the whole repository).
    #[arg(long, default_value = "")]
    pub path: String,
    /// Namespace for namespaced objects that name none.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Source name written into the `kubesync.io/source` label.
    #[arg(long, default_value = "default")]
    pub source: String,
    /// How many first-parent commits of the head to search for a revert.
    #[arg(long, default_value_t = 50)]
    pub revert_depth: usize,
    /// Manifest files larger than this are an error.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    pub max_file_bytes: u64,
    /// Size cap of the Markdown output, in characters.
    #[arg(long, default_value_t = crate::report::MARKDOWN_LIMIT)]
    pub max_markdown_chars: usize,
    /// Where remote repositories are cloned.
    #[arg(long, default_value = ".kubesync/cache")]
    pub cache_dir: PathBuf,
    /// File holding an https access token.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Private key for ssh remotes.
    #[arg(long)]
    pub ssh_key: Option<PathBuf>,
    /// known_hosts for ssh remotes (default ~/.ssh/known_hosts); unknown hosts are refused.
    #[arg(long)]
    pub known_hosts: Option<PathBuf>,
}

/// What a preview compares, once the repository is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub base: String,
    pub head: String,
    pub path: String,
    pub source: String,
    pub load: LoadOptions,
    pub revert_depth: usize,
}

pub async fn run(args: Args) -> anyhow::Result<Exit> {
    let format = args.format;
    let limit = args.max_markdown_chars;
    let preview = tokio::task::spawn_blocking(move || {
        let spec = RepoSpec {
            url: args.repo.clone(),
            cache_dir: args.cache_dir.clone(),
            credentials: Credentials {
                token_file: args.token_file.clone(),
                ssh_key: args.ssh_key.clone(),
                known_hosts: args.known_hosts.clone(),
            },
        };
        let repo = Repo::open(&spec)?;
        repo.fetch()?;
        let options = Options {
            base: args.base,
            head: args.head,
            path: args.path,
            source: args.source,
            load: LoadOptions {
                default_namespace: args.namespace,
                max_file_bytes: args.max_file_bytes,
            },
            revert_depth: args.revert_depth,
        };
        compute(&repo, &options)
    })
    .await
    .context("preview task failed")??;
    let rendered = match format {
        Format::Text => crate::report::text(&preview),
        Format::Json => format!("{:#}\n", crate::report::json(&preview)),
        Format::Markdown => crate::report::markdown(&preview, limit),
    };
    print!("{rendered}");
    Ok(if preview.changes.is_empty() {
        Exit::Ok
    } else {
        Exit::Changes
    })
}

/// Loads and transforms the objects of one commit.
pub fn desired(repo: &Repo, commit: &Commit, options: &Options) -> anyhow::Result<Vec<Object>> {
    desired_or_empty(
        repo,
        commit,
        options,
        false,
        &mut manifest::Cache::default(),
    )
}

/// Like [`desired`]; with `missing_is_empty`, a `--path` that does not exist at the commit
/// reads as no objects (a base from before the folder was added).
fn desired_or_empty(
    repo: &Repo,
    commit: &Commit,
    options: &Options,
    missing_is_empty: bool,
    cache: &mut manifest::Cache,
) -> anyhow::Result<Vec<Object>> {
    let snapshot = match repo.snapshot(commit, &options.path) {
        Err(SourceError::PathNotFound { .. }) if missing_is_empty => Snapshot {
            commit: commit.clone(),
            files: Vec::new(),
        },
        other => other.with_context(|| {
            format!(
                "reading {} at {}",
                display_path(&options.path),
                commit.short()
            )
        })?,
    };
    let mut objects = manifest::load_cached(&snapshot, &options.load, cache)
        .with_context(|| format!("loading manifests at {}", commit.short()))?;
    transform::apply(
        &mut objects,
        &Context {
            source: options.source.clone(),
            commit: commit.clone(),
        },
    );
    Ok(objects)
}

fn display_path(path: &str) -> String {
    if path.is_empty() {
        "the repository root".to_string()
    } else {
        format!("--path {path:?}")
    }
}

/// The whole preview: base vs head, rollout impact, reverts. Blocking (git2).
pub fn compute(repo: &Repo, options: &Options) -> anyhow::Result<Preview> {
    let base = repo.resolve(&options.base).context("resolving --base")?;
    let head = repo.resolve(&options.head).context("resolving --head")?;
    // Files unchanged between commits are parsed once.
    let mut cache = manifest::Cache::default();
    let base_objects = desired_or_empty(repo, &base, options, true, &mut cache)?;
    let head_objects = desired_or_empty(repo, &head, options, false, &mut cache)?;
    let mut changes = plan::compare(&base_objects, &head_objects);

    // Revert search: one pass over the head's history serves every Deployment that rolls.
    let mut searches: Vec<(usize, RevertSearch)> = Vec::new();
    let head_by_key: HashMap<_, &Object> = head_objects.iter().map(|o| (o.id.key(), o)).collect();
    for (i, change) in changes.iter().enumerate() {
        if change.rollout.is_some()
            && let Some(template) = head_by_key
                .get(&change.id.key())
                .and_then(|o| plan::pod_template(&o.body))
        {
            searches.push((i, RevertSearch::new(template)));
        }
    }
    if !searches.is_empty() && options.revert_depth > 0 {
        for commit in repo.history(&head, options.revert_depth)? {
            let objects = if commit.sha == base.sha {
                Some(base_objects.clone())
            } else {
                desired_or_empty(repo, &commit, options, false, &mut cache).ok()
            };
            let templates: HashMap<_, Value> = objects
                .iter()
                .flatten()
                .filter(|o| transform::is_deployment(&o.id))
                .filter_map(|o| {
                    Some((
                        (o.id.namespace.clone(), o.id.name.clone()),
                        plan::pod_template(&o.body)?,
                    ))
                })
                .collect();
            for (i, search) in &mut searches {
                let id = &changes[*i].id;
                search.step(
                    &commit.sha,
                    templates.get(&(id.namespace.clone(), id.name.clone())),
                );
            }
            if searches.iter().all(|(_, s)| s.done()) {
                break;
            }
        }
        for (i, search) in searches {
            if let (Some(sha), Some(rollout)) = (search.found(), changes[i].rollout.as_mut()) {
                rollout.cause = Cause::Revert;
                rollout.revert_of = Some(sha.to_string());
                rollout.details.insert(
                    0,
                    format!(
                        "template equals the one at {} (a revert)",
                        sha.get(..7).unwrap_or(sha)
                    ),
                );
            }
        }
    }
    Ok(Preview {
        base,
        head,
        changes,
    })
}
