//! State survives restarts (clean and torn logs).

use std::io::Write;

use serde_json::json;

use crate::support::{apply, configmap, deployment, get, send_json};

const CM: &str = "/api/v1/namespaces/default/configmaps";

fn config(dir: &std::path::Path) -> kubesim::Config {
    kubesim::Config {
        state_dir: Some(dir.to_owned()),
        ..kubesim::Config::default()
    }
}

#[tokio::test]
async fn restart_finds_every_object_and_resource_versions_keep_growing() {
    let dir = tempfile::tempdir().unwrap();
    let c = kubesim::Cluster::start(config(dir.path())).await.unwrap();
    send_json(
        c.addr(),
        "POST",
        CM,
        "application/json",
        &configmap("kept", json!({"a": "1"})),
    )
    .await;
    apply(
        c.addr(),
        "/apis/apps/v1/namespaces/default/deployments/web",
        "kubectl",
        &deployment("web", "nginx", 2),
    )
    .await;
    assert!(c.settle(std::time::Duration::from_secs(10)).await);
    let before = get(c.addr(), "/api/v1/namespaces/default/pods")
        .await
        .json();
    let rv_before: u64 = before["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    c.shutdown().await;

    let c = kubesim::Cluster::start(config(dir.path())).await.unwrap();
    assert!(c.settle(std::time::Duration::from_secs(10)).await);
    assert_eq!(
        get(c.addr(), &format!("{CM}/kept")).await.json()["data"]["a"],
        "1"
    );
    let after = get(c.addr(), "/api/v1/namespaces/default/pods")
        .await
        .json();
    assert_eq!(
        after["items"].as_array().unwrap().len(),
        2,
        "pods are kept, not recreated"
    );
    let names = |v: &serde_json::Value| {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["metadata"]["name"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&before), names(&after));
    let created = send_json(
        c.addr(),
        "POST",
        CM,
        "application/json",
        &configmap("new", json!({})),
    )
    .await
    .json();
    let rv: u64 = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv > rv_before);
    c.shutdown().await;
}

#[tokio::test]
async fn a_torn_last_log_line_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let c = kubesim::Cluster::start(config(dir.path())).await.unwrap();
    send_json(
        c.addr(),
        "POST",
        CM,
        "application/json",
        &configmap("kept", json!({})),
    )
    .await;
    c.shutdown().await;
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("log.jsonl"))
        .unwrap();
    log.write_all(br#"{"rv":999,"key":["","configmaps","default","torn"],"obj":{"apiVers"#)
        .unwrap();
    drop(log);
    let c = kubesim::Cluster::start(config(dir.path())).await.unwrap();
    assert_eq!(get(c.addr(), &format!("{CM}/kept")).await.status, 200);
    assert_eq!(get(c.addr(), &format!("{CM}/torn")).await.status, 404);
    // Writing after recovery works and survives another restart.
    send_json(
        c.addr(),
        "POST",
        CM,
        "application/json",
        &configmap("later", json!({})),
    )
    .await;
    c.shutdown().await;
    let c = kubesim::Cluster::start(config(dir.path())).await.unwrap();
    assert_eq!(get(c.addr(), &format!("{CM}/later")).await.status, 200);
    c.shutdown().await;
}
