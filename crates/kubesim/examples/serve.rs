//! Runs a kubesim cluster until Ctrl-C and writes its kubeconfig to the path given as the
//! first argument (default `kubesim.kubeconfig`). For poking at kubesim with kubectl.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "kubesim.kubeconfig".into());
    let state_dir = std::env::args().nth(2).map(std::path::PathBuf::from);
    let config = kubesim::Config {
        state_dir,
        ..kubesim::Config::default()
    };
    kubesim::serve(config, Some(path.into()), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
