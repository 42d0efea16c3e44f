//! `kubesync sync` end to end: the built binary against an in-process kubesim on a real
//! socket (127.0.0.1:0), checked with `kube` reads and with the real `kubectl`.
use crate::support::{Repo, config_map, deployment, kubesync_bin};
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::ApiResource;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

/// A kubesim cluster on a socket, its kubeconfig in a temp dir, and a `kube` client.
pub struct Sim {
    pub cluster: kubesim::Cluster,
    pub kubeconfig: PathBuf,
    pub home: tempfile::TempDir,
    pub client: kube::Client,
}

impl Sim {
    pub async fn start() -> Sim {
        let cluster = kubesim::Cluster::start(kubesim::Config::default())
            .await
            .expect("kubesim starts");
        let home = tempfile::tempdir().expect("temp dir");
        let kubeconfig = home.path().join("kubeconfig");
        cluster
            .write_kubeconfig(&kubeconfig)
            .expect("kubeconfig written");
        let client = kube::Client::new(cluster.router(), "default");
        Sim {
            cluster,
            kubeconfig,
            home,
            client,
        }
    }

    /// Runs the kubesync binary (in a blocking task, so the cluster keeps serving) with
    /// `--kubeconfig` pointing at this cluster and a clean environment.
    pub async fn kubesync(&self, args: &[&str]) -> Output {
        self.kubesync_logged(args, "warn").await
    }

    /// [`Sim::kubesync`] with `KUBESYNC_LOG` set to `log` (to read what the run did).
    pub async fn kubesync_logged(&self, args: &[&str], log: &str) -> Output {
        let mut cmd = std::process::Command::new(kubesync_bin());
        cmd.args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .env_remove("KUBECONFIG")
            .env("HOME", self.home.path())
            .env("KUBESYNC_LOG", log)
            .current_dir(self.home.path());
        tokio::task::spawn_blocking(move || cmd.output().expect("kubesync runs"))
            .await
            .expect("join")
    }

    /// Runs the real kubectl with a fresh HOME.
    pub async fn kubectl(&self, args: &[&str]) -> Output {
        let home = tempfile::tempdir().expect("temp dir");
        let mut cmd = std::process::Command::new("/usr/bin/kubectl");
        cmd.args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .env("HOME", home.path())
            .env_remove("KUBECONFIG");
        let out = tokio::task::spawn_blocking(move || cmd.output().expect("kubectl runs"))
            .await
            .expect("join");
        drop(home);
        out
    }

    /// Every object of a resource in `default`, name → resourceVersion.
    pub async fn versions(
        &self,
        api_version: &str,
        kind: &str,
        plural: &str,
    ) -> BTreeMap<String, String> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let ar = ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: api_version.into(),
            kind: kind.into(),
            plural: plural.into(),
        };
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), "default", &ar);
        api.list(&ListParams::default())
            .await
            .expect("list")
            .items
            .into_iter()
            .map(|o| {
                (
                    o.metadata.name.unwrap_or_default(),
                    o.metadata.resource_version.unwrap_or_default(),
                )
            })
            .collect()
    }

    pub async fn get(
        &self,
        api_version: &str,
        kind: &str,
        plural: &str,
        name: &str,
    ) -> Option<Value> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let ar = ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: api_version.into(),
            kind: kind.into(),
            plural: plural.into(),
        };
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), "default", &ar);
        api.get_opt(name)
            .await
            .expect("get")
            .map(|o| serde_json::to_value(o).expect("json"))
    }
}

pub fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

pub fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The change entry of the object named `name` in a sync's JSON report.
pub fn change_of(doc: &Value, name: &str) -> Value {
    doc["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no change for {name} in {doc}"))
        .clone()
}

