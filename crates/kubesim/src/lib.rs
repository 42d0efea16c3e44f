//! kubesim: an in-process Kubernetes API server and control plane.
//!
//! It speaks the real REST protocol over HTTP so that unmodified `kube` clients and the
//! real `kubectl` work against it. `shared/k8s-semantics.md` is its specification.
//! This file is the index: configuration, the running [`Cluster`] handle and [`serve`].
//! Must not: contain API semantics (see the modules below).

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::task::JoinHandle;

/// The cluster clock tests can advance.
pub mod clock;
/// The controller driver: runs the pure controllers against the store.
mod driver;
/// Fault injection and request counters.
pub mod faults;
/// Routing and handlers of the REST API.
mod http;
/// Crash-safe persistence of the store.
mod persist;
/// Protobuf request bodies of typed kubectl creates.
mod protobuf;
/// Query-string parsing.
mod query;
/// Label and field selectors.
mod selector;
/// Adapters over kubesim-registry and kubesim-merge.
mod sem;
/// Status errors.
mod status;
/// The object store and event history.
mod store;
/// Watch streams.
mod watch;
/// The write path shared by the API and the controllers.
mod write;

pub use clock::Clock;
pub use faults::{FaultRule, Faults, RequestCounts, Verb};

/// Why the cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("loading state from {dir}: {source}")]
    State {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the kubeconfig to {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// A fixed label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Bind { .. } => "bind",
            Error::State { .. } => "state",
            Error::Kubeconfig { .. } => "kubeconfig",
        }
    }
}

/// How to run a cluster.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Persist objects here (reloaded on start); `None` = in memory only.
    pub state_dir: Option<PathBuf>,
    /// Node objects created at start.
    pub nodes: usize,
    /// How long a started pod takes to become Ready (pods with
    /// `kubesim.io/never-ready: "true"` on them never do).
    pub pod_ready_after: Duration,
    /// LoadBalancer ingress addresses; empty → LoadBalancer Services stay pending.
    pub lb_pool: Vec<Ipv4Addr>,
    pub clock: Clock,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            state_dir: None,
            nodes: 3,
            pod_ready_after: Duration::ZERO,
            lb_pool: (200..=210)
                .map(|i| Ipv4Addr::new(172, 18, 255, i))
                .collect(),
            clock: Clock::new(),
        }
    }
}

/// Shared state of a running cluster (one `Arc` for handlers, watches and the driver).
pub(crate) struct App {
    pub store: store::Store,
    pub clock: Clock,
    pub faults: Faults,
    pub counters: faults::Counters,
    pub lb_pool: Vec<Ipv4Addr>,
    pub addr: SocketAddr,
    /// Flips to `true` on shutdown; watch streams end on it.
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// The driver's progress, for `settle`.
    pub driver: driver::Progress,
}

/// A running kubesim cluster.
pub struct Cluster {
    app: Arc<App>,
    server: JoinHandle<()>,
    driver: JoinHandle<()>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("addr", &self.app.addr)
            .finish()
    }
}

/// Accepts TCP connections, refusing them while a fault says so.
struct Listener {
    inner: tokio::net::TcpListener,
    faults: Faults,
}

impl axum::serve::Listener for Listener {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    if self.faults.refuse_connections() {
                        drop(stream);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    return (stream, addr);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "kubesim: accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl Cluster {
    /// Binds the listener, loads `state_dir` if any, and spawns the server and controllers.
    pub async fn start(config: Config) -> Result<Cluster, Error> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
        let store =
            store::Store::open(config.state_dir.as_deref()).map_err(|source| Error::State {
                dir: config.state_dir.clone().unwrap_or_default(),
                source,
            })?;
        let (shutdown, _) = tokio::sync::watch::channel(false);
        let faults = Faults::default();
        let app = Arc::new(App {
            store,
            clock: config.clock.clone(),
            faults: faults.clone(),
            counters: faults::Counters::default(),
            lb_pool: config.lb_pool.clone(),
            addr,
            shutdown,
            driver: driver::Progress::default(),
        });
        driver::bootstrap(&app, config.nodes);
        let router = http::router(app.clone());
        let mut stop = app.shutdown.subscribe();
        let listener = Listener {
            inner: listener,
            faults,
        };
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "kubesim: server failed");
            }
        });
        let driver = tokio::spawn(driver::run(app.clone(), config.pod_ready_after));
        Ok(Cluster {
            app,
            server,
            driver,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.app.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.app.addr)
    }

    /// A kubeconfig (cluster/user/context `kubesim`, plain http, a token user).
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig(&self.url())
    }

    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, self.kubeconfig_yaml())
    }

    /// The same service as the socket, for `kube::Client::new(router, "default")`.
    pub fn router(&self) -> axum::Router {
        http::router(self.app.clone())
    }

    pub fn clock(&self) -> &Clock {
        &self.app.clock
    }

    pub fn faults(&self) -> &Faults {
        &self.app.faults
    }

    /// Requests served so far, per verb.
    pub fn request_count(&self) -> RequestCounts {
        self.app.counters.snapshot()
    }

    /// Waits (up to `timeout`) until the controllers have no pending work; `false` on timeout.
    pub async fn settle(&self, timeout: Duration) -> bool {
        driver::settle(&self.app, timeout).await
    }

    /// Stops the server, the watches and the controllers.
    pub async fn shutdown(self) {
        let _ = self.app.shutdown.send(true);
        self.driver.abort();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.server).await;
    }
}

fn kubeconfig(url: &str) -> String {
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubesim", "cluster": {"server": url}}],
        "users": [{"name": "kubesim", "user": {"token": "kubesim"}}],
        "contexts": [{"name": "kubesim", "context": {"cluster": "kubesim", "user": "kubesim", "namespace": "default"}}],
        "current-context": "kubesim",
        "preferences": {},
    });
    serde_yaml::to_string(&doc).unwrap_or_default()
}

/// Runs a cluster until `shutdown` resolves; writes the kubeconfig to `kubeconfig_out`.
/// Used by `kubesync cluster serve`.
pub async fn serve(
    config: Config,
    kubeconfig_out: Option<PathBuf>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let cluster = Cluster::start(config).await?;
    if let Some(path) = kubeconfig_out {
        cluster
            .write_kubeconfig(&path)
            .map_err(|source| Error::Kubeconfig {
                path: path.clone(),
                source,
            })?;
    }
    tracing::info!(url = %cluster.url(), "kubesim: serving");
    shutdown.await;
    cluster.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_names_everything_kubesim() {
        let k = kubeconfig("http://127.0.0.1:1234");
        let v: serde_yaml::Value = serde_yaml::from_str(&k).unwrap();
        assert_eq!(v["current-context"], "kubesim");
        assert_eq!(
            v["clusters"][0]["cluster"]["server"],
            "http://127.0.0.1:1234"
        );
    }
}
