//! Cluster selection: which Kubernetes API a command talks to, in the usual order —
//! `--kubeconfig`, then `KUBECONFIG`, then `~/.kube/config`, then the in-cluster service
//! account — and, where none exists, the embedded kubesim cluster (feature
//! `embedded-cluster`), announced in one log line.
//!
//! Owns: the choice ([`choose`], pure) and building a `kube::Client` for it ([`connect`]).
//! Must not: fall back to the embedded cluster when a kubeconfig exists but fails (that is an
//! error with its reason), or special-case kubesim anywhere else: the embedded cluster is
//! reached through the same `kube::Client` as any other.
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use std::path::{Path, PathBuf};

/// Where a client configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// A kubeconfig file given with `--kubeconfig`.
    Flag(PathBuf),
    /// The `KUBECONFIG` variable (a path list, merged as kubectl does).
    Env(String),
    /// `~/.kube/config`.
    Home(PathBuf),
    /// The pod's service account (`KUBERNETES_SERVICE_HOST` is set).
    InCluster,
    /// Nothing found: the embedded cluster with its state in this folder.
    Embedded(PathBuf),
}

/// What [`choose`] looks at (so that the choice is a pure function, testable without an env).
#[derive(Debug, Clone, Default)]
pub struct Environment {
    pub kubeconfig_flag: Option<PathBuf>,
    /// `KUBECONFIG`, if set.
    pub kubeconfig_env: Option<String>,
    /// `~/.kube/config`, if it exists.
    pub home_config: Option<PathBuf>,
    /// `KUBERNETES_SERVICE_HOST` is set.
    pub in_cluster: bool,
    /// `--state`, else `.kubesync/cluster`.
    pub state_dir: PathBuf,
}

impl Environment {
    /// Reads the process environment.
    pub fn from_process(
        kubeconfig_flag: Option<PathBuf>,
        state_dir: Option<PathBuf>,
    ) -> Environment {
        let home_config = std::env::var_os("HOME")
            .map(|h| Path::new(&h).join(".kube").join("config"))
            .filter(|p| p.is_file());
        Environment {
            kubeconfig_flag,
            kubeconfig_env: std::env::var("KUBECONFIG").ok().filter(|v| !v.is_empty()),
            home_config,
            in_cluster: std::env::var_os("KUBERNETES_SERVICE_HOST").is_some_and(|v| !v.is_empty()),
            state_dir: state_dir.unwrap_or_else(|| PathBuf::from(".kubesync/cluster")),
        }
    }
}

/// The usual order: flag, `KUBECONFIG`, `~/.kube/config`, in-cluster, embedded.
pub fn choose(env: &Environment) -> Choice {
    if let Some(path) = &env.kubeconfig_flag {
        return Choice::Flag(path.clone());
    }
    if let Some(var) = &env.kubeconfig_env {
        return Choice::Env(var.clone());
    }
    if let Some(path) = &env.home_config {
        return Choice::Home(path.clone());
    }
    if env.in_cluster {
        return Choice::InCluster;
    }
    Choice::Embedded(env.state_dir.clone())
}

/// Why no client could be built. Never answered by falling back to another cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("in-cluster configuration: {0}")]
    InCluster(#[source] kube::config::InClusterError),
    #[error("building the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    #[error(
        "no kubeconfig found (--kubeconfig, KUBECONFIG, ~/.kube/config) and not in a pod; this build has no embedded cluster (feature `embedded-cluster`)"
    )]
    NoCluster,
    #[cfg(feature = "embedded-cluster")]
    #[error("starting the embedded cluster in {dir}: {source}")]
    Embedded {
        dir: PathBuf,
        #[source]
        source: kubesim::Error,
    },
}

impl ClusterError {
    /// A fixed string for metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            ClusterError::Kubeconfig { .. } => "kubeconfig",
            ClusterError::InCluster(_) => "in_cluster",
            ClusterError::Client(_) => "client",
            ClusterError::NoCluster => "no_cluster",
            #[cfg(feature = "embedded-cluster")]
            ClusterError::Embedded { .. } => "embedded",
        }
    }
}

/// A connected client, and the embedded cluster behind it if that is what was chosen (kept
/// alive as long as the connection).
pub struct Connection {
    pub client: Client,
    pub choice: Choice,
    #[cfg(feature = "embedded-cluster")]
    pub embedded: Option<kubesim::Cluster>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("choice", &self.choice)
            .finish()
    }
}

impl Connection {
    /// Stops the embedded cluster, if any (its state stays in its folder).
    pub async fn close(self) {
        #[cfg(feature = "embedded-cluster")]
        if let Some(cluster) = self.embedded {
            cluster.shutdown().await;
        }
    }
}

