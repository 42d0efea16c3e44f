//! Minimal OpenAPI v3 documents: the `/openapi/v3` root index and one document per
//! group-version whose item paths carry a `patch` operation with
//! `x-kubernetes-group-version-kind` and a `fieldValidation` query parameter. That is what
//! `kubectl apply --server-side` (default `--validate=strict`) checks before trusting the
//! server's field validation (§5.3).
//!
//! Deliberately schema-free: the patch operations have no `requestBody`, so kubectl's client-side
//! apply does not try to build strategic-merge patches from OpenAPI and falls back to its
//! compiled-in types. Hashes are stable (content hashes), so kubectl's HTTP cache stays valid.

use serde_json::{Map, Value, json};

use crate::discovery::{GIT_VERSION, group_version_paths};
use crate::resources::{Resource, of_group_version, split_api_version};

/// `/openapi/v3`.
pub fn openapi_v3_root() -> Value {
    let mut paths = Map::new();
    for gv in group_version_paths() {
        if let Some(doc) = openapi_v3_group_version(&gv) {
            let url = format!("/openapi/v3/{gv}?hash={}", content_hash(&doc));
            paths.insert(gv, json!({"serverRelativeURL": url}));
        }
    }
    json!({"paths": paths})
}

/// `/openapi/v3/<gv_path>` for `gv_path` = `api/v1` or `apis/<group>/<version>` (a leading `/`
/// and a `?query` are tolerated). `None` for an unknown group-version.
pub fn openapi_v3_group_version(gv_path: &str) -> Option<Value> {
    let path = gv_path.split('?').next().unwrap_or("").trim_matches('/');
    let (group, version) = if let Some(v) = path.strip_prefix("api/") {
        ("", v)
    } else {
        split_api_version(path.strip_prefix("apis/")?)
    };
    if version.is_empty() || version.contains('/') {
        return None;
    }
    let mut paths = Map::new();
    for r in of_group_version(group, version) {
        paths.insert(item_path(r), item_path_object(r));
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": {}}
    }))
}

/// `/apis/apps/v1/namespaces/{namespace}/deployments/{name}`.
fn item_path(r: &Resource) -> String {
    if r.namespaced {
        format!(
            "{}/namespaces/{{namespace}}/{}/{{name}}",
            r.gv_path(),
            r.plural
        )
    } else {
        format!("{}/{}/{{name}}", r.gv_path(), r.plural)
    }
}

fn query_param(name: &str, ty: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": ty, "uniqueItems": true}})
}

fn item_path_object(r: &Resource) -> Value {
    let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
    let op_id = |verb: &str| {
        let group: String = r
            .group
            .split('.')
            .next()
            .unwrap_or("")
            .chars()
            .enumerate()
            .map(|(i, c)| if i == 0 { c.to_ascii_uppercase() } else { c })
            .collect();
        let version: String = r
            .version
            .chars()
            .enumerate()
            .map(|(i, c)| if i == 0 { c.to_ascii_uppercase() } else { c })
            .collect();
        let scope = if r.namespaced { "Namespaced" } else { "" };
        format!(
            "{verb}{}{version}{scope}{}",
            if group.is_empty() {
                "Core".to_string()
            } else {
                group
            },
            r.kind
        )
    };
    let mut params = vec![
        json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}}),
    ];
    if r.namespaced {
        params.push(json!({"name": "namespace", "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}}));
    }
    json!({
        "get": {
            "operationId": op_id("read"),
            "responses": {"200": {"description": "OK"}},
            "x-kubernetes-action": "get",
            "x-kubernetes-group-version-kind": gvk.clone()
        },
        "patch": {
            "operationId": op_id("patch"),
            "parameters": [
                query_param("dryRun", "string"),
                query_param("fieldManager", "string"),
                query_param("fieldValidation", "string"),
                query_param("force", "boolean")
            ],
            "responses": {"200": {"description": "OK"}, "201": {"description": "Created"}},
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": gvk
        },
        "parameters": params
    })
}

/// FNV-1a (64-bit) of the document's JSON, upper-case hex: stable across runs and builds.
fn content_hash(doc: &Value) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in doc.to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016X}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_lists_every_group_version_with_stable_hashes() {
        let root = openapi_v3_root();
        let paths = root["paths"].as_object().unwrap();
        assert_eq!(paths.len(), group_version_paths().len());
        let apps = paths["apis/apps/v1"]["serverRelativeURL"].as_str().unwrap();
        assert!(apps.starts_with("/openapi/v3/apis/apps/v1?hash="), "{apps}");
        assert!(
            paths["api/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/api/v1?hash=")
        );
        assert_eq!(root, openapi_v3_root());
        assert_ne!(
            paths["api/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .split('=')
                .nth(1),
            apps.split('=').nth(1)
        );
    }

    #[test]
    fn group_version_document_has_patch_with_gvk_and_field_validation() {
        let doc = openapi_v3_group_version("apis/apps/v1").unwrap();
        let item = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
        let patch = &item["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "apps", "version": "v1", "kind": "Deployment"})
        );
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
        );
        assert_eq!(patch["operationId"], "patchAppsV1NamespacedDeployment");
        // No requestBody: client-side apply must not build SMPs from this (empty) schema.
        assert!(patch.get("requestBody").is_none());

        let core = openapi_v3_group_version("/api/v1?hash=X").unwrap();
        assert!(core["paths"].get("/api/v1/namespaces/{name}").is_some());
        assert!(
            core["paths"]
                .get("/api/v1/namespaces/{namespace}/pods/{name}")
                .is_some()
        );
        assert_eq!(
            core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"]["operationId"],
            "patchCoreV1NamespacedPod"
        );
        assert!(openapi_v3_group_version("apis/rbac.authorization.k8s.io/v1").is_some());
        assert!(openapi_v3_group_version("apis/apps/v2").is_none());
        assert!(openapi_v3_group_version("apis/apps").is_none());
        assert!(openapi_v3_group_version("nope").is_none());
    }
}
