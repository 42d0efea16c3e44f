//! `kubesync cluster serve`: run the embedded kubesim cluster as a standalone server, so that
//! `kubectl` and other tools can use it. Runs until SIGTERM or SIGINT; keeps its objects in
//! `--state` so that a restart finds them.
use super::Exit;
use anyhow::Context as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Serve the embedded cluster over HTTP until SIGTERM/SIGINT.
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Folder where the cluster keeps its objects (crash-safe; a restart finds them).
    #[arg(long, default_value = ".kubesync/cluster")]
    pub state: PathBuf,
    /// Address to listen on (port 0 picks a free port; see the kubeconfig for the one chosen).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Write a kubeconfig that kubectl can use as is.
    #[arg(long)]
    pub kubeconfig_out: Option<PathBuf>,
    /// Number of simulated nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// How long a new pod takes to become Ready (unless its template says otherwise with the
    /// `kubesim.io/ready-after` annotation).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub pod_ready_after: Duration,
}

pub async fn run(args: Args) -> anyhow::Result<Exit> {
    match args.command {
        ClusterCommand::Serve(serve) => run_serve(serve).await,
    }
}

async fn run_serve(args: ServeArgs) -> anyhow::Result<Exit> {
    std::fs::create_dir_all(&args.state)
        .with_context(|| format!("cannot create the state folder {}", args.state.display()))?;
    let config = kubesim::Config {
        listen: args.listen,
        state_dir: Some(args.state.clone()),
        nodes: args.nodes,
        pod_ready_after: args.pod_ready_after,
        ..kubesim::Config::default()
    };
    kubesim::serve(
        config,
        args.kubeconfig_out.clone(),
        super::run::shutdown_signal(),
    )
    .await
    .context("the embedded cluster failed")?;
    Ok(Exit::Ok)
}
