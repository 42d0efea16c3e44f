//! `source`: opening local and remote repositories, resolving refs, reading a commit's
//! tree under a path, and history.
use crate::support::Repo;
use kubesync::source::{self, Credentials, RepoSpec, SourceError};

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n";

fn open(repo: &Repo) -> source::Repo {
    source::Repo::open(&repo.spec()).expect("open")
}

#[test]
fn resolves_branches_tags_shas_and_head() {
    let repo = Repo::new();
    let first = repo.commit("apps/a.yaml", CM);
    let second = repo.commit("apps/b.yaml", CM);
    repo.tag("v1", &first);
    repo.branch("feature", &first);
    let src = open(&repo);
    assert_eq!(src.resolve("HEAD").unwrap().sha, second);
    assert_eq!(src.resolve("main").unwrap().sha, second);
    assert_eq!(src.resolve("v1").unwrap().sha, first);
    assert_eq!(src.resolve("feature").unwrap().sha, first);
    assert_eq!(src.resolve(&first).unwrap().sha, first);
    assert_eq!(src.resolve(&first[..8]).unwrap().sha, first);
    assert_eq!(src.resolve("HEAD~1").unwrap().sha, first);
    let commit = src.resolve("HEAD").unwrap();
    assert_eq!(commit.subject, "update apps/b.yaml");
    assert_eq!(commit.short(), &second[..7]);
    let err = src.resolve("no-such-branch").unwrap_err();
    assert!(matches!(err, SourceError::Resolve { .. }), "{err}");
}

#[test]
fn snapshot_reads_manifests_recursively_sorted_from_the_tree() {
    let repo = Repo::new();
    repo.commit_files(
        &[
            ("apps/z.yaml", CM),
            ("apps/nested/deep/b.yml", CM),
            ("apps/a.json", "{}"),
            ("apps/README.md", "not a manifest"),
            ("apps/script.sh", "echo"),
            ("other/x.yaml", CM),
        ],
        "initial",
    );
    repo.write_uncommitted("apps/z.yaml", "changed in the work tree only");
    let src = open(&repo);
    let head = src.resolve("HEAD").unwrap();
    let snap = src.snapshot(&head, "apps").unwrap();
    let paths: Vec<_> = snap.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        ["apps/a.json", "apps/nested/deep/b.yml", "apps/z.yaml"]
    );
    assert_eq!(
        snap.files[2].bytes,
        CM.as_bytes(),
        "must read the commit, not the work tree"
    );
    assert_eq!(snap.commit, head);
    let root = src.snapshot(&head, "").unwrap();
    assert_eq!(root.files.len(), 4);
    assert_eq!(src.snapshot(&head, "./apps/").unwrap().files.len(), 3);
}

#[test]
fn bad_paths_are_errors() {
    let repo = Repo::new();
    repo.commit("apps/a.yaml", CM);
    let src = open(&repo);
    let head = src.resolve("HEAD").unwrap();
    assert!(matches!(
        src.snapshot(&head, "../outside").unwrap_err(),
        SourceError::PathEscapes { .. }
    ));
    assert!(matches!(
        src.snapshot(&head, "/etc").unwrap_err(),
        SourceError::PathEscapes { .. }
    ));
    assert!(matches!(
        src.snapshot(&head, "missing").unwrap_err(),
        SourceError::PathNotFound { .. }
    ));
    assert!(matches!(
        src.snapshot(&head, "apps/a.yaml").unwrap_err(),
        SourceError::NotADirectory { .. }
    ));
}

#[cfg(unix)]
#[test]
fn symlinks_leaving_the_path_are_errors() {
    let repo = Repo::new();
    repo.commit_files(&[("apps/a.yaml", CM), ("secrets/s.yaml", CM)], "initial");
    repo.symlink("apps/inside.yaml", "a.yaml");
    let src = open(&repo);
    let head = src.resolve("HEAD").unwrap();
    let snap = src.snapshot(&head, "apps").unwrap();
    assert_eq!(
        snap.files.len(),
        1,
        "a link inside the path is read at its target only"
    );

    repo.symlink("apps/leak.yaml", "../secrets/s.yaml");
    let head = src.resolve("HEAD").unwrap();
    let err = src.snapshot(&head, "apps").unwrap_err();
    assert!(matches!(err, SourceError::SymlinkEscapes { .. }), "{err}");
    assert!(err.to_string().contains("apps/leak.yaml"), "{err}");
    // From the root, the same link stays inside.
    assert!(src.snapshot(&head, "").is_ok());

    repo.symlink("apps/passwd.yaml", "../../../etc/passwd");
    let head = src.resolve("HEAD").unwrap();
    assert!(matches!(
        src.snapshot(&head, "").unwrap_err(),
        SourceError::SymlinkEscapes { .. }
    ));
}

