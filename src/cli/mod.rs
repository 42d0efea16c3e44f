//! The command line: one file per subcommand behind one enum. `main` parses flags, sets up
//! tracing, runs the command and maps its result to the documented exit codes:
//! 0 success / no differences, 1 differences or a failed rollout, 2 any error.
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[cfg(feature = "embedded-cluster")]
pub mod cluster;
pub mod history;
pub mod preview;
pub mod run;
pub mod sync;

/// Exit status of a command that ran to the end (errors are always 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done; nothing differs; every rollout completed.
    Ok = 0,
    /// 1: differences found (diff, preview) or a rollout failed/timed out (sync).
    Changes = 1,
}

#[derive(Debug, Parser)]
#[command(
    name = "kubesync",
    version,
    about = "Keeps a Kubernetes cluster equal to a git repository, and understands Deployment rollouts"
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter (tracing `EnvFilter` syntax), also `KUBESYNC_LOG`.
    #[arg(long, global = true, env = "KUBESYNC_LOG", default_value = "info")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Say what a change between two commits will do, with no cluster: objects and rollouts.
    Preview(preview::Args),
    /// Apply a commit to the cluster and wait for its rollouts.
    Sync(sync::SyncArgs),
    /// Show what a sync would change in the live cluster (server-side apply dry-run).
    Diff(sync::DiffArgs),
    /// Run the agent: keep syncing sources as git moves and the cluster drifts.
    Run(run::Args),
    /// List a Deployment's revisions with their ReplicaSets, images and git commits.
    History(history::Args),
    /// Run the embedded kubesim cluster for kubectl and other tools.
    #[cfg(feature = "embedded-cluster")]
    Cluster(cluster::Args),
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    // git2's global init (without loading the CA bundle) takes milliseconds of OpenSSL
    // set-up: it runs on its own thread while the command line is parsed and the runtime
    // built, and is finished before any command runs. Nothing on this thread reads the
    // environment other than through `std::env` meanwhile, which `init_git`'s writes are
    // serialised with (see `source::tls`).
    let git_init = std::thread::Builder::new()
        .name("git-init".into())
        .spawn(crate::source::init_git);
    let cli = Cli::parse();
    init_tracing(&cli);
    if !matches!(cli.command, Command::Run(_)) {
        crate::dispose::one_shot();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    match git_init {
        Ok(handle) => {
            if handle.join().is_err() {
                eprintln!("error: git initialisation failed");
                return ExitCode::from(2);
            }
        }
        // No thread to spare: initialise here, still before the runtime runs anything.
        Err(_) => crate::source::init_git(),
    }
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Preview(args) => preview::run(args).await,
            Command::Sync(args) => sync::run_sync(args).await,
            Command::Diff(args) => sync::run_diff(args).await,
            Command::History(args) => history::run(args).await,
            Command::Run(args) => run::run_command(args).await,
            #[cfg(feature = "embedded-cluster")]
            Command::Cluster(args) => cluster::run(args).await,
        }
    });
    // A one-shot command leaves its idle worker and blocking threads to the exit instead of
    // waking and joining each of them.
    crate::dispose::dispose(runtime);
    match result {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(err) => {
            eprintln!("error: {}", crate::errors::message(err.as_ref()));
            ExitCode::from(2)
        }
    }
}

fn init_tracing(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(format!(
        "{},notify=warn,hyper=warn,hyper_util=warn,kube_client=warn,kube_client::client::builder=off,kube_runtime=warn,tower=warn,rustls=warn",
        cli.log
    ))
    .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only on a terminal: logs captured by CI or a log shipper stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
