//! git access with `git2`: open a local repository or clone/fetch a remote one into a cache,
//! resolve a ref to a commit, and read the manifest files of a commit's tree under a path.
//!
//! Reads the commit's tree, never the work tree. git2 is blocking: async callers use
//! `spawn_blocking` (a `Repository` is not `Sync`). Must not parse manifests: that is
//! `manifest`'s job.
use sha2::{Digest, Sha256};
use std::path::PathBuf;

mod auth;
mod tls;

pub use tls::{ensure_roots as ensure_tls_roots, init_process as init_git};

/// The git2 callbacks of every remote operation on `url`: credentials from `creds`' files,
/// ssh hosts verified against `known_hosts` (an unknown host is refused), and the system
/// TLS roots handed to libgit2 first. Fetches here and the agent's `ls-remote` both use it.
pub fn remote_callbacks<'a>(
    url: &str,
    creds: &Credentials,
) -> Result<git2::RemoteCallbacks<'a>, SourceError> {
    auth::callbacks(url, creds)
}

/// A commit as the rest of kubesync sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Commit {
    /// Full 40-hex sha.
    pub sha: String,
    /// First line of the message.
    pub subject: String,
    /// Commit time, seconds since the epoch.
    pub time: i64,
}

impl Commit {
    /// The 7-character abbreviation used in change-causes and reports.
    pub fn short(&self) -> &str {
        self.sha.get(..7).unwrap_or(&self.sha)
    }
}

/// One manifest file read from a commit's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Path relative to the repository root, `/`-separated.
    pub path: String,
    pub bytes: Vec<u8>,
}

/// The manifest files of one commit under one path, in a stable (sorted by path) order.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub commit: Commit,
    pub files: Vec<File>,
}

/// Where the manifests live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoSpec {
    /// A local path (work tree or bare repository) or a remote URL (`https://`, `ssh://`,
    /// `git@host:path`, `file://`).
    pub url: String,
    /// Remote repositories are cloned (bare) into `cache_dir/<hash of url>` and fetched there.
    pub cache_dir: PathBuf,
    pub credentials: Credentials,
}

/// How to authenticate to a remote. Unused for local paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// File holding an https token (whitespace trimmed), sent as the password.
    pub token_file: Option<PathBuf>,
    /// Private key for ssh remotes.
    pub ssh_key: Option<PathBuf>,
    /// `known_hosts` used to verify ssh hosts (default `~/.ssh/known_hosts`); an unknown host
    /// is refused.
    pub known_hosts: Option<PathBuf>,
}

/// Errors from the source stage.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot open repository {url}")]
    Open {
        url: String,
        #[source]
        source: git2::Error,
    },
    #[error("cannot clone {url} into {cache}")]
    Clone {
        url: String,
        cache: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("cannot fetch {url}")]
    Fetch {
        url: String,
        #[source]
        source: git2::Error,
    },
    #[error("cannot read credentials file {path}")]
    Credentials {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot resolve {rev:?} to a commit")]
    Resolve {
        rev: String,
        #[source]
        source: git2::Error,
    },
    #[error("path {path:?} is not inside the repository")]
    PathEscapes { path: String },
    #[error("path {path:?} does not exist at commit {commit}")]
    PathNotFound { path: String, commit: String },
    #[error("path {path:?} at commit {commit} is not a directory")]
    NotADirectory { path: String, commit: String },
    #[error("symlink {path} points to {target:?}, outside {root:?}")]
    SymlinkEscapes {
        path: String,
        target: String,
        root: String,
    },
    #[error("{path} is a git submodule: its files are not in this repository")]
    Submodule { path: String },
    #[error("{path} is not valid UTF-8")]
    NonUtf8Path { path: String },
    #[error("git error reading commit {commit}")]
    Read {
        commit: String,
        #[source]
        source: git2::Error,
    },
}

