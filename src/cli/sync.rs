//! `kubesync sync` and `kubesync diff` against a live cluster.
use super::Exit;

#[derive(Debug, clap::Args)]
pub struct SyncArgs {}

#[derive(Debug, clap::Args)]
pub struct DiffArgs {}

pub async fn run_sync(_args: SyncArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("sync: not built yet")
}

pub async fn run_diff(_args: DiffArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("diff: not built yet")
}
