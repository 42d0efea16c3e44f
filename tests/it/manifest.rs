//! `manifest::load` over snapshots read from real git commits: every rule of loading, and
//! every error naming file, document and line.
use crate::support::Repo;
use kubesync::manifest::{self, LoadErrors, LoadOptions, Object};
use kubesync::source;

fn load_files(files: &[(&str, &str)], opts: &LoadOptions) -> Result<Vec<Object>, LoadErrors> {
    let repo = Repo::new();
    repo.commit_files(files, "manifests");
    let src = source::Repo::open(&repo.spec()).unwrap();
    let head = src.resolve("HEAD").unwrap();
    let snap = src.snapshot(&head, "").unwrap();
    manifest::load(&snap, opts)
}

fn load(files: &[(&str, &str)]) -> Result<Vec<Object>, LoadErrors> {
    load_files(files, &LoadOptions::default())
}

const WEB: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers: [{name: web, image: nginx}]
";

#[test]
fn multi_document_files_lists_and_json() {
    let multi = format!(
        "# leading comment\n---\n{WEB}---\n# empty document\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: team\n"
    );
    let list = r#"{"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "reader"}}]}"#;
    let objects = load(&[("apps/web.yaml", &multi), ("apps/list.json", list)]).unwrap();
    let ids: Vec<_> = objects.iter().map(|o| o.id.to_string()).collect();
    assert_eq!(
        ids,
        [
            "ConfigMap default/one",
            "ClusterRole reader",
            "Deployment default/web",
            "Service team/web"
        ]
    );
    let web = &objects[2];
    assert_eq!(
        (web.id.group.as_str(), web.id.version.as_str()),
        ("apps", "v1")
    );
    assert_eq!(
        (
            web.origin.file.as_str(),
            web.origin.document,
            web.origin.line
        ),
        ("apps/web.yaml", 0, 3)
    );
    let svc = &objects[3];
    assert_eq!((svc.origin.document, svc.origin.line), (2, 14));
}

#[test]
fn namespace_defaults_to_the_option() {
    let opts = LoadOptions {
        default_namespace: "staging".into(),
        ..LoadOptions::default()
    };
    let objects = load_files(&[("web.yaml", WEB)], &opts).unwrap();
    assert_eq!(objects[0].id.namespace.as_deref(), Some("staging"));
    assert_eq!(objects[0].body["metadata"]["namespace"], "staging");
}

#[test]
fn every_error_is_listed_with_file_document_and_line() {
    let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n---\napiVersion: v1\nmetadata:\n  name: no-kind\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: UPPER\n---\nkey: [unclosed\n";
    let err = load(&[
        ("a.yaml", bad),
        (
            "b.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  namespace: x\n",
        ),
    ])
    .unwrap_err();
    let found: Vec<_> = err
        .errors
        .iter()
        .map(|e| (e.file.as_str(), e.document, e.line))
        .collect();
    assert_eq!(
        found,
        [
            ("a.yaml", 1, 6),
            ("a.yaml", 2, 10),
            ("a.yaml", 3, 15),
            ("b.yaml", 0, 1)
        ],
        "{err}"
    );
    assert!(err.errors[0].message.contains("missing kind"), "{err}");
    assert!(
        err.errors[1].message.contains("not a valid DNS name"),
        "{err}"
    );
    assert!(err.errors[2].message.contains("invalid YAML"), "{err}");
    assert!(err.errors[3].message.contains("metadata.name"), "{err}");
    let text = err.to_string();
    assert!(text.starts_with("4 invalid manifest(s):"), "{text}");
    assert!(text.contains("a.yaml:10: document 2:"), "{text}");
}

#[test]
fn duplicates_across_files_name_both_places() {
    let err = load(&[("a/web.yaml", WEB), ("b/web.yml", &format!("---\n{WEB}"))]).unwrap_err();
    assert_eq!(err.errors.len(), 1);
    let e = &err.errors[0];
    assert_eq!((e.file.as_str(), e.document, e.line), ("b/web.yml", 0, 2));
    assert!(
        e.message.contains("duplicate Deployment default/web"),
        "{}",
        e.message
    );
    assert!(
        e.message.contains("a/web.yaml:1 (document 0)"),
        "{}",
        e.message
    );
    // A different namespace or kind is not a duplicate.
    let other_ns = WEB.replace("name: web\n", "name: web\n  namespace: other\n");
    assert_eq!(
        load(&[("a.yaml", WEB), ("b.yaml", &other_ns)])
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn alias_bombs_and_deep_nesting_are_refused_quickly() {
    let mut bomb = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\nl0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for level in 1..10 {
        let prev = format!("*l{}", level - 1);
        bomb.push_str(&format!(
            "l{level}: &l{level} [{}]\n",
            [prev.as_str(); 9].join(", ")
        ));
    }
    let started = std::time::Instant::now();
    let err = load(&[("bomb.yaml", &bomb)]).unwrap_err();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(err.errors[0].message.contains("alias bomb"), "{err}");

    let deep = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: deep}}\ndata: {}1{}\n",
        "[".repeat(200),
        "]".repeat(200)
    );
    let err = load(&[("deep.yaml", &deep)]).unwrap_err();
    assert_eq!(err.errors[0].file, "deep.yaml");
}

