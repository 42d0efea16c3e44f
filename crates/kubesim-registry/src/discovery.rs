//! Discovery documents: legacy `/api` (APIVersions), `/apis` (APIGroupList), per group-version
//! APIResourceLists, the aggregated `APIGroupDiscoveryList` (apidiscovery.k8s.io/v2), and
//! `/version`.
//!
//! Built from the resource table only; content negotiation and HTTP are the caller's job. The
//! aggregated form must be served with
//! `Content-Type: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`.

use serde_json::{Map, Value, json};

use crate::resources::{GROUPS, Resource, VERBS_SUBRESOURCE, of_group_version, resources};

/// The Content-Type the aggregated discovery documents must be served with.
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// The Kubernetes version kubesim claims to be (kubectl's dispatcher picks `kubectl.1.32`).
pub const MAJOR: &str = "1";
pub const MINOR: &str = "32";
pub const GIT_VERSION: &str = "v1.32.0";

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": MAJOR,
        "minor": MINOR,
        "gitVersion": GIT_VERSION,
        "gitCommit": "70d3cc986aa8221cd1dfb1121852688902d3bf53",
        "gitTreeState": "clean",
        "buildDate": "2024-12-11T17:59:15Z",
        "goVersion": "go1.23.3",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// `/api`: `server_address` is `host:port` clients should use.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

