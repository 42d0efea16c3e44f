//! Issue 7, part 1: the bad-input catalogue. Each case is a commit on top of a synced, good
//! state that also changes a good ConfigMap (so any premature write would show); the sync of
//! it must exit 2 with a message naming the file (and document/line where there is one),
//! write NOTHING to the cluster (kubesim's write counters and the resourceVersions are
//! unchanged) and leave the previous state intact. After the catalogue the repository is
//! fixed and the next sync converges.
//!
//! Owns: the catalogue and its runner. Must not: wait for state with sleeps (it polls), or
//! depend on another module's cluster (each test starts its own kubesim).
use crate::rollouts::Harness;
use crate::support::{Repo, config_map, deployment};
use std::collections::BTreeMap;

/// How one bad commit is made.
enum Setup {
    /// `apps/bad.yaml` with these contents.
    File(String),
    /// `apps/bad.yaml` with these bytes.
    Bytes(Vec<u8>),
    /// Several files (path, contents) in one commit.
    Files(Vec<(&'static str, String)>),
    /// A symlink `apps/link.yaml` → target.
    Symlink(&'static str),
    /// No new commit: the sync is run with `--path` set to this.
    PathArg(&'static str),
}

/// One catalogue entry: its name, how to make it, and what stderr must mention.
pub struct Case {
    name: &'static str,
    setup: Setup,
    mentions: Vec<&'static str>,
}

fn alias_bomb() -> String {
    let mut out = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\nx:\n");
    out.push_str("  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..12 {
        let prev = format!("*a{}", i - 1);
        let refs = [prev.as_str(); 9].join(", ");
        out.push_str(&format!("  a{i}: &a{i} [{refs}]\n"));
    }
    out
}

fn deeply_nested() -> String {
    let depth = 20_000;
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: deep}}\ndata:\n  x: {}{}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

/// Mappings nested 20,000 deep under 60-character keys: the error path the parser reports
/// would be ~6 KB (100 levels × 61 bytes) if printed whole.
fn deeply_nested_long_keys() -> String {
    let depth = 20_000;
    let key = format!("k{}", "x".repeat(59));
    let mut out =
        String::from("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\ndata:\n  x: ");
    for _ in 0..depth {
        out.push('{');
        out.push_str(&key);
        out.push_str(": ");
    }
    out.push('1');
    out.push_str(&"}".repeat(depth));
    out.push('\n');
    out
}

fn huge_file() -> String {
    // 5 MiB of comment lines: over the 4 MiB file limit.
    let mut out = config_map("huge", &[("k", "v")]);
    let line = "# padding padding padding padding padding padding padding padding\n";
    while out.len() < 5 * 1024 * 1024 {
        out.push_str(line);
    }
    out
}

fn big_config_map() -> String {
    // One value of 1.5 MiB: the file is under the loader's 4 MiB limit, the object is over
    // the API server's 1 MiB object limit.
    let value = "x".repeat(1536 * 1024);
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n  blob: {value}\n")
}

fn selector_mismatch() -> String {
    deployment("mismatch", "nginx:1.27", 1).replace(
        "    matchLabels:\n      app: mismatch\n",
        "    matchLabels:\n      app: other\n",
    )
}

fn zero_surge_zero_unavailable() -> String {
    deployment("zeros", "nginx:1.27", 1).replace(
        "spec:\n  replicas: 1\n",
        "spec:\n  replicas: 1\n  strategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 0\n      maxUnavailable: 0\n",
    )
}

/// Every case whose invalidity the loader (or the discovery/namespace checks) sees before
/// any write.
pub fn catalogue() -> Vec<Case> {
    vec![
        Case {
            name: "invalid YAML",
            setup: Setup::File("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [oops\n".into()),
            mentions: vec!["apps/bad.yaml"],
        },
        Case {
            name: "invalid YAML in the 2nd document",
            setup: Setup::File(format!(
                "{}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok2\n  labels: {{a: [}}\n",
                config_map("ok1", &[("k", "v")])
            )),
            mentions: vec!["apps/bad.yaml"],
        },
        Case {
            name: "YAML alias bomb",
            setup: Setup::File(alias_bomb()),
            mentions: vec!["apps/bad.yaml"],
        },
        Case {
            name: "deeply nested YAML",
            setup: Setup::File(deeply_nested()),
            mentions: vec!["apps/bad.yaml"],
        },
        Case {
            name: "deeply nested mappings with long keys",
            setup: Setup::File(deeply_nested_long_keys()),
            mentions: vec!["apps/bad.yaml", "levels)…"],
        },
        Case {
            name: "huge file",
            setup: Setup::File(huge_file()),
            mentions: vec!["apps/bad.yaml"],
        },
        Case {
            name: "document without kind",
            setup: Setup::File("apiVersion: v1\nmetadata: {name: nokind}\n".into()),
            mentions: vec!["apps/bad.yaml", "kind"],
        },
        Case {
            name: "document without name",
            setup: Setup::File("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n".into()),
            mentions: vec!["apps/bad.yaml", "name"],
        },
        Case {
            name: "document without apiVersion",
            setup: Setup::File("kind: ConfigMap\nmetadata: {name: noapi}\n".into()),
            mentions: vec!["apps/bad.yaml", "apiVersion"],
        },
        Case {
            name: "invalid name",
            setup: Setup::File(config_map("Bad_Name", &[("k", "v")])),
            mentions: vec!["apps/bad.yaml", "Bad_Name"],
        },
        Case {
            name: "duplicate object",
            setup: Setup::Files(vec![
                ("apps/dup1.yaml", config_map("dup", &[("k", "1")])),
                ("apps/dup2.yaml", config_map("dup", &[("k", "2")])),
            ]),
            mentions: vec!["dup"],
        },
        Case {
            name: "kind the server does not know",
            setup: Setup::File(
                "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n".into(),
            ),
            mentions: vec!["Widget"],
        },
        Case {
            name: "namespace that does not exist",
            setup: Setup::File(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: nowhere}\n".into(),
            ),
            mentions: vec!["nowhere"],
        },
        Case {
            name: "symlink out of the path",
            setup: Setup::Symlink("/etc/hostname"),
            mentions: vec!["apps/link.yaml"],
        },
        Case {
            name: "symlink to a parent folder",
            setup: Setup::Symlink("../../.."),
            mentions: vec!["apps/link.yaml"],
        },
        Case {
            name: "`..` in --path",
            setup: Setup::PathArg("apps/../.."),
            mentions: vec![".."],
        },
        Case {
            name: "binary file",
            setup: Setup::Bytes(vec![0x00, 0xff, 0xfe, 0x01, 0x80, 0x00, 0x9f, 0x92, 0x96]),
            mentions: vec!["apps/bad.yaml"],
        },
        Case {
            name: "not a mapping",
            setup: Setup::File("- just\n- a\n- list\n".into()),
            mentions: vec!["apps/bad.yaml"],
        },
    ]
}

/// Cases only the API server can judge: `apply::validate` dry-runs every changed object
/// before the first write, so these too write nothing.
pub fn server_side_catalogue() -> Vec<Case> {
    vec![
        Case {
            name: "Deployment selector does not match its template labels",
            setup: Setup::File(selector_mismatch()),
            mentions: vec!["mismatch"],
        },
        Case {
            name: "Deployment with maxSurge and maxUnavailable both 0",
            setup: Setup::File(zero_surge_zero_unavailable()),
            mentions: vec!["zeros"],
        },
        Case {
            name: "ConfigMap over 1 MiB",
            setup: Setup::File(big_config_map()),
            mentions: vec!["big"],
        },
    ]
}

/// The files whose errors must carry a line and a document number (parse and shape errors;
/// not file-level ones: size, symlinks, binary content, `--path`, server-side checks).
fn located(case: &Case) -> Vec<&'static str> {
    let file_level = [
        "huge file",
        "symlink out of the path",
        "symlink to a parent folder",
        "binary file",
        "`..` in --path",
        "kind the server does not know",
        "namespace that does not exist",
        "duplicate object",
        "Deployment selector does not match its template labels",
        "Deployment with maxSurge and maxUnavailable both 0",
        "ConfigMap over 1 MiB",
    ];
    match &case.setup {
        Setup::File(_) if !file_level.contains(&case.name) => vec!["apps/bad.yaml"],
        _ => vec![],
    }
}

/// The most a failing sync may print on stderr for one bad input.
const MAX_STDERR: usize = 2048;

/// `stderr` holds `<file>:<line>: document <n>`.
fn has_location(stderr: &str, file: &str) -> bool {
    stderr.match_indices(&format!("{file}:")).any(|(at, m)| {
        let rest = &stderr[at + m.len()..];
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        digits > 0 && rest[digits..].starts_with(": document ")
    })
}

/// The cluster's observable state: ConfigMap and Deployment resourceVersions.
async fn state(h: &Harness) -> BTreeMap<String, String> {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::Api;
    use kube::api::ListParams;
    let mut out = BTreeMap::new();
    for cm in Api::<ConfigMap>::all(h.client.clone())
        .list(&ListParams::default())
        .await
        .expect("list configmaps")
        .items
    {
        out.insert(
            format!("cm/{}", cm.metadata.name.unwrap_or_default()),
            cm.metadata.resource_version.unwrap_or_default(),
        );
    }
    for d in Api::<Deployment>::all(h.client.clone())
        .list(&ListParams::default())
        .await
        .expect("list deployments")
        .items
    {
        out.insert(
            format!("deploy/{}", d.metadata.name.unwrap_or_default()),
            d.metadata.generation.unwrap_or_default().to_string(),
        );
    }
    out
}

/// Runs `cases` against one cluster; returns the names of the cases that broke a rule, with
/// why (empty: all good).
///
/// `count_writes`: also require kubesim's write counters to be unchanged (a server-side
/// dry-run is counted as a write request, so the server-side cases check state only).
async fn run_catalogue(
    h: &Harness,
    repo: &Repo,
    cases: Vec<Case>,
    count_writes: bool,
) -> Vec<String> {
    let mut failures = Vec::new();
    for (i, case) in cases.into_iter().enumerate() {
        // Every bad commit also changes a good object: a sync that writes before it has
        // validated everything would show here.
        let good = config_map("base", &[("k", &format!("changed-{i}"))]);
        let mut path_arg = "apps";
        let made = match &case.setup {
            Setup::File(text) => {
                repo.commit_files(
                    &[("apps/base.yaml", good.as_str()), ("apps/bad.yaml", text)],
                    case.name,
                );
                vec!["apps/bad.yaml"]
            }
            Setup::Bytes(bytes) => {
                repo.commit("apps/base.yaml", &good);
                repo.commit_bytes("apps/bad.yaml", bytes);
                vec!["apps/bad.yaml"]
            }
            Setup::Files(files) => {
                let mut all: Vec<(&str, &str)> = vec![("apps/base.yaml", good.as_str())];
                all.extend(files.iter().map(|(p, c)| (*p, c.as_str())));
                repo.commit_files(&all, case.name);
                files.iter().map(|(p, _)| *p).collect()
            }
            Setup::Symlink(target) => {
                repo.commit("apps/base.yaml", &good);
                repo.symlink("apps/link.yaml", target);
                vec!["apps/link.yaml"]
            }
            Setup::PathArg(p) => {
                repo.commit("apps/base.yaml", &good);
                path_arg = p;
                vec![]
            }
        };
        let before = state(h).await;
        let writes = h.cluster.request_count().writes();
        let repo_path = repo.path_string();
        let run = h
            .kubesync(&[
                "sync",
                "--repo",
                &repo_path,
                "--path",
                path_arg,
                "-o",
                "json",
                "--timeout",
                "30s",
                "--prune",
            ])
            .await;
        eprintln!(
            "bad input {:?}: exit {:?}: {}",
            case.name,
            run.code,
            run.stderr.lines().last().unwrap_or_default()
        );
        let mut why = Vec::new();
        // Every message is short, whatever the input: paths and keys from the input are cut.
        if run.stderr.len() >= MAX_STDERR {
            why.push(format!("stderr is {} bytes", run.stderr.len()));
        }
        if run.code != Some(2) {
            why.push(format!("exit {:?}, not 2", run.code));
        }
        for m in &case.mentions {
            if !run.stderr.contains(m) {
                why.push(format!("stderr does not mention {m:?}"));
            }
        }
        for file in located(&case) {
            if !has_location(&run.stderr, file) {
                why.push(format!("stderr does not say `{file}:LINE: document N`"));
            }
        }
        let written = h.cluster.request_count().writes() - writes;
        if count_writes && written != 0 {
            why.push(format!("{written} writes reached the cluster"));
        }
        let after = state(h).await;
        if after != before {
            why.push(format!("cluster state changed: {before:?} -> {after:?}"));
        }
        if !why.is_empty() {
            failures.push(format!(
                "{}: {}\n  stderr: {}",
                case.name,
                why.join("; "),
                run.stderr
                    .chars()
                    .take(1500)
                    .collect::<String>()
                    .lines()
                    .take(6)
                    .collect::<Vec<_>>()
                    .join("\n          ")
            ));
        }
        // Undo the bad part for the next case.
        for p in made {
            repo.remove(p);
        }
    }
    failures
}

/// The first good commit: a ConfigMap and a Deployment.
async fn good_start(h: &Harness, repo: &Repo) {
    repo.commit_files(
        &[
            ("apps/base.yaml", &config_map("base", &[("k", "start")])),
            ("apps/web.yaml", &deployment("web", "nginx:1.26", 2)),
        ],
        "good start",
    );
    let run = h.sync(repo, &["--prune"]).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_exit_2_name_the_file_and_write_nothing() {
    let h = Harness::start().await;
    let repo = Repo::new();
    good_start(&h, &repo).await;
    let web_rs = h.replica_sets("web").await.len();
    let cases = catalogue();
    let count = cases.len();
    let failures = run_catalogue(&h, &repo, cases, true).await;
    assert!(
        failures.is_empty(),
        "{} of {count} bad inputs broke a rule:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The previous state is intact, and the fixed repository converges.
    assert_eq!(h.replica_sets("web").await.len(), web_rs);
    let run = h.sync(&repo, &["--prune"]).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    let cm = h
        .kubectl(&["get", "configmap", "base", "-o", "jsonpath={.data.k}"])
        .await;
    assert_eq!(cm.stdout, format!("changed-{}", count - 1), "{}", cm.show());
    assert_eq!(
        h.replica_sets("web").await.len(),
        web_rs,
        "no extra rollout"
    );
    h.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_rejected_objects_are_found_by_a_dry_run_before_any_write() {
    let h = Harness::start().await;
    let repo = Repo::new();
    good_start(&h, &repo).await;
    let cases = server_side_catalogue();
    let count = cases.len();
    let failures = run_catalogue(&h, &repo, cases, false).await;
    assert!(
        failures.is_empty(),
        "{} of {count} server-rejected inputs broke a rule:\n{}",
        failures.len(),
        failures.join("\n")
    );
    h.cluster.shutdown().await;
}

/// How often `needle` occurs in `haystack` (non-overlapping).
fn occurrences(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// A failing sync states its cause once: the error is not repeated by its own `Display`,
/// its `source()` chain and the CLI's printing of that chain. Three failures through the CLI:
/// a kind the server does not know, a Deployment the server rejects (422), and a write the
/// server fails every time (500).
///
/// KNOWN FAILING (issue #7) until `ApplyError::Api` in `src/apply/mod.rs` stops repeating its
/// source (`#[error("{what}: {source}")]` plus `#[source]`, and anyhow prints the chain again):
/// the 422 and 500 cases print the server's message 2–3 times; and until kube's per-attempt
/// `ERROR … failed with status 500` log lines are filtered out (see below).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_syncs_state_their_cause_once() {
    let h = Harness::start().await;
    let repo = Repo::new();
    good_start(&h, &repo).await;
    let repo_path = repo.path_string();
    let sync = |timeout: &'static str| {
        let repo_path = repo_path.clone();
        let h = &h;
        async move {
            h.kubesync(&[
                "sync",
                "--repo",
                &repo_path,
                "--path",
                "apps",
                "--prune",
                "--timeout",
                timeout,
            ])
            .await
        }
    };
    let mut repeated = Vec::new();
    let mut check = |case: &str, run: &crate::rollouts::Run, cause: &str| {
        eprintln!("--- {case}: exit {:?}\n{}", run.code, run.stderr);
        assert_eq!(run.code, Some(2), "{case}: {}", run.show());
        let n = occurrences(&run.stderr, cause);
        assert!(
            n >= 1,
            "{case}: the cause {cause:?} is not on stderr: {}",
            run.show()
        );
        if n != 1 {
            repeated.push(format!(
                "{case}: {cause:?} printed {n} times:\n{}",
                run.stderr
            ));
        }
    };

    repo.commit(
        "apps/bad.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
    );
    let run = sync("30s").await;
    check("unknown kind", &run, "does not know kind Widget");
    repo.remove("apps/bad.yaml");

    repo.commit("apps/bad.yaml", &selector_mismatch());
    let run = sync("30s").await;
    check(
        "invalid Deployment",
        &run,
        "`selector` does not match template `labels`",
    );
    repo.remove("apps/bad.yaml");

    repo.commit(
        "apps/base.yaml",
        &config_map("base", &[("k", "persistent-500")]),
    );
    h.cluster.faults().set(kubesim::FaultRule {
        verbs: vec![kubesim::Verb::Patch],
        error_rate: 1.0,
        status: 500,
        seed: 1,
        ..Default::default()
    });
    let run = sync("4s").await;
    h.cluster.faults().clear();
    check("persistent API 500", &run, "injected fault (500)");
    // The cause is not repeated by log lines either: at the default filter, kube's client
    // logged `ERROR kube_client::client::builder: failed with status 500 …` once per attempt
    // (5 lines before the one `error:` line). KNOWN FAILING until `init_tracing`
    // (src/cli/mod.rs) filters `kube_client::client::builder` below debug.
    let lines = run.stderr.lines().filter(|l| l.contains("500")).count();
    if lines != 1 {
        repeated.push(format!(
            "persistent API 500: {lines} stderr lines name the 500:\n{}",
            run.stderr
        ));
    }

    // KNOWN FAILING until ApplyError::Api is fixed (see the doc comment above).
    assert!(
        repeated.is_empty(),
        "{} failing syncs repeat their cause:\n{}",
        repeated.len(),
        repeated.join("\n")
    );
    h.cluster.shutdown().await;
}