impl SourceError {
    /// A fixed string for metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceError::Open { .. } => "open",
            SourceError::Clone { .. } => "clone",
            SourceError::Fetch { .. } => "fetch",
            SourceError::Credentials { .. } => "credentials",
            SourceError::Resolve { .. } => "resolve",
            SourceError::PathEscapes { .. }
            | SourceError::PathNotFound { .. }
            | SourceError::NotADirectory { .. }
            | SourceError::SymlinkEscapes { .. }
            | SourceError::Submodule { .. }
            | SourceError::NonUtf8Path { .. } => "path",
            SourceError::Read { .. } => "read",
        }
    }
}

/// A git repository to read manifests from: a local one, or a cached clone of a remote.
pub struct Repo {
    git: git2::Repository,
    spec: RepoSpec,
    /// `true` when `git` is a cached clone of `spec.url` (branches are then read from
    /// `refs/remotes/origin/*`, which `fetch` keeps current).
    remote: bool,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo")
            .field("url", &self.spec.url)
            .field("remote", &self.remote)
            .finish()
    }
}

const FETCH_REFSPECS: [&str; 2] = [
    "+refs/heads/*:refs/remotes/origin/*",
    "+refs/tags/*:refs/tags/*",
];

/// True when `url` names a remote rather than a local path.
pub fn is_remote(url: &str) -> bool {
    if url.contains("://") {
        return true;
    }
    // scp-like `user@host:path`; a local path with a colon would have a `/` before it.
    match url.split_once(':') {
        Some((before, _)) => before.contains('@') && !before.contains('/'),
        None => false,
    }
}

/// Cache folder name for a remote URL: stable, filesystem-safe, and distinct per URL.
pub fn cache_key(url: &str) -> String {
    let digest = Sha256::digest(url.as_bytes());
    crate::hex(&digest[..12])
}

impl Repo {
    /// Opens a local repository, or the cached clone of a remote (cloning it on first use).
    pub fn open(spec: &RepoSpec) -> Result<Repo, SourceError> {
        if !is_remote(&spec.url) {
            let git = git2::Repository::open(&spec.url).map_err(|source| SourceError::Open {
                url: spec.url.clone(),
                source,
            })?;
            return Ok(Repo {
                git,
                spec: spec.clone(),
                remote: false,
            });
        }
        let cache = spec.cache_dir.join(cache_key(&spec.url));
        let git = if cache.join("HEAD").exists() {
            git2::Repository::open_bare(&cache).map_err(|source| SourceError::Open {
                url: spec.url.clone(),
                source,
            })?
        } else {
            let clone_err = |source| SourceError::Clone {
                url: spec.url.clone(),
                cache: cache.clone(),
                source,
            };
            std::fs::create_dir_all(&spec.cache_dir).map_err(|e| {
                clone_err(git2::Error::from_str(&format!(
                    "cannot create cache folder: {e}"
                )))
            })?;
            // Clone into a temporary name and rename, so an interrupted clone never looks
            // like a usable cache.
            let partial = spec
                .cache_dir
                .join(format!("{}.partial", cache_key(&spec.url)));
            // Leftovers of an interrupted clone, or a cache folder without a repository in
            // it, are not worth keeping.
            for stale in [&partial, &cache] {
                if stale.exists() {
                    let _ = std::fs::remove_dir_all(stale);
                }
            }
            let mut fetch = git2::FetchOptions::new();
            fetch.remote_callbacks(auth::callbacks(&spec.url, &spec.credentials)?);
            git2::build::RepoBuilder::new()
                .bare(true)
                .fetch_options(fetch)
                .clone(&spec.url, &partial)
                .map_err(clone_err)?;
            std::fs::rename(&partial, &cache).map_err(|e| {
                clone_err(git2::Error::from_str(&format!(
                    "cannot move clone into cache: {e}"
                )))
            })?;
            let git = git2::Repository::open_bare(&cache).map_err(clone_err)?;
            let repo = Repo {
                git,
                spec: spec.clone(),
                remote: true,
            };
            // A clone does not fetch tags that no branch reaches; fetch once more for them.
            repo.fetch()?;
            return Ok(repo);
        };
        Ok(Repo {
            git,
            spec: spec.clone(),
            remote: true,
        })
    }

