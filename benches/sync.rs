//! Benchmark: `kubesync sync` / `kubesync diff` against `kubectl apply --server-side -f dir` /
//! `kubectl diff --server-side -f dir`, on one kubesim cluster with 1,000 objects (ConfigMaps,
//! Services, Deployments with 0 or 1 replicas). Each tool gets its own namespace with the same
//! objects, a fresh pair per round. Every step starts on a settled cluster (controllers idle),
//! so neither tool pays for the other's rollouts. Measures wall time, the API requests kubesim
//! served (`request_count()`), the tool's own CPU time and the server's CPU time (kubesim runs
//! in this process), and writes the tables into `docs/benchmarks.md` (between the sync-bench
//! markers): medians over the rounds, with min–max.
//!
//! Run: `cargo bench --bench sync` (optionally `-- --objects N --rounds R`). Needs
//! `/usr/bin/kubectl`.
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
    /// CPU time of the tool's process (user + system).
    client_cpu: Duration,
    /// CPU time of this process meanwhile: kubesim's API server and controllers.
    server_cpu: Duration,
    ok: bool,
}

/// (own CPU, waited-for children's CPU) of this process, from /proc/self/stat.
fn cpu_times() -> (Duration, Duration) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime, stime, cutime, cstime are fields 14-17 of the full line: 11-14 after ')'.
    let tick = |i: usize| f.get(i).copied().unwrap_or(0);
    let hz = 100.0; // USER_HZ on Linux
    let secs = |t: u64| Duration::from_secs_f64(t as f64 / hz);
    (secs(tick(11) + tick(12)), secs(tick(13) + tick(14)))
}