#[test]
fn history_is_first_parent_newest_first() {
    let repo = Repo::new();
    let a = repo.commit("a.yaml", CM);
    let b = repo.commit("b.yaml", CM);
    let c = repo.commit("c.yaml", CM);
    let src = open(&repo);
    let head = src.resolve(&c).unwrap();
    let shas: Vec<_> = src
        .history(&head, 10)
        .unwrap()
        .into_iter()
        .map(|c| c.sha)
        .collect();
    assert_eq!(shas, [b.clone(), a]);
    assert_eq!(src.history(&head, 1).unwrap().len(), 1);
}

#[test]
fn remote_is_cloned_into_the_cache_then_fetched() {
    let upstream = Repo::new();
    let first = upstream.commit("apps/a.yaml", CM);
    upstream.tag("release", &first);
    let cache = tempfile::tempdir().unwrap();
    let spec = RepoSpec {
        url: format!("file://{}", upstream.path_string()),
        cache_dir: cache.path().to_path_buf(),
        credentials: Credentials::default(),
    };
    let src = source::Repo::open(&spec).unwrap();
    let clone_dir = cache.path().join(source::cache_key(&spec.url));
    assert!(
        clone_dir.join("HEAD").exists(),
        "cloned into cache_dir/<hash of url>"
    );
    assert_eq!(src.resolve("main").unwrap().sha, first);
    assert_eq!(src.resolve("release").unwrap().sha, first);

    let second = upstream.commit("apps/b.yaml", CM);
    assert_eq!(src.resolve("main").unwrap().sha, first, "not fetched yet");
    src.fetch().unwrap();
    let head = src.resolve("main").unwrap();
    assert_eq!(head.sha, second);
    assert_eq!(src.snapshot(&head, "apps").unwrap().files.len(), 2);

    // Opening again reuses the cache (no second clone) and sees what was fetched.
    let marker = clone_dir.join("kubesync-test-marker");
    std::fs::write(&marker, "x").unwrap();
    let again = source::Repo::open(&spec).unwrap();
    assert!(marker.exists());
    assert_eq!(again.resolve("main").unwrap().sha, second);
}

#[test]
fn unreadable_token_file_is_a_credentials_error() {
    let cache = tempfile::tempdir().unwrap();
    let spec = RepoSpec {
        url: "https://127.0.0.1:1/org/repo.git".into(),
        cache_dir: cache.path().to_path_buf(),
        credentials: Credentials {
            token_file: Some(cache.path().join("missing-token")),
            ..Credentials::default()
        },
    };
    let err = source::Repo::open(&spec).unwrap_err();
    assert!(matches!(err, SourceError::Credentials { .. }), "{err}");
}

#[test]
fn failed_clone_leaves_no_cache() {
    // A closed local port: the clone fails, and no half-made cache is left to be mistaken
    // for a good one. (Host-key checking itself is unit-tested in `source::auth`.)
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let cache = tempfile::tempdir().unwrap();
    let known_hosts = cache.path().join("known_hosts");
    std::fs::write(&known_hosts, "").unwrap();
    let spec = RepoSpec {
        url: format!("ssh://git@127.0.0.1:{port}/org/repo.git"),
        cache_dir: cache.path().join("cache"),
        credentials: Credentials {
            known_hosts: Some(known_hosts),
            ..Credentials::default()
        },
    };
    assert!(source::Repo::open(&spec).is_err());
    assert!(
        !cache
            .path()
            .join("cache")
            .join(source::cache_key(&spec.url))
            .exists()
    );
}

#[test]
fn local_repository_fetch_is_a_no_op() {
    let repo = Repo::new();
    repo.commit("a.yaml", CM);
    open(&repo).fetch().unwrap();
    let missing = RepoSpec {
        url: "/definitely/not/a/repo".into(),
        ..repo.spec()
    };
    assert!(matches!(
        source::Repo::open(&missing).unwrap_err(),
        SourceError::Open { .. }
    ));
}

#[test]
fn a_broken_cache_folder_is_cloned_again() {
    let upstream = Repo::new();
    let sha = upstream.commit("apps/a.yaml", CM);
    let cache = tempfile::tempdir().unwrap();
    let spec = RepoSpec {
        url: format!("file://{}", upstream.path_string()),
        cache_dir: cache.path().to_path_buf(),
        credentials: Credentials::default(),
    };
    let dir = cache.path().join(source::cache_key(&spec.url));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("junk"), "half a clone").unwrap();
    let src = source::Repo::open(&spec).unwrap();
    assert_eq!(src.resolve("main").unwrap().sha, sha);
}