    /// Brings the cached clone up to date with the remote (branches and tags). A no-op for
    /// local repositories.
    pub fn fetch(&self) -> Result<(), SourceError> {
        if !self.remote {
            return Ok(());
        }
        let err = |source| SourceError::Fetch {
            url: self.spec.url.clone(),
            source,
        };
        let mut remote = self.git.remote_anonymous(&self.spec.url).map_err(err)?;
        let mut options = git2::FetchOptions::new();
        options.remote_callbacks(auth::callbacks(&self.spec.url, &self.spec.credentials)?);
        options.prune(git2::FetchPrune::On);
        remote
            .fetch(&FETCH_REFSPECS, Some(&mut options), None)
            .map_err(err)?;
        Ok(())
    }

    /// Resolves a branch, tag, full or short sha, or `HEAD` to a commit. For remotes, a
    /// branch name means the remote's branch as last fetched (`origin/<name>`).
    pub fn resolve(&self, rev: &str) -> Result<Commit, SourceError> {
        let err = |source| SourceError::Resolve {
            rev: rev.to_string(),
            source,
        };
        if self.remote {
            let candidates = [
                format!("refs/remotes/origin/{rev}"),
                format!("refs/tags/{rev}"),
            ];
            for name in candidates {
                if let Ok(reference) = self.git.find_reference(&name) {
                    let commit = reference.peel_to_commit().map_err(err)?;
                    return Ok(to_commit(&commit));
                }
            }
            if rev == "HEAD"
                && let Ok(reference) = self.git.find_reference("refs/remotes/origin/HEAD")
            {
                let commit = reference.peel_to_commit().map_err(err)?;
                return Ok(to_commit(&commit));
            }
        }
        let object = self.git.revparse_single(rev).map_err(err)?;
        let commit = object.peel_to_commit().map_err(err)?;
        Ok(to_commit(&commit))
    }

    /// Reads every `*.yaml`, `*.yml` and `*.json` file under `path` (recursively) from the
    /// commit's tree, sorted by path. `""` or `"."` means the repository root.
    ///
    /// Symlinks that stay inside `path` are skipped (their targets are read where they
    /// are); a symlink that leaves `path`, a path that leaves the repository and a
    /// submodule are errors.
    pub fn snapshot(&self, commit: &Commit, path: &str) -> Result<Snapshot, SourceError> {
        let (dir, root) = self.dir(commit, path)?;
        let mut found = Vec::new();
        self.walk(&dir, &root, &root, commit, &mut found)?;
        found.sort_by(|a, b| a.0.cmp(&b.0));
        let files = self.read_blobs(found, commit)?;
        Ok(Snapshot {
            commit: commit.clone(),
            files,
        })
    }

    /// The id of the tree at `path` in the commit: the same id means the same files, so the
    /// same objects (errors as [`Repo::snapshot`]'s).
    pub fn tree(&self, commit: &Commit, path: &str) -> Result<String, SourceError> {
        Ok(self.dir(commit, path)?.0.id().to_string())
    }

