//! Conformance against the real `kubectl` (1.32 through the dispatcher): what it prints and
//! what the objects look like afterwards.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

const SETTLE: Duration = Duration::from_secs(20);

struct Kubectl {
    home: tempfile::TempDir,
    kubeconfig: PathBuf,
}

#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    fn new(c: &kubesim::Cluster) -> Kubectl {
        let home = tempfile::tempdir().unwrap();
        let kubeconfig = home.path().join("kubeconfig");
        c.write_kubeconfig(&kubeconfig).unwrap();
        Kubectl { home, kubeconfig }
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.env("HOME", self.home.path())
            .env_remove("KUBECONFIG")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .current_dir(self.home.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    async fn run(&self, args: &[&str]) -> Out {
        let out = self.command(args).output().await.unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert_eq!(out.code, 0, "kubectl {args:?} failed: {out:?}");
        out.stdout
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.home.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a).await).unwrap()
    }
}

fn web_yaml(
    image: &str,
    replicas: u32,
    extra_template_annotations: &str,
    progress_deadline: Option<u32>,
) -> String {
    let deadline = progress_deadline
        .map(|d| format!("  progressDeadlineSeconds: {d}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: {replicas}\n{deadline}  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n      annotations: {{kubesim.io/x: \"1\"{extra_template_annotations}}}\n    spec:\n      containers:\n      - name: web\n        image: {image}\n"
    )
}

/// Advances the clock (pods get Ready) and settles until the Deployment is complete.
async fn roll_to_completion(c: &kubesim::Cluster, k: &Kubectl) {
    for _ in 0..40 {
        assert!(c.settle(SETTLE).await);
        let d = k.json(&["get", "deployment", "web"]).await;
        let s = &d["status"];
        let want = d["spec"]["replicas"].clone();
        if d["metadata"]["generation"] == s["observedGeneration"]
            && s["updatedReplicas"] == want
            && s["availableReplicas"] == want
            && s["replicas"] == want
        {
            return;
        }
        c.clock().advance(Duration::from_secs(61));
    }
    panic!("deployment never completed");
}

fn slow_pods() -> kubesim::Config {
    kubesim::Config {
        pod_ready_after: Duration::from_secs(60),
        ..kubesim::Config::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_get_diff_and_delete() {
    let c = kubesim::Cluster::start(kubesim::Config::default())
        .await
        .unwrap();
    let k = Kubectl::new(&c);
    let f = k.file("web.yaml", &web_yaml("nginx:1.24", 2, "", None));
    assert_eq!(
        k.ok(&["apply", "--server-side", "-f", &f]).await,
        "deployment.apps/web serverside-applied\n"
    );
    assert!(c.settle(SETTLE).await);
    let d = k.json(&["get", "deployment", "web"]).await;
    assert_eq!(d["status"]["availableReplicas"], 2);
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    let table = k.ok(&["get", "deployments"]).await;
    assert!(
        table.starts_with(
            "NAME   READY   UP-TO-DATE   AVAILABLE   AGE\nweb    2/2     2            2"
        ),
        "{table}"
    );

    let same = k.run(&["diff", "--server-side", "-f", &f]).await;
    assert_eq!((same.code, same.stdout.as_str()), (0, ""), "{same:?}");
    let f2 = k.file("web2.yaml", &web_yaml("nginx:1.25", 2, "", None));
    let changed = k.run(&["diff", "--server-side", "-f", &f2]).await;
    assert_eq!(changed.code, 1, "{changed:?}");
    assert!(
        changed
            .stdout
            .contains("-      - image: nginx:1.24\n+      - image: nginx:1.25\n"),
        "{}",
        changed.stdout
    );
    assert!(
        changed
            .stdout
            .contains("-  generation: 1\n+  generation: 2\n"),
        "{}",
        changed.stdout
    );

    assert_eq!(
        k.ok(&["delete", "-f", &f]).await,
        "deployment.apps \"web\" deleted\n"
    );
    assert!(c.settle(SETTLE).await);
    let missing = k.run(&["get", "deployment", "web"]).await;
    assert_eq!(missing.code, 1);
    assert_eq!(
        missing.stderr,
        "Error from server (NotFound): deployments.apps \"web\" not found\n"
    );
    let pods = k.run(&["get", "pods"]).await;
    assert_eq!(pods.stderr, "No resources found in default namespace.\n");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_status_of_a_three_replica_rolling_update() {
    let c = kubesim::Cluster::start(slow_pods()).await.unwrap();
    let k = Kubectl::new(&c);
    let f = k.file("web.yaml", &web_yaml("nginx:1.24", 3, "", None));
    k.ok(&["apply", "--server-side", "-f", &f]).await;
    roll_to_completion(&c, &k).await;
    assert_eq!(
        k.ok(&["rollout", "status", "deployment/web"]).await,
        "deployment \"web\" successfully rolled out\n"
    );

    assert_eq!(
        k.ok(&["set", "image", "deployment/web", "web=nginx:1.25"])
            .await,
        "deployment.apps/web image updated\n"
    );
    assert!(c.settle(SETTLE).await);
    // Earlier kubectl commands opened watches too: wait for one more than before.
    let watches = c.request_count().watch;
    let status = k
        .command(&["rollout", "status", "deployment/web"])
        .spawn()
        .unwrap();
    // Give kubectl time to list and open its watch before the next step.
    let mut waited = 0;
    while c.request_count().watch == watches && waited < 200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    roll_to_completion(&c, &k).await;
    let out = tokio::time::timeout(Duration::from_secs(30), status.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines: Vec<&str> = text.lines().collect();
    lines.dedup();
    assert_eq!(
        lines,
        [
            "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...",
            "Waiting for deployment \"web\" rollout to finish: 2 out of 3 new replicas have been updated...",
            "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination...",
            "deployment \"web\" successfully rolled out",
        ],
        "{text}"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_undo_reuse_the_old_replica_set() {
    let c = kubesim::Cluster::start(kubesim::Config::default())
        .await
        .unwrap();
    let k = Kubectl::new(&c);
    let f = k.file("web.yaml", &web_yaml("nginx:1.24", 2, "", None));
    k.ok(&["apply", "--server-side", "-f", &f]).await;
    roll_to_completion(&c, &k).await;
    k.ok(&["set", "image", "deployment/web", "web=nginx:1.25"])
        .await;
    roll_to_completion(&c, &k).await;
    assert_eq!(
        k.ok(&["rollout", "history", "deployment/web"]).await,
        "deployment.apps/web \nREVISION  CHANGE-CAUSE\n1         <none>\n2         <none>\n\n"
    );
    let rs_before = k.json(&["get", "replicasets"]).await["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        k.ok(&["rollout", "undo", "deployment/web"]).await,
        "deployment.apps/web rolled back\n"
    );
    roll_to_completion(&c, &k).await;
    let d = k.json(&["get", "deployment", "web"]).await;
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.24"
    );
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    let rss = k.json(&["get", "replicasets"]).await;
    assert_eq!(
        rss["items"].as_array().unwrap().len(),
        rs_before,
        "the old ReplicaSet is reused"
    );
    let reused = rss["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|rs| rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3")
        .unwrap();
    assert_eq!(
        reused["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"],
        "1"
    );
    assert_eq!(
        k.ok(&["rollout", "history", "deployment/web"]).await,
        "deployment.apps/web \nREVISION  CHANGE-CAUSE\n2         <none>\n3         <none>\n\n"
    );
    assert_eq!(
        k.ok(&["rollout", "undo", "deployment/web", "--to-revision=2"])
            .await,
        "deployment.apps/web rolled back\n"
    );
    roll_to_completion(&c, &k).await;
    let d = k.json(&["get", "deployment", "web"]).await;
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.25"
    );
    let missing = k
        .run(&["rollout", "undo", "deployment/web", "--to-revision=42"])
        .await;
    assert_eq!(missing.code, 1);
    assert_eq!(
        missing.stderr,
        "error: unable to find specified revision 42 in history\n"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_never_ready_rollout_exceeds_its_progress_deadline() {
    let c = kubesim::Cluster::start(kubesim::Config::default())
        .await
        .unwrap();
    let k = Kubectl::new(&c);
    let f = k.file("web.yaml", &web_yaml("nginx:1.24", 2, "", Some(30)));
    k.ok(&["apply", "--server-side", "-f", &f]).await;
    roll_to_completion(&c, &k).await;
    let bad = k.file(
        "bad.yaml",
        &web_yaml(
            "nginx:broken",
            2,
            ", kubesim.io/never-ready: \"true\"",
            Some(30),
        ),
    );
    k.ok(&["apply", "--server-side", "-f", &bad]).await;
    assert!(c.settle(SETTLE).await);
    let watches = c.request_count().watch;
    let status = k
        .command(&["rollout", "status", "deployment/web"])
        .spawn()
        .unwrap();
    let mut waited = 0;
    while c.request_count().watch == watches && waited < 200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    c.clock().advance(Duration::from_secs(31));
    assert!(c.settle(SETTLE).await);
    let out = tokio::time::timeout(Duration::from_secs(30), status.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("Waiting for deployment \"web\" rollout to finish: 1 out of 2 new replicas have been updated...\n"), "{text}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: deployment \"web\" exceeded its progress deadline\n"
    );
    let d = k.json(&["get", "deployment", "web"]).await;
    let progressing = d["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .unwrap()
        .clone();
    assert_eq!(progressing["reason"], "ProgressDeadlineExceeded");
    // The old pods kept serving.
    assert_eq!(d["status"]["availableReplicas"], 2);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_restart_pause_resume_and_wait() {
    let c = kubesim::Cluster::start(kubesim::Config::default())
        .await
        .unwrap();
    let k = Kubectl::new(&c);
    let f = k.file("web.yaml", &web_yaml("nginx:1.24", 2, "", None));
    k.ok(&["apply", "--server-side", "-f", &f]).await;
    assert_eq!(
        k.ok(&[
            "wait",
            "--for=condition=Available",
            "deployment/web",
            "--timeout=20s"
        ])
        .await,
        "deployment.apps/web condition met\n"
    );
    assert_eq!(
        k.ok(&["scale", "deployment/web", "--replicas=4"]).await,
        "deployment.apps/web scaled\n"
    );
    roll_to_completion(&c, &k).await;
    assert_eq!(
        k.json(&["get", "pods"]).await["items"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        k.ok(&["rollout", "pause", "deployment/web"]).await,
        "deployment.apps/web paused\n"
    );
    let again = k.run(&["rollout", "pause", "deployment/web"]).await;
    assert_eq!(
        again.stderr,
        "error: deployments.apps \"web\" is already paused\n"
    );
    assert_eq!(
        k.ok(&["rollout", "resume", "deployment/web"]).await,
        "deployment.apps/web resumed\n"
    );
    assert_eq!(
        k.ok(&["rollout", "restart", "deployment/web"]).await,
        "deployment.apps/web restarted\n"
    );
    roll_to_completion(&c, &k).await;
    let d = k.json(&["get", "deployment", "web"]).await;
    assert!(
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string()
    );
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cordon_and_drain_move_pods_off_a_node() {
    let c = kubesim::Cluster::start(kubesim::Config::default())
        .await
        .unwrap();
    let k = Kubectl::new(&c);
    let f = k.file("web.yaml", &web_yaml("nginx:1.24", 3, "", None));
    k.ok(&["apply", "--server-side", "-f", &f]).await;
    roll_to_completion(&c, &k).await;
    assert_eq!(
        k.ok(&["cordon", "kubesim-worker"]).await,
        "node/kubesim-worker cordoned\n"
    );
    let out = k
        .ok(&[
            "drain",
            "kubesim-worker",
            "--ignore-daemonsets",
            "--timeout=20s",
        ])
        .await;
    assert!(out.ends_with("node/kubesim-worker drained\n"), "{out}");
    roll_to_completion(&c, &k).await;
    let pods = k.json(&["get", "pods"]).await;
    let nodes: Vec<&str> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["spec"]["nodeName"].as_str().unwrap())
        .collect();
    assert_eq!(nodes.len(), 3);
    assert!(!nodes.contains(&"kubesim-worker"), "{nodes:?}");
    let node = k.json(&["get", "node", "kubesim-worker"]).await;
    assert_eq!(node["spec"]["unschedulable"], true);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_creates_send_protobuf_bodies() {
    let c = kubesim::Cluster::start(kubesim::Config::default())
        .await
        .unwrap();
    let k = Kubectl::new(&c);
    assert_eq!(
        k.ok(&["create", "namespace", "team"]).await,
        "namespace/team created\n"
    );
    assert_eq!(
        k.ok(&[
            "-n",
            "team",
            "create",
            "configmap",
            "cfg",
            "--from-literal=a=b"
        ])
        .await,
        "configmap/cfg created\n"
    );
    assert_eq!(
        k.ok(&[
            "-n",
            "team",
            "create",
            "secret",
            "generic",
            "s",
            "--from-literal=p=x"
        ])
        .await,
        "secret/s created\n"
    );
    assert_eq!(
        k.json(&["-n", "team", "get", "configmap", "cfg"]).await["data"],
        serde_json::json!({"a": "b"})
    );
    assert_eq!(
        k.json(&["-n", "team", "get", "secret", "s"]).await["data"],
        serde_json::json!({"p": "eA=="})
    );
    assert_eq!(
        k.ok(&["delete", "namespace", "team"]).await,
        "namespace \"team\" deleted\n"
    );
    let gone = k.run(&["-n", "team", "get", "configmap", "cfg"]).await;
    assert_eq!(gone.code, 1);
    c.shutdown().await;
}
