//! `cargo bench --bench preview`: the time of a whole `kubesync preview` over a repository
//! of 10,000 manifests (two commits; 1% of the objects change, some Deployments roll).
//! Target: under 2 s in the release profile. Prints the figure; no harness.
use kubesync::cli::preview::{Options, compute};
use kubesync::manifest::LoadOptions;
use kubesync::source::{Credentials, Repo, RepoSpec};
use std::time::{Duration, Instant};

const OBJECTS: usize = 10_000;

fn deployment(i: usize, image_tag: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{i}\n  namespace: team-{ns}\n  labels:\n    app: app-{i}\nspec:\n  replicas: 3\n  strategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 25%\n      maxUnavailable: 0\n  selector:\n    matchLabels:\n      app: app-{i}\n  template:\n    metadata:\n      labels:\n        app: app-{i}\n    spec:\n      containers:\n        - name: app\n          image: registry.example.com/app-{i}:{image_tag}\n          ports:\n            - containerPort: 8080\n          envFrom:\n            - configMapRef:\n                name: config-{i}\n          readinessProbe:\n            httpGet:\n              path: /healthz\n              port: 8080\n          resources:\n            requests:\n              cpu: 100m\n              memory: 64Mi\n",
        ns = i % 10
    )
}

fn config_map(i: usize, value: u32) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-{i}\n  namespace: team-{ns}\ndata:\n  LOG_LEVEL: info\n  FEATURE_X: \"{value}\"\n",
        ns = i % 10
    )
}

fn service(i: usize) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: app-{i}\n  namespace: team-{ns}\nspec:\n  selector:\n    app: app-{i}\n  ports:\n    - port: 80\n      targetPort: 8080\n",
        ns = i % 10
    )
}

fn write(root: &std::path::Path, rel: &str, text: &str) {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

fn commit_all(git: &git2::Repository, message: &str, time: i64) -> String {
    let mut index = git.index().expect("index");
    index
        .add_all(["*"].iter(), git2::IndexAddOption::DEFAULT, None)
        .expect("add");
    index.update_all(["*"].iter(), None).expect("update");
    index.write().expect("index write");
    let tree = git
        .find_tree(index.write_tree().expect("tree"))
        .expect("tree");
    let sig =
        git2::Signature::new("bench", "bench@example.com", &git2::Time::new(time, 0)).expect("sig");
    let parent = git.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    git.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
        .expect("commit")
        .to_string()
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let git = git2::Repository::init(root).expect("init");
    // 10,000 objects: a third each of Deployments, ConfigMaps and Services.
    let per_kind = OBJECTS / 3 + 1;
    let generating = Instant::now();
    let mut count = 0;
    for i in 0..per_kind {
        for (kind, text) in [
            ("deploy", deployment(i, 1)),
            ("config", config_map(i, 0)),
            ("svc", service(i)),
        ] {
            if count == OBJECTS {
                break;
            }
            write(
                root,
                &format!("apps/team-{}/{kind}-{i}.yaml", i % 10),
                &text,
            );
            count += 1;
        }
    }
    let base = commit_all(&git, "10,000 manifests", 1_700_000_000);
    // The change: 50 image bumps, 50 config edits (rolling their readers), 10 removals.
    for i in 0..50 {
        write(
            root,
            &format!("apps/team-{}/deploy-{i}.yaml", i % 10),
            &deployment(i, 2),
        );
    }
    for i in 50..100 {
        write(
            root,
            &format!("apps/team-{}/config-{i}.yaml", i % 10),
            &config_map(i, 1),
        );
    }
    for i in 100..110 {
        std::fs::remove_file(root.join(format!("apps/team-{}/svc-{i}.yaml", i % 10))).expect("rm");
    }
    let head = commit_all(&git, "change 1% of the objects", 1_700_000_060);
    println!(
        "generated {count} manifests in two commits in {:.2?}",
        generating.elapsed()
    );

    let spec = RepoSpec {
        url: root.display().to_string(),
        cache_dir: root.join(".cache"),
        credentials: Credentials::default(),
    };
    let options = Options {
        base,
        head,
        path: "apps".into(),
        source: "default".into(),
        load: LoadOptions::default(),
        revert_depth: 50,
    };
    let mut times: Vec<Duration> = Vec::new();
    let mut changes = 0;
    let mut rollouts = 0;
    for _ in 0..5 {
        let started = Instant::now();
        let repo = Repo::open(&spec).expect("open");
        let preview = compute(&repo, &options).expect("preview");
        let markdown = kubesync::report::markdown(&preview, kubesync::report::MARKDOWN_LIMIT);
        times.push(started.elapsed());
        changes = preview.changes.len();
        rollouts = preview
            .changes
            .iter()
            .filter(|c| c.rollout.is_some())
            .count();
        std::hint::black_box(markdown);
    }
    // Where the time goes, once: reading both trees, and loading with and without the
    // parse cache.
    let repo = Repo::open(&spec).expect("open");
    let (b, h) = (
        repo.resolve(&options.base).expect("base"),
        repo.resolve(&options.head).expect("head"),
    );
    let t = Instant::now();
    let (bs, hs) = (
        repo.snapshot(&b, "apps").expect("snap"),
        repo.snapshot(&h, "apps").expect("snap"),
    );
    let read = t.elapsed();
    let t = Instant::now();
    let mut cache = kubesync::manifest::Cache::default();
    let bo = kubesync::manifest::load_cached(&bs, &options.load, &mut cache).expect("load");
    let cold = t.elapsed();
    let t = Instant::now();
    let ho = kubesync::manifest::load_cached(&hs, &options.load, &mut cache).expect("load");
    let warm = t.elapsed();
    let (mut bo, mut ho) = (bo, ho);
    let t = Instant::now();
    let ctx = |commit| kubesync::transform::Context {
        source: "default".into(),
        commit,
    };
    kubesync::transform::apply(&mut bo, &ctx(b.clone()));
    kubesync::transform::apply(&mut ho, &ctx(h.clone()));
    let transform = t.elapsed();
    let t = Instant::now();
    std::hint::black_box(kubesync::plan::compare(&bo, &ho));
    let compare = t.elapsed();
    println!(
        "phases: read 2 trees {read:.3?}, load base (cold) {cold:.3?}, load head (cached) {warm:.3?}, transform both {transform:.3?}, compare {compare:.3?}"
    );
    times.sort();
    println!(
        "preview of {count} manifests ({changes} changes, {rollouts} rollouts): median {:.3?}, best {:.3?}, worst {:.3?} (target < 2 s)",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
}
