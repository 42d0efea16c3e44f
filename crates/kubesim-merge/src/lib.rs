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