/// Builds a client for the chosen cluster, with `context` (`--context`) if given.
pub async fn connect(env: &Environment, context: Option<&str>) -> Result<Connection, ClusterError> {
    let choice = choose(env);
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config =
        match &choice {
            Choice::Flag(path) | Choice::Home(path) => {
                let kubeconfig =
                    Kubeconfig::read_from(path).map_err(|source| ClusterError::Kubeconfig {
                        path: path.display().to_string(),
                        source,
                    })?;
                Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|source| ClusterError::Kubeconfig {
                        path: path.display().to_string(),
                        source,
                    })?
            }
            Choice::Env(var) => Config::from_kubeconfig(&options).await.map_err(|source| {
                ClusterError::Kubeconfig {
                    path: format!("KUBECONFIG={var}"),
                    source,
                }
            })?,
            Choice::InCluster => Config::incluster().map_err(ClusterError::InCluster)?,
            Choice::Embedded(dir) => return embedded(dir.clone(), choice.clone()).await,
        };
    tracing::debug!(cluster = %config.cluster_url, "connecting");
    let client = Client::try_from(without_unused_roots(config)).map_err(ClusterError::Client)?;
    Ok(Connection {
        client,
        choice,
        #[cfg(feature = "embedded-cluster")]
        embedded: None,
    })
}

/// A plain-http cluster (a local API server, `kubectl proxy`) never checks a certificate,
/// yet without a CA in the kubeconfig the client would load and parse the whole system
/// trust store (milliseconds of PEM parsing on every start). An empty root set skips that;
/// an https cluster, or any https proxy, keeps the system roots.
fn without_unused_roots(mut config: Config) -> Config {
    let https = |uri: &http::Uri| uri.scheme_str() != Some("http");
    let plain = !https(&config.cluster_url) && !config.proxy_url.as_ref().is_some_and(https);
    if plain && config.root_cert.is_none() {
        config.root_cert = Some(Vec::new());
    }
    config
}

#[cfg(feature = "embedded-cluster")]
async fn embedded(dir: PathBuf, choice: Choice) -> Result<Connection, ClusterError> {
    let config = kubesim::Config {
        state_dir: Some(dir.clone()),
        ..Default::default()
    };
    let cluster =
        kubesim::Cluster::start(config)
            .await
            .map_err(|source| ClusterError::Embedded {
                dir: dir.clone(),
                source,
            })?;
    tracing::info!(state = %dir.display(), url = %cluster.url(), "no kubeconfig found: using the embedded local cluster");
    let client = Client::new(cluster.router(), "default");
    Ok(Connection {
        client,
        choice,
        embedded: Some(cluster),
    })
}

#[cfg(not(feature = "embedded-cluster"))]
async fn embedded(_dir: PathBuf, _choice: Choice) -> Result<Connection, ClusterError> {
    Err(ClusterError::NoCluster)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Environment {
        Environment {
            state_dir: PathBuf::from(".kubesync/cluster"),
            ..Default::default()
        }
    }

    #[test]
    fn usual_order() {
        let mut e = env();
        assert_eq!(choose(&e), Choice::Embedded(".kubesync/cluster".into()));
        e.in_cluster = true;
        assert_eq!(choose(&e), Choice::InCluster);
        e.home_config = Some("/home/u/.kube/config".into());
        assert_eq!(choose(&e), Choice::Home("/home/u/.kube/config".into()));
        e.kubeconfig_env = Some("/a:/b".into());
        assert_eq!(choose(&e), Choice::Env("/a:/b".into()));
        e.kubeconfig_flag = Some("/k".into());
        assert_eq!(choose(&e), Choice::Flag("/k".into()));
    }

    #[tokio::test]
    async fn broken_kubeconfig_is_an_error_not_a_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, "this: [is not a kubeconfig").unwrap();
        let e = Environment {
            kubeconfig_flag: Some(path.clone()),
            ..env()
        };
        let err = connect(&e, None).await.unwrap_err();
        assert_eq!(err.kind(), "kubeconfig");
        assert!(err.to_string().contains(&path.display().to_string()));
        let missing = Environment {
            kubeconfig_flag: Some(dir.path().join("absent")),
            ..env()
        };
        assert_eq!(
            connect(&missing, None).await.unwrap_err().kind(),
            "kubeconfig"
        );
    }

    #[tokio::test]
    async fn unknown_context_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'http://127.0.0.1:1'}\n\
             users:\n- name: u\n  user: {token: t}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
        )
        .unwrap();
        let e = Environment {
            kubeconfig_flag: Some(path),
            ..env()
        };
        assert!(connect(&e, None).await.is_ok());
        assert_eq!(
            connect(&e, Some("nope")).await.unwrap_err().kind(),
            "kubeconfig"
        );
    }

    #[test]
    fn only_plain_http_skips_the_system_roots() {
        let config = |url: &str, proxy: Option<&str>| {
            let mut c = Config::new(url.parse().unwrap());
            c.proxy_url = proxy.map(|p| p.parse().unwrap());
            without_unused_roots(c).root_cert
        };
        assert_eq!(config("http://127.0.0.1:6443", None), Some(Vec::new()));
        assert_eq!(
            config("http://k:8001", Some("http://proxy:3128")),
            Some(Vec::new())
        );
        assert_eq!(config("https://k:6443", None), None);
        assert_eq!(config("http://k:8001", Some("https://proxy:3128")), None);
        assert_eq!(config("http://k:8001", Some("socks5://proxy:1080")), None);
        let mut with_ca = Config::new("http://k:8001".parse().unwrap());
        with_ca.root_cert = Some(vec![vec![1, 2, 3]]);
        assert_eq!(
            without_unused_roots(with_ca).root_cert,
            Some(vec![vec![1, 2, 3]])
        );
    }
}
