//! Kubernetes patch semantics over `serde_json::Value`, with no I/O and no clock.
//!
//! Owns: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch
//! (merge keys, `null` deletion, `$patch`, `$setElementOrder`, `$retainKeys`),
//! server-side apply (structured merge, `managedFields` in `FieldsV1` form, conflicts
//! and `force`), and the managedFields bookkeeping of non-apply writes.
//! Must not: know about storage, HTTP, resourceVersions or defaulting — the caller
//! (kubesim's API layer) does those around these pure functions.
//!
//! The per-kind list semantics (which lists are map-lists keyed by which fields, which are
//! sets, which are atomic) live in [`schema`].
//!
//! How the API layer uses it, per write:
//! * apply (`application/apply-patch+yaml`): check name/apiVersion/resourceVersion
//!   preconditions, then [`apply`] (it already updates `managedFields`; a 409 is
//!   [`ApplyError::Conflict`]), then default and validate the result. Do **not** call
//!   [`record_update`] for the same write. If the result equals the live object, it is the
//!   live object (same managedFields): store nothing, bump nothing.
//! * merge / JSON / strategic merge patch: [`merge_patch`], [`json_patch`] or
//!   [`strategic_merge_patch`] on the live object, normalise (`creationTimestamp: null`),
//!   default, validate, then [`record_update`]`(Some(&live), &new, manager, …)`.
//! * create (POST) and update (PUT), controllers included: default, validate, then
//!   [`record_update`] with `old = None` (create) or the stored object; `subresource =
//!   Some("status")` for `/status` writes.
//!
//! Times are passed in (RFC 3339), so results are deterministic.

/// Server-side apply and the managedFields bookkeeping of non-apply writes.
mod apply;
/// `FieldsV1` field sets and their algebra.
mod fieldset;
/// RFC 6902 JSON patch.
mod json_patch;
/// RFC 7386 JSON merge patch.
mod merge_patch;
/// Per-kind list and map semantics.
pub mod schema;
/// Strategic merge patch.
mod strategic;

pub use apply::{ApplyError, ApplyRequest, ConflictCause, apply, record_update};
pub use json_patch::json_patch;
pub use merge_patch::merge_patch;
pub use schema::ListType;
pub use strategic::strategic_merge_patch;

/// Why a merge, JSON or strategic merge patch could not be applied. [`PatchError::code`] is the
/// HTTP status the API layer should answer with (400 BadRequest or 422 Invalid); the message is
/// the Status `message`.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The patch document itself is malformed (wrong JSON shape, unknown op, bad pointer).
    #[error("{0}")]
    Malformed(String),
    /// A JSON patch operation addressed a path that does not exist.
    #[error("jsonpatch {op} operation does not apply: doc is missing path: {path}: missing value")]
    MissingPath { op: String, path: String },
    /// A JSON patch array index beyond the end of the array.
    #[error("jsonpatch {op} operation does not apply: index out of range for path: {path}")]
    OutOfRange { op: String, path: String },
    /// A JSON patch `test` operation found a different value.
    #[error("testing value {path} failed: test failed")]
    TestFailed { path: String },
    /// A strategic merge patch list item lacks the list's merge key.
    #[error("map: {item} does not contain declared merge key: {key}")]
    MissingMergeKey { key: String, item: String },
    /// An invalid `$patch` (or other `$`) directive in a strategic merge patch.
    #[error("{0}")]
    BadDirective(String),
}

impl PatchError {
    /// HTTP status for the Status object: malformed input is 400, a well-formed patch that does
    /// not apply to this object is 422 (as the apiserver answers for JSON patch).
    pub fn code(&self) -> u16 {
        match self {
            PatchError::Malformed(_)
            | PatchError::MissingMergeKey { .. }
            | PatchError::BadDirective(_) => 400,
            PatchError::MissingPath { .. }
            | PatchError::OutOfRange { .. }
            | PatchError::TestFailed { .. } => 422,
        }
    }

    /// A fixed label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            PatchError::Malformed(_) => "malformed",
            PatchError::MissingPath { .. } => "missing_path",
            PatchError::OutOfRange { .. } => "out_of_range",
            PatchError::TestFailed { .. } => "test_failed",
            PatchError::MissingMergeKey { .. } => "missing_merge_key",
            PatchError::BadDirective(_) => "bad_directive",
        }
    }
}
