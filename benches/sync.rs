//! Benchmark: `kubesync sync` / `kubesync diff` against `kubectl apply --server-side -f dir` /
//! `kubectl diff --server-side -f dir`, on one kubesim cluster with 1,000 objects (ConfigMaps,
//! Services, Deployments with 0 or 1 replicas). Each tool gets its own namespace with the same
//! objects. Measures wall time and the API requests kubesim served (`request_count()`), and
//! writes the table into `docs/benchmarks.md` (between the sync-bench markers).
//!
//! Run: `cargo bench --bench sync` (optionally `-- --objects N`). Needs `/usr/bin/kubectl`.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const START: &str = "<!-- sync-bench:start -->";
const END: &str = "<!-- sync-bench:end -->";

fn manifests(n: usize, namespace: Option<&str>) -> Vec<(String, String)> {
    let ns = namespace
        .map(|n| format!("  namespace: {n}\n"))
        .unwrap_or_default();
    (0..n)
        .map(|i| match i % 3 {
            0 => (
                format!("cm-{i}.yaml"),
                format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n{ns}data:\n  key: \"value-{i}\"\n  mode: fast\n"),
            ),
            1 => (
                format!("svc-{i}.yaml"),
                format!(
                    "apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{i}\n{ns}spec:\n  selector:\n    app: app-{i}\n  ports:\n    - port: 80\n      targetPort: 8080\n"
                ),
            ),
            _ => (
                format!("dep-{i}.yaml"),
                format!(
                    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: dep-{i}\n{ns}spec:\n  replicas: {}\n  selector:\n    matchLabels:\n      app: dep-{i}\n  template:\n    metadata:\n      labels:\n        app: dep-{i}\n    spec:\n      containers:\n        - name: app\n          image: nginx:1.27\n          ports:\n            - containerPort: 8080\n",
                    (i / 3) % 2
                ),
            ),
        })
        .collect()
}

fn write_dir(dir: &Path, files: &[(String, String)]) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for (name, body) in files {
        std::fs::write(dir.join(name), body).expect("write manifest");
    }
}

fn git_commit_all(repo_dir: &Path) {
    let mut opts = git2::RepositoryInitOptions::new();
    opts.initial_head("main");
    let git = git2::Repository::init_opts(repo_dir, &opts).expect("git init");
    let mut index = git.index().expect("index");
    index
        .add_all(["*"].iter(), git2::IndexAddOption::DEFAULT, None)
        .expect("add");
    index.write().expect("index write");
    let tree = git
        .find_tree(index.write_tree().expect("tree"))
        .expect("tree");
    let sig = git2::Signature::new(
        "Bench",
        "bench@example.com",
        &git2::Time::new(1_700_000_000, 0),
    )
    .expect("sig");
    git.commit(Some("HEAD"), &sig, &sig, "1000 objects", &tree, &[])
        .expect("commit");
}

struct Step {
    name: &'static str,
    tool: &'static str,
    wall: Duration,
    requests: u64,
    writes: u64,
    ok: bool,
}

async fn run(
    cluster: &kubesim::Cluster,
    name: &'static str,
    tool: &'static str,
    mut cmd: Command,
) -> Step {
    let before = cluster.request_count();
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("command runs"))
        .await
        .expect("join");
    let wall = started.elapsed();
    let after = cluster.request_count();
    let total = |c: &kubesim::RequestCounts| {
        c.get + c.list + c.watch + c.create + c.update + c.patch + c.delete
    };
    let writes = |c: &kubesim::RequestCounts| c.create + c.update + c.patch + c.delete;
    // kubectl diff exits 1 when there are differences; that is success here.
    let ok = matches!(out.status.code(), Some(0) | Some(1));
    if tool == "kubesync" {
        // Stage timings (debug events) of kubesync, for the record.
        for line in String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.contains("elapsed_ms"))
        {
            eprintln!("{name}: {line}");
        }
    }
    if !ok {
        eprintln!(
            "{name} ({tool}) failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Step {
        name,
        tool,
        wall,
        requests: total(&after) - total(&before),
        writes: writes(&after) - writes(&before),
        ok,
    }
}

fn kubectl(kubeconfig: &Path, home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("/usr/bin/kubectl");
    cmd.args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("HOME", home)
        .env_remove("KUBECONFIG");
    cmd.stdout(std::process::Stdio::null());
    cmd
}

