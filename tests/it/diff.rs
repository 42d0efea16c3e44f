//! `kubesync diff` end to end against kubesim: exit codes 0/1/2, JSON fields, deletions,
//! masked Secrets, and that a diff writes nothing.
use crate::support::{Repo, config_map, deployment};
use crate::sync::{Sim, json, show};

fn diff_args<'a>(repo: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["diff", "--repo", repo, "--path", "apps", "--timeout", "60s"];
    args.extend_from_slice(extra);
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_exit_codes_and_json() {
    let sim = Sim::start().await;
    let repo = Repo::new();
    let repo_path = repo.path().display().to_string();
    repo.commit("apps/web.yaml", &deployment("web", "nginx:1.26", 0));
    let first = repo.commit("apps/cfg.yaml", &config_map("cfg", &[("a", "1")]));

    // Nothing live yet: everything is a create, exit 1, and the diff wrote nothing.
    let counts = sim.cluster.request_count();
    let out = sim.kubesync(&diff_args(&repo_path, &["-o", "json"])).await;
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let doc = json(&out);
    assert_eq!(doc["commit"], first);
    let changes = doc["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "{doc}");
    assert!(changes.iter().all(|c| c["action"] == "create" && c["diff"].as_str().is_some_and(|d| d.contains("+"))));
    assert!(
        sim.get("apps/v1", "Deployment", "deployments", "web")
            .await
            .is_none()
    );
    let after = sim.cluster.request_count();
    assert_eq!(
        after.create + after.update + after.delete,
        counts.create + counts.update + counts.delete
    );

    let out = sim
        .kubesync(&[
            "sync",
            "--repo",
            &repo_path,
            "--path",
            "apps",
            "--timeout",
            "60s",
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    // In sync: exit 0, no output.
    let out = sim.kubesync(&diff_args(&repo_path, &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(out.stdout.is_empty(), "{}", show(&out));

    // A new commit that changes nothing else: still in sync (the commit annotation alone is
    // not a change).
    repo.commit("README.md", "hello\n");
    let out = sim.kubesync(&diff_args(&repo_path, &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    // An image change and a removed ConfigMap: update + delete.
    repo.commit("apps/web.yaml", &deployment("web", "nginx:1.27", 0));
    repo.remove("apps/cfg.yaml");
    let out = sim.kubesync(&diff_args(&repo_path, &["-o", "json"])).await;
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let doc = json(&out);
    let changes = doc["changes"].as_array().unwrap();
    let web = changes
        .iter()
        .find(|c| c["name"] == "web")
        .expect("web changes");
    assert_eq!(web["action"], "update");
    assert_eq!(web["kind"], "Deployment");
    assert_eq!(web["namespace"], "default");
    let d = web["diff"].as_str().unwrap();
    assert!(
        d.contains("-        image: nginx:1.26") || d.contains("-      - image: nginx:1.26"),
        "{d}"
    );
    assert!(d.contains("nginx:1.27"), "{d}");
    assert!(!d.contains("managedFields"), "{d}");
    let cfg = changes
        .iter()
        .find(|c| c["name"] == "cfg")
        .expect("cfg deleted");
    assert_eq!(cfg["action"], "delete");

    // Text output is a unified diff.
    let out = sim.kubesync(&diff_args(&repo_path, &[])).await;
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("+++ ") && text.contains("@@"), "{text}");

    // An error (unknown ref): exit 2.
    let out = sim
        .kubesync(&diff_args(&repo_path, &["--ref", "no-such-branch"]))
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    sim.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_masks_secret_values() {
    let sim = Sim::start().await;
    let repo = Repo::new();
    let repo_path = repo.path().display().to_string();
    repo.commit(
        "apps/s.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {password: hunter2}\n",
    );
    let out = sim
        .kubesync(&["sync", "--repo", &repo_path, "--path", "apps"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let out = sim.kubesync(&diff_args(&repo_path, &[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    repo.commit(
        "apps/s.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {password: swordfish}\n",
    );
    let out = sim.kubesync(&diff_args(&repo_path, &[])).await;
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("swordfish") && !text.contains("hunter2"),
        "{text}"
    );
    assert!(
        !text.contains("c3dvcmRmaXNo") && !text.contains("aHVudGVyMg"),
        "{text}"
    );
    sim.cluster.shutdown().await;
}
