//! The seed scenarios end to end (the kubia story of `seeds/004`, and friends): git commits
//! synced by the built `kubesync` binary into an in-process kubesim on a real socket, checked
//! with `kube` reads and the real `kubectl`. Exact values (revisions, ReplicaSet counts,
//! images); no sleeps: conditions are polled against a deadline.
//!
//! Owns: [`Harness`] (also used by `history.rs`) and the manifests of these stories.
use crate::support::Repo;
use assert_cmd::cargo::CommandCargoExt as _;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;
use tokio::time::Instant;

/// A kubesim cluster on 127.0.0.1:0, its kubeconfig in a temp dir, and a `kube` client
/// talking to its router (no socket).
pub struct Harness {
    pub cluster: kubesim::Cluster,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub client: kube::Client,
}

/// What one `kubesync` run returned.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.show()))
    }

    pub fn show(&self) -> String {
        format!(
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// The change of `kind`/`name` in a sync's JSON report.
    pub fn change(&self, kind: &str, name: &str) -> Value {
        let doc = self.json();
        doc["changes"]
            .as_array()
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c["kind"] == kind && c["name"] == name)
                    .cloned()
            })
            .unwrap_or_else(|| panic!("no change for {kind}/{name}:\n{}", self.show()))
    }
}

impl Harness {
    pub async fn start() -> Harness {
        let cluster = kubesim::Cluster::start(kubesim::Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            ..Default::default()
        })
        .await
        .expect("kubesim starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        cluster
            .write_kubeconfig(&kubeconfig)
            .expect("kubeconfig written");
        let client = kube::Client::new(cluster.router(), "default");
        Harness {
            cluster,
            dir,
            kubeconfig,
            client,
        }
    }

    /// Runs the built `kubesync` with `--kubeconfig` at this cluster, in a blocking task so the
    /// in-process cluster keeps serving.
    pub async fn kubesync(&self, args: &[&str]) -> Run {
        let mut cmd = std::process::Command::cargo_bin("kubesync").expect("kubesync is built");
        cmd.args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .env_remove("KUBECONFIG")
            .env("HOME", self.dir.path())
            .env("KUBESYNC_LOG", "warn")
            .current_dir(self.dir.path());
        let out = tokio::task::spawn_blocking(move || cmd.output().expect("kubesync runs"))
            .await
            .expect("join");
        Run::from(out)
    }

    /// `kubesync sync --repo <repo> --path apps -o json --timeout 60s <extra>`.
    pub async fn sync(&self, repo: &Repo, extra: &[&str]) -> Run {
        let path = repo.path_string();
        let mut args = vec![
            "sync",
            "--repo",
            path.as_str(),
            "--path",
            "apps",
            "-o",
            "json",
            "--timeout",
            "60s",
        ];
        args.extend_from_slice(extra);
        self.kubesync(&args).await
    }

    /// The real kubectl with a fresh HOME.
    pub async fn kubectl(&self, args: &[&str]) -> Run {
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
        Run::from(out)
    }

    pub async fn deployment(&self, name: &str) -> Deployment {
        Api::<Deployment>::namespaced(self.client.clone(), "default")
            .get(name)
            .await
            .expect("deployment")
    }

    /// The ReplicaSets controlled by Deployment `name`, by revision.
    pub async fn replica_sets(&self, name: &str) -> Vec<ReplicaSet> {
        let d = self.deployment(name).await;
        let uid = d.metadata.uid.clone().expect("uid");
        let mut list: Vec<ReplicaSet> =
            Api::<ReplicaSet>::namespaced(self.client.clone(), "default")
                .list(&ListParams::default())
                .await
                .expect("list replica sets")
                .items
                .into_iter()
                .filter(|rs| {
                    rs.metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .any(|o| o.uid == uid && o.controller == Some(true))
                })
                .collect();
        list.sort_by_key(revision_of);
        list
    }

    pub async fn pods(&self, selector: &str) -> Vec<Pod> {
        Api::<Pod>::namespaced(self.client.clone(), "default")
            .list(&ListParams::default().labels(selector))
            .await
            .expect("list pods")
            .items
    }

    /// Polls `check` until it returns `Some` or 30 s pass (then panics with `what`).
    pub async fn eventually<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(v) = check().await {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            // Let the controllers run; this is a poll interval, not a wait for state.
            self.cluster.settle(Duration::from_millis(100)).await;
            tokio::task::yield_now().await;
        }
    }
}