pub fn action_of(doc: &Value, kind: &str, name: &str) -> String {
    doc["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["kind"] == kind && c["name"] == name)
        .map(|c| c["action"].as_str().unwrap_or_default().to_string())
        .unwrap_or_else(|| "absent".into())
}

pub fn sync_args<'a>(repo: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "sync",
        "--repo",
        repo,
        "--path",
        "apps",
        "-o",
        "json",
        "--timeout",
        "60s",
    ];
    args.extend_from_slice(extra);
    args
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_creates_then_resync_writes_nothing_and_history_shows_commits() {
    let sim = Sim::start().await;
    let repo = Repo::new();
    let repo_path = path_str(repo.path());
    repo.commit(
        "apps/config.yaml",
        &config_map("settings", &[("mode", "fast")]),
    );
    let first = repo.commit("apps/web.yaml", &deployment("web", "nginx:1.26", 1));

    let out = sim.kubesync(&sync_args(&repo_path, &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let doc = json(&out);
    assert_eq!(doc["commit"], first);
    assert_eq!(action_of(&doc, "ConfigMap", "settings"), "create");
    assert_eq!(action_of(&doc, "Deployment", "web"), "create");
    let web = change_of(&doc, "web");
    assert_eq!(web["rollout"]["status"], "complete", "{doc}");
    assert_eq!(web["rollout"]["revision"], 1);

    // Contracts on the applied object.
    let live = sim
        .get("apps/v1", "Deployment", "deployments", "web")
        .await
        .expect("web exists");
    assert_eq!(
        live["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "kubesync"
    );
    assert_eq!(live["metadata"]["labels"]["kubesync.io/source"], "default");
    assert_eq!(live["metadata"]["annotations"]["kubesync.io/commit"], first);
    let cause = live["metadata"]["annotations"]["kubernetes.io/change-cause"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(cause.starts_with(&first[..7]), "{cause}");
    let managers: Vec<&str> = live["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&"kubesync"), "{managers:?}");

    // The same commit again: zero writes, same resourceVersions.
    let before_cm = sim.versions("v1", "ConfigMap", "configmaps").await;
    let before_dep = sim.versions("apps/v1", "Deployment", "deployments").await;
    let writes_before = sim.cluster.request_count();
    let out = sim.kubesync(&sync_args(&repo_path, &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let doc = json(&out);
    assert_eq!(action_of(&doc, "ConfigMap", "settings"), "unchanged");
    assert_eq!(action_of(&doc, "Deployment", "web"), "unchanged");
    let writes_after = sim.cluster.request_count();
    assert_eq!(
        writes_after.patch, writes_before.patch,
        "no PATCH on a no-op sync"
    );
    assert_eq!(
        writes_after.create + writes_after.update + writes_after.delete,
        writes_before.create + writes_before.update + writes_before.delete
    );
    assert_eq!(
        sim.versions("v1", "ConfigMap", "configmaps").await,
        before_cm
    );
    assert_eq!(
        sim.versions("apps/v1", "Deployment", "deployments").await,
        before_dep
    );

    // A commit that does not touch the Deployment costs it no write.
    repo.commit("apps/other.yaml", &config_map("other", &[("a", "b")]));
    let out = sim.kubesync(&sync_args(&repo_path, &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let doc = json(&out);
    assert_eq!(action_of(&doc, "Deployment", "web"), "unchanged");
    assert_eq!(action_of(&doc, "ConfigMap", "other"), "create");
    assert_eq!(
        sim.versions("apps/v1", "Deployment", "deployments").await,
        before_dep
    );

    // An image change is a rollout to revision 2; kubectl rollout history shows both commits.
    let second = repo.commit("apps/web.yaml", &deployment("web", "nginx:1.27", 1));
    let out = sim.kubesync(&sync_args(&repo_path, &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let doc = json(&out);
    assert_eq!(action_of(&doc, "Deployment", "web"), "update");
    let web = change_of(&doc, "web");
    assert_eq!(web["rollout"]["cause"], "template");
    assert_eq!(web["rollout"]["revision"], 2);
    assert_eq!(web["rollout"]["status"], "complete");
    let history = sim.kubectl(&["rollout", "history", "deployment/web"]).await;
    let text = String::from_utf8_lossy(&history.stdout).to_string();
    assert!(history.status.success(), "{}", show(&history));
    assert!(
        text.contains(&first[..7]) && text.contains(&second[..7]),
        "{text}"
    );

    // Inventory records the commit.
    let inv = sim
        .get(
            "v1",
            "ConfigMap",
            "configmaps",
            "kubesync-inventory-default",
        )
        .await
        .expect("inventory");
    assert_eq!(inv["data"]["commit"], second);
    assert!(
        inv["data"]["objects"]
            .as_str()
            .unwrap()
            .contains("apps/v1 Deployment default/web")
    );
    sim.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_file_is_pruned_and_broken_commit_writes_nothing() {
    let sim = Sim::start().await;
    let repo = Repo::new();
    let repo_path = path_str(repo.path());
    repo.commit("apps/a.yaml", &config_map("a", &[("k", "1")]));
    repo.commit("apps/b.yaml", &config_map("b", &[("k", "1")]));
    repo.commit("apps/c.yaml", &config_map("c", &[("k", "1")]));
    let out = sim.kubesync(&sync_args(&repo_path, &["--prune"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    // Without --prune a removed file is left alone.
    repo.remove("apps/c.yaml");
    let out = sim.kubesync(&sync_args(&repo_path, &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        sim.get("v1", "ConfigMap", "configmaps", "c")
            .await
            .is_some()
    );
    // With --prune it is deleted.
    let out = sim.kubesync(&sync_args(&repo_path, &["--prune"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(action_of(&json(&out), "ConfigMap", "c"), "delete");
    assert!(
        sim.get("v1", "ConfigMap", "configmaps", "c")
            .await
            .is_none()
    );
    assert!(
        sim.get("v1", "ConfigMap", "configmaps", "a")
            .await
            .is_some()
    );

    // Removing more than half needs --allow-mass-prune.
    repo.remove("apps/b.yaml");
    repo.commit("apps/a.yaml", &config_map("a", &[("k", "2")]));
    repo.commit("apps/d.yaml", &config_map("d", &[("k", "1")]));
    repo.remove("apps/a.yaml");
    let out = sim.kubesync(&sync_args(&repo_path, &["--prune"])).await;
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--allow-mass-prune"),
        "{}",
        show(&out)
    );
    assert!(
        sim.get("v1", "ConfigMap", "configmaps", "d")
            .await
            .is_none(),
        "refused prune writes nothing"
    );

    // A broken document: exit 2, nothing written.
    repo.commit(
        "apps/bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [oops\n",
    );
    let versions = sim.versions("v1", "ConfigMap", "configmaps").await;
    let counts = sim.cluster.request_count();
    let out = sim
        .kubesync(&sync_args(&repo_path, &["--allow-mass-prune", "--prune"]))
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.yaml"),
        "{}",
        show(&out)
    );
    assert_eq!(
        sim.versions("v1", "ConfigMap", "configmaps").await,
        versions
    );
    assert_eq!(sim.cluster.request_count().patch, counts.patch);
    sim.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_namespace_and_unknown_kind_write_nothing() {
    let sim = Sim::start().await;
    let repo = Repo::new();
    let repo_path = path_str(repo.path());
    repo.commit(
        "apps/x.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: nowhere}\ndata: {a: b}\n",
    );
    repo.commit("apps/y.yaml", &config_map("y", &[("k", "1")]));
    let out = sim.kubesync(&sync_args(&repo_path, &[])).await;
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nowhere"),
        "{}",
        show(&out)
    );
    assert!(
        sim.get("v1", "ConfigMap", "configmaps", "y")
            .await
            .is_none()
    );

    repo.remove("apps/x.yaml");
    repo.commit(
        "apps/z.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: z}\n",
    );
    let out = sim.kubesync(&sync_args(&repo_path, &[])).await;
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Widget"),
        "{}",
        show(&out)
    );
    assert!(
        sim.get("v1", "ConfigMap", "configmaps", "y")
            .await
            .is_none()
    );

    // With the namespace in the commit, both apply (Namespace first).
    repo.remove("apps/z.yaml");
    repo.commit_files(
        &[
            ("apps/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: nowhere}\n"),
            ("apps/x.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: nowhere}\ndata: {a: b}\n"),
        ],
        "add namespace",
    );
    let out = sim.kubesync(&sync_args(&repo_path, &["--dry-run"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(action_of(&json(&out), "Namespace", "nowhere"), "create");
    assert!(
        sim.get("v1", "ConfigMap", "configmaps", "y")
            .await
            .is_none(),
        "dry run writes nothing"
    );
    let out = sim.kubesync(&sync_args(&repo_path, &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let got = sim
        .kubectl(&["get", "configmap", "x", "-n", "nowhere", "-o", "json"])
        .await;
    assert!(got.status.success(), "{}", show(&got));
    sim.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_rollout_exits_1() {
    let sim = Sim::start().await;
    let repo = Repo::new();
    let repo_path = path_str(repo.path());
    // Pods carrying kubesim.io/never-ready never become Ready: the rollout cannot complete.
    let manifest = deployment("stuck", "nginx:1.26", 1).replace(
        "      labels:\n        app: stuck\n    spec:",
        "      labels:\n        app: stuck\n      annotations:\n        kubesim.io/never-ready: \"true\"\n    spec:",
    );
    let manifest = manifest.replace(
        "spec:\n  replicas: 1",
        "spec:\n  progressDeadlineSeconds: 1\n  replicas: 1",
    );
    repo.commit("apps/stuck.yaml", &manifest);
    let out = sim
        .kubesync(&[
            "sync",
            "--repo",
            &repo_path,
            "--path",
            "apps",
            "-o",
            "json",
            "--timeout",
            "3s",
        ])
        .await;
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let doc = json(&out);
    let row = change_of(&doc, "stuck");
    let status = row["rollout"]["status"].as_str().unwrap().to_string();
    assert!(status == "failed" || status == "timeout", "{row}");
    tokio::time::timeout(Duration::from_secs(10), sim.cluster.shutdown())
        .await
        .ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_kubeconfig_uses_the_embedded_cluster_and_keeps_its_state() {
    let repo = Repo::new();
    let repo_path = path_str(repo.path());
    repo.commit("apps/cfg.yaml", &config_map("cfg", &[("a", "1")]));
    let work = tempfile::tempdir().unwrap();
    let run = |extra: &'static [&'static str]| {
        let mut cmd = std::process::Command::new(kubesync_bin());
        cmd.args(["sync", "--repo", &repo_path, "--path", "apps", "-o", "json"])
            .args(extra)
            .env_remove("KUBECONFIG")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env("HOME", work.path())
            // `kubesync=info`, not `info`: cli/mod.rs adds `kube=warn`, and EnvFilter targets
            // match by prefix, so that directive also silences `kubesync` (reported).
            .env("KUBESYNC_LOG", "kubesync=info")
            .current_dir(work.path());
        cmd
    };
    let mut first = run(&[]);
    let out = tokio::task::spawn_blocking(move || first.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("embedded local cluster"),
        "{}",
        show(&out)
    );
    assert_eq!(action_of(&json(&out), "ConfigMap", "cfg"), "create");
    assert!(work.path().join(".kubesync/cluster").exists());
    let mut second = run(&[]);
    let out = tokio::task::spawn_blocking(move || second.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(
        action_of(&json(&out), "ConfigMap", "cfg"),
        "unchanged",
        "{}",
        show(&out)
    );

    // A kubeconfig that exists but is broken is an error, not a fallback.
    std::fs::create_dir_all(work.path().join(".kube")).unwrap();
    std::fs::write(work.path().join(".kube/config"), "not: [a kubeconfig").unwrap();
    let mut third = run(&[]);
    let out = tokio::task::spawn_blocking(move || third.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("embedded local cluster"),
        "{}",
        show(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_change_and_git_revert_are_named_in_the_report() {
    let sim = Sim::start().await;
    let repo = Repo::new();
    let repo_path = path_str(repo.path());
    let web = deployment("web", "nginx:1.26", 1).replace(
        "          image: nginx:1.26\n",
        "          image: nginx:1.26\n          envFrom:\n            - configMapRef:\n                name: settings\n",
    );
    repo.commit_files(
        &[
            ("apps/web.yaml", &web),
            (
                "apps/settings.yaml",
                &config_map("settings", &[("mode", "a")]),
            ),
        ],
        "init",
    );
    let out = sim.kubesync(&sync_args(&repo_path, &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    // A ConfigMap the pods read changes: a rollout with cause "config".
    repo.commit(
        "apps/settings.yaml",
        &config_map("settings", &[("mode", "b")]),
    );
    let out = sim.kubesync(&sync_args(&repo_path, &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let doc = json(&out);
    let row = change_of(&doc, "web");
    assert_eq!(row["rollout"]["cause"], "config", "{doc}");
    assert_eq!(row["rollout"]["revision"], 2);

    // An image change, then `git revert` of it: the old ReplicaSet comes back (revision 4).
    let bump = repo.commit("apps/web.yaml", &web.replace("nginx:1.26", "nginx:1.27"));
    let out = sim.kubesync(&sync_args(&repo_path, &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let doc = json(&out);
    let row = change_of(&doc, "web");
    assert_eq!(row["rollout"]["cause"], "template", "{doc}");
    assert_eq!(row["rollout"]["revision"], 3);
    repo.revert(&bump);
    let out = sim.kubesync(&sync_args(&repo_path, &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let doc = json(&out);
    let row = change_of(&doc, "web");
    assert_eq!(row["rollout"]["cause"], "revert", "{doc}");
    assert_eq!(row["rollout"]["revision"], 4);
    assert_eq!(row["rollout"]["status"], "complete");
    sim.cluster.shutdown().await;
}

/// Serves kubesim's router on a second socket that answers 403 to every list across all
/// namespaces (as a server does to a client that only has Roles in some namespaces, the
/// Helm chart's default); returns a kubeconfig for it and the number of 403s sent.
async fn namespaced_rbac_front(
    sim: &Sim,
) -> (PathBuf, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let refused = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = refused.clone();
    let app = sim.cluster.router().layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let counter = counter.clone();
            async move {
                let path = req.uri().path().to_string();
                let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
                // /api/v1/<plural> and /apis/<group>/<version>/<plural>: collections across
                // namespaces (the discovery documents are shorter).
                let across = matches!(segments.as_slice(), ["api", "v1", _] | ["apis", _, _, _]);
                if req.method() == axum::http::Method::GET && across {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let body = serde_json::json!({
                        "kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Failure", "reason": "Forbidden", "code": 403,
                        "message": format!("forbidden: cannot list {path} at the cluster scope"),
                    });
                    return axum::response::Response::builder()
                        .status(403)
                        .header("content-type", "application/json")
                        .body(axum::body::Body::from(body.to_string()))
                        .unwrap_or_default();
                }
                next.run(req).await
            }
        },
    ));
    let kubeconfig =
        crate::support::serve_front(&sim.cluster, app, sim.home.path(), "kubeconfig-namespaced")
            .await;
    (kubeconfig, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaced_rbac_lists_per_namespace_and_still_prunes() {
    let sim = Sim::start().await;
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(sim.client.clone());
    let team = serde_json::from_value(serde_json::json!({"metadata": {"name": "team"}}))
        .expect("namespace");
    ns.create(&Default::default(), &team)
        .await
        .expect("create team");
    let (kubeconfig, refused) = namespaced_rbac_front(&sim).await;
    let repo = Repo::new();
    let repo_path = path_str(repo.path());
    repo.commit("apps/a.yaml", &config_map("a", &[("k", "1")]));
    repo.commit("apps/b.yaml", &config_map("b", &[("k", "1")]));
    repo.commit(
        "apps/c.yaml",
        &config_map("c", &[("k", "1")]).replace("name: c", "name: c\n  namespace: team"),
    );
    let kubeconfig_s = path_str(&kubeconfig);
    let run = |extra: &'static [&'static str]| {
        let mut args = sync_args(&repo_path, &["--prune", "--kubeconfig", &kubeconfig_s]);
        args.extend_from_slice(extra);
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let home = sim.home.path().to_path_buf();
        async move {
            let mut cmd = std::process::Command::new(kubesync_bin());
            cmd.args(&args)
                .env_remove("KUBECONFIG")
                .env("HOME", &home)
                .env("KUBESYNC_LOG", "warn")
                .current_dir(&home);
            tokio::task::spawn_blocking(move || cmd.output().expect("kubesync runs"))
                .await
                .expect("join")
        }
    };
    let out = run(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(sim.client.clone(), "team");
    assert!(cms.get_opt("c").await.expect("get").is_some());

    // A re-sync sees what it manages in both namespaces: nothing to write. It is refused
    // once (the ConfigMap list across namespaces; the baseline shows every object unchanged,
    // so no Namespace list is needed) and lists each namespace once: the commit's namespaces
    // are the inventory's, read before the commit.
    let refused_before = refused.load(std::sync::atomic::Ordering::SeqCst);
    let out = run(&[]).await;
    assert_eq!(
        refused.load(std::sync::atomic::Ordering::SeqCst) - refused_before,
        1,
        "the cluster-wide list was retried after the per-namespace lists"
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let doc = json(&out);
    for name in ["a", "b", "c"] {
        assert_eq!(action_of(&doc, "ConfigMap", name), "unchanged", "{doc}");
    }
    // A removed file is still pruned: found by the per-namespace list.
    repo.remove("apps/c.yaml");
    let out = run(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(action_of(&json(&out), "ConfigMap", "c"), "delete");
    assert!(cms.get_opt("c").await.expect("get").is_none());
    assert!(
        refused.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the front refused no list: the test proves nothing"
    );
    sim.cluster.shutdown().await;
}