    /// The tree at `path` in the commit, with the normalised path.
    fn dir(&self, commit: &Commit, path: &str) -> Result<(git2::Tree<'_>, String), SourceError> {
        let root = normalise_path(path).ok_or_else(|| SourceError::PathEscapes {
            path: path.to_string(),
        })?;
        let read_err = |source| SourceError::Read {
            commit: commit.sha.clone(),
            source,
        };
        let oid = git2::Oid::from_str(&commit.sha).map_err(read_err)?;
        let tree = self
            .git
            .find_commit(oid)
            .and_then(|c| c.tree())
            .map_err(read_err)?;
        let dir = if root.is_empty() {
            tree
        } else {
            let entry = tree.get_path(std::path::Path::new(&root)).map_err(|_| {
                SourceError::PathNotFound {
                    path: root.clone(),
                    commit: commit.sha.clone(),
                }
            })?;
            if entry.kind() != Some(git2::ObjectType::Tree) {
                return Err(SourceError::NotADirectory {
                    path: root,
                    commit: commit.sha.clone(),
                });
            }
            self.git.find_tree(entry.id()).map_err(read_err)?
        };
        Ok((dir, root))
    }

    /// Reads the blobs of `found` (in order). Many small loose objects cost a file open and
    /// an inflate each, so a large set is read by several threads, each with its own handle
    /// on the repository (a `git2::Repository` is not shared across threads).
    fn read_blobs(
        &self,
        found: Vec<(String, git2::Oid)>,
        commit: &Commit,
    ) -> Result<Vec<File>, SourceError> {
        const PER_THREAD: usize = 128;
        let read_err = |source| SourceError::Read {
            commit: commit.sha.clone(),
            source,
        };
        let read = |git: &git2::Repository, chunk: &mut [(String, git2::Oid)]| {
            chunk
                .iter_mut()
                .map(|(path, oid)| {
                    let blob = git.find_blob(*oid).map_err(read_err)?;
                    Ok(File {
                        path: std::mem::take(path),
                        bytes: blob.content().to_vec(),
                    })
                })
                .collect::<Result<Vec<File>, SourceError>>()
        };
        let mut found = found;
        if found.len() < 2 * PER_THREAD {
            return read(&self.git, &mut found);
        }
        let dir = self.git.path().to_path_buf();
        let parts = crate::in_chunks(&mut found, PER_THREAD, |chunk| {
            read(&git2::Repository::open(&dir).map_err(read_err)?, chunk)
        })
        .map_err(|_| SourceError::Read {
            commit: commit.sha.clone(),
            source: git2::Error::from_str("a blob-reading thread panicked"),
        })?;
        Ok(parts
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect())
    }

    fn walk(
        &self,
        tree: &git2::Tree<'_>,
        prefix: &str,
        root: &str,
        commit: &Commit,
        files: &mut Vec<(String, git2::Oid)>,
    ) -> Result<(), SourceError> {
        let read_err = |source| SourceError::Read {
            commit: commit.sha.clone(),
            source,
        };
        for entry in tree.iter() {
            let Ok(name) = entry.name() else {
                return Err(SourceError::NonUtf8Path {
                    path: format!("{prefix}/{:?}", entry.name_bytes()),
                });
            };
            let path = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}/{name}")
            };
            match entry.filemode() {
                0o040000 => {
                    let sub = self.git.find_tree(entry.id()).map_err(read_err)?;
                    self.walk(&sub, &path, root, commit, files)?;
                }
                0o160000 => return Err(SourceError::Submodule { path }),
                0o120000 => {
                    let blob = self.git.find_blob(entry.id()).map_err(read_err)?;
                    let target = String::from_utf8_lossy(blob.content()).to_string();
                    let inside = resolve_link(prefix, &target)
                        .is_some_and(|resolved| is_within(&resolved, root));
                    if !inside {
                        return Err(SourceError::SymlinkEscapes {
                            path,
                            target,
                            root: root.to_string(),
                        });
                    }
                }
                _ => {
                    if is_manifest(name) {
                        files.push((path, entry.id()));
                    }
                }
            }
        }
        Ok(())
    }

    /// The first-parent ancestors of `commit`, newest first, not including `commit`
    /// itself; at most `limit`.
    pub fn history(&self, commit: &Commit, limit: usize) -> Result<Vec<Commit>, SourceError> {
        let read_err = |source| SourceError::Read {
            commit: commit.sha.clone(),
            source,
        };
        let oid = git2::Oid::from_str(&commit.sha).map_err(read_err)?;
        let mut current = self.git.find_commit(oid).map_err(read_err)?;
        let mut out = Vec::new();
        while out.len() < limit {
            if current.parent_count() == 0 {
                break;
            }
            let parent = current.parent(0).map_err(read_err)?;
            out.push(to_commit(&parent));
            current = parent;
        }
        Ok(out)
    }

    /// The underlying git2 repository, for callers that need more (e.g. `rollout` history).
    pub fn git(&self) -> &git2::Repository {
        &self.git
    }
}