pub fn revision_of(rs: &ReplicaSet) -> u64 {
    annotation(rs, "deployment.kubernetes.io/revision")
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

pub fn annotation<'a>(rs: &'a ReplicaSet, key: &str) -> Option<&'a str> {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

pub fn images(rs: &ReplicaSet) -> Vec<String> {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.as_ref())
        .map(|p| {
            p.containers
                .iter()
                .filter_map(|c| c.image.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn replicas(rs: &ReplicaSet) -> (i32, i32) {
    (
        rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
        rs.status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0),
    )
}

/// (revision, images, spec.replicas, readyReplicas) of each ReplicaSet, by revision.
async fn summary(h: &Harness, name: &str) -> Vec<(u64, Vec<String>, i32, i32)> {
    h.replica_sets(name)
        .await
        .iter()
        .map(|rs| {
            let (want, ready) = replicas(rs);
            (revision_of(rs), images(rs), want, ready)
        })
        .collect()
}

fn d_revision(d: &Deployment) -> Option<String> {
    d.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("deployment.kubernetes.io/revision"))
        .cloned()
}

/// The kubia Deployment of seed 004 (3 replicas, one at a time: maxSurge 1, maxUnavailable 0)
/// and its Service. `extra_spec` goes under `spec:`, `pod_annotations` under the template's.
pub fn kubia(image: &str, extra_spec: &str, pod_annotations: &str) -> String {
    let annotations = if pod_annotations.is_empty() {
        String::new()
    } else {
        format!("      annotations:\n{pod_annotations}")
    };
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: kubia
spec:
  replicas: 3
{extra_spec}  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  selector:
    matchLabels:
      app: kubia
  template:
    metadata:
      labels:
        app: kubia
{annotations}    spec:
      containers:
        - name: nodejs
          image: {image}
          ports:
            - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: kubia
spec:
  selector:
    app: kubia
  ports:
    - port: 80
      targetPort: 8080
"
    )
}

/// A Deployment with a given strategy block (already indented under `spec:`).
fn with_strategy(name: &str, image: &str, replicas: u32, strategy: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  strategy:
{strategy}  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
        - name: {name}
          image: {image}
"
    )
}

fn rollout_history_table(name: &str, rows: &[(u64, String)]) -> String {
    let mut out = format!("deployment.apps/{name} \nREVISION  CHANGE-CAUSE\n");
    for (rev, cause) in rows {
        out.push_str(&format!("{rev:<10}{cause}\n"));
    }
    out.push('\n');
    out
}

