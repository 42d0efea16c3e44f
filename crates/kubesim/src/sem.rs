//! The one place kubesim calls its pure sibling crates (`kubesim-registry` for the
//! per-kind API rules and descriptions, `kubesim-merge` for patches and server-side
//! apply), adapting their signatures and errors to the API layer's `ApiError`.
//!
//! Must not: hold state or do I/O.

use jiff::Timestamp;
use serde_json::{Value, json};

pub use kubesim_registry::Resource;

use crate::clock::rfc3339;
use crate::status::ApiError;

pub fn resources() -> &'static [Resource] {
    kubesim_registry::resources()
}

pub fn by_plural(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    kubesim_registry::by_plural(group, version, plural)
}

pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static Resource> {
    kubesim_registry::by_kind(api_version, kind)
}

pub fn default(res: &Resource, obj: &mut Value) {
    kubesim_registry::default(res, obj);
}

pub fn prepare_create(res: &Resource, obj: &mut Value) {
    kubesim_registry::prepare_create(res, obj);
}

pub fn prepare_update(res: &Resource, old: &Value, new: &mut Value, subresource: Option<&str>) {
    kubesim_registry::prepare_update(res, old, new, subresource);
}

pub fn validate(res: &Resource, old: Option<&Value>, new: &Value) -> Result<(), ApiError> {
    kubesim_registry::validate(res, old, new).map_err(|e| ApiError::from_status(&e.status()))
}

pub fn table(res: &Resource, items: &[Value], list_rv: &str, now: Timestamp) -> Value {
    kubesim_registry::table(res, items, list_rv, now)
}

pub fn scale_of(res: &Resource, obj: &Value) -> Option<Value> {
    kubesim_registry::scale_of(res, obj)
}

pub fn apply_scale(res: &Resource, obj: &mut Value, scale: &Value) -> Result<(), ApiError> {
    kubesim_registry::apply_scale(res, obj, scale).map_err(|e| ApiError::from_status(&e.status()))
}

pub fn version() -> Value {
    kubesim_registry::version()
}

pub fn api_versions(addr: &str) -> Value {
    kubesim_registry::api_versions(addr)
}

pub fn api_group_list() -> Value {
    kubesim_registry::api_group_list()
}

pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    kubesim_registry::api_resource_list(group, version)
}

pub fn aggregated_discovery(core: bool) -> Value {
    kubesim_registry::aggregated_discovery(core)
}

pub fn openapi_v3_root() -> Value {
    kubesim_registry::openapi_v3_root()
}

pub fn openapi_v3_group_version(path: &str) -> Option<Value> {
    kubesim_registry::openapi_v3_group_version(path)
}

fn patch_error(e: kubesim_merge::PatchError) -> ApiError {
    match e.code() {
        400 => ApiError::bad_request(e.to_string()),
        code => ApiError::new(code, "Invalid", e.to_string()),
    }
}

pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    kubesim_merge::merge_patch(target, patch)
}

pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, ApiError> {
    kubesim_merge::json_patch(target, patch).map_err(patch_error)
}

pub fn strategic_merge_patch(
    api_version: &str,
    kind: &str,
    target: &Value,
    patch: &Value,
) -> Result<Value, ApiError> {
    kubesim_merge::strategic_merge_patch(api_version, kind, target, patch).map_err(patch_error)
}

/// Server-side apply; returns the merged (not yet defaulted) object with managedFields.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
    subresource: Option<&str>,
    time: Timestamp,
) -> Result<Value, ApiError> {
    let time = rfc3339(time);
    let req = kubesim_merge::ApplyRequest {
        manager,
        force,
        api_version,
        subresource,
        time: &time,
    };
    kubesim_merge::apply(live, applied, &req).map_err(|e| match e {
        kubesim_merge::ApplyError::Conflict { message, causes } => {
            let causes: Vec<Value> = causes
                .iter()
                .map(|c| json!({"reason": "FieldManagerConflict", "message": c.message, "field": c.field}))
                .collect();
            ApiError { details: Some(Box::new(json!({ "causes": causes }))), ..ApiError::new(409, "Conflict", message) }
        }
        kubesim_merge::ApplyError::Invalid(m) => ApiError::bad_request(m),
    })
}

/// managedFields bookkeeping of a non-apply write.
pub fn record_update(
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    api_version: &str,
    subresource: Option<&str>,
    time: Timestamp,
) -> Value {
    kubesim_merge::record_update(old, new, manager, api_version, subresource, &rfc3339(time))
}
