//! Issue 7, part 5: a canary Secret value planted in a test repository is never printed by
//! `sync`, `diff` (text and JSON), `preview` (every format), `history`, the logs at
//! `--log debug`/`trace` (text and JSON), or error messages; and credentials are taken from
//! files only (no `--help` lists a flag taking a token or password value).
//!
//! Owns: these checks. Must not: print the canary itself in a failure message (it prints
//! only which output leaked and where).
use crate::rollouts::{Harness, Run};
use crate::support::{Repo, deployment, kubesync_bin};

const CANARY: &str = "CANARY-7f1e-s3cr3t-do-not-print";
const CANARY2: &str = "CANARY-9a2b-rotated-do-not-print";
/// Numeric canaries, for Secret values written as numbers.
const NUMBER: u64 = 7_391_846_205;
const NUMBER2: u64 = 8_802_751_364;

/// Standard base64 (the Secret `data` encoding), so the encoded canary is searched too.
use kubesync::base64::encode as base64;

fn secret(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ntype: Opaque\ndata:\n  password: {}\nstringData:\n  token: {value}\n",
        base64(value.as_bytes())
    )
}

/// The forms of the canaries that must never appear.
fn needles() -> Vec<String> {
    let mut out = Vec::new();
    for c in [CANARY, CANARY2] {
        out.push(c.to_string());
        out.push(base64(c.as_bytes()));
        // A distinctive middle part, in case of truncation or re-wrapping.
        out.push(c[7..20].to_string());
    }
    for n in [NUMBER, NUMBER2] {
        out.push(n.to_string());
    }
    out
}

/// Runs the kubesync binary with no cluster flags (for `preview` and `--help`).
async fn bare(home: &std::path::Path, args: &[&str]) -> Run {
    let mut cmd = std::process::Command::new(kubesync_bin());
    cmd.args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", home)
        .env("KUBESYNC_LOG", "warn")
        .current_dir(home);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("kubesync runs"))
        .await
        .expect("join");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `run.show()` with every canary form replaced, safe to put in a failure message.
fn redacted(run: &Run) -> String {
    let mut text = run.show();
    for n in needles() {
        text = text.replace(&n, "<CANARY>");
    }
    text
}

/// Records every output of every run and checks none holds a canary.
#[derive(Default)]
struct Outputs {
    checked: usize,
    leaks: Vec<String>,
}

