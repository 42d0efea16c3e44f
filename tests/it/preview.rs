//! `kubesync preview`: scenarios built as git histories, checked through the library
//! (`cli::preview::compute`, exact values) and through the binary (exit codes, JSON,
//! the Markdown comment as an insta snapshot).
use crate::support::{Repo, config_map, deployment, kubesync_bin};
use kubesync::cli::preview::{Options, compute};
use kubesync::manifest::LoadOptions;
use kubesync::plan::{Action, Cause, Preview};
use kubesync::source;
use serde_json::Value;
use std::process::Command;

fn options(base: &str, head: &str) -> Options {
    Options {
        base: base.into(),
        head: head.into(),
        path: "apps".into(),
        source: "default".into(),
        load: LoadOptions::default(),
        revert_depth: 50,
    }
}

fn preview(repo: &Repo, base: &str, head: &str) -> Preview {
    let src = source::Repo::open(&repo.spec()).unwrap();
    compute(&src, &options(base, head)).unwrap()
}

fn rolling(name: &str, image: &str, replicas: u32, surge: &str, unavailable: &str) -> String {
    deployment(name, image, replicas).replace(
        "  selector:\n",
        &format!("  strategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: {surge}\n      maxUnavailable: {unavailable}\n  selector:\n"),
    )
}

#[test]
fn image_change_is_a_template_rollout_with_its_shape() {
    let repo = Repo::new();
    let base = repo.commit("apps/web.yaml", &rolling("web", "nginx:1.25", 3, "1", "0"));
    let head = repo.commit("apps/web.yaml", &rolling("web", "nginx:1.27", 3, "1", "0"));
    let p = preview(&repo, &base, &head);
    assert_eq!(
        (p.base.sha.as_str(), p.head.sha.as_str()),
        (base.as_str(), head.as_str())
    );
    assert_eq!(p.changes.len(), 1);
    let change = &p.changes[0];
    assert_eq!(change.action, Action::Update);
    let rollout = change.rollout.as_ref().unwrap();
    assert_eq!(rollout.cause, Cause::Template);
    assert_eq!(
        rollout.details,
        ["container web: image nginx:1.25 → nginx:1.27"]
    );
    assert_eq!(
        (
            rollout.strategy.as_str(),
            rollout.max_pods,
            rollout.min_available
        ),
        ("RollingUpdate", 4, 3)
    );
    assert!(
        change
            .diff
            .contains("-        image: nginx:1.25\n+        image: nginx:1.27\n"),
        "{}",
        change.diff
    );
    assert!(
        !change.diff.contains("kubesync.io/commit"),
        "{}",
        change.diff
    );
}

#[test]
fn percentages_round_like_the_deployment_controller() {
    let repo = Repo::new();
    let base = repo.commit("apps/web.yaml", &rolling("web", "a:1", 10, "25%", "25%"));
    let head = repo.commit("apps/web.yaml", &rolling("web", "a:2", 10, "25%", "25%"));
    let r = preview(&repo, &base, &head).changes[0]
        .rollout
        .clone()
        .unwrap();
    assert_eq!((r.max_pods, r.min_available), (13, 8));
    let head2 = repo.commit("apps/web.yaml", &rolling("web", "a:3", 10, "0", "0"));
    let r = preview(&repo, &head, &head2).changes[0]
        .rollout
        .clone()
        .unwrap();
    assert_eq!(
        (r.max_pods, r.min_available),
        (10, 9),
        "both 0 → maxUnavailable 1"
    );
}

#[test]
fn recreate_means_downtime() {
    let repo = Repo::new();
    let recreate = |image| {
        deployment("db", image, 2).replace(
            "  selector:\n",
            "  strategy:\n    type: Recreate\n  selector:\n",
        )
    };
    let base = repo.commit("apps/db.yaml", &recreate("redis:7.0"));
    let head = repo.commit("apps/db.yaml", &recreate("redis:7.2"));
    let r = preview(&repo, &base, &head).changes[0]
        .rollout
        .clone()
        .unwrap();
    assert_eq!(
        (r.strategy.as_str(), r.max_pods, r.min_available),
        ("Recreate", 2, 0)
    );
    assert!(
        r.details.iter().any(|d| d.contains("downtime")),
        "{:?}",
        r.details
    );
}

