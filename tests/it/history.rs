//! `kubesync history` end to end: commits and a `git revert` synced into kubesim, then the
//! history read back by the built binary; every JSON field checked.
use crate::rollouts::{Harness, annotation, revision_of};
use crate::support::{Repo, deployment};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_maps_revisions_to_commits_through_a_revert() {
    let h = Harness::start().await;
    let repo = Repo::new();
    let first = repo.commit_files(
        &[("apps/web.yaml", &deployment("web", "nginx:1.24", 2))],
        "web on 1.24",
    );
    let run = h.sync(&repo, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    let second = repo.commit_files(
        &[("apps/web.yaml", &deployment("web", "nginx:1.25", 2))],
        "web on 1.25",
    );
    let run = h.sync(&repo, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    let revert = repo.revert(&second);
    let run = h.sync(&repo, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.show());

    let sets = h.replica_sets("web").await;
    assert_eq!(sets.len(), 2, "the revert reuses the first ReplicaSet");
    assert_eq!(sets.iter().map(revision_of).collect::<Vec<_>>(), vec![2, 3]);
    let name = |i: usize| sets[i].metadata.name.clone().expect("name");
    let created = |i: usize| {
        sets[i]
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .expect("creationTimestamp")
    };
    // The change-cause is the sync engine's; history strips the short sha from it.
    let cause = annotation(&sets[1], "kubernetes.io/change-cause")
        .expect("change-cause")
        .to_string();
    let revert_subject = cause
        .strip_prefix(&format!("{} ", &revert[..7]))
        .unwrap_or(&cause)
        .to_string();

    let out = h
        .kubesync(&["history", "deployment/web", "-o", "json"])
        .await;
    assert_eq!(out.code, Some(0), "{}", out.show());
    let got: Value = out.json();
    assert_eq!(
        got,
        json!([
            {"revision": 1, "replicaSet": name(1), "commit": null,
             "images": ["nginx:1.24"], "createdAt": created(1),
             "rollback": false, "current": false},
            {"revision": 2, "replicaSet": name(0),
             "commit": {"sha": second, "subject": "web on 1.25"},
             "images": ["nginx:1.25"], "createdAt": created(0),
             "rollback": false, "current": false},
            {"revision": 3, "replicaSet": name(1),
             "commit": {"sha": revert, "subject": revert_subject},
             "images": ["nginx:1.24"], "createdAt": created(1),
             "rollback": true, "current": true}
        ])
    );
    assert_ne!(first, revert);

    // Other spellings of the target, and the text table.
    for target in ["deploy/web", "web"] {
        let again = h
            .kubesync(&["history", target, "-n", "default", "-o", "json"])
            .await;
        assert_eq!(again.code, Some(0), "{}", again.show());
        assert_eq!(again.json(), got);
    }
    let text = h.kubesync(&["history", "deployment/web"]).await;
    assert_eq!(text.code, Some(0), "{}", text.show());
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert_eq!(lines[0], "deployment.apps/web in default");
    assert!(lines[1].starts_with("REVISION  CURRENT  ROLLBACK  REPLICASET"));
    assert_eq!(lines.len(), 5, "{}", text.stdout);
    assert!(lines[3].contains(&second[..7]) && lines[3].contains("web on 1.25"));
    assert!(lines[4].contains('*') && lines[4].contains("yes"));

    // A Deployment that does not exist is an error (exit 2).
    let missing = h.kubesync(&["history", "deployment/nope"]).await;
    assert_eq!(missing.code, Some(2), "{}", missing.show());
    assert!(missing.stderr.contains("not found"), "{}", missing.show());
    h.cluster.shutdown().await;
}

/// A Deployment kubesync never applied (made with kubectl) has revisions but no commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_of_a_deployment_not_applied_by_kubesync_has_no_commits() {
    let h = Harness::start().await;
    let file = h.dir.path().join("plain.yaml");
    std::fs::write(&file, deployment("plain", "nginx:1.24", 1)).expect("write");
    let file = file.display().to_string();
    let apply = h
        .kubectl(&["apply", "--server-side", "-f", file.as_str()])
        .await;
    assert_eq!(apply.code, Some(0), "{}", apply.show());
    let set = h
        .kubectl(&["set", "image", "deployment/plain", "plain=nginx:1.25"])
        .await;
    assert_eq!(set.code, Some(0), "{}", set.show());
    let sets = h
        .eventually("two revisions", || async {
            let sets = h.replica_sets("plain").await;
            (sets.iter().map(revision_of).collect::<Vec<_>>() == vec![1, 2]).then_some(sets)
        })
        .await;
    let out = h.kubesync(&["history", "plain", "-o", "json"]).await;
    assert_eq!(out.code, Some(0), "{}", out.show());
    let summary: Vec<Value> = out
        .json()
        .as_array()
        .expect("array")
        .iter()
        .map(|r| {
            json!([
                r["revision"],
                r["replicaSet"],
                r["commit"],
                r["images"],
                r["rollback"],
                r["current"]
            ])
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            json!([1, sets[0].metadata.name, null, ["nginx:1.24"], false, false]),
            json!([2, sets[1].metadata.name, null, ["nginx:1.25"], false, true]),
        ]
    );
    h.cluster.shutdown().await;
}
