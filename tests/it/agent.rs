//! The long-running agent against kubesim, with a fake sync engine behind the `Syncer` seam:
//! health/metrics/status/webhook over a real socket, Lease election and failover between two
//! agents in one process, cancellation on a lost lease, drift correction, and a local
//! repository watched for new commits. The real binary on the real engine: a local commit
//! syncs within seconds, and an API outage (kubesim stopped, then restarted from its state
//! dir on the same port) makes the agent not-ready, not dead, and it catches up afterwards.
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kubesync::agent::config::{Defaults, RawConfig};
use kubesync::agent::webhook::{encode_hex, hmac_sha256};
use kubesync::agent::{
    self, Agent, BoxFuture, Progress, Revisions, RolloutResult, SourceConfig, SyncFailure,
    SyncResult, Syncer,
};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

const WAIT: Duration = Duration::from_secs(20);

/// Reports every sync on a channel; optionally applies a ConfigMap the way the engine
/// would (ownership labels, field manager `kubesync`); optionally never finishes.
struct FakeSyncer {
    calls: mpsc::UnboundedSender<(String, String)>,
    client: Option<kube::Client>,
    hang: bool,
    /// Signalled when a hanging sync is dropped (cancelled).
    dropped: Mutex<Option<mpsc::UnboundedSender<()>>>,
    /// Take this long, then signal that the sync finished.
    slow: Option<(Duration, mpsc::UnboundedSender<()>)>,
}

struct DropSignal(Option<mpsc::UnboundedSender<()>>);
impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

impl Syncer for FakeSyncer {
    fn sync<'a>(
        &'a self,
        source: &'a SourceConfig,
        commit: &'a str,
    ) -> BoxFuture<'a, Result<SyncResult, SyncFailure>> {
        Box::pin(self.run(source, commit, None))
    }

    fn sync_with_progress<'a>(
        &'a self,
        source: &'a SourceConfig,
        commit: &'a str,
        progress: &'a Progress,
    ) -> BoxFuture<'a, Result<SyncResult, SyncFailure>> {
        Box::pin(self.run(source, commit, Some(progress)))
    }
}

impl FakeSyncer {
    async fn run(
        &self,
        source: &SourceConfig,
        commit: &str,
        progress: Option<&Progress>,
    ) -> Result<SyncResult, SyncFailure> {
        {
            if let Some(p) = progress {
                p.rollout_started("default/web");
            }
            let _ = self.calls.send((source.name.clone(), commit.to_owned()));
            if let Some((took, done)) = &self.slow {
                tokio::time::sleep(*took).await;
                let _ = done.send(());
            }
            if self.hang {
                let _guard = DropSignal(self.dropped.lock().unwrap().clone());
                std::future::pending::<()>().await;
            }
            if let Some(client) = &self.client {
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
                let cm = serde_json::json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "web-config", "labels": {
                        "app.kubernetes.io/managed-by": "kubesync",
                        "kubesync.io/source": source.name,
                    }},
                    "data": {"color": "blue"},
                });
                api.patch(
                    "web-config",
                    &PatchParams::apply("kubesync").force(),
                    &Patch::Apply(cm),
                )
                .await
                .map_err(|e| SyncFailure::new("apply", e.to_string()))?;
            }
            Ok(SyncResult {
                commit: commit.to_owned(),
                changed: 1,
                rollouts: vec![("default/web".to_owned(), RolloutResult::Complete)],
                held: false,
                fetch_duration: None,
            })
        }
    }
}

/// The ref points wherever the test says.
struct FakeRevisions(Arc<Mutex<String>>);

impl Revisions for FakeRevisions {
    fn head<'a>(&'a self, _: &'a SourceConfig) -> BoxFuture<'a, Result<String, SyncFailure>> {
        let sha = self.0.lock().unwrap().clone();
        Box::pin(async move { Ok(sha) })
    }
}

fn sha(c: char) -> String {
    std::iter::repeat_n(c, 40).collect()
}

