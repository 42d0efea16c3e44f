//! git access with `git2`: open a local repository or clone/fetch a remote one into a cache,
//! resolve a ref to a commit, and read the manifest files of a commit's tree under a path.
//!
//! Reads the commit's tree, never the work tree. git2 is blocking: async callers use
//! `spawn_blocking` (a `Repository` is not `Sync`).

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
