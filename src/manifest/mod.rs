//! Manifest loading: YAML/JSON bytes of a commit's files → validated [`Object`]s.
//!
//! Pure: never touches git, the filesystem or the cluster. Every error names the file, the
//! document index and the line. One bad document fails the whole set.
use serde::{Deserialize, Serialize};

/// The identity of a Kubernetes object: two documents with the same id are duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectId {
    /// API group, empty for the core group.
    pub group: String,
    pub version: String,
    pub kind: String,
    /// `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    pub name: String,
}

/// Where a document came from, for error messages and reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// Path relative to the repository root.
    pub file: String,
    /// 0-based index of the document within the file (after `List` flattening, the index of
    /// the enclosing document).
    pub document: usize,
    /// 1-based line where the document starts.
    pub line: usize,
}

/// One desired object: its identity, its body as JSON, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub id: ObjectId,
    pub body: serde_json::Value,
    pub origin: Origin,
}