fn kubesync(kubeconfig: &Path, home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubesync"));
    cmd.args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("HOME", home)
        .env("KUBESYNC_LOG", "kubesync=debug")
        .env_remove("KUBECONFIG")
        .current_dir(home);
    cmd.stdout(std::process::Stdio::null());
    cmd
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args
        .iter()
        .position(|a| a == "--objects")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let tmp = tempfile::tempdir().expect("temp dir");
    let cluster = kubesim::Cluster::start(kubesim::Config::default())
        .await
        .expect("kubesim starts");
    let kubeconfig = tmp.path().join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig).expect("kubeconfig");

    // Namespaces for both tools.
    let setup = tmp.path().join("setup");
    write_dir(
        &setup,
        &[
            (
                "kc.yaml".into(),
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kc\n".into(),
            ),
            (
                "ks.yaml".into(),
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ks\n".into(),
            ),
        ],
    );
    let home = |name: &str| -> PathBuf {
        let p = tmp.path().join("homes").join(name);
        std::fs::create_dir_all(&p).expect("home");
        p
    };
    let setup_out = kubectl(
        &kubeconfig,
        &home("setup"),
        &["apply", "--server-side", "-f", &setup.display().to_string()],
    )
    .output()
    .expect("kubectl");
    assert!(
        setup_out.status.success(),
        "{}",
        String::from_utf8_lossy(&setup_out.stderr)
    );

    let kc_dir = tmp.path().join("kubectl-manifests");
    write_dir(&kc_dir, &manifests(n, Some("kc")));
    let repo = tmp.path().join("repo");
    write_dir(&repo.join("apps"), &manifests(n, None));
    git_commit_all(&repo);
    let kc = kc_dir.display().to_string();
    let repo_s = repo.display().to_string();
    let ks_sync = |h: &Path| {
        kubesync(
            &kubeconfig,
            h,
            &[
                "sync",
                "--repo",
                &repo_s,
                "--path",
                "apps",
                "--namespace",
                "ks",
                "--wait=false",
                "--timeout",
                "10m",
            ],
        )
    };
    let ks_diff = |h: &Path| {
        kubesync(
            &kubeconfig,
            h,
            &[
                "diff",
                "--repo",
                &repo_s,
                "--path",
                "apps",
                "--namespace",
                "ks",
                "--timeout",
                "10m",
            ],
        )
    };

    let mut steps = Vec::new();
    steps.push(
        run(
            &cluster,
            "first apply",
            "kubectl",
            kubectl(
                &kubeconfig,
                &home("k1"),
                &["apply", "--server-side", "-f", &kc],
            ),
        )
        .await,
    );
    steps.push(run(&cluster, "first apply", "kubesync", ks_sync(&home("s1"))).await);
    cluster.settle(Duration::from_secs(120)).await;
    steps.push(
        run(
            &cluster,
            "no-op re-sync",
            "kubectl",
            kubectl(
                &kubeconfig,
                &home("k2"),
                &["apply", "--server-side", "-f", &kc],
            ),
        )
        .await,
    );
    steps.push(run(&cluster, "no-op re-sync", "kubesync", ks_sync(&home("s2"))).await);
    steps.push(
        run(
            &cluster,
            "diff (no changes)",
            "kubectl",
            kubectl(
                &kubeconfig,
                &home("k3"),
                &["diff", "--server-side", "-f", &kc],
            ),
        )
        .await,
    );
    steps.push(
        run(
            &cluster,
            "diff (no changes)",
            "kubesync",
            ks_diff(&home("s3")),
        )
        .await,
    );

    let mut table = format!(
        "{START}\n## `kubesync sync` / `diff` vs kubectl ({n} objects, one kubesim)\n\n\
         Generated by `cargo bench --bench sync` (objects: ConfigMaps, Services, Deployments with 0/1 replicas; \
         kubectl with a fresh HOME each run, so its discovery cache is cold, as in CI; kubesync with `--wait=false` \
         for the first apply so both only write).\n\n\
         | step | kubectl wall | kubesync wall | speed-up | kubectl requests (writes) | kubesync requests (writes) |\n\
         |---|---:|---:|---:|---:|---:|\n"
    );
    for pair in steps.chunks(2) {
        let (k, s) = (&pair[0], &pair[1]);
        let ratio = k.wall.as_secs_f64() / s.wall.as_secs_f64().max(1e-9);
        table.push_str(&format!(
            "| {} | {:.2}s | {:.2}s | {:.1}x | {} ({}) | {} ({}) |\n",
            k.name,
            k.wall.as_secs_f64(),
            s.wall.as_secs_f64(),
            ratio,
            k.requests,
            k.writes,
            s.requests,
            s.writes
        ));
        if !k.ok || !s.ok {
            table.push_str(&format!(
                "|  | {} | {} | (a command failed) | | |\n",
                k.tool, s.tool
            ));
        }
    }
    table.push_str(&format!("\n{END}\n"));
    println!("{table}");
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/benchmarks.md");
    let existing =
        std::fs::read_to_string(&doc_path).unwrap_or_else(|_| "# Benchmarks\n\n".to_string());
    let updated = match (existing.find(START), existing.find(END)) {
        (Some(a), Some(b)) if b > a => {
            let tail = &existing[b + END.len()..];
            format!("{}{}{}", &existing[..a], table.trim_end(), tail)
        }
        _ => format!("{}\n{}", existing.trim_end(), table),
    };
    if let Err(e) = std::fs::write(&doc_path, updated) {
        eprintln!("cannot write {}: {e}", doc_path.display());
    }
    cluster.shutdown().await;
}