async fn run(
    cluster: &kubesim::Cluster,
    name: &'static str,
    tool: &'static str,
    mut cmd: Command,
) -> Step {
    // Start from a quiet cluster: the controllers have finished with earlier steps.
    cluster.settle(Duration::from_secs(300)).await;
    let before = cluster.request_count();
    let (own_before, children_before) = cpu_times();
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("command runs"))
        .await
        .expect("join");
    let wall = started.elapsed();
    let (own_after, children_after) = cpu_times();
    let after = cluster.request_count();
    let total = |c: &kubesim::RequestCounts| {
        c.get + c.list + c.watch + c.create + c.update + c.patch + c.delete
    };
    let writes = |c: &kubesim::RequestCounts| c.create + c.update + c.patch + c.delete;
    // kubectl diff exits 1 when there are differences; that is success here.
    let ok = matches!(out.status.code(), Some(0) | Some(1));
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
        client_cpu: children_after.saturating_sub(children_before),
        server_cpu: own_after.saturating_sub(own_before),
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
        .env_remove("KUBECONFIG")
        .current_dir(home);
    cmd.stdout(std::process::Stdio::null());
    cmd
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str, default: usize| -> usize {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let n = flag("--objects", 1000);
    let rounds = flag("--rounds", 3).max(1);
    let tmp = tempfile::tempdir().expect("temp dir");
    let cluster = kubesim::Cluster::start(kubesim::Config::default())
        .await
        .expect("kubesim starts");
    let kubeconfig = tmp.path().join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let home = |name: &str| -> PathBuf {
        let p = tmp.path().join("homes").join(name);
        std::fs::create_dir_all(&p).expect("home");
        p
    };

    // Namespaces for both tools, one pair per round.
    let setup = tmp.path().join("setup");
    let namespaces: Vec<(String, String)> = (0..rounds)
        .flat_map(|r| {
            ["kc", "ks"].map(|t| {
                (
                    format!("{t}{r}.yaml"),
                    format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {t}{r}\n"),
                )
            })
        })
        .collect();
    write_dir(&setup, &namespaces);
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

    let repo = tmp.path().join("repo");
    write_dir(&repo.join("apps"), &manifests(n, None));
    git_commit_all(&repo);
    let repo_s = repo.display().to_string();
    let ks = |verb: &str, h: &Path, r: usize| {
        let ns = format!("ks{r}");
        let source = format!("bench{r}");
        let mut a = vec![
            verb,
            "--repo",
            &repo_s,
            "--path",
            "apps",
            "--namespace",
            &ns,
            "--source",
            &source,
            "--timeout",
            "10m",
        ];
        if verb == "sync" {
            a.push("--wait=false");
        }
        kubesync(&kubeconfig, h, &a)
    };

    let mut steps: Vec<Step> = Vec::new();
    for r in 0..rounds {
        let kc_dir = tmp.path().join(format!("kubectl-manifests-{r}"));
        write_dir(&kc_dir, &manifests(n, Some(&format!("kc{r}"))));
        let kc = kc_dir.display().to_string();
        let h = |t: &str| home(&format!("{t}{r}"));
        steps.push(
            run(
                &cluster,
                "first apply",
                "kubectl",
                kubectl(
                    &kubeconfig,
                    &h("k1-"),
                    &["apply", "--server-side", "-f", &kc],
                ),
            )
            .await,
        );
        steps.push(
            run(
                &cluster,
                "first apply",
                "kubesync",
                ks("sync", &h("s1-"), r),
            )
            .await,
        );
        steps.push(
            run(
                &cluster,
                "no-op re-sync",
                "kubectl",
                kubectl(
                    &kubeconfig,
                    &h("k2-"),
                    &["apply", "--server-side", "-f", &kc],
                ),
            )
            .await,
        );
        steps.push(
            run(
                &cluster,
                "no-op re-sync",
                "kubesync",
                ks("sync", &h("s2-"), r),
            )
            .await,
        );
        steps.push(
            run(
                &cluster,
                "diff (no changes)",
                "kubectl",
                kubectl(
                    &kubeconfig,
                    &h("k3-"),
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
                ks("diff", &h("s3-"), r),
            )
            .await,
        );
        eprintln!("round {} of {rounds} done", r + 1);
    }

    let table = render(&steps, n, rounds);
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

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// The markdown tables: per step, medians over the rounds (min–max), ratio of medians.
fn render(steps: &[Step], n: usize, rounds: usize) -> String {
    let mut names: Vec<&str> = Vec::new();
    for s in steps {
        if !names.contains(&s.name) {
            names.push(s.name);
        }
    }
    let of = |name: &str, tool: &str| -> Vec<&Step> {
        steps
            .iter()
            .filter(|s| s.name == name && s.tool == tool)
            .collect()
    };
    let wall = |v: &[&Step]| {
        let w: Vec<Duration> = v.iter().map(|s| s.wall).collect();
        let (lo, hi) = (
            w.iter().min().copied().unwrap_or_default(),
            w.iter().max().copied().unwrap_or_default(),
        );
        (median(w), lo, hi)
    };
    let mut table = format!(
        "{START}\n## `kubesync sync` / `diff` vs kubectl ({n} objects, one kubesim, {rounds} rounds)\n\n\
         Generated by `cargo bench --bench sync` (objects: ConfigMaps, Services, Deployments with 0/1 replicas; \
         each round uses a fresh namespace per tool; every step starts on a settled cluster; kubectl with a \
         fresh HOME each run, so its discovery cache is cold, as in CI; kubesync with a fresh working \
         directory, so its parse cache is cold too, and with `--wait=false` for the first apply so both only \
         write). Wall times are medians over the rounds (min–max); the speed-up is the ratio of the medians. \
         kubesync's first apply makes two requests per object: a server-side dry-run of the whole commit \
         before the first write, then the apply.\n\n\
         | step | kubectl wall | kubesync wall | speed-up | kubectl requests (writes) | kubesync requests (writes) |\n\
         |---|---:|---:|---:|---:|---:|\n"
    );
    let mut cpu = String::from(
        "\nCPU time per step (medians): the tool's own process, and kubesim's API server and \
         controllers while the step ran.\n\n\
         | step | kubectl CPU | kubesync CPU | server CPU for kubectl | server CPU for kubesync |\n\
         |---|---:|---:|---:|---:|\n",
    );
    for name in names {
        let (k, s) = (of(name, "kubectl"), of(name, "kubesync"));
        let ((km, klo, khi), (sm, slo, shi)) = (wall(&k), wall(&s));
        let ratio = km.as_secs_f64() / sm.as_secs_f64().max(1e-9);
        let last = |v: &[&Step]| {
            v.last()
                .map(|s| format!("{} ({})", s.requests, s.writes))
                .unwrap_or_default()
        };
        table.push_str(&format!(
            "| {name} | {} ({}–{}) | {} ({}–{}) | {ratio:.1}x | {} | {} |\n",
            secs(km),
            secs(klo),
            secs(khi),
            secs(sm),
            secs(slo),
            secs(shi),
            last(&k),
            last(&s),
        ));
        let failed: Vec<&str> = k
            .iter()
            .chain(s.iter())
            .filter(|x| !x.ok)
            .map(|x| x.tool)
            .collect();
        if !failed.is_empty() {
            table.push_str(&format!(
                "|  | (failed runs: {}) | | | | |\n",
                failed.join(", ")
            ));
        }
        let med = |v: &[&Step], f: fn(&Step) -> Duration| median(v.iter().map(|s| f(s)).collect());
        cpu.push_str(&format!(
            "| {name} | {} | {} | {} | {} |\n",
            secs(med(&k, |s| s.client_cpu)),
            secs(med(&s, |s| s.client_cpu)),
            secs(med(&k, |s| s.server_cpu)),
            secs(med(&s, |s| s.server_cpu)),
        ));
    }
    table.push_str(&cpu);
    table.push_str(&format!("\n{END}\n"));
    table
}
