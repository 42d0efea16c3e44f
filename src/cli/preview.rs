//! `kubesync preview`: the offline pull-request preview.
use super::Exit;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args) -> anyhow::Result<Exit> {
    anyhow::bail!("preview: not built yet")
}
