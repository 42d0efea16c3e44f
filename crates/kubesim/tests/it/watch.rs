//! Watch semantics: initial events, resume from a resourceVersion, selectors, bookmarks,
//! streaming lists, too-old resourceVersions and timeouts.

use serde_json::json;

use crate::support::{Watch, cluster, configmap, get, send_json};

const CM: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test]
async fn initial_events_then_live_changes() {
    let c = cluster().await;
    let a = c.addr();
    send_json(
        a,
        "POST",
        CM,
        "application/json",
        &configmap("one", json!({})),
    )
    .await;
    let mut w = Watch::open(a, &format!("{CM}?&watch=true&resourceVersion=0")).await;
    assert_eq!(w.status, 200);
    let e = w.next_change().await.unwrap();
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("one"))
    );
    send_json(
        a,
        "PATCH",
        &format!("{CM}/one"),
        "application/merge-patch+json",
        &json!({"data": {"k": "v"}}),
    )
    .await;
    let e = w.next_change().await.unwrap();
    assert_eq!(e["type"], "MODIFIED");
    assert_eq!(e["object"]["data"]["k"], "v");
    crate::support::http(a, "DELETE", &format!("{CM}/one"), &[], b"").await;
    let e = w.next_change().await.unwrap();
    assert_eq!(e["type"], "DELETED");
    assert!(
        !e["object"]["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    c.shutdown().await;
}

#[tokio::test]
async fn resume_from_resource_version_replays_history() {
    let c = cluster().await;
    let a = c.addr();
    let list = get(a, CM).await.json();
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    send_json(
        a,
        "POST",
        CM,
        "application/json",
        &configmap("a", json!({})),
    )
    .await;
    send_json(
        a,
        "POST",
        CM,
        "application/json",
        &configmap("b", json!({})),
    )
    .await;
    let mut w = Watch::open(
        a,
        &format!("{CM}?watch=1&resourceVersion={rv}&allowWatchBookmarks=true"),
    )
    .await;
    assert_eq!(
        w.next_change().await.unwrap()["object"]["metadata"]["name"],
        "a"
    );
    assert_eq!(
        w.next_change().await.unwrap()["object"]["metadata"]["name"],
        "b"
    );
    c.shutdown().await;
}

#[tokio::test]
async fn selector_transitions_become_added_and_deleted() {
    let c = cluster().await;
    let a = c.addr();
    let mut w = Watch::open(a, &format!("{CM}?watch=true&labelSelector=app%3Dweb")).await;
    send_json(
        a,
        "POST",
        CM,
        "application/json",
        &configmap("x", json!({})),
    )
    .await;
    send_json(
        a,
        "PATCH",
        &format!("{CM}/x"),
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {"app": "web"}}}),
    )
    .await;
    let e = w.next_change().await.unwrap();
    assert_eq!(e["type"], "ADDED");
    send_json(
        a,
        "PATCH",
        &format!("{CM}/x"),
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {"app": "db"}}}),
    )
    .await;
    let e = w.next_change().await.unwrap();
    assert_eq!(e["type"], "DELETED");
    assert_eq!(e["object"]["metadata"]["labels"]["app"], "db");
    c.shutdown().await;
}

#[tokio::test]
async fn streaming_list_ends_initial_events_with_a_bookmark() {
    let c = cluster().await;
    let a = c.addr();
    send_json(
        a,
        "POST",
        CM,
        "application/json",
        &configmap("s", json!({})),
    )
    .await;
    let mut w = Watch::open(
        a,
        &format!("{CM}?&watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"),
    )
    .await;
    assert_eq!(w.next().await.unwrap()["type"], "ADDED");
    let b = w.next().await.unwrap();
    assert_eq!(b["type"], "BOOKMARK");
    assert_eq!(b["object"]["kind"], "ConfigMap");
    assert_eq!(b["object"]["apiVersion"], "v1");
    assert_eq!(
        b["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    c.shutdown().await;
}

#[tokio::test]
async fn too_old_resource_version_is_an_in_stream_410() {
    let dir = tempfile::tempdir().unwrap();
    let config = || kubesim::Config {
        state_dir: Some(dir.path().to_owned()),
        ..kubesim::Config::default()
    };
    let c = kubesim::Cluster::start(config()).await.unwrap();
    send_json(
        c.addr(),
        "POST",
        CM,
        "application/json",
        &configmap("a", json!({})),
    )
    .await;
    c.shutdown().await;
    // After a restart the history before the loaded state is gone.
    let c = kubesim::Cluster::start(config()).await.unwrap();
    let mut w = Watch::open(c.addr(), &format!("{CM}?watch=true&resourceVersion=1")).await;
    assert_eq!(w.status, 200);
    let e = w.next().await.unwrap();
    assert_eq!(e["type"], "ERROR");
    assert_eq!(e["object"]["code"], 410);
    assert_eq!(e["object"]["reason"], "Expired");
    assert!(w.next().await.is_none());
    c.shutdown().await;
}

#[tokio::test]
async fn timeout_seconds_ends_the_stream() {
    let c = cluster().await;
    let mut w = Watch::open(c.addr(), &format!("{CM}?watch=true&timeoutSeconds=1")).await;
    // Only the (empty) stream end: no objects in default.
    assert!(w.next_change().await.is_none());
    c.shutdown().await;
}