#[test]
fn replicas_only_is_a_scale_not_a_rollout() {
    let repo = Repo::new();
    let base = repo.commit("apps/web.yaml", &deployment("web", "nginx", 2));
    let head = repo.commit("apps/web.yaml", &deployment("web", "nginx", 5));
    let p = preview(&repo, &base, &head);
    assert_eq!(p.changes.len(), 1);
    assert!(p.changes[0].rollout.is_none());
    let scale = p.changes[0].scale.unwrap();
    assert_eq!((scale.from, scale.to), (2, 5));
}

#[test]
fn config_change_rolls_exactly_the_deployments_that_read_it() {
    let repo = Repo::new();
    let reader = deployment("api", "api:1", 2).replace(
        "          image: api:1\n",
        "          image: api:1\n          envFrom:\n            - configMapRef:\n                name: api-config\n",
    );
    let base = repo.commit_files(
        &[
            ("apps/api.yaml", &reader),
            ("apps/other.yaml", &deployment("other", "other:1", 1)),
            (
                "apps/config.yaml",
                &config_map("api-config", &[("LOG_LEVEL", "info")]),
            ),
        ],
        "initial",
    );
    let head = repo.commit(
        "apps/config.yaml",
        &config_map("api-config", &[("LOG_LEVEL", "debug")]),
    );
    let p = preview(&repo, &base, &head);
    let names: Vec<_> = p
        .changes
        .iter()
        .map(|c| (c.id.kind.as_str(), c.id.name.as_str()))
        .collect();
    assert_eq!(names, [("ConfigMap", "api-config"), ("Deployment", "api")]);
    let r = p.changes[1].rollout.as_ref().unwrap();
    assert_eq!(r.cause, Cause::Config);
    assert_eq!(r.configs, ["ConfigMap/api-config"]);
    assert!(
        p.changes[1].diff.contains("kubesync.io/config-hash"),
        "{}",
        p.changes[1].diff
    );
}

#[test]
fn git_revert_is_recognised_and_names_the_commit() {
    let repo = Repo::new();
    let v1 = repo.commit("apps/web.yaml", &deployment("web", "nginx:1.25", 3));
    repo.commit(
        "apps/svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports: [{port: 80}]\n",
    );
    let v2 = repo.commit("apps/web.yaml", &deployment("web", "nginx:1.27", 3));
    let reverted = repo.revert(&v2);
    let p = preview(&repo, &v2, &reverted);
    let r = p.changes[0].rollout.as_ref().unwrap();
    assert_eq!(r.cause, Cause::Revert);
    // The most recent commit with that template is the Service commit after v1.
    let svc_commit = repo
        .git()
        .revparse_single(&format!("{v2}~1"))
        .unwrap()
        .id()
        .to_string();
    assert_eq!(r.revert_of.as_deref(), Some(svc_commit.as_str()));
    assert_ne!(svc_commit, v1);
    assert!(r.details[0].contains("a revert"), "{:?}", r.details);

    // With no room to search, the same change is a plain template rollout.
    let src = source::Repo::open(&repo.spec()).unwrap();
    let shallow = compute(
        &src,
        &Options {
            revert_depth: 1,
            ..options(&v2, &reverted)
        },
    )
    .unwrap();
    assert_eq!(
        shallow.changes[0].rollout.as_ref().unwrap().cause,
        Cause::Template
    );
}

#[test]
fn config_revert_restores_the_old_hash_and_is_a_revert() {
    let repo = Repo::new();
    let reader = deployment("api", "api:1", 1).replace(
        "      containers:\n",
        "      volumes:\n        - name: cfg\n          configMap:\n            name: files\n      containers:\n",
    );
    repo.commit_files(
        &[
            ("apps/api.yaml", &reader),
            (
                "apps/files.yaml",
                &config_map("files", &[("a.conf", "x=1")]),
            ),
        ],
        "initial",
    );
    let change = repo.commit(
        "apps/files.yaml",
        &config_map("files", &[("a.conf", "x=2")]),
    );
    let back = repo.revert(&change);
    let p = preview(&repo, &change, &back);
    let dep = p
        .changes
        .iter()
        .find(|c| c.id.kind == "Deployment")
        .unwrap();
    assert_eq!(dep.rollout.as_ref().unwrap().cause, Cause::Revert);
}