/// v1 → v2 → v3 that never becomes ready (the rollout fails at its progress deadline, the v2
/// pods keep serving) → `git revert` of v3: the v2 ReplicaSet comes back as revision 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubia_rolls_forward_fails_safely_and_reverts_to_the_old_replica_set() {
    let h = Harness::start().await;
    let repo = Repo::new();
    let v1 = repo.commit_files(
        &[("apps/kubia.yaml", &kubia("luksa/kubia:v1", "", ""))],
        "kubia v1",
    );
    let run = h.sync(&repo, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    assert_eq!(run.json()["commit"], v1);
    let c = run.change("Deployment", "kubia");
    assert_eq!(c["action"], "create", "{}", run.show());
    assert_eq!(c["rollout"]["revision"], 1);
    assert_eq!(c["rollout"]["status"], "complete");
    assert_eq!(
        summary(&h, "kubia").await,
        vec![(1, vec!["luksa/kubia:v1".to_string()], 3, 3)]
    );

    // v2: a rolling update to completion, one pod at a time.
    let v2 = repo.commit_files(
        &[("apps/kubia.yaml", &kubia("luksa/kubia:v2", "", ""))],
        "kubia v2",
    );
    let run = h.sync(&repo, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    let c = run.change("Deployment", "kubia");
    assert_eq!(c["action"], "update");
    assert_eq!(c["rollout"]["cause"], "template");
    assert_eq!(c["rollout"]["revision"], 2);
    assert_eq!(c["rollout"]["status"], "complete");
    assert_eq!(run.change("Service", "kubia")["action"], "unchanged");
    assert_eq!(
        summary(&h, "kubia").await,
        vec![
            (1, vec!["luksa/kubia:v1".to_string()], 0, 0),
            (2, vec!["luksa/kubia:v2".to_string()], 3, 3),
        ]
    );
    let new_rs = h.replica_sets("kubia").await[1].clone();
    assert_eq!(
        annotation(&new_rs, "deployment.kubernetes.io/max-replicas"),
        Some("4"),
        "3 replicas + maxSurge 1"
    );
    assert_eq!(annotation(&new_rs, "kubesync.io/commit"), Some(v2.as_str()));
    let history = h.kubectl(&["rollout", "history", "deployment/kubia"]).await;
    assert_eq!(history.code, Some(0), "{}", history.show());
    assert_eq!(
        history.stdout,
        rollout_history_table(
            "kubia",
            &[
                (1, format!("{} kubia v1", &v1[..7])),
                (2, format!("{} kubia v2", &v2[..7])),
            ]
        )
    );

    // v3 never becomes ready: one surge pod, no old pod removed, the deadline fails the sync.
    let v3 = repo.commit_files(
        &[(
            "apps/kubia.yaml",
            &kubia(
                "luksa/kubia:v3",
                "  minReadySeconds: 1\n  progressDeadlineSeconds: 3\n",
                "        kubesim.io/never-ready: \"true\"\n",
            ),
        )],
        "kubia v3",
    );
    let run = h.sync(&repo, &[]).await;
    assert_eq!(run.code, Some(1), "{}", run.show());
    let c = run.change("Deployment", "kubia");
    assert_eq!(c["rollout"]["revision"], 3, "{}", run.show());
    assert_eq!(c["rollout"]["status"], "failed", "{}", run.show());
    // It says which pods are not ready and why: exactly the one v3 pod, blocked by its probe.
    assert_eq!(
        c["rollout"]["message"],
        "deployment \"kubia\" exceeded its progress deadline",
        "{}",
        run.show()
    );
    let not_ready = c["rollout"]["notReady"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(not_ready.len(), 1, "{}", run.show());
    let line = not_ready[0].as_str().unwrap_or_default();
    assert!(
        line.starts_with("pod kubia-")
            && line.contains("Ready False (ContainersNotReady")
            && line.contains("running but not ready"),
        "{line}"
    );
    let d = h.deployment("kubia").await;
    let progressing = d
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Progressing"))
        .cloned()
        .expect("Progressing condition");
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_deref()),
        ("False", Some("ProgressDeadlineExceeded"))
    );
    assert_eq!(
        summary(&h, "kubia").await,
        vec![
            (1, vec!["luksa/kubia:v1".to_string()], 0, 0),
            (2, vec!["luksa/kubia:v2".to_string()], 3, 3),
            (3, vec!["luksa/kubia:v3".to_string()], 1, 0),
        ]
    );
    // The Service still sends traffic to the three v2 pods only.
    let endpoints = h
        .kubectl(&["get", "endpoints", "kubia", "-o", "json"])
        .await;
    assert_eq!(endpoints.code, Some(0), "{}", endpoints.show());
    let ep = endpoints.json();
    let ready: usize = ep["subsets"]
        .as_array()
        .map(|ss| {
            ss.iter()
                .map(|s| s["addresses"].as_array().map_or(0, Vec::len))
                .sum()
        })
        .unwrap_or(0);
    let not_ready: usize = ep["subsets"]
        .as_array()
        .map(|ss| {
            ss.iter()
                .map(|s| s["notReadyAddresses"].as_array().map_or(0, Vec::len))
                .sum()
        })
        .unwrap_or(0);
    assert_eq!((ready, not_ready), (3, 1), "{ep}");
    let status = h
        .kubectl(&["rollout", "status", "deployment/kubia", "--watch=false"])
        .await;
    assert_eq!(status.code, Some(1), "{}", status.show());
    assert!(
        status
            .stderr
            .contains("deployment \"kubia\" exceeded its progress deadline"),
        "{}",
        status.show()
    );

    // git revert of v3: the template equals revision 2's; the v2 ReplicaSet is reused.
    let revert = repo.revert(&v3);
    let run = h.sync(&repo, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    assert_eq!(run.json()["commit"], revert);
    let c = run.change("Deployment", "kubia");
    assert_eq!(c["action"], "update");
    assert_eq!(c["rollout"]["revision"], 4, "{}", run.show());
    assert_eq!(c["rollout"]["status"], "complete");
    assert_eq!(c["rollout"]["cause"], "revert", "{}", run.show());
    let sets = h.replica_sets("kubia").await;
    assert_eq!(sets.len(), 3, "no new ReplicaSet");
    assert_eq!(
        summary(&h, "kubia").await,
        vec![
            (1, vec!["luksa/kubia:v1".to_string()], 0, 0),
            (3, vec!["luksa/kubia:v3".to_string()], 0, 0),
            (4, vec!["luksa/kubia:v2".to_string()], 3, 3),
        ]
    );
    assert_eq!(sets[2].metadata.name, new_rs.metadata.name, "the v2 RS");
    assert_eq!(
        annotation(&sets[2], "deployment.kubernetes.io/revision-history"),
        Some("2")
    );
    assert_eq!(
        d_revision(&h.deployment("kubia").await).as_deref(),
        Some("4")
    );
    let history = h.kubectl(&["rollout", "history", "deployment/kubia"]).await;
    assert_eq!(history.code, Some(0), "{}", history.show());
    let cause_of_4 = annotation(&sets[2], "kubernetes.io/change-cause")
        .unwrap_or_default()
        .to_string();
    assert!(
        cause_of_4.starts_with(&revert[..7]) || cause_of_4.starts_with("rollback to revision 2")
    );
    assert_eq!(
        history.stdout,
        rollout_history_table(
            "kubia",
            &[
                (1, format!("{} kubia v1", &v1[..7])),
                (3, format!("{} kubia v3", &v3[..7])),
                (4, cause_of_4),
            ]
        )
    );
    h.cluster.shutdown().await;
}

/// Design, "Revert → rollout undo": the change-cause of a revert says
/// `rollback to revision N (git revert <sha>)`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revert_says_rollback_to_revision_in_its_change_cause() {
    let h = Harness::start().await;
    let repo = Repo::new();
    repo.commit_files(
        &[("apps/kubia.yaml", &kubia("luksa/kubia:v1", "", ""))],
        "kubia v1",
    );
    assert_eq!(h.sync(&repo, &[]).await.code, Some(0));
    let v2 = repo.commit_files(
        &[("apps/kubia.yaml", &kubia("luksa/kubia:v2", "", ""))],
        "kubia v2",
    );
    assert_eq!(h.sync(&repo, &[]).await.code, Some(0));
    let revert = repo.revert(&v2);
    let run = h.sync(&repo, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    let d = h.deployment("kubia").await;
    let cause = d
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("kubernetes.io/change-cause"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        cause,
        format!("rollback to revision 1 (git revert {})", &revert[..7])
    );
    h.cluster.shutdown().await;
}

/// Design, "Revert → rollout undo": the report says which revision a revert returns to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revert_reports_the_revision_it_returns_to() {
    let h = Harness::start().await;
    let repo = Repo::new();
    repo.commit_files(
        &[("apps/kubia.yaml", &kubia("luksa/kubia:v1", "", ""))],
        "kubia v1",
    );
    assert_eq!(h.sync(&repo, &[]).await.code, Some(0));
    repo.commit_files(
        &[("apps/kubia.yaml", &kubia("luksa/kubia:v2", "", ""))],
        "kubia v2",
    );
    assert_eq!(h.sync(&repo, &[]).await.code, Some(0));
    let v3 = repo.commit_files(
        &[("apps/kubia.yaml", &kubia("luksa/kubia:v3", "", ""))],
        "kubia v3",
    );
    assert_eq!(h.sync(&repo, &[]).await.code, Some(0));
    repo.revert(&v3);
    let run = h.sync(&repo, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    let c = run.change("Deployment", "kubia");
    assert_eq!(c["rollout"]["cause"], "revert", "{}", run.show());
    assert_eq!(c["rollout"]["revision"], 4, "{}", run.show());
    assert_eq!(c["rollout"]["rollbackTo"], 2, "{}", run.show());
    h.cluster.shutdown().await;
}

/// echo: 3 replicas, maxSurge 3 and maxUnavailable 3 — the whole set is replaced in one step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_with_max_surge_three_rolls_in_one_step() {
    let h = Harness::start().await;
    let repo = Repo::new();
    let strategy =
        "    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 3\n      maxUnavailable: 3\n";
    repo.commit(
        "apps/echo.yaml",
        &with_strategy("echo", "ealen/echo-server:0.8", 3, strategy),
    );
    let run = h.sync(&repo, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    repo.commit(
        "apps/echo.yaml",
        &with_strategy("echo", "ealen/echo-server:0.9", 3, strategy),
    );
    let run = h.sync(&repo, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    let c = run.change("Deployment", "echo");
    assert_eq!(c["rollout"]["revision"], 2);
    assert_eq!(c["rollout"]["status"], "complete");
    assert_eq!(
        summary(&h, "echo").await,
        vec![
            (1, vec!["ealen/echo-server:0.8".to_string()], 0, 0),
            (2, vec!["ealen/echo-server:0.9".to_string()], 3, 3),
        ]
    );
    let new_rs = h.replica_sets("echo").await[1].clone();
    assert_eq!(
        annotation(&new_rs, "deployment.kubernetes.io/max-replicas"),
        Some("6")
    );
    assert_eq!(
        annotation(&new_rs, "deployment.kubernetes.io/desired-replicas"),
        Some("3")
    );
    h.cluster.shutdown().await;
}

/// Recreate: every old pod goes before a new one starts; no surge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_replaces_all_pods() {
    let h = Harness::start().await;
    let repo = Repo::new();
    let strategy = "    type: Recreate\n";
    repo.commit(
        "apps/batch.yaml",
        &with_strategy("batch", "busybox:1.36", 2, strategy),
    );
    let run = h.sync(&repo, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    repo.commit(
        "apps/batch.yaml",
        &with_strategy("batch", "busybox:1.37", 2, strategy),
    );
    let run = h.sync(&repo, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    let c = run.change("Deployment", "batch");
    assert_eq!(c["rollout"]["cause"], "template");
    assert_eq!(c["rollout"]["revision"], 2);
    assert_eq!(c["rollout"]["status"], "complete");
    assert_eq!(
        summary(&h, "batch").await,
        vec![
            (1, vec!["busybox:1.36".to_string()], 0, 0),
            (2, vec!["busybox:1.37".to_string()], 2, 2),
        ]
    );
    let new_rs = h.replica_sets("batch").await[1].clone();
    assert_eq!(
        annotation(&new_rs, "deployment.kubernetes.io/max-replicas"),
        Some("2"),
        "Recreate never surges"
    );
    let images: Vec<Vec<String>> = h
        .eventually("only new pods left", || async {
            let pods = h.pods("app=batch").await;
            let images: Vec<Vec<String>> = pods
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .map(|p| {
                    p.spec
                        .as_ref()
                        .map(|s| {
                            s.containers
                                .iter()
                                .filter_map(|c| c.image.clone())
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect();
            (pods.len() == 2).then_some(images)
        })
        .await;
    assert_eq!(
        images,
        vec![
            vec!["busybox:1.37".to_string()],
            vec!["busybox:1.37".to_string()]
        ]
    );
    h.cluster.shutdown().await;
}

fn reader(name: &str, pod_spec_extra: &str, container_extra: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
{pod_spec_extra}      containers:
        - name: main
          image: nginx:1.27
{container_extra}"
    )
}

fn config_map(name: &str, key: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  {key}: \"{value}\"\n"
    )
}

fn config_hash(d: &Deployment) -> Option<String> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get("kubesync.io/config-hash"))
        .cloned()
}

/// A ConfigMap read through env and one read through a volume: changing one restarts exactly
/// the Deployment that reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_map_change_rolls_exactly_its_readers() {
    let h = Harness::start().await;
    let repo = Repo::new();
    let env_reader = reader(
        "env-reader",
        "",
        "          env:\n            - name: MODE\n              valueFrom:\n                configMapKeyRef:\n                  name: settings\n                  key: mode\n",
    );
    let vol_reader = reader(
        "vol-reader",
        "      volumes:\n        - name: files\n          configMap:\n            name: files\n",
        "          volumeMounts:\n            - name: files\n              mountPath: /etc/files\n",
    );
    let bystander = reader("bystander", "", "");
    repo.commit_files(
        &[
            (
                "apps/settings.yaml",
                &config_map("settings", "mode", "fast"),
            ),
            (
                "apps/files.yaml",
                &config_map("files", "index.html", "hello"),
            ),
            ("apps/env-reader.yaml", &env_reader),
            ("apps/vol-reader.yaml", &vol_reader),
            ("apps/bystander.yaml", &bystander),
        ],
        "three apps",
    );
    let run = h.sync(&repo, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    let env_hash_1 = config_hash(&h.deployment("env-reader").await).expect("env-reader hash");
    let vol_hash_1 = config_hash(&h.deployment("vol-reader").await).expect("vol-reader hash");
    let bystander_1 = h.deployment("bystander").await;

    // The env ConfigMap changes: env-reader rolls (revision 2), nothing else does.
    repo.commit(
        "apps/settings.yaml",
        &config_map("settings", "mode", "slow"),
    );
    let run = h.sync(&repo, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    assert_eq!(run.change("ConfigMap", "settings")["action"], "update");
    let c = run.change("Deployment", "env-reader");
    assert_eq!(c["action"], "update");
    assert_eq!(c["rollout"]["cause"], "config");
    assert_eq!(c["rollout"]["revision"], 2);
    assert_eq!(c["rollout"]["status"], "complete");
    assert_eq!(
        run.change("Deployment", "vol-reader")["action"],
        "unchanged"
    );
    assert_eq!(run.change("Deployment", "bystander")["action"], "unchanged");
    let env_hash_2 = config_hash(&h.deployment("env-reader").await).expect("hash");
    assert_ne!(env_hash_2, env_hash_1);
    assert_eq!(
        config_hash(&h.deployment("vol-reader").await).as_deref(),
        Some(vol_hash_1.as_str())
    );
    assert_eq!(h.replica_sets("env-reader").await.len(), 2);
    assert_eq!(h.replica_sets("vol-reader").await.len(), 1);
    assert_eq!(h.replica_sets("bystander").await.len(), 1);
    assert_eq!(
        h.deployment("bystander").await.metadata.resource_version,
        bystander_1.metadata.resource_version,
        "bystander not written"
    );

    // The volume ConfigMap changes: vol-reader rolls, env-reader stays at revision 2.
    repo.commit("apps/files.yaml", &config_map("files", "index.html", "bye"));
    let run = h.sync(&repo, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    let c = run.change("Deployment", "vol-reader");
    assert_eq!(c["rollout"]["cause"], "config");
    assert_eq!(c["rollout"]["revision"], 2);
    assert_eq!(c["rollout"]["status"], "complete");
    assert_eq!(
        run.change("Deployment", "env-reader")["action"],
        "unchanged"
    );
    assert_eq!(run.change("Deployment", "bystander")["action"], "unchanged");
    assert_eq!(h.replica_sets("env-reader").await.len(), 2);
    assert_eq!(h.replica_sets("vol-reader").await.len(), 2);
    assert_eq!(h.replica_sets("bystander").await.len(), 1);
    assert_eq!(
        d_revision(&h.deployment("env-reader").await).as_deref(),
        Some("2")
    );

    // Reverting the ConfigMap in git restores the old hash: vol-reader's first RS is reused.
    repo.commit(
        "apps/files.yaml",
        &config_map("files", "index.html", "hello"),
    );
    let run = h.sync(&repo, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    assert_eq!(
        config_hash(&h.deployment("vol-reader").await).as_deref(),
        Some(vol_hash_1.as_str())
    );
    let c = run.change("Deployment", "vol-reader");
    assert_eq!(c["rollout"]["revision"], 3);
    assert_eq!(h.replica_sets("vol-reader").await.len(), 2, "old RS reused");
    h.cluster.shutdown().await;
}

/// A human pauses the rollout (a canary); kubesync keeps syncing and never unpauses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_canary_stays_paused_while_kubesync_syncs() {
    let h = Harness::start().await;
    let repo = Repo::new();
    repo.commit_files(
        &[("apps/kubia.yaml", &kubia("luksa/kubia:v1", "", ""))],
        "kubia v1",
    );
    let run = h.sync(&repo, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.show());

    let pause = h.kubectl(&["rollout", "pause", "deployment/kubia"]).await;
    assert_eq!(pause.code, Some(0), "{}", pause.show());
    assert_eq!(pause.stdout, "deployment.apps/kubia paused\n");

    // A new image while paused: applied, but no new ReplicaSet; `paused` survives the apply.
    let v4 = repo.commit_files(
        &[("apps/kubia.yaml", &kubia("luksa/kubia:v4", "", ""))],
        "kubia v4",
    );
    let run = h.sync(&repo, &["--wait=false"]).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    assert_eq!(run.change("Deployment", "kubia")["action"], "update");
    let d = h.deployment("kubia").await;
    assert_eq!(d.spec.as_ref().and_then(|s| s.paused), Some(true));
    let image = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers[0].image.clone());
    assert_eq!(image.as_deref(), Some("luksa/kubia:v4"));
    // A ConfigMap commit later: kubesync syncs again, the Deployment is untouched and paused.
    repo.commit(
        "apps/other.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\ndata:\n  a: b\n",
    );
    let run = h.sync(&repo, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    assert_eq!(run.change("Deployment", "kubia")["action"], "unchanged");
    let d = h.deployment("kubia").await;
    assert_eq!(d.spec.as_ref().and_then(|s| s.paused), Some(true));
    h.cluster.settle(Duration::from_secs(5)).await;
    assert_eq!(
        summary(&h, "kubia").await,
        vec![(1, vec!["luksa/kubia:v1".to_string()], 3, 3)],
        "no rollout while paused"
    );

    // The human resumes: the held rollout proceeds to the synced commit.
    let resume = h.kubectl(&["rollout", "resume", "deployment/kubia"]).await;
    assert_eq!(resume.code, Some(0), "{}", resume.show());
    let got = h
        .eventually("the rollout after resume", || async {
            let s = summary(&h, "kubia").await;
            let done = s.len() == 2 && s[0].2 == 0 && s[0].3 == 0 && s[1].3 == 3;
            done.then_some(s)
        })
        .await;
    assert_eq!(
        got,
        vec![
            (1, vec!["luksa/kubia:v1".to_string()], 0, 0),
            (2, vec!["luksa/kubia:v4".to_string()], 3, 3),
        ]
    );
    let rs = h.replica_sets("kubia").await;
    assert_eq!(annotation(&rs[1], "kubesync.io/commit"), Some(v4.as_str()));
    let status = h
        .kubectl(&["rollout", "status", "deployment/kubia", "--timeout=30s"])
        .await;
    assert_eq!(status.code, Some(0), "{}", status.show());
    h.cluster.shutdown().await;
}

/// Design, `--rollback-on-failure`: a failed rollout is undone to the revision that ran
/// before, the commit is held (a re-sync of it applies nothing and exits 1, `--force`
/// re-applies it), and a new commit clears the hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rollout_is_rolled_back_and_its_commit_held() {
    let h = Harness::start().await;
    let repo = Repo::new();
    repo.commit_files(
        &[("apps/kubia.yaml", &kubia("luksa/kubia:v1", "", ""))],
        "kubia v1",
    );
    assert_eq!(h.sync(&repo, &[]).await.code, Some(0));
    let bad = kubia(
        "luksa/kubia:v2",
        "  minReadySeconds: 1\n  progressDeadlineSeconds: 3\n",
        "        kubesim.io/never-ready: \"true\"\n",
    );
    let v2 = repo.commit_files(&[("apps/kubia.yaml", &bad)], "kubia v2");
    let run = h.sync(&repo, &["--rollback-on-failure"]).await;
    assert_eq!(run.code, Some(1), "{}", run.show());
    let c = run.change("Deployment", "kubia");
    assert_eq!(c["rollout"]["status"], "failed", "{}", run.show());
    assert_eq!(c["rollout"]["revision"], 2, "{}", run.show());
    assert_eq!(
        c["rollout"]["rolledBack"]["toRevision"],
        1,
        "{}",
        run.show()
    );
    let image = |d: &Deployment| {
        d.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .image
            .clone()
            .unwrap_or_default()
    };
    assert_eq!(image(&h.deployment("kubia").await), "luksa/kubia:v1");

    // The same commit again: held, nothing applied.
    let run = h.sync(&repo, &["--rollback-on-failure"]).await;
    assert_eq!(run.code, Some(1), "{}", run.show());
    assert_eq!(run.json()["held"], true, "{}", run.show());
    assert_eq!(run.json()["commit"], v2.as_str());
    assert!(run.stderr.contains("--force"), "{}", run.show());
    assert_eq!(image(&h.deployment("kubia").await), "luksa/kubia:v1");

    // --force re-applies it (and it fails again).
    let run = h.sync(&repo, &["--force"]).await;
    assert_eq!(run.code, Some(1), "{}", run.show());
    assert_eq!(image(&h.deployment("kubia").await), "luksa/kubia:v2");

    // A new commit clears the hold.
    repo.commit_files(
        &[("apps/kubia.yaml", &kubia("luksa/kubia:v3", "", ""))],
        "kubia v3",
    );
    let run = h.sync(&repo, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    assert_eq!(
        run.change("Deployment", "kubia")["rollout"]["status"],
        "complete"
    );
    h.cluster.shutdown().await;
}

/// A ConfigMap that git does not define but a Deployment reads is hashed from the live
/// cluster: changing it (kubectl) restarts its reader on the next sync of the same commit;
/// a Deployment annotated `kubesync.io/live-config-hash: "false"` is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_config_map_outside_git_restarts_its_readers() {
    let h = Harness::start().await;
    let created = h
        .kubectl(&["create", "configmap", "outside", "--from-literal=mode=a"])
        .await;
    assert_eq!(created.code, Some(0), "{}", created.show());
    let env = "          envFrom:\n            - configMapRef:\n                name: outside\n";
    let live_reader = reader("live-reader", "", env);
    let opted_out = reader("opted-out", "", env).replace(
        "metadata:\n  name: opted-out\n",
        "metadata:\n  name: opted-out\n  annotations:\n    kubesync.io/live-config-hash: \"false\"\n",
    );
    let repo = Repo::new();
    repo.commit_files(
        &[
            ("apps/live-reader.yaml", &live_reader),
            ("apps/opted-out.yaml", &opted_out),
        ],
        "two readers of a live config map",
    );
    let run = h.sync(&repo, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    let hash_1 = config_hash(&h.deployment("live-reader").await).expect("live-reader hash");
    assert_eq!(config_hash(&h.deployment("opted-out").await), None);

    let patched = h
        .kubectl(&[
            "patch",
            "configmap",
            "outside",
            "-p",
            r#"{"data":{"mode":"b"}}"#,
        ])
        .await;
    assert_eq!(patched.code, Some(0), "{}", patched.show());
    let run = h.sync(&repo, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    let c = run.change("Deployment", "live-reader");
    assert_eq!(c["action"], "update", "{}", run.show());
    assert_eq!(c["rollout"]["cause"], "config", "{}", run.show());
    assert_eq!(c["rollout"]["revision"], 2, "{}", run.show());
    assert_eq!(c["rollout"]["status"], "complete", "{}", run.show());
    assert_eq!(run.change("Deployment", "opted-out")["action"], "unchanged");
    let hash_2 = config_hash(&h.deployment("live-reader").await).expect("live-reader hash");
    assert_ne!(hash_1, hash_2);

    // Unchanged again: the next sync writes nothing.
    let run = h.sync(&repo, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    assert_eq!(
        run.change("Deployment", "live-reader")["action"],
        "unchanged"
    );
    h.cluster.shutdown().await;
}

/// kubesync never fights fields it does not own: replicas omitted in git survive a
/// `kubectl scale`, and a label added by another tool survives, across syncs that rewrite
/// the Deployment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_owned_by_others_survive_syncs() {
    let h = Harness::start().await;
    let repo = Repo::new();
    let web = |image: &str| {
        reader("web", "", "")
            .replace("  replicas: 1\n", "")
            .replace("nginx:1.27", image)
    };
    repo.commit_files(&[("apps/web.yaml", &web("nginx:1.27"))], "web");
    let run = h.sync(&repo, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    let scaled = h
        .kubectl(&["scale", "deployment/web", "--replicas=3"])
        .await;
    assert_eq!(scaled.code, Some(0), "{}", scaled.show());
    let labelled = h.kubectl(&["label", "deployment/web", "team=blue"]).await;
    assert_eq!(labelled.code, Some(0), "{}", labelled.show());

    repo.commit_files(&[("apps/web.yaml", &web("nginx:1.28"))], "web 1.28");
    let run = h.sync(&repo, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    assert_eq!(run.change("Deployment", "web")["action"], "update");
    let d = h.deployment("web").await;
    assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(3));
    assert_eq!(
        d.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("team"))
            .map(String::as_str),
        Some("blue")
    );
    // And a sync of the same commit leaves them too.
    let run = h.sync(&repo, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    let d = h.deployment("web").await;
    assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(3));
    h.cluster.shutdown().await;
}