/// `/apis`.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = GROUPS
        .iter()
        .map(|(g, v)| {
            let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/api/v1` (`group == ""`) or `/apis/<group>/<version>`; `None` for an unknown group-version.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let served = (group.is_empty() && version == "v1") || GROUPS.contains(&(group, version));
    if !served {
        return None;
    }
    let mut items = Vec::new();
    for r in of_group_version(group, version) {
        let mut main = Map::new();
        main.insert("name".into(), json!(r.plural));
        main.insert("singularName".into(), json!(r.singular));
        main.insert("namespaced".into(), json!(r.namespaced));
        main.insert("kind".into(), json!(r.kind));
        main.insert("verbs".into(), json!(r.verbs));
        if !r.short_names.is_empty() {
            main.insert("shortNames".into(), json!(r.short_names));
        }
        if !r.categories.is_empty() {
            main.insert("categories".into(), json!(r.categories));
        }
        items.push(Value::Object(main));
        for sub in r.subresources {
            let mut s = Map::new();
            s.insert("name".into(), json!(format!("{}/{sub}", r.plural)));
            s.insert("singularName".into(), json!(""));
            s.insert("namespaced".into(), json!(r.namespaced));
            if *sub == "scale" {
                s.insert("group".into(), json!("autoscaling"));
                s.insert("version".into(), json!("v1"));
                s.insert("kind".into(), json!("Scale"));
            } else {
                s.insert("kind".into(), json!(r.kind));
            }
            s.insert("verbs".into(), json!(VERBS_SUBRESOURCE));
            items.push(Value::Object(s));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": items
    }))
}

fn aggregated_resource(r: &Resource) -> Value {
    let kind = json!({"group": r.group, "version": r.version, "kind": r.kind});
    let mut m = Map::new();
    m.insert("resource".into(), json!(r.plural));
    m.insert("responseKind".into(), kind.clone());
    m.insert(
        "scope".into(),
        json!(if r.namespaced {
            "Namespaced"
        } else {
            "Cluster"
        }),
    );
    m.insert("singularResource".into(), json!(r.singular));
    m.insert("verbs".into(), json!(r.verbs));
    if !r.short_names.is_empty() {
        m.insert("shortNames".into(), json!(r.short_names));
    }
    if !r.categories.is_empty() {
        m.insert("categories".into(), json!(r.categories));
    }
    if !r.subresources.is_empty() {
        let subs: Vec<Value> = r
            .subresources
            .iter()
            .map(|s| {
                let rk = if *s == "scale" {
                    json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
                } else {
                    kind.clone()
                };
                json!({"subresource": s, "responseKind": rk, "verbs": VERBS_SUBRESOURCE})
            })
            .collect();
        m.insert("subresources".into(), Value::Array(subs));
    }
    Value::Object(m)
}

/// Aggregated discovery (`APIGroupDiscoveryList`, apidiscovery.k8s.io/v2): `core == true` for
/// `/api` (one item named `""`), else `/apis`.
pub fn aggregated_discovery(core: bool) -> Value {
    let gvs: Vec<(&str, &str)> = if core {
        vec![("", "v1")]
    } else {
        GROUPS.to_vec()
    };
    let items: Vec<Value> = gvs
        .iter()
        .map(|(g, v)| {
            let resources: Vec<Value> = of_group_version(g, v).map(aggregated_resource).collect();
            json!({
                "metadata": {"name": g},
                "versions": [{"version": v, "resources": resources, "freshness": "Current"}]
            })
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items
    })
}

/// Every group-version path served (`api/v1`, `apis/apps/v1`, ...), in discovery order.
pub fn group_version_paths() -> Vec<String> {
    let mut out = vec!["api/v1".to_string()];
    out.extend(GROUPS.iter().map(|(g, v)| format!("apis/{g}/{v}")));
    debug_assert!(
        resources()
            .iter()
            .all(|r| out.contains(&r.gv_path()[1..].to_string()))
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_documents() {
        assert_eq!(
            api_versions("127.0.0.1:6443"),
            json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]})
        );
        let groups = api_group_list();
        assert_eq!(groups["kind"], "APIGroupList");
        assert_eq!(
            groups["groups"][0],
            json!({"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}})
        );
        assert_eq!(groups["groups"].as_array().unwrap().len(), GROUPS.len());
    }

    #[test]
    fn resource_list_has_subresources() {
        let apps = api_resource_list("apps", "v1").unwrap();
        assert_eq!(apps["groupVersion"], "apps/v1");
        let rs = apps["resources"].as_array().unwrap();
        let find = |n: &str| rs.iter().find(|r| r["name"] == n).unwrap().clone();
        assert_eq!(
            find("deployments"),
            json!({"name": "deployments", "singularName": "deployment", "namespaced": true, "kind": "Deployment",
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                "shortNames": ["deploy"], "categories": ["all"]})
        );
        assert_eq!(
            find("deployments/status"),
            json!({"name": "deployments/status", "singularName": "", "namespaced": true, "kind": "Deployment",
                "verbs": ["get", "patch", "update"]})
        );
        assert_eq!(
            find("deployments/scale"),
            json!({"name": "deployments/scale", "singularName": "", "namespaced": true, "group": "autoscaling",
                "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]})
        );
        let core = api_resource_list("", "v1").unwrap();
        assert_eq!(core["groupVersion"], "v1");
        assert!(
            core["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["name"] == "pods/status")
        );
        assert!(api_resource_list("apps", "v1beta1").is_none());
        assert!(api_resource_list("", "v2").is_none());
    }

    #[test]
    fn aggregated() {
        let core = aggregated_discovery(true);
        assert_eq!(core["kind"], "APIGroupDiscoveryList");
        assert_eq!(core["apiVersion"], "apidiscovery.k8s.io/v2");
        let items = core["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["metadata"]["name"], "");
        let pods = items[0]["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "pods")
            .unwrap();
        assert_eq!(
            pods["responseKind"],
            json!({"group": "", "version": "v1", "kind": "Pod"})
        );
        assert_eq!(pods["scope"], "Namespaced");

        let apis = aggregated_discovery(false);
        let apps = &apis["items"][0];
        assert_eq!(apps["metadata"]["name"], "apps");
        assert_eq!(apps["versions"][0]["freshness"], "Current");
        let d = apps["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "deployments")
            .unwrap();
        assert_eq!(
            d["subresources"],
            json!([{"subresource": "status", "responseKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
                    "verbs": ["get", "patch", "update"]},
                   {"subresource": "scale", "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
                    "verbs": ["get", "patch", "update"]}])
        );
        assert_eq!(d["shortNames"], json!(["deploy"]));
        let ns = aggregated_discovery(true)["items"][0]["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "namespaces")
            .unwrap()
            .clone();
        assert_eq!(ns["scope"], "Cluster");
    }

    #[test]
    fn version_is_1_32() {
        let v = version();
        assert_eq!(v["major"], "1");
        assert_eq!(v["minor"], "32");
        assert_eq!(v["gitVersion"], "v1.32.0");
        assert_eq!(group_version_paths()[0], "api/v1");
        assert_eq!(group_version_paths().len(), GROUPS.len() + 1);
    }
}
