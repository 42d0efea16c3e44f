//! The inventory's baseline: a re-sync of unchanged desired state is answered from the listed
//! objects' fingerprints without reading the commit's files, and every kind of drift still
//! sends the sync down the full path, which corrects it.
use crate::support::{Repo, config_map, deployment};
use crate::sync::{Sim, action_of, json, path_str, show, sync_args};
use std::process::Output;

const SECRET: &str =
    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: token\nstringData:\n  password: hunter2\n";
const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector:\n    app: web\n  ports:\n    - port: 80\n      targetPort: 8080\n";

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// A sync with the engine's debug lines, which say whether the baseline answered.
async fn sync(sim: &Sim, repo: &str) -> (Output, serde_json::Value) {
    let out = sim
        .kubesync_logged(&sync_args(repo, &[]), "kubesync=debug")
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let doc = json(&out);
    (out, doc)
}

/// The source's inventory ConfigMap.
async fn read_inventory(sim: &Sim) -> serde_json::Value {
    sim.get(
        "v1",
        "ConfigMap",
        "configmaps",
        "kubesync-inventory-default",
    )
    .await
    .expect("inventory")
}

fn answered_by_baseline(out: &Output) -> bool {
    let log = stderr(out);
    log.contains("baseline matches") && !log.contains("git read")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_answers_from_the_baseline_and_drift_still_gets_corrected() {
    let sim = Sim::start().await;
    let repo = Repo::new();
    let repo_path = path_str(repo.path());
    let settings = config_map("settings", &[("mode", "fast")]);
    let web = deployment("web", "nginx:1.27", 1);
    repo.commit_files(
        &[
            ("apps/settings.yaml", &settings),
            ("apps/token.yaml", SECRET),
            ("apps/web.yaml", &web),
            ("apps/web-svc.yaml", SERVICE),
        ],
        "apps",
    );
    let (out, _) = sync(&sim, &repo_path).await;
    assert!(!answered_by_baseline(&out), "{}", stderr(&out));
    let inventory = read_inventory(&sim).await;
    let baseline = inventory["data"]["baseline"].as_str().unwrap_or_default();
    assert!(baseline.starts_with("key "), "{inventory}");
    assert_eq!(baseline.matches("\nobject ").count(), 4, "{baseline}");
    assert!(!baseline.contains("hunter2"), "{baseline}");

    // The same commit: answered from the baseline, no file read, nothing written.
    let patches = sim.cluster.request_count().patch;
    let (out, doc) = sync(&sim, &repo_path).await;
    assert!(answered_by_baseline(&out), "{}", stderr(&out));
    for (kind, name) in [
        ("ConfigMap", "settings"),
        ("Secret", "token"),
        ("Deployment", "web"),
        ("Service", "web"),
    ] {
        assert_eq!(action_of(&doc, kind, name), "unchanged", "{doc}");
    }
    assert_eq!(sim.cluster.request_count().patch, patches, "a write");
    let out = sim
        .kubesync_logged(
            &["diff", "--repo", &repo_path, "--path", "apps"],
            "kubesync=debug",
        )
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(answered_by_baseline(&out), "{}", stderr(&out));

    // Drift by another writer (ownership of spec.replicas moves to kubectl): diff shows it and
    // the sync puts it back.
    let scaled = sim
        .kubectl(&["scale", "deployment/web", "--replicas=3"])
        .await;
    assert!(scaled.status.success(), "{}", show(&scaled));
    let out = sim
        .kubesync(&["diff", "--repo", &repo_path, "--path", "apps"])
        .await;
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("replicas"),
        "{}",
        show(&out)
    );
    let (out, doc) = sync(&sim, &repo_path).await;
    assert!(!answered_by_baseline(&out), "{}", stderr(&out));
    assert_eq!(action_of(&doc, "Deployment", "web"), "update", "{doc}");
    let live = sim
        .get("apps/v1", "Deployment", "deployments", "web")
        .await
        .expect("web");
    assert_eq!(live["spec"]["replicas"], 1);
    // Corrected: the baseline answers again.
    let (out, _) = sync(&sim, &repo_path).await;
    assert!(answered_by_baseline(&out), "{}", stderr(&out));

    // Drift under kubesync's own name (the owned fields stay the same, a value does not).
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(sim.client.clone(), "default");
    let live = cms.get("settings").await.expect("settings");
    let patch = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "labels": live.metadata.labels,
            "annotations": live.metadata.annotations},
        "data": {"mode": "slow"}});
    cms.patch(
        "settings",
        &kube::api::PatchParams::apply("kubesync").force(),
        &kube::api::Patch::Apply(&patch),
    )
    .await
    .expect("patch as kubesync");
    let (out, doc) = sync(&sim, &repo_path).await;
    assert!(!answered_by_baseline(&out), "{}", stderr(&out));
    assert_eq!(action_of(&doc, "ConfigMap", "settings"), "update", "{doc}");
    let live = cms.get("settings").await.expect("settings");
    assert_eq!(
        live.data
            .unwrap_or_default()
            .get("mode")
            .map(String::as_str),
        Some("fast")
    );

    // A Secret's value changed under `data` (kubesync owns it as `stringData`).
    let patched = sim
        .kubectl(&[
            "patch",
            "secret",
            "token",
            "-p",
            r#"{"data":{"password":"b3RoZXI="}}"#,
        ])
        .await;
    assert!(patched.status.success(), "{}", show(&patched));
    let (out, doc) = sync(&sim, &repo_path).await;
    assert!(!answered_by_baseline(&out), "{}", stderr(&out));
    assert_eq!(action_of(&doc, "Secret", "token"), "update", "{doc}");
    let secret = sim
        .get("v1", "Secret", "secrets", "token")
        .await
        .expect("token");
    assert_eq!(secret["data"]["password"], "aHVudGVyMg==");

    // The ownership label removed: the object is no longer listed as managed.
    let unlabelled = sim
        .kubectl(&["label", "service", "web", "kubesync.io/source-"])
        .await;
    assert!(unlabelled.status.success(), "{}", show(&unlabelled));
    let (out, doc) = sync(&sim, &repo_path).await;
    assert!(!answered_by_baseline(&out), "{}", stderr(&out));
    assert_ne!(action_of(&doc, "Service", "web"), "unchanged", "{doc}");
    let svc = sim
        .get("v1", "Service", "services", "web")
        .await
        .expect("service");
    assert_eq!(svc["metadata"]["labels"]["kubesync.io/source"], "default");

    // A commit outside the path: the same desired objects, so the baseline answers, and the
    // inventory moves to the new commit.
    let outside = repo.commit("README.md", "docs\n");
    let (out, doc) = sync(&sim, &repo_path).await;
    assert!(answered_by_baseline(&out), "{}", stderr(&out));
    assert_eq!(doc["commit"], outside);
    let inventory = read_inventory(&sim).await;
    assert_eq!(inventory["data"]["commit"], outside);

    // Another commit changes a manifest: the full path, with the change applied.
    repo.commit(
        "apps/settings.yaml",
        &config_map("settings", &[("mode", "safe")]),
    );
    let (out, doc) = sync(&sim, &repo_path).await;
    assert!(!answered_by_baseline(&out), "{}", stderr(&out));
    assert_eq!(action_of(&doc, "ConfigMap", "settings"), "update", "{doc}");
    assert_eq!(action_of(&doc, "Deployment", "web"), "unchanged", "{doc}");
    sim.cluster.shutdown().await;
}