struct Running {
    addr: SocketAddr,
    calls: mpsc::UnboundedReceiver<(String, String)>,
    head: Arc<Mutex<String>>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), agent::AgentError>>,
}

impl Running {
    async fn next_sync(&mut self) -> (String, String) {
        tokio::time::timeout(WAIT, self.calls.recv())
            .await
            .expect("a sync within the deadline")
            .expect("syncer alive")
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("agent stops")
            .expect("agent task")
            .expect("agent ran cleanly");
    }
}

struct Options {
    identity: &'static str,
    yaml_extra: String,
    revisions: Option<Arc<dyn Revisions>>,
    apply: bool,
    hang: Option<mpsc::UnboundedSender<()>>,
    slow: Option<(Duration, mpsc::UnboundedSender<()>)>,
}

fn options(identity: &'static str) -> Options {
    Options {
        identity,
        yaml_extra: "leaderElection: {enabled: false}\nsources: [{name: apps, repo: https://example.com/org/apps.git, ref: main, interval: 1h}]\n".into(),
        revisions: None,
        apply: false,
        hang: None,
        slow: None,
    }
}

async fn start(client: &kube::Client, o: Options) -> Running {
    let config = RawConfig::from_yaml(&format!(
        "retry: {{initial: 100ms, max: 1s}}\n{}",
        o.yaml_extra
    ))
    .unwrap()
    .validate(&Defaults {
        identity: o.identity.into(),
        namespace: "default".into(),
    })
    .unwrap();
    let (tx, calls) = mpsc::unbounded_channel();
    let head = Arc::new(Mutex::new(sha('a')));
    let syncer = FakeSyncer {
        calls: tx,
        client: o.apply.then(|| client.clone()),
        hang: o.hang.is_some(),
        dropped: Mutex::new(o.hang),
        slow: o.slow,
    };
    let revisions = o
        .revisions
        .unwrap_or_else(|| Arc::new(FakeRevisions(head.clone())));
    let agent = Agent {
        client: client.clone(),
        syncer: Arc::new(syncer),
        revisions,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(agent::serve(config, agent, listener, async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        calls,
        head,
        stop: Some(stop),
        task,
    }
}

async fn cluster() -> (kubesim::Cluster, kube::Client) {
    let cluster = kubesim::Cluster::start(kubesim::Config::default())
        .await
        .unwrap();
    let client = kube::Client::new(cluster.router(), "default");
    (cluster, client)
}

/// A minimal HTTP/1.1 request over a real socket; returns (status, body).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    // The server may answer (413) before reading a large body: ignore a broken pipe.
    let _ = s.write_all(body).await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Poll `check` (cheap, local) until it holds or the deadline passes.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn status(addr: SocketAddr) -> serde_json::Value {
    let (code, body) = http(addr, "GET", "/status", &[], b"").await;
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_on_start_and_serves_health_status_and_metrics() {
    let (_cluster, client) = cluster().await;
    let mut a = start(&client, options("solo")).await;
    assert_eq!(a.next_sync().await, ("apps".to_owned(), sha('a')));
    let addr = a.addr;
    assert_eq!(http(addr, "GET", "/healthz", &[], b"").await.0, 200);
    eventually("ready", || async move {
        http(addr, "GET", "/readyz", &[], b"").await.0 == 200
    })
    .await;
    eventually("metrics after the sync", || async move {
        let (_, m) = http(addr, "GET", "/metrics", &[], b"").await;
        m.contains(r#"kubesync_sync_total{source="apps",result="ok"} 1"#)
            && m.contains(&format!(
                r#"kubesync_source_info{{source="apps",commit="{}"}} 1"#,
                sha('a')
            ))
            && m.contains(r#"kubesync_rollouts_total{result="complete"} 1"#)
    })
    .await;
    let s = status(addr).await;
    assert_eq!(s["role"], "leader");
    assert_eq!(s["sources"][0]["commit"], sha('a'));
    assert_eq!(s["sources"][0]["lastResult"], "ok");
    assert_eq!(s["sources"][0]["rollouts"][0]["deployment"], "default/web");
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_refuses_bad_signatures_and_triggers_on_a_good_one() {
    let (_cluster, client) = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let mut o = options("solo");
    o.yaml_extra = format!(
        "leaderElection: {{enabled: false}}\nwebhook: {{secretFile: {}, maxBodyBytes: 4096}}\nsources: [{{name: apps, repo: 'https://github.com/org/apps.git', ref: main, interval: 1h}}]\n",
        secret.display()
    );
    let mut a = start(&client, o).await;
    a.next_sync().await;
    let addr = a.addr;
    let body = br#"{"ref":"refs/heads/main","repository":{"clone_url":"https://github.com/org/apps.git"}}"#;
    let good = format!("sha256={}", encode_hex(&hmac_sha256(b"s3cret", body)));
    let bad = format!("sha256={}", encode_hex(&hmac_sha256(b"guess", body)));

    let (code, text) = http(
        addr,
        "POST",
        "/webhook/apps",
        &[("X-Hub-Signature-256", &bad)],
        body,
    )
    .await;
    assert_eq!(code, 401, "{text}");
    assert!(!text.contains("s3cret"));
    assert_eq!(http(addr, "POST", "/webhook/apps", &[], body).await.0, 401);
    assert_eq!(
        http(
            addr,
            "POST",
            "/webhook/apps",
            &[("X-Gitlab-Token", "nope")],
            body
        )
        .await
        .0,
        401
    );
    let huge = vec![b'x'; 10_000];
    assert_eq!(
        http(
            addr,
            "POST",
            "/webhook/apps",
            &[("X-Hub-Signature-256", &good)],
            &huge
        )
        .await
        .0,
        413
    );
    assert_eq!(
        http(
            addr,
            "POST",
            "/webhook/nope",
            &[("X-Hub-Signature-256", &good)],
            body
        )
        .await
        .0,
        404
    );

    // Nothing was triggered by the refused requests; a good push syncs the new commit.
    *a.head.lock().unwrap() = sha('b');
    let (code, text) = http(
        addr,
        "POST",
        "/webhook",
        &[("X-Hub-Signature-256", &good)],
        body,
    )
    .await;
    assert_eq!(code, 202, "{text}");
    assert!(text.contains("apps"), "{text}");
    assert_eq!(a.next_sync().await, ("apps".to_owned(), sha('b')));
    let (_, m) = http(addr, "GET", "/metrics", &[], b"").await;
    assert!(
        m.contains(r#"kubesync_webhook_requests_total{result="bad_signature"} 2"#),
        "{m}"
    );
    assert!(
        m.contains(r#"kubesync_webhook_requests_total{result="too_large"} 1"#),
        "{m}"
    );
    a.shutdown().await;
}

fn election_yaml() -> String {
    "leaderElection: {leaseName: kubesync-test, namespace: default, leaseDuration: 4s, renewInterval: 500ms, retryInterval: 100ms}\n\
     drift: {enabled: false}\n\
     sources: [{name: apps, repo: https://example.com/org/apps.git, ref: main, interval: 1h}]\n"
        .into()
}

async fn holder(client: &kube::Client) -> Option<String> {
    let api: Api<Lease> = Api::namespaced(client.clone(), "default");
    api.get_opt("kubesync-test")
        .await
        .unwrap()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_syncs_and_a_standby_takes_over_when_it_leaves() {
    let (_cluster, client) = cluster().await;
    let mut oa = options("replica-a");
    oa.yaml_extra = election_yaml();
    let mut a = start(&client, oa).await;
    assert_eq!(a.next_sync().await.1, sha('a'));
    assert_eq!(holder(&client).await.as_deref(), Some("replica-a"));

    let mut ob = options("replica-b");
    ob.yaml_extra = election_yaml();
    let mut b = start(&client, ob).await;
    let b_addr = b.addr;
    eventually("b ready as standby", || async move {
        let s = status(b_addr).await;
        s["role"] == "standby" && s["ready"] == true
    })
    .await;
    assert!(b.calls.try_recv().is_err(), "a standby must not sync");

    // a leaves (SIGTERM): it releases the lease and b takes over without waiting for expiry.
    // Expiry would take a whole leaseDuration (4s) of silence: faster means it was released.
    let left = tokio::time::Instant::now();
    a.shutdown().await;
    assert_eq!(b.next_sync().await.1, sha('a'));
    assert!(
        left.elapsed() < Duration::from_secs(4),
        "took over after {:?}",
        left.elapsed()
    );
    assert_eq!(holder(&client).await.as_deref(), Some("replica-b"));
    b.shutdown().await;
    assert_eq!(holder(&client).await, None, "released on shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_lease_cancels_the_sync_in_flight() {
    let (_cluster, client) = cluster().await;
    let (dropped_tx, mut dropped) = mpsc::unbounded_channel();
    let mut o = options("replica-a");
    o.yaml_extra = election_yaml();
    o.hang = Some(dropped_tx);
    let mut a = start(&client, o).await;
    a.next_sync().await;
    let s = status(a.addr).await;
    assert_eq!(s["sources"][0]["syncing"], sha('a'));
    assert_eq!(
        s["sources"][0]["inFlight"],
        serde_json::json!([{"deployment": "default/web", "state": "progressing"}])
    );

    // Someone else takes the lease (as a replica that saw ours expire would).
    let api: Api<Lease> = Api::namespaced(client.clone(), "default");
    let patch = serde_json::json!({"spec": {"holderIdentity": "intruder"}});
    api.patch(
        "kubesync-test",
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .unwrap();
    tokio::time::timeout(WAIT, dropped.recv())
        .await
        .expect("the in-flight sync is dropped")
        .unwrap();
    let addr = a.addr;
    eventually("standby", || async move {
        status(addr).await["role"] == "standby"
    })
    .await;
    a.shutdown().await;
    assert_eq!(
        holder(&client).await.as_deref(),
        Some("intruder"),
        "a standby never releases another's lease"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_outside_git_is_corrected() {
    let (_cluster, client) = cluster().await;
    let mut o = options("solo");
    o.yaml_extra = "leaderElection: {enabled: false}\ndrift: {minInterval: 100ms, kinds: [v1/ConfigMap], namespaces: [default]}\nsources: [{name: apps, repo: https://example.com/org/apps.git, ref: main, interval: 1h}]\n".into();
    o.apply = true;
    let mut a = start(&client, o).await;
    a.next_sync().await;
    let addr = a.addr;
    eventually("first sync recorded", || async move {
        status(addr).await["sources"][0]["lastResult"] == "ok"
    })
    .await;

    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let edit = serde_json::json!({"data": {"color": "red"}});
    api.patch(
        "web-config",
        &PatchParams {
            field_manager: Some("kubectl-edit".into()),
            ..PatchParams::default()
        },
        &Patch::Merge(&edit),
    )
    .await
    .unwrap();
    // The same commit is applied again.
    assert_eq!(a.next_sync().await.1, sha('a'));
    eventually("drift counted", || async move {
        let (_, m) = http(addr, "GET", "/metrics", &[], b"").await;
        m.contains(r#"kubesync_drift_corrections_total{source="apps"} 1"#)
    })
    .await;
    let cm = api.get("web-config").await.unwrap();
    assert_eq!(cm.data.unwrap()["color"], "blue");
    // An Event on the ConfigMap says what was corrected and who had changed it.
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), "default");
    let events = &events;
    eventually("a DriftCorrected Event", || async move {
        let list = events.list(&Default::default()).await.unwrap();
        list.items.iter().any(|e| {
            e.reason.as_deref() == Some("DriftCorrected")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("web-config")
                && e.note
                    .as_deref()
                    .is_some_and(|n| n.contains("kubectl-edit"))
        })
    })
    .await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_local_commit_syncs_without_waiting_for_the_interval() {
    let (_cluster, client) = cluster().await;
    let repo = crate::support::Repo::new();
    let first = repo.commit("apps/cm.yaml", "kind: ConfigMap\n");
    let mut o = options("solo");
    o.yaml_extra = format!(
        "leaderElection: {{enabled: false}}\ndrift: {{enabled: false}}\nsources: [{{name: local, repo: '{}', ref: main, interval: 1h}}]\n",
        repo.path_string()
    );
    o.revisions = Some(Arc::new(agent::git::GitRevisions {
        timeout: Duration::from_secs(10),
    }));
    let mut a = start(&client, o).await;
    assert_eq!(a.next_sync().await, ("local".to_owned(), first));
    let second = repo.commit("apps/cm.yaml", "kind: ConfigMap\nmetadata: {name: x}\n");
    let started = tokio::time::Instant::now();
    assert_eq!(a.next_sync().await, ("local".to_owned(), second));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_leaders_lease_is_taken_over_after_it_expires() {
    let (_cluster, client) = cluster().await;
    // A leader that crashed: it holds the Lease and never renews it.
    let api: Api<Lease> = Api::namespaced(client.clone(), "default");
    let ghost: Lease = serde_json::from_value(serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "kubesync-test", "namespace": "default"},
        "spec": {"holderIdentity": "crashed", "leaseDurationSeconds": 2,
                 "renewTime": "2026-01-01T00:00:00.000000Z"},
    }))
    .unwrap();
    api.create(&Default::default(), &ghost).await.unwrap();

    let mut o = options("replica-b");
    o.yaml_extra = election_yaml();
    let started = tokio::time::Instant::now();
    let mut b = start(&client, o).await;
    let addr = b.addr;
    eventually("standby first", || async move {
        status(addr).await["role"] == "standby"
    })
    .await;
    // Not before a whole lease duration of silence, however old renewTime looks.
    assert_eq!(b.next_sync().await.1, sha('a'));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "took over after only {took:?}"
    );
    assert_eq!(holder(&client).await.as_deref(), Some("replica-b"));
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_labels_its_own_pod_for_the_webhook_service() {
    use k8s_openapi::api::core::v1::Pod;
    let (_cluster, client) = cluster().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "replica-a", "namespace": "default"},
        "spec": {"containers": [{"name": "kubesync", "image": "kubesync"}]},
    }))
    .unwrap();
    pods.create(&Default::default(), &pod).await.unwrap();
    let label = |p: Pod| {
        p.metadata
            .labels
            .and_then(|l| l.get("kubesync.io/leader").cloned())
    };

    let mut o = options("replica-a");
    o.yaml_extra = election_yaml().replace(
        "retryInterval: 100ms",
        "retryInterval: 100ms, labelPod: true",
    );
    let mut a = start(&client, o).await;
    a.next_sync().await;
    let pods_ref = &pods;
    eventually("leader label", || async move {
        label(pods_ref.get("replica-a").await.unwrap()).as_deref() == Some("true")
    })
    .await;
    a.shutdown().await;
    assert_eq!(
        label(pods.get("replica-a").await.unwrap()),
        None,
        "removed on shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_the_sync_in_flight_finish_within_the_grace_period() {
    let (_cluster, client) = cluster().await;
    let (done_tx, mut done) = mpsc::unbounded_channel();
    let mut o = options("replica-a");
    o.yaml_extra = format!("shutdownGrace: 10s\n{}", election_yaml());
    o.slow = Some((Duration::from_millis(300), done_tx));
    let mut a = start(&client, o).await;
    a.next_sync().await;
    a.shutdown().await;
    assert!(
        done.try_recv().is_ok(),
        "the sync finished before the agent stopped"
    );
    assert_eq!(holder(&client).await, None, "then the lease was released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_abandons_a_sync_that_outlives_the_grace_period() {
    let (_cluster, client) = cluster().await;
    let (dropped_tx, mut dropped) = mpsc::unbounded_channel();
    let mut o = options("replica-a");
    o.yaml_extra = format!("shutdownGrace: 200ms\n{}", election_yaml());
    o.hang = Some(dropped_tx);
    let mut a = start(&client, o).await;
    a.next_sync().await;
    a.shutdown().await;
    assert!(dropped.try_recv().is_ok(), "the hanging sync was dropped");
    assert_eq!(holder(&client).await, None, "and the lease released");
}

/// The `kubesync_sync_total{source, result="ok"}` counter in a `/metrics` body (0 if absent).
fn ok_syncs(metrics: &str, source: &str) -> u64 {
    let prefix = format!(r#"kubesync_sync_total{{source="{source}",result="ok"}} "#);
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Kills the agent process when the test ends, however it ends.
struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The real binary: `kubesync run --repo <local repo> --kubeconfig <kubesim>` syncs the
/// commit on start, syncs a new local commit within seconds, and counts both in `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_binary_runs_the_agent_on_the_sync_engine() {
    let sim = crate::sync::Sim::start().await;
    let repo = crate::support::Repo::new();
    repo.commit(
        "apps/cm.yaml",
        &crate::support::config_map("e2e", &[("v", "1")]),
    );
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let child = std::process::Command::new(crate::support::kubesync_bin())
        .args(["run", "--repo", &repo.path_string(), "--path", "apps"])
        .args(["--name", "e2e", "--interval", "1s", "--no-leader-election"])
        .args(["--listen", &addr.to_string()])
        .arg("--kubeconfig")
        .arg(&sim.kubeconfig)
        .env_remove("KUBECONFIG")
        .env_remove("KUBESYNC_CONFIG")
        .env("HOME", sim.home.path())
        .env("KUBESYNC_LOG", "warn")
        .current_dir(sim.home.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("kubesync run starts");
    let _child = Child(child);
    let cms: Api<ConfigMap> = Api::namespaced(sim.client.clone(), "default");
    let value = |cms: Api<ConfigMap>| async move {
        cms.get_opt("e2e")
            .await
            .ok()
            .flatten()
            .and_then(|c| c.data)
            .and_then(|d| d.get("v").cloned())
    };
    eventually("the first commit in the cluster", || {
        let cms = cms.clone();
        async move { value(cms).await.as_deref() == Some("1") }
    })
    .await;
    let metrics = |addr| async move { http(addr, "GET", "/metrics", &[], b"").await.1 };
    eventually("the first sync counted", || async move {
        ok_syncs(&metrics(addr).await, "e2e") >= 1
    })
    .await;
    let first = ok_syncs(&metrics(addr).await, "e2e");
    repo.commit(
        "apps/cm.yaml",
        &crate::support::config_map("e2e", &[("v", "2")]),
    );
    let started = tokio::time::Instant::now();
    eventually("the new commit in the cluster", || {
        let cms = cms.clone();
        async move { value(cms).await.as_deref() == Some("2") }
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    eventually("the second sync counted", || async move {
        ok_syncs(&metrics(addr).await, "e2e") > first
    })
    .await;
}

/// The engine adapter refuses an object outside the source's allowed namespaces before
/// writing anything, naming the object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_syncer_enforces_allowed_namespaces_before_any_write() {
    let (_cluster, client) = cluster().await;
    let repo = crate::support::Repo::new();
    let sha = repo.commit_files(
        &[
            ("a.yaml", &crate::support::config_map("ok", &[("v", "1")])),
            (
                "b.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad, namespace: kube-system}\n",
            ),
        ],
        "two config maps",
    );
    let config = RawConfig::from_yaml(&format!(
        "leaderElection: {{enabled: false}}\nsources: [{{name: pol, repo: '{}', allowedNamespaces: [default]}}]\n",
        repo.path_string()
    ))
    .unwrap()
    .validate(&Defaults {
        identity: "t".into(),
        namespace: "default".into(),
    })
    .unwrap();
    let syncer = agent::syncer::EngineSyncer::new(client.clone(), &config);
    let err = syncer
        .sync(&config.sources[0], &sha)
        .await
        .expect_err("refused");
    assert_eq!(err.kind, "policy");
    assert!(err.message.contains("ConfigMap kube-system/bad"), "{err}");
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    assert!(
        cms.get_opt("ok").await.unwrap().is_none(),
        "nothing written"
    );
}

/// API outage, end to end: the real `kubesync run` against a kubesim on a TCP port. kubesim
/// is stopped (the agent stays up; `/readyz` turns 503 with the reason), a commit is made and
/// tried meanwhile (it fails), then kubesim restarts from its state dir on the same port: the
/// agent turns ready again and the commit made during the outage lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_outage_makes_the_agent_unready_and_a_commit_made_meanwhile_lands_after_it() {
    let state = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = home.path().join("kubeconfig");
    let sim_config = |listen: SocketAddr| kubesim::Config {
        listen,
        state_dir: Some(state.path().to_path_buf()),
        ..Default::default()
    };
    let cluster = kubesim::Cluster::start(sim_config("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let api_addr = cluster.addr();
    cluster.write_kubeconfig(&kubeconfig).unwrap();
    let repo = crate::support::Repo::new();
    repo.commit(
        "apps/cm.yaml",
        &crate::support::config_map("outage", &[("v", "1")]),
    );
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let child = std::process::Command::new(crate::support::kubesync_bin())
        .args(["run", "--repo", &repo.path_string(), "--path", "apps"])
        .args([
            "--name",
            "outage",
            "--interval",
            "1s",
            "--no-leader-election",
        ])
        .args(["--listen", &addr.to_string()])
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .env_remove("KUBECONFIG")
        .env_remove("KUBESYNC_CONFIG")
        .env("HOME", home.path())
        .env("KUBESYNC_LOG", "warn")
        .current_dir(home.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("kubesync run starts");
    let mut child = Child(child);
    let value = |client: kube::Client| async move {
        Api::<ConfigMap>::namespaced(client, "default")
            .get_opt("outage")
            .await
            .ok()
            .flatten()
            .and_then(|c| c.data)
            .and_then(|d| d.get("v").cloned())
    };
    let client = kube::Client::new(cluster.router(), "default");
    eventually("the first commit in the cluster", || {
        let client = client.clone();
        async move { value(client).await.as_deref() == Some("1") }
    })
    .await;
    eventually("ready", || async move {
        http(addr, "GET", "/readyz", &[], b"").await.0 == 200
    })
    .await;

    // Outage.
    cluster.shutdown().await;
    eventually("not ready, saying why", || async move {
        let (code, body) = http(addr, "GET", "/readyz", &[], b"").await;
        code == 503 && body.contains("API server unreachable")
    })
    .await;
    let st = status(addr).await;
    assert_eq!(st["ready"], false, "{st}");
    assert!(
        st["notReady"]
            .as_str()
            .is_some_and(|r| r.contains("API server unreachable")),
        "{st}"
    );
    // A commit during the outage is noticed (local watch), tried, and fails.
    let during = repo.commit(
        "apps/cm.yaml",
        &crate::support::config_map("outage", &[("v", "2")]),
    );
    eventually("the commit made during the outage tried and failed", || {
        let during = during.clone();
        async move {
            let st = status(addr).await;
            let s = &st["sources"][0];
            s["head"] == during.as_str()
                && s["lastResult"] == "failed"
                && s["commit"] != during.as_str()
        }
    })
    .await;
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the agent stays up during an API outage"
    );
    assert_eq!(http(addr, "GET", "/healthz", &[], b"").await.0, 200);

    // The API server comes back on the same port, from its state dir.
    let cluster = kubesim::Cluster::start(sim_config(api_addr))
        .await
        .expect("kubesim restarts on the same port");
    let client = kube::Client::new(cluster.router(), "default");
    eventually("ready again", || async move {
        http(addr, "GET", "/readyz", &[], b"").await.0 == 200
    })
    .await;
    eventually("the commit made during the outage in the cluster", || {
        let client = client.clone();
        async move { value(client).await.as_deref() == Some("2") }
    })
    .await;
    eventually("the agent reports the commit synced", || {
        let during = during.clone();
        async move {
            let st = status(addr).await;
            st["sources"][0]["commit"] == during.as_str() && st["sources"][0]["lastResult"] == "ok"
        }
    })
    .await;
    assert!(child.0.try_wait().unwrap().is_none(), "still running");
    cluster.shutdown().await;
}