fn to_commit(commit: &git2::Commit<'_>) -> Commit {
    Commit {
        sha: commit.id().to_string(),
        subject: commit
            .summary()
            .ok()
            .flatten()
            .unwrap_or_default()
            .to_string(),
        time: commit.time().seconds(),
    }
}

fn is_manifest(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".yaml") || lower.ends_with(".yml") || lower.ends_with(".json")
}

/// `./apps//web/` → `apps/web`; `None` when the path is absolute or climbs out of the
/// repository with `..`.
pub fn normalise_path(path: &str) -> Option<String> {
    if path.starts_with('/') || path.starts_with('\\') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    Some(parts.join("/"))
}

/// Resolves a symlink `target` found in folder `dir` to a repository-relative path, or
/// `None` when it is absolute or leaves the repository.
fn resolve_link(dir: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let joined = if dir.is_empty() {
        target.to_string()
    } else {
        format!("{dir}/{target}")
    };
    normalise_path(&joined)
}

fn is_within(path: &str, root: &str) -> bool {
    root.is_empty() || path == root || path.starts_with(&format!("{root}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_path_rejects_escapes() {
        assert_eq!(normalise_path("./apps//web/").as_deref(), Some("apps/web"));
        assert_eq!(normalise_path("").as_deref(), Some(""));
        assert_eq!(normalise_path(".").as_deref(), Some(""));
        assert_eq!(normalise_path("apps/../base").as_deref(), Some("base"));
        assert_eq!(normalise_path("../x"), None);
        assert_eq!(normalise_path("apps/../../x"), None);
        assert_eq!(normalise_path("/etc"), None);
    }

    #[test]
    fn links_resolve_relative_to_their_folder() {
        assert_eq!(
            resolve_link("apps", "../base/x.yaml").as_deref(),
            Some("base/x.yaml")
        );
        assert_eq!(
            resolve_link("apps", "x.yaml").as_deref(),
            Some("apps/x.yaml")
        );
        assert_eq!(resolve_link("apps", "../../etc/passwd"), None);
        assert_eq!(resolve_link("apps", "/etc/passwd"), None);
        assert!(is_within("apps/x", "apps"));
        assert!(!is_within("apps2/x", "apps"));
        assert!(is_within("anything", ""));
    }

    #[test]
    fn remote_urls_are_told_from_paths() {
        assert!(is_remote("https://github.com/o/r.git"));
        assert!(is_remote("ssh://git@github.com/o/r.git"));
        assert!(is_remote("git@github.com:o/r.git"));
        assert!(is_remote("file:///tmp/r"));
        assert!(!is_remote("/tmp/repo"));
        assert!(!is_remote("./repo"));
        assert!(!is_remote("dir/with:colon"));
    }

    #[test]
    fn cache_key_is_stable_and_distinct() {
        assert_eq!(cache_key("https://a/b"), cache_key("https://a/b"));
        assert_ne!(cache_key("https://a/b"), cache_key("https://a/c"));
        assert_eq!(cache_key("x").len(), 24);
    }

    #[test]
    fn manifest_extensions() {
        assert!(is_manifest("a.yaml"));
        assert!(is_manifest("a.YML"));
        assert!(is_manifest("a.json"));
        assert!(!is_manifest("README.md"));
        assert!(!is_manifest("kustomization.yaml.bak"));
    }
}