/// Manifests as `kubectl create --dry-run=client -o yaml` writes them carry
/// `creationTimestamp: null` and `status: {}`: the server skips both, so a re-sync writes
/// nothing (and is answered from the baseline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_manifests_with_nulls_cost_no_write() {
    let sim = Sim::start().await;
    let repo = Repo::new();
    let repo_path = path_str(repo.path());
    let generated = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  creationTimestamp: null\n  labels:\n    app: gen\n  name: gen\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: gen\n  strategy: {}\n  template:\n    metadata:\n      creationTimestamp: null\n      labels:\n        app: gen\n    spec:\n      containers:\n      - image: nginx\n        name: nginx\n        resources: {}\nstatus: {}\n";
    let cm = "apiVersion: v1\ndata:\n  a: b\nkind: ConfigMap\nmetadata:\n  creationTimestamp: null\n  name: gen\n";
    repo.commit_files(
        &[("apps/gen.yaml", generated), ("apps/cm.yaml", cm)],
        "generated",
    );
    let (_, doc) = sync(&sim, &repo_path).await;
    assert_eq!(action_of(&doc, "Deployment", "gen"), "create", "{doc}");
    let before = sim.versions("apps/v1", "Deployment", "deployments").await;
    let patches = sim.cluster.request_count().patch;
    let (out, doc) = sync(&sim, &repo_path).await;
    assert_eq!(action_of(&doc, "Deployment", "gen"), "unchanged", "{doc}");
    assert_eq!(action_of(&doc, "ConfigMap", "gen"), "unchanged", "{doc}");
    assert!(answered_by_baseline(&out), "{}", stderr(&out));
    assert_eq!(sim.cluster.request_count().patch, patches, "a write");
    assert_eq!(
        sim.versions("apps/v1", "Deployment", "deployments").await,
        before
    );
    sim.cluster.shutdown().await;
}