#[test]
fn creates_and_deletes_have_no_rollout() {
    let repo = Repo::new();
    let base = repo.commit("apps/old.yaml", &deployment("old", "a", 1));
    repo.commit("apps/new.yaml", &deployment("new", "a", 1));
    let head = repo.remove("apps/old.yaml");
    let p = preview(&repo, &base, &head);
    let summary: Vec<_> = p
        .changes
        .iter()
        .map(|c| (c.id.name.as_str(), c.action, c.rollout.is_some()))
        .collect();
    assert_eq!(
        summary,
        [
            ("new", Action::Create, false),
            ("old", Action::Delete, false)
        ]
    );
    assert!(
        p.changes[0]
            .diff
            .starts_with("--- /dev/null\n+++ b/default/Deployment/new\n"),
        "{}",
        p.changes[0].diff
    );
}

#[test]
fn secret_values_never_appear() {
    let repo = Repo::new();
    let secret = |v: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ndata:\n  password: {v}\n  user: YWRtaW4=\n"
        )
    };
    let base = repo.commit("apps/secret.yaml", &secret("c2VjcmV0LW9uZQ=="));
    let head = repo.commit("apps/secret.yaml", &secret("c2VjcmV0LXR3bw=="));
    let p = preview(&repo, &base, &head);
    assert_eq!(p.changes.len(), 1, "a changed value is a change");
    let json = kubesync::report::json(&p).to_string();
    let md = kubesync::report::markdown(&p, 60_000);
    for out in [&p.changes[0].diff, &json, &md] {
        for value in ["c2VjcmV0LW9uZQ==", "c2VjcmV0LXR3bw==", "YWRtaW4="] {
            assert!(!out.contains(value), "{value} leaked in {out}");
        }
    }
    assert!(
        p.changes[0]
            .diff
            .contains("+  password: <redacted, changed>"),
        "{}",
        p.changes[0].diff
    );
}

#[test]
fn a_base_without_the_folder_previews_as_all_creates() {
    let repo = Repo::new();
    let base = repo.commit("README.md", "before the manifests");
    let head = repo.commit("apps/web.yaml", &deployment("web", "nginx", 1));
    let p = preview(&repo, &base, &head);
    assert_eq!(p.changes.len(), 1);
    assert_eq!(p.changes[0].action, Action::Create);
    // The head must have it, though: a typo in --path is an error.
    let src = source::Repo::open(&repo.spec()).unwrap();
    let err = compute(&src, &options(&head, &base)).unwrap_err();
    assert!(format!("{err:#}").contains("does not exist"), "{err:#}");
}

#[test]
fn a_new_commit_alone_changes_nothing() {
    let repo = Repo::new();
    let base = repo.commit("apps/web.yaml", &deployment("web", "nginx", 1));
    let head = repo.commit("README.md", "docs only");
    assert!(preview(&repo, &base, &head).changes.is_empty());
}

