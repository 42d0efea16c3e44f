//! Shared test fixtures: `Repo`, a git repository in a temp dir built commit by commit
//! (`Repo::new().commit("apps/web.yaml", yaml)` returns the sha), with fixed signatures
//! and times so shas are reproducible. Uses git2 only (no `git` binary needed).
#![allow(dead_code)]
use std::path::{Path, PathBuf};

/// A git repository with a work tree in a temp dir, deleted on drop.
pub struct Repo {
    dir: tempfile::TempDir,
    git: git2::Repository,
    /// Commit counter: commit n gets time `1_700_000_000 + 60 n`.
    count: std::cell::Cell<i64>,
}

impl Default for Repo {
    fn default() -> Self {
        Self::new()
    }
}

impl Repo {
    /// An empty repository on branch `main`.
    pub fn new() -> Repo {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut opts = git2::RepositoryInitOptions::new();
        opts.initial_head("main");
        let git = git2::Repository::init_opts(dir.path(), &opts).expect("git init");
        Repo {
            dir,
            git,
            count: std::cell::Cell::new(0),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn path_string(&self) -> String {
        self.dir.path().display().to_string()
    }

    /// A `RepoSpec` for this repository as a local path.
    pub fn spec(&self) -> kubesync::source::RepoSpec {
        kubesync::source::RepoSpec {
            url: self.path_string(),
            cache_dir: self.dir.path().join(".cache-unused"),
            credentials: Default::default(),
        }
    }

    pub fn git(&self) -> &git2::Repository {
        &self.git
    }

    /// Writes `path` (creating folders) and commits it with subject `update <path>`.
    pub fn commit(&self, path: &str, contents: &str) -> String {
        self.commit_files(&[(path, contents)], &format!("update {path}"))
    }

    /// Writes several files in one commit.
    pub fn commit_files(&self, files: &[(&str, &str)], message: &str) -> String {
        for (path, contents) in files {
            let full = self.dir.path().join(path);
            std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
            std::fs::write(&full, contents).expect("write");
        }
        self.commit_worktree(message)
    }

    /// Commits a symlink at `path` pointing to `target`.
    #[cfg(unix)]
    pub fn symlink(&self, path: &str, target: &str) -> String {
        let full = self.dir.path().join(path);
        std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        let _ = std::fs::remove_file(&full);
        std::os::unix::fs::symlink(target, &full).expect("symlink");
        self.commit_worktree(&format!("link {path}"))
    }

    /// Removes `path` (a file or a folder) and commits.
    pub fn remove(&self, path: &str) -> String {
        let full = self.dir.path().join(path);
        if full.is_dir() {
            std::fs::remove_dir_all(&full).expect("rm -r");
        } else {
            std::fs::remove_file(&full).expect("rm");
        }
        self.commit_worktree(&format!("remove {path}"))
    }

    /// `git revert <sha>`: a new commit undoing `sha`, with git's message.
    pub fn revert(&self, sha: &str) -> String {
        let target = self
            .git
            .find_commit(git2::Oid::from_str(sha).expect("sha"))
            .expect("commit");
        let head = self
            .git
            .head()
            .expect("head")
            .peel_to_commit()
            .expect("head commit");
        let mut index = self
            .git
            .revert_commit(&target, &head, 0, None)
            .expect("revert");
        assert!(!index.has_conflicts(), "revert of {sha} conflicts");
        let tree_id = index.write_tree_to(&self.git).expect("tree");
        let message = format!(
            "Revert \"{}\"\n\nThis reverts commit {sha}.\n",
            target.summary().ok().flatten().unwrap_or_default()
        );
        let oid = self.commit_tree(tree_id, &message);
        // Keep the work tree equal to HEAD for later commits.
        self.git
            .checkout_head(Some(git2::build::CheckoutBuilder::new().force()))
            .expect("checkout");
        oid
    }

    /// Creates a lightweight tag at `sha`.
    pub fn tag(&self, name: &str, sha: &str) {
        let object = self.git.revparse_single(sha).expect("rev");
        self.git.tag_lightweight(name, &object, false).expect("tag");
    }

    /// Creates branch `name` at `sha`.
    pub fn branch(&self, name: &str, sha: &str) {
        let commit = self
            .git
            .find_commit(git2::Oid::from_str(sha).expect("sha"))
            .expect("commit");
        self.git.branch(name, &commit, true).expect("branch");
    }

    /// Overwrites a work-tree file without committing it.
    pub fn write_uncommitted(&self, path: &str, contents: &str) {
        std::fs::write(self.dir.path().join(path), contents).expect("write");
    }

    fn commit_worktree(&self, message: &str) -> String {
        let mut index = self.git.index().expect("index");
        index
            .add_all(["*"].iter(), git2::IndexAddOption::DEFAULT, None)
            .expect("add");
        index.update_all(["*"].iter(), None).expect("update");
        index.write().expect("write index");
        let tree_id = index.write_tree().expect("tree");
        self.commit_tree(tree_id, message)
    }

    fn commit_tree(&self, tree_id: git2::Oid, message: &str) -> String {
        let n = self.count.get() + 1;
        self.count.set(n);
        let time = git2::Time::new(1_700_000_000 + 60 * n, 0);
        let sig = git2::Signature::new("Test", "test@example.com", &time).expect("sig");
        let tree = self.git.find_tree(tree_id).expect("tree");
        let parent = self.git.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        let oid = self
            .git
            .commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
            .expect("commit");
        oid.to_string()
    }
}

/// A Deployment manifest with one container.
pub fn deployment(name: &str, image: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n        - name: {name}\n          image: {image}\n"
    )
}

/// A ConfigMap manifest with `data`.
pub fn config_map(name: &str, data: &[(&str, &str)]) -> String {
    let mut out = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n");
    for (k, v) in data {
        out.push_str(&format!("  {k}: {v:?}\n"));
    }
    out
}

/// Path of the kubesync binary built for these tests.
pub fn kubesync_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kubesync"))
}

impl Repo {
    /// Writes raw bytes at `path` (creating folders) and commits them (for binary files).
    pub fn commit_bytes(&self, path: &str, bytes: &[u8]) -> String {
        let full = self.dir.path().join(path);
        std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        std::fs::write(&full, bytes).expect("write");
        self.commit_worktree(&format!("update {path}"))
    }

    /// Points branch `main` (and so HEAD) at `sha` and resets the work tree: a force-push
    /// that rewrites history.
    pub fn reset_hard(&self, sha: &str) {
        let object = self.git.revparse_single(sha).expect("rev");
        self.git
            .reset(&object, git2::ResetType::Hard, None)
            .expect("reset");
    }
}

/// Serves `app` (kubesim's router behind a test layer) on a loopback socket of its own and
/// writes `dir/name`, a kubeconfig of `cluster` pointing at that socket; returns its path.
pub async fn serve_front(
    cluster: &kubesim::Cluster,
    app: axum::Router,
    dir: &Path,
    name: &str,
) -> PathBuf {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let kubeconfig = dir.join(name);
    std::fs::write(
        &kubeconfig,
        cluster
            .kubeconfig_yaml()
            .replace(&cluster.url(), &format!("http://{addr}")),
    )
    .expect("kubeconfig");
    kubeconfig
}