impl Outputs {
    fn check(&mut self, what: &str, run: &Run) {
        for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
            self.checked += 1;
            for (i, needle) in needles().iter().enumerate() {
                if let Some(at) = text.find(needle.as_str()) {
                    let line = text[..at].lines().count();
                    self.leaks.push(format!(
                        "{what}: {stream} holds canary form #{i} on line {line}"
                    ));
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_values_are_never_printed() {
    let h = Harness::start().await;
    let repo = Repo::new();
    let repo_path = repo.path_string();
    let first = repo.commit_files(
        &[
            ("apps/secret.yaml", &secret("db", CANARY)),
            ("apps/web.yaml", &deployment("web", "nginx:1.26", 1)),
        ],
        "first",
    );
    let mut out = Outputs::default();
    // The detector itself finds every form (a planted leak is caught).
    for needle in needles() {
        let mut probe = Outputs::default();
        let planted = Run {
            code: Some(0),
            stdout: format!("x\ny {needle} z"),
            stderr: String::new(),
        };
        probe.check("probe", &planted);
        assert!(!probe.leaks.is_empty(), "the probe finds a planted form");
    }
    let logs: [&[&str]; 4] = [
        &["--log", "debug"],
        &["--log", "trace"],
        &["--log", "debug", "--log-format", "json"],
        &["--log", "trace", "--log-format", "json"],
    ];

    // Create, with every log level and format (the first run creates, the rest are no-ops).
    for (i, log) in logs.iter().enumerate() {
        for fmt in ["text", "json"] {
            let mut args = vec!["sync", "--repo", &repo_path, "--path", "apps", "-o", fmt];
            args.extend_from_slice(log);
            let run = h.kubesync(&args).await;
            assert_eq!(run.code, Some(0), "sync {i} {fmt}: {}", redacted(&run));
            out.check(&format!("sync create {log:?} -o {fmt}"), &run);
        }
    }

    // Rotate the value and change the Deployment: diff, preview and sync see a change.
    repo.commit_files(
        &[
            ("apps/secret.yaml", &secret("db", CANARY2)),
            ("apps/web.yaml", &deployment("web", "nginx:1.27", 1)),
        ],
        "rotate",
    );
    for log in &logs {
        for fmt in ["text", "json"] {
            let mut args = vec!["diff", "--repo", &repo_path, "--path", "apps", "-o", fmt];
            args.extend_from_slice(log);
            let run = h.kubesync(&args).await;
            assert!(
                run.code == Some(0) || run.code == Some(1),
                "diff: {}",
                redacted(&run)
            );
            out.check(&format!("diff {log:?} -o {fmt}"), &run);
        }
        for fmt in ["text", "json", "markdown"] {
            let mut args = vec![
                "preview", "--repo", &repo_path, "--path", "apps", "--base", &first, "--format",
                fmt,
            ];
            args.extend_from_slice(log);
            let run = bare(h.dir.path(), &args).await;
            assert!(
                run.code == Some(0) || run.code == Some(1),
                "preview: {}",
                redacted(&run)
            );
            out.check(&format!("preview {log:?} --format {fmt}"), &run);
        }
    }
    let run = h
        .kubesync(&[
            "sync", "--repo", &repo_path, "--path", "apps", "-o", "text", "--log", "trace",
        ])
        .await;
    assert_eq!(run.code, Some(0), "sync rotate: {}", redacted(&run));
    out.check("sync rotate --log trace", &run);
    for log in &logs {
        for fmt in ["text", "json"] {
            let mut args = vec!["history", "deployment/web", "-o", fmt];
            args.extend_from_slice(log);
            let run = h.kubesync(&args).await;
            assert_eq!(run.code, Some(0), "history: {}", redacted(&run));
            out.check(&format!("history {log:?} -o {fmt}"), &run);
        }
    }

    // Errors about a Secret: a YAML syntax error on the canary's line, an invalid name, a
    // value the server rejects (a bad data key), and a preview of the broken commit.
    let broken: [(&str, String); 3] = [
        (
            "syntax error on the canary line",
            format!(
                "apiVersion: v1\nkind: Secret\nmetadata: {{name: db}}\nstringData: {{token: {CANARY} [\n"
            ),
        ),
        ("invalid name", secret("Bad_Name", CANARY)),
        (
            "invalid data key",
            format!(
                "apiVersion: v1\nkind: Secret\nmetadata: {{name: db}}\nstringData:\n  \"bad key!\": {CANARY}\n"
            ),
        ),
    ];
    for (what, text) in &broken {
        repo.commit("apps/secret.yaml", text);
        for log in &logs {
            let mut args = vec!["sync", "--repo", &repo_path, "--path", "apps", "-o", "json"];
            args.extend_from_slice(log);
            let run = h.kubesync(&args).await;
            assert_ne!(run.code, Some(0), "{what}: a broken Secret must fail");
            out.check(&format!("sync error {what} {log:?}"), &run);
            let mut args = vec!["diff", "--repo", &repo_path, "--path", "apps", "-o", "text"];
            args.extend_from_slice(log);
            let run = h.kubesync(&args).await;
            out.check(&format!("diff error {what} {log:?}"), &run);
            let mut args = vec![
                "preview", "--repo", &repo_path, "--path", "apps", "--base", &first,
            ];
            args.extend_from_slice(log);
            let run = bare(h.dir.path(), &args).await;
            out.check(&format!("preview error {what} {log:?}"), &run);
        }
    }
    assert!(
        out.leaks.is_empty(),
        "{} of {} outputs leaked a Secret value:\n{}",
        out.leaks.len(),
        out.checked,
        out.leaks.join("\n")
    );
    assert!(out.checked > 100, "checked {} outputs", out.checked);
    h.cluster.shutdown().await;
}

/// Malformed Secret documents, each holding `value` (and its base64 form, and `number`)
/// where a Secret's values go: `(case, file contents)`.
fn malformed_secrets(value: &str, number: u64) -> Vec<(&'static str, String)> {
    let b64 = base64(value.as_bytes());
    let head = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n";
    vec![
        (
            "data is a list",
            format!("{head}data:\n  - {b64}\n  - {value}\n"),
        ),
        ("data is a string", format!("{head}data: {value}\n")),
        (
            "data values are numbers",
            format!("{head}data:\n  pin: {number}\n  other: {b64}\n"),
        ),
        (
            "data values are maps",
            format!("{head}data:\n  password:\n    nested: {value}\n    b: {b64}\n"),
        ),
        (
            "stringData nested",
            format!("{head}stringData:\n  token:\n    inner:\n      - {value}\n"),
        ),
        (
            "apiVersion missing",
            format!("kind: Secret\nmetadata:\n  name: db\nstringData:\n  token: {value}\n"),
        ),
        (
            "apiVersion v1beta1",
            format!(
                "apiVersion: v1beta1\nkind: Secret\nmetadata:\n  name: db\ndata:\n  password: {b64}\nstringData:\n  token: {value}\n"
            ),
        ),
        (
            "kind Secret in a List, data a list",
            format!(
                "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: Secret\n    metadata:\n      name: listed\n    data: [{b64}, {value}]\n"
            ),
        ),
        (
            "stringData misspelt",
            format!("{head}stringdata:\n  token: {value}\n"),
        ),
        (
            "kind in lower case",
            format!(
                "apiVersion: v1\nkind: secret\nmetadata:\n  name: db\nstringData:\n  token: {value}\n"
            ),
        ),
    ]
}

/// Secret masking is conservative: a malformed Secret (any shape of `data`/`stringData`, any
/// or no apiVersion, inside a List, misspelt fields, `kind: secret`) never has a value printed
/// by `preview` (text, JSON, Markdown: an update diff, so both sides), `diff` (text, JSON),
/// `sync` (JSON output, text logs; JSON logs) at `--log trace`, or their errors.
///
/// KNOWN FAILING (issue #7) until `src/apply/mod.rs` passes the API server's errors about an
/// object through `plan::scrub_api_error(&object.body, error)`: kubesim's 422 for a Secret
/// whose `data` values are numbers or maps quotes the value (`Invalid value: 7391846205`),
/// and `diff`/`sync` print it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_secret_values_are_never_printed() {
    let h = Harness::start().await;
    let repo = Repo::new();
    let repo_path = repo.path_string();
    repo.commit("apps/web.yaml", &deployment("web", "nginx:1.26", 1));
    let run = h
        .kubesync(&["sync", "--repo", &repo_path, "--path", "apps"])
        .await;
    assert_eq!(run.code, Some(0), "{}", redacted(&run));
    // The detector finds the numeric forms too.
    for n in [NUMBER, NUMBER2] {
        let mut probe = Outputs::default();
        let planted = Run {
            code: Some(0),
            stdout: String::new(),
            stderr: format!("pin: {n}\n"),
        };
        probe.check("probe", &planted);
        assert!(!probe.leaks.is_empty(), "the probe finds a planted number");
    }
    let mut out = Outputs::default();
    let olds = malformed_secrets(CANARY, NUMBER);
    let news = malformed_secrets(CANARY2, NUMBER2);
    // The cases whose preview showed the Secret (masked, as changed): all but the one the
    // loader refuses, so the masking is what kept the values out.
    let mut shown = Vec::new();
    for ((what, old), (_, new)) in olds.iter().zip(&news) {
        let base = repo.commit("apps/secret.yaml", old);
        repo.commit("apps/secret.yaml", new);
        for fmt in ["text", "json", "markdown"] {
            let args = [
                "preview", "--repo", &repo_path, "--path", "apps", "--base", &base, "--format",
                fmt, "--log", "trace",
            ];
            let run = bare(h.dir.path(), &args).await;
            out.check(&format!("{what}: preview --format {fmt}"), &run);
            if fmt == "text" && run.stdout.contains("<redacted, changed>") {
                shown.push(*what);
            }
        }
        for fmt in ["text", "json"] {
            let args = [
                "diff", "--repo", &repo_path, "--path", "apps", "-o", fmt, "--log", "trace",
            ];
            let run = h.kubesync(&args).await;
            out.check(&format!("{what}: diff -o {fmt}"), &run);
        }
        for (fmt, log_format) in [("json", "text"), ("text", "json")] {
            let args = [
                "sync",
                "--repo",
                &repo_path,
                "--path",
                "apps",
                "-o",
                fmt,
                "--log",
                "trace",
                "--log-format",
                log_format,
            ];
            let run = h.kubesync(&args).await;
            out.check(
                &format!("{what}: sync -o {fmt} --log-format {log_format}"),
                &run,
            );
        }
        repo.remove("apps/secret.yaml");
    }
    let expected: Vec<&str> = olds
        .iter()
        .map(|(what, _)| *what)
        .filter(|what| *what != "apiVersion missing")
        .collect();
    assert_eq!(shown, expected, "previews that showed the changed Secret");
    // KNOWN FAILING until apply scrubs server errors (see the doc comment above).
    assert!(
        out.leaks.is_empty(),
        "{} of {} outputs leaked a Secret value:\n{}",
        out.leaks.len(),
        out.checked,
        out.leaks.join("\n")
    );
    assert_eq!(out.checked, olds.len() * 7 * 2, "outputs checked");
    h.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_read_from_files_only() {
    let h = Harness::start().await;
    let mut offending = Vec::new();
    for cmd in [
        vec!["--help"],
        vec!["sync", "--help"],
        vec!["diff", "--help"],
        vec!["preview", "--help"],
        vec!["history", "--help"],
        vec!["cluster", "--help"],
        vec!["cluster", "serve", "--help"],
    ] {
        let run = bare(h.dir.path(), &cmd).await;
        assert_eq!(run.code, Some(0), "{cmd:?}: {}", run.show());
        for line in run.stdout.lines() {
            let flag = line.trim_start();
            if !flag.starts_with("--") && !flag.starts_with('-') {
                continue;
            }
            let lower = flag.to_ascii_lowercase();
            let names_secret = ["token", "password", "secret", "bearer", "credential"]
                .iter()
                .any(|w| lower.split_whitespace().next().unwrap_or("").contains(w));
            let is_file = ["-file", "-key", "known-hosts"]
                .iter()
                .any(|w| lower.split_whitespace().next().unwrap_or("").contains(w));
            if names_secret && !is_file {
                offending.push(format!("{cmd:?}: {flag}"));
            }
        }
    }
    assert!(
        offending.is_empty(),
        "flags taking a secret value:\n{}",
        offending.join("\n")
    );
    h.cluster.shutdown().await;
}
