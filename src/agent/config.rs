//! The agent's configuration file (`kubesync run --config FILE`): the raw YAML shape
//! ([`RawConfig`], what people write) and the validated form ([`AgentConfig`], what the agent
//! runs), turned one into the other once by [`RawConfig::validate`].
//!
//! Pure: no filesystem (except [`AgentConfig::check_files`], called once at start), no
//! network, no clock. Never reads secret contents; only paths to them live here.
use serde::Deserialize;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A configuration that cannot be run; the message names the offending field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config is not valid YAML for kubesync: {0}")]
    Parse(#[from] serde_yaml::Error),
    #[error("config field `{field}`: {reason}")]
    Invalid { field: String, reason: String },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The file as written. Unknown fields are errors, so a typo is named rather than ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<String>,
    /// Name of this replica in the Lease; default `$POD_NAME`, else the host name.
    pub identity: Option<String>,
    #[serde(default)]
    pub leader_election: RawElection,
    #[serde(default)]
    pub webhook: RawWebhook,
    #[serde(default)]
    pub drift: RawDrift,
    #[serde(default)]
    pub retry: RawRetry,
    /// How long SIGTERM waits for an in-flight sync before abandoning it.
    pub shutdown_grace: Option<String>,
    /// Network timeout of one `ls-remote` of a source.
    pub git_timeout: Option<String>,
    /// Where clones of remote repositories are cached.
    pub cache_dir: Option<PathBuf>,
    /// Namespace of the `kubesync-inventory-<source>` ConfigMaps; default: the agent's own.
    pub inventory_namespace: Option<String>,
    #[serde(default)]
    pub sources: Vec<RawSource>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawElection {
    pub enabled: Option<bool>,
    pub lease_name: Option<String>,
    pub namespace: Option<String>,
    pub lease_duration: Option<String>,
    pub renew_interval: Option<String>,
    pub retry_interval: Option<String>,
    pub label_pod: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawWebhook {
    pub secret_file: Option<PathBuf>,
    pub max_body_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawDrift {
    pub enabled: Option<bool>,
    pub min_interval: Option<String>,
    pub kinds: Option<Vec<String>>,
    #[serde(default)]
    pub namespaces: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawRetry {
    pub initial: Option<String>,
    pub max: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawSource {
    pub name: Option<String>,
    pub repo: Option<String>,
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    pub path: Option<String>,
    pub interval: Option<String>,
    pub namespace: Option<String>,
    pub prune: Option<bool>,
    pub rollback_on_failure: Option<bool>,
    #[serde(default)]
    pub allowed_namespaces: Vec<String>,
    #[serde(default)]
    pub allowed_kinds: Vec<String>,
    #[serde(default)]
    pub credentials: RawCredentials,
    pub webhook_secret_file: Option<PathBuf>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawCredentials {
    pub token_file: Option<PathBuf>,
    pub ssh_key: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
}

/// Values that come from the environment rather than the file (pod name and namespace).
#[derive(Debug, Clone)]
pub struct Defaults {
    pub identity: String,
    pub namespace: String,
}

impl Defaults {
    /// `$POD_NAME` (else `$HOSTNAME`, else `kubesync`) and `$POD_NAMESPACE` (else `default`).
    pub fn from_env() -> Self {
        let identity = std::env::var("POD_NAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| "kubesync".to_owned());
        let namespace = std::env::var("POD_NAMESPACE").unwrap_or_else(|_| "default".to_owned());
        Defaults {
            identity,
            namespace,
        }
    }
}

/// The validated configuration the agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub listen: SocketAddr,
    pub identity: String,
    pub election: ElectionConfig,
    pub webhook: WebhookConfig,
    pub drift: DriftConfig,
    pub retry: RetryConfig,
    pub shutdown_grace: Duration,
    pub git_timeout: Duration,
    /// Where the sync engine caches clones of remote repositories (one folder per source).
    pub cache_dir: PathBuf,
    /// Namespace of the `kubesync-inventory-<source>` ConfigMaps.
    pub inventory_namespace: String,
    pub sources: Vec<SourceConfig>,
}

#[derive(Debug, Clone)]
pub struct ElectionConfig {
    /// Off: this replica is always the leader (single replica, or tests).
    pub enabled: bool,
    pub lease_name: String,
    pub namespace: String,
    /// How long a lease stays valid without renewal; failover takes at most this long.
    pub lease_duration: Duration,
    /// How often the leader renews; must leave room for two renewals inside the duration.
    pub renew_interval: Duration,
    /// How often a standby looks at the lease.
    pub retry_interval: Duration,
    /// Label this replica's pod (named `identity`, in `namespace`) `kubesync.io/leader=true`
    /// while it leads, so a Service can send webhooks to the leader only.
    pub label_pod: bool,
}

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Shared secret for `/webhook` (and for sources without their own).
    pub secret_file: Option<PathBuf>,
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct DriftConfig {
    pub enabled: bool,
    /// At most one drift-triggered re-sync per source per this interval.
    pub min_interval: Duration,
    /// `group/version/Kind` (core: `v1/Kind`) of the objects to watch for drift.
    pub kinds: Vec<String>,
    /// Watch only these namespaces (needed with namespaced RBAC). Empty: a source's
    /// `allowedNamespaces` if it has some, else all namespaces.
    pub namespaces: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct RetryConfig {
    pub initial: Duration,
    pub max: Duration,
}

/// One git source the agent keeps the cluster equal to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceConfig {
    /// DNS label; the value of the `kubesync.io/source` label on every object it owns.
    pub name: String,
    /// URL or local path of the repository.
    pub repo: String,
    /// Branch, tag, full ref or commit sha.
    pub git_ref: String,
    /// Directory of manifests inside the repository (`.` = root).
    pub path: String,
    pub interval: Duration,
    /// Namespace given to namespaced objects that name none.
    pub namespace: Option<String>,
    pub prune: bool,
    pub rollback_on_failure: bool,
    /// Empty = any namespace.
    pub allowed_namespaces: Vec<String>,
    /// Empty = any kind.
    pub allowed_kinds: Vec<String>,
    pub credentials: GitCredentials,
    pub webhook_secret_file: Option<PathBuf>,
}

/// Paths to credentials mounted from Secrets. The files are read when used, never logged.
/// The same credentials the sync engine's `source` uses for its fetches.
pub type GitCredentials = crate::source::Credentials;

/// Kinds watched for drift when the config names none: what a GitOps repository mostly holds.
pub const DEFAULT_DRIFT_KINDS: &[&str] = &[
    "apps/v1/Deployment",
    "apps/v1/StatefulSet",
    "apps/v1/DaemonSet",
    "v1/ConfigMap",
    "v1/Service",
    "v1/ServiceAccount",
];

impl RawConfig {
    pub fn from_yaml(text: &str) -> Result<RawConfig, ConfigError> {
        Ok(serde_yaml::from_str(text)?)
    }

    /// Read and parse a file (no validation).
    pub fn from_file(path: &std::path::Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&text)
    }

    /// Turn the raw file into a runnable config, or name the first bad field.
    pub fn validate(self, defaults: &Defaults) -> Result<AgentConfig, ConfigError> {
        let listen = self.listen.as_deref().unwrap_or("0.0.0.0:8080");
        let listen: SocketAddr = listen
            .parse()
            .map_err(|e| invalid("listen", format!("`{listen}` is not host:port ({e})")))?;
        let identity = self.identity.unwrap_or_else(|| defaults.identity.clone());
        if identity.is_empty() {
            return Err(invalid("identity", "must not be empty"));
        }

        let e = self.leader_election;
        let lease_duration = duration("leaderElection.leaseDuration", e.lease_duration, "15s")?;
        let renew_interval = duration("leaderElection.renewInterval", e.renew_interval, "5s")?;
        let retry_interval = duration("leaderElection.retryInterval", e.retry_interval, "2s")?;
        if renew_interval * 2 > lease_duration {
            return Err(invalid(
                "leaderElection.renewInterval",
                "must be at most half of leaseDuration, so one failed renewal does not lose the lease",
            ));
        }
        let lease_name = e.lease_name.unwrap_or_else(|| "kubesync".to_owned());
        dns_name("leaderElection.leaseName", &lease_name, 253)?;
        let namespace = e.namespace.unwrap_or_else(|| defaults.namespace.clone());
        dns_name("leaderElection.namespace", &namespace, 63)?;
        let election = ElectionConfig {
            enabled: e.enabled.unwrap_or(true),
            lease_name,
            namespace,
            lease_duration,
            renew_interval,
            retry_interval,
            label_pod: e.label_pod.unwrap_or(false),
        };

        let max_body_bytes = self.webhook.max_body_bytes.unwrap_or(1 << 20);
        if max_body_bytes == 0 {
            return Err(invalid("webhook.maxBodyBytes", "must be positive"));
        }
        let webhook = WebhookConfig {
            secret_file: self.webhook.secret_file,
            max_body_bytes,
        };

        let kinds = match self.drift.kinds {
            Some(kinds) => kinds,
            None => DEFAULT_DRIFT_KINDS
                .iter()
                .map(|k| (*k).to_owned())
                .collect(),
        };
        for (i, kind) in kinds.iter().enumerate() {
            parse_gvk(kind).ok_or_else(|| {
                invalid(
                    format!("drift.kinds[{i}]"),
                    format!("`{kind}` is not `group/version/Kind` or `v1/Kind`"),
                )
            })?;
        }
        for (i, ns) in self.drift.namespaces.iter().enumerate() {
            dns_name(&format!("drift.namespaces[{i}]"), ns, 63)?;
        }
        let drift = DriftConfig {
            enabled: self.drift.enabled.unwrap_or(true),
            min_interval: duration("drift.minInterval", self.drift.min_interval, "10s")?,
            kinds,
            namespaces: self.drift.namespaces,
        };

        let retry = RetryConfig {
            initial: duration("retry.initial", self.retry.initial, "5s")?,
            max: duration("retry.max", self.retry.max, "5m")?,
        };
        if retry.initial.is_zero() || retry.initial > retry.max {
            return Err(invalid(
                "retry.initial",
                "must be positive and at most retry.max",
            ));
        }

        let inventory_namespace = self
            .inventory_namespace
            .unwrap_or_else(|| defaults.namespace.clone());
        dns_name("inventoryNamespace", &inventory_namespace, 63)?;

        if self.sources.is_empty() {
            return Err(invalid("sources", "at least one source is required"));
        }
        let mut names = BTreeSet::new();
        let mut sources = Vec::with_capacity(self.sources.len());
        for (i, raw) in self.sources.into_iter().enumerate() {
            let source = raw.validate(&format!("sources[{i}]"))?;
            if !names.insert(source.name.clone()) {
                return Err(invalid(
                    format!("sources[{i}].name"),
                    format!("`{}` is used by two sources", source.name),
                ));
            }
            sources.push(source);
        }

        Ok(AgentConfig {
            listen,
            identity,
            election,
            webhook,
            drift,
            retry,
            shutdown_grace: duration("shutdownGrace", self.shutdown_grace, "20s")?,
            git_timeout: duration("gitTimeout", self.git_timeout, "30s")?,
            cache_dir: self
                .cache_dir
                .unwrap_or_else(|| PathBuf::from(".kubesync/cache")),
            inventory_namespace,
            sources,
        })
    }
}

impl RawSource {
    fn validate(self, at: &str) -> Result<SourceConfig, ConfigError> {
        let name = self
            .name
            .ok_or_else(|| invalid(format!("{at}.name"), "is required"))?;
        dns_name(&format!("{at}.name"), &name, 63)?;
        let repo = self
            .repo
            .filter(|r| !r.trim().is_empty())
            .ok_or_else(|| invalid(format!("{at}.repo"), "is required"))?;
        let git_ref = self.git_ref.unwrap_or_else(|| "HEAD".to_owned());
        if git_ref.is_empty() || git_ref.contains("..") || git_ref.chars().any(char::is_whitespace)
        {
            return Err(invalid(
                format!("{at}.ref"),
                format!("`{git_ref}` is not a git ref"),
            ));
        }
        let path = self.path.unwrap_or_else(|| ".".to_owned());
        if path.starts_with('/') || path.split('/').any(|part| part == "..") {
            return Err(invalid(
                format!("{at}.path"),
                "must be relative to the repository root, without `..`",
            ));
        }
        let interval = duration(&format!("{at}.interval"), self.interval, "1m")?;
        if interval < Duration::from_secs(1) {
            return Err(invalid(format!("{at}.interval"), "must be at least 1s"));
        }
        if let Some(ns) = &self.namespace {
            dns_name(&format!("{at}.namespace"), ns, 63)?;
        }
        for (j, ns) in self.allowed_namespaces.iter().enumerate() {
            dns_name(&format!("{at}.allowedNamespaces[{j}]"), ns, 63)?;
        }
        for (j, kind) in self.allowed_kinds.iter().enumerate() {
            let ok = !kind.is_empty()
                && kind
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '/' || c == '-');
            if !ok {
                return Err(invalid(
                    format!("{at}.allowedKinds[{j}]"),
                    format!("`{kind}` is not a kind (e.g. `Deployment` or `apps/Deployment`)"),
                ));
            }
        }
        let c = self.credentials;
        if c.token_file.is_some() && c.ssh_key.is_some() {
            return Err(invalid(
                format!("{at}.credentials"),
                "give either tokenFile (https) or sshKey (ssh), not both",
            ));
        }
        Ok(SourceConfig {
            name,
            repo,
            git_ref,
            path,
            interval,
            namespace: self.namespace,
            prune: self.prune.unwrap_or(true),
            rollback_on_failure: self.rollback_on_failure.unwrap_or(true),
            allowed_namespaces: self.allowed_namespaces,
            allowed_kinds: self.allowed_kinds,
            credentials: GitCredentials {
                token_file: c.token_file,
                ssh_key: c.ssh_key,
                known_hosts: c.known_hosts,
            },
            webhook_secret_file: self.webhook_secret_file,
        })
    }
}

impl AgentConfig {
    /// Check, once at start, that every file the config names can be read, so a missing Secret
    /// mount is a start-up error rather than a failing sync an hour later.
    pub fn check_files(&self) -> Result<(), ConfigError> {
        let mut files: Vec<(String, &PathBuf)> = Vec::new();
        if let Some(f) = &self.webhook.secret_file {
            files.push(("webhook.secretFile".to_owned(), f));
        }
        for (i, s) in self.sources.iter().enumerate() {
            let c = &s.credentials;
            for (field, file) in [
                ("credentials.tokenFile", &c.token_file),
                ("credentials.sshKey", &c.ssh_key),
                ("credentials.knownHosts", &c.known_hosts),
                ("webhookSecretFile", &s.webhook_secret_file),
            ] {
                if let Some(f) = file {
                    files.push((format!("sources[{i}].{field}"), f));
                }
            }
        }
        for (field, file) in files {
            if let Err(e) = std::fs::metadata(file) {
                return Err(invalid(
                    field,
                    format!("cannot read {}: {e}", file.display()),
                ));
            }
        }
        Ok(())
    }

    /// The source called `name`.
    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.name == name)
    }
}

impl SourceConfig {
    /// A local repository (a path, or a `file://` URL) rather than a network remote.
    pub fn local_path(&self) -> Option<PathBuf> {
        if let Some(rest) = self.repo.strip_prefix("file://") {
            return Some(PathBuf::from(rest));
        }
        if self.repo.contains("://") {
            return None;
        }
        // scp-like `git@host:org/repo`: a colon before any slash.
        if let Some(colon) = self.repo.find(':') {
            let slash = self.repo.find('/').unwrap_or(usize::MAX);
            if colon < slash && colon > 1 {
                return None;
            }
        }
        Some(PathBuf::from(&self.repo))
    }
}

/// `group/version/Kind` or `version/Kind` → (group, version, kind).
pub fn parse_gvk(s: &str) -> Option<(String, String, String)> {
    let parts: Vec<&str> = s.split('/').collect();
    let ok = |p: &&str| !p.is_empty();
    match parts.as_slice() {
        [v, k] if ok(v) && ok(k) => Some((String::new(), (*v).to_owned(), (*k).to_owned())),
        [g, v, k] if ok(g) && ok(v) && ok(k) => {
            Some(((*g).to_owned(), (*v).to_owned(), (*k).to_owned()))
        }
        _ => None,
    }
}

fn duration(field: &str, value: Option<String>, default: &str) -> Result<Duration, ConfigError> {
    let text = value.unwrap_or_else(|| default.to_owned());
    humantime::parse_duration(&text).map_err(|e| {
        invalid(
            field,
            format!("`{text}` is not a duration like 30s or 5m ({e})"),
        )
    })
}

/// RFC 1123 label/subdomain: lowercase alphanumerics, `-` (and `.` when `max` > 63).
fn dns_name(field: &str, value: &str, max: usize) -> Result<(), ConfigError> {
    let allowed = |c: char| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (max > 63 && c == '.')
    };
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if value.is_empty()
        || value.len() > max
        || !value.chars().all(allowed)
        || !ends_ok(value.chars().next())
        || !ends_ok(value.chars().last())
    {
        return Err(invalid(
            field,
            format!(
                "`{value}` must be at most {max} lowercase letters, digits and '-', starting and ending alphanumeric"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Defaults {
        Defaults {
            identity: "pod-a".into(),
            namespace: "kubesync".into(),
        }
    }

    fn parse(yaml: &str) -> Result<AgentConfig, ConfigError> {
        RawConfig::from_yaml(yaml)?.validate(&defaults())
    }

    fn err(yaml: &str) -> String {
        match parse(yaml) {
            Ok(c) => panic!("expected an error, got {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn full_config_parses_with_every_field() {
        let c = parse(
            r#"
listen: 127.0.0.1:9090
leaderElection: { leaseName: ks, namespace: ops, leaseDuration: 3s, renewInterval: 1s }
webhook: { secretFile: /etc/hook/secret, maxBodyBytes: 1024 }
drift: { minInterval: 2s, kinds: [apps/v1/Deployment], namespaces: [web] }
retry: { initial: 1s, max: 30s }
sources:
  - name: apps
    repo: https://example.com/org/repo.git
    ref: main
    path: apps/prod
    interval: 30s
    namespace: web
    prune: false
    rollbackOnFailure: false
    allowedNamespaces: [web]
    allowedKinds: [Deployment, ConfigMap]
    credentials: { tokenFile: /etc/git/token }
"#,
        )
        .unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9090");
        assert_eq!(c.identity, "pod-a");
        assert_eq!(c.election.lease_name, "ks");
        assert_eq!(c.election.lease_duration, Duration::from_secs(3));
        assert_eq!(c.webhook.max_body_bytes, 1024);
        assert_eq!(c.drift.kinds, vec!["apps/v1/Deployment"]);
        assert_eq!(c.drift.namespaces, vec!["web"]);
        let s = &c.sources[0];
        assert_eq!(s.git_ref, "main");
        assert_eq!(s.interval, Duration::from_secs(30));
        assert!(!s.prune && !s.rollback_on_failure);
        assert_eq!(
            s.credentials.token_file.as_deref(),
            Some(std::path::Path::new("/etc/git/token"))
        );
        assert_eq!(s.local_path(), None);
    }

    #[test]
    fn defaults_fill_what_is_left_out() {
        let c = parse("sources: [{name: a, repo: /srv/repo}]").unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:8080");
        assert!(c.election.enabled);
        assert_eq!(c.election.namespace, "kubesync");
        assert_eq!(c.inventory_namespace, "kubesync");
        assert_eq!(c.election.lease_duration, Duration::from_secs(15));
        assert_eq!(c.election.renew_interval, Duration::from_secs(5));
        let s = &c.sources[0];
        assert_eq!((s.git_ref.as_str(), s.path.as_str()), ("HEAD", "."));
        assert_eq!(s.interval, Duration::from_secs(60));
        assert!(s.prune && s.rollback_on_failure);
        assert_eq!(s.local_path(), Some(PathBuf::from("/srv/repo")));
    }

    #[test]
    fn errors_name_the_field() {
        assert!(
            err("sources: [{name: a, repo: r, interval: soon}]").contains("sources[0].interval")
        );
        assert!(err("sources: [{name: Bad_Name, repo: r}]").contains("sources[0].name"));
        assert!(err("sources: [{name: a}]").contains("sources[0].repo"));
        assert!(err("sources: []").contains("`sources`"));
        assert!(
            err("sources: [{name: a, repo: r}, {name: a, repo: s}]").contains("sources[1].name")
        );
        assert!(err("sources: [{name: a, repo: r, path: ../x}]").contains("sources[0].path"));
        assert!(err("listen: nowhere\nsources: [{name: a, repo: r}]").contains("`listen`"));
        assert!(
            err("leaderElection: {leaseDuration: 4s, renewInterval: 3s}\nsources: [{name: a, repo: r}]")
                .contains("leaderElection.renewInterval")
        );
        assert!(
            err("drift: {kinds: [Deployment]}\nsources: [{name: a, repo: r}]")
                .contains("drift.kinds[0]")
        );
        assert!(
            err("sources: [{name: a, repo: r, credentials: {tokenFile: t, sshKey: k}}]")
                .contains("sources[0].credentials")
        );
    }

    #[test]
    fn unknown_fields_are_named() {
        let e = err("sources: [{name: a, repo: r, intervall: 1m}]");
        assert!(e.contains("intervall"), "{e}");
    }

    #[test]
    fn check_files_names_a_missing_credential() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "t").unwrap();
        let yaml = format!(
            "sources: [{{name: a, repo: r, credentials: {{tokenFile: {}, knownHosts: /nonexistent/kh}}}}]",
            token.display()
        );
        let e = parse(&yaml).unwrap().check_files().unwrap_err().to_string();
        assert!(e.contains("sources[0].credentials.knownHosts"), "{e}");
    }

    #[test]
    fn local_paths_and_remotes_are_told_apart() {
        let src = |repo: &str| {
            parse(&format!("sources: [{{name: a, repo: '{repo}'}}]"))
                .unwrap()
                .sources[0]
                .local_path()
        };
        assert_eq!(src("git@github.com:org/repo.git"), None);
        assert_eq!(src("ssh://git@host/repo"), None);
        assert_eq!(src("file:///srv/r"), Some(PathBuf::from("/srv/r")));
        assert_eq!(src("./repo"), Some(PathBuf::from("./repo")));
    }

    #[test]
    fn gvk_forms() {
        assert_eq!(
            parse_gvk("apps/v1/Deployment"),
            Some(("apps".into(), "v1".into(), "Deployment".into()))
        );
        assert_eq!(
            parse_gvk("v1/ConfigMap"),
            Some(("".into(), "v1".into(), "ConfigMap".into()))
        );
        assert_eq!(parse_gvk("Deployment"), None);
    }
}
