//! The kinds kubesim serves, and what the API server does to an object of each kind
//! before storing it: defaulting, validation, the create/update strategies (generation,
//! status and spec resets), plus how the kinds are described to clients (discovery,
//! OpenAPI v3, `Table` output).
//!
//! Pure: no storage, no HTTP, no clock (time is a parameter).

/// Defaulting applied on create and update, before validation.
pub mod defaults;
/// Discovery documents (`/api`, `/apis`, per group-version, aggregated) and `/version`.
pub mod discovery;
/// `serde_json::Value` helpers: paths, semantic equality, selectors, base64.
pub mod json;
/// OpenAPI v3 documents that let kubectl trust server-side field validation.
pub mod openapi;
/// The static table of served kinds.
pub mod resources;
/// `autoscaling/v1` Scale views of Deployments, ReplicaSets and StatefulSets.
pub mod scale;
/// Create/update strategies: generation, status and spec resets.
pub mod strategy;
/// `meta.k8s.io/v1` Table rendering for `kubectl get`.
pub mod table;
/// Validation producing 422 `Invalid` errors.
pub mod validation;

pub use defaults::default;
pub use discovery::{
    aggregated_discovery, api_group_list, api_resource_list, api_versions, version,
};
pub use openapi::{openapi_v3_group_version, openapi_v3_root};
pub use resources::{Resource, by_kind, by_plural, resources};
pub use scale::{apply_scale, scale_of};
pub use strategy::{prepare_create, prepare_update};
pub use table::table;
pub use validation::{Cause, Invalid, validate};

/// JSON value type used throughout (re-exported so callers need not name serde_json).
pub use serde_json::Value;