#[test]
fn oversized_files_are_errors_not_skipped() {
    let opts = LoadOptions {
        max_file_bytes: 64,
        ..LoadOptions::default()
    };
    let err = load_files(&[("big.yaml", WEB)], &opts).unwrap_err();
    assert!(
        err.errors[0].message.contains("over the limit of 64 bytes"),
        "{err}"
    );
}

#[test]
fn names_namespaces_and_api_versions_are_validated() {
    let cases = [
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: a.b}\n",
            "not a valid Service name",
        ),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: Bad_NS}\n",
            "namespace",
        ),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: c-}\n",
            "generateName",
        ),
        (
            "apiVersion: 3\nkind: ConfigMap\nmetadata: {name: c}\n",
            "apiVersion must be a string",
        ),
        ("just a string\n", "expected a mapping"),
    ];
    for (text, expected) in cases {
        let err = load(&[("x.yaml", text)]).unwrap_err();
        assert!(err.errors[0].message.contains(expected), "{text}: {err}");
    }
}

#[test]
fn cluster_scoped_kinds_have_no_namespace() {
    for (group, kind) in [
        ("", "Namespace"),
        ("storage.k8s.io", "StorageClass"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ] {
        assert!(!manifest::is_namespaced(group, kind), "{kind}");
    }
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n";
    let objects = load(&[("ns.yaml", ns)]).unwrap();
    assert_eq!(objects[0].id.namespace, None);
}

#[test]
fn examples_repo_loads_and_hashes_its_configs() {
    use kubesync::source::{Commit, File, Snapshot};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples-repo");
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                let rel = path.strip_prefix(&root).unwrap().display().to_string();
                files.push(File {
                    path: rel,
                    bytes: std::fs::read(&path).unwrap(),
                });
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let commit = Commit {
        sha: "0".repeat(40),
        subject: "examples".into(),
        time: 0,
    };
    let snapshot = Snapshot {
        commit: commit.clone(),
        files,
    };
    let mut objects = manifest::load(&snapshot, &LoadOptions::default()).unwrap();
    let mut ids: Vec<_> = objects.iter().map(|o| o.id.to_string()).collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "ConfigMap default/echo-config",
            "ConfigMap default/web-content",
            "Deployment default/counter",
            "Deployment default/echo-deploy",
            "Deployment default/kubia",
            "Deployment default/redis",
            "Deployment default/web-deploy",
            "Service default/counter-lb",
            "Service default/counter-np",
            "Service default/kubia",
            "Service default/redis",
            "Service default/web",
        ]
    );
    let ctx = kubesync::transform::Context {
        source: "default".into(),
        commit,
    };
    kubesync::transform::apply(&mut objects, &ctx);
    let hashed: Vec<_> = objects
        .iter()
        .filter(|o| {
            o.body
                .pointer("/spec/template/metadata/annotations/kubesync.io~1config-hash")
                .is_some()
        })
        .map(|o| o.id.name.as_str())
        .collect();
    assert_eq!(hashed, ["echo-deploy", "web-deploy"]);
}