fn run(repo: &Repo, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(kubesync_bin())
        .args(["preview", "--repo", &repo.path_string(), "--path", "apps"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_exit_codes_follow_diff() {
    let repo = Repo::new();
    let base = repo.commit("apps/web.yaml", &deployment("web", "nginx:1", 1));
    let same = repo.commit("README.md", "x");
    let head = repo.commit("apps/web.yaml", &deployment("web", "nginx:2", 1));
    let bad = repo.commit(
        "apps/bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Not_Valid\n",
    );
    assert_eq!(run(&repo, &["--base", &base, "--head", &same]).0, 0);
    let (code, stdout, _) = run(&repo, &["--base", &base, "--head", &head]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("update Deployment default/web"), "{stdout}");
    let (code, _, stderr) = run(&repo, &["--base", &head, "--head", &bad]);
    assert_eq!(code, 2);
    assert!(stderr.contains("apps/bad.yaml:1: document 0:"), "{stderr}");
    let (code, _, stderr) = run(&repo, &["--base", "nope", "--head", &head]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--base"), "{stderr}");
}

#[test]
fn cli_json_is_the_documented_document() {
    let repo = Repo::new();
    let base = repo.commit("apps/web.yaml", &rolling("web", "nginx:1.25", 4, "1", "1"));
    let head = repo.commit_files(
        &[
            ("apps/web.yaml", &rolling("web", "nginx:1.27", 4, "1", "1")),
            ("apps/cm.yaml", &config_map("extra", &[("k", "v")])),
        ],
        "bump web, add extra",
    );
    let (code, stdout, stderr) = run(
        &repo,
        &["--base", &base, "--head", &head, "--format", "json"],
    );
    assert_eq!(code, 1, "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["base"], base.as_str());
    assert_eq!(doc["head"], head.as_str());
    let changes = doc["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0]["kind"], "ConfigMap");
    assert_eq!(changes[0]["action"], "create");
    assert_eq!(changes[0]["rollout"], Value::Null);
    let web = &changes[1];
    assert_eq!(
        (
            web["kind"].as_str(),
            web["namespace"].as_str(),
            web["name"].as_str()
        ),
        (Some("Deployment"), Some("default"), Some("web"))
    );
    assert_eq!(web["action"], "update");
    assert_eq!(
        web["rollout"],
        serde_json::json!({
            "cause": "template", "configs": [], "revertOf": null, "strategy": "RollingUpdate",
            "replicas": 4, "maxPods": 5, "minAvailable": 3,
            "details": ["container web: image nginx:1.25 → nginx:1.27"]
        })
    );
    assert!(
        web["diff"]
            .as_str()
            .unwrap()
            .contains("+        image: nginx:1.27")
    );
}

#[test]
fn markdown_comment_snapshot() {
    let repo = Repo::new();
    let api = deployment("api", "ghcr.io/subicura/echo:v1", 4).replace(
        "          image: ghcr.io/subicura/echo:v1\n",
        "          image: ghcr.io/subicura/echo:v1\n          envFrom:\n            - configMapRef:\n                name: echo-config\n",
    );
    let base = repo.commit_files(
        &[
            ("apps/web.yaml", &rolling("web", "nginx:1.25", 3, "1", "0")),
            ("apps/api.yaml", &api),
            (
                "apps/echo-config.yaml",
                &config_map("echo-config", &[("GREETING", "hello")]),
            ),
            ("apps/old.yaml", &config_map("old", &[("a", "b")])),
            (
                "apps/counter.yaml",
                &deployment("counter", "ghcr.io/subicura/counter:latest", 1),
            ),
        ],
        "initial",
    );
    repo.remove("apps/old.yaml");
    repo.commit(
        "apps/echo-config.yaml",
        &config_map("echo-config", &[("GREETING", "bonjour")]),
    );
    repo.commit(
        "apps/counter.yaml",
        &deployment("counter", "ghcr.io/subicura/counter:latest", 3),
    );
    let head = repo.commit("apps/web.yaml", &rolling("web", "nginx:1.27", 3, "1", "0"));
    let (code, stdout, stderr) = run(
        &repo,
        &["--base", &base, "--head", &head, "--format", "markdown"],
    );
    assert_eq!(code, 1, "{stderr}");
    insta::with_settings!({
        snapshot_path => "../snapshots",
        prepend_module_to_snapshot => false,
        filters => vec![
            (r"\b[0-9a-f]{40}\b", "[SHA]"),
            (r"\b[0-9a-f]{64}\b", "[HASH]"),
            (r"`[0-9a-f]{7}`", "`[SHORT]`"),
        ],
    }, {
        insta::assert_snapshot!("preview_markdown", stdout);
    });
}

#[test]
fn markdown_is_capped() {
    let repo = Repo::new();
    let files: Vec<(String, String)> = (0..300)
        .map(|i| {
            (
                format!("apps/d{i}.yaml"),
                deployment(&format!("d{i}"), "nginx:1", 2),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let base = repo.commit_files(&refs, "many");
    let files: Vec<(String, String)> = (0..300)
        .map(|i| {
            (
                format!("apps/d{i}.yaml"),
                deployment(&format!("d{i}"), "nginx:2", 2),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let head = repo.commit_files(&refs, "bump all");
    let (code, stdout, _) = run(
        &repo,
        &[
            "--base",
            &base,
            "--head",
            &head,
            "--format",
            "markdown",
            "--max-markdown-chars",
            "30000",
        ],
    );
    assert_eq!(code, 1);
    assert!(stdout.len() <= 30_000, "{}", stdout.len());
    assert!(stdout.contains("**Truncated:**"), "{stdout}");
}
