//! `kubesync history deployment/NAME`: every revision of a Deployment with its ReplicaSet,
//! images and git commit, as a table or JSON.
//!
//! Owns: the flags, parsing the `deployment/NAME` argument ([`parse_target`], pure) and the
//! output. Must not: write to the cluster, or compute revisions itself (that is
//! `rollout::history`).
use super::Exit;
use super::sync::ClusterArgs;
use crate::cluster;
use crate::rollout::history;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Deployment: `deployment/NAME`, `deploy/NAME`, `deployments/NAME`,
    /// `deployment.apps/NAME` or `NAME`.
    pub deployment: String,
    /// Namespace (default: the kubeconfig context's, else `default`).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: Format,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Why the `deployment/NAME` argument is not one.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("`{0}` is not a Deployment: use deployment/NAME, deploy/NAME or NAME")]
    NotADeployment(String),
    #[error("`{0}` has an empty name")]
    EmptyName(String),
}

/// The Deployment name in `deployment/NAME`, `deploy/NAME`, `deployments/NAME`,
/// `deployment.apps/NAME` (any case for the kind) or bare `NAME`.
pub fn parse_target(arg: &str) -> Result<String, TargetError> {
    let name = match arg.split_once('/') {
        Some((kind, name)) => {
            let kind = kind.to_ascii_lowercase();
            let known = [
                "deployment",
                "deploy",
                "deployments",
                "deployment.apps",
                "deployments.apps",
                "deploy.apps",
            ];
            if !known.contains(&kind.as_str()) {
                return Err(TargetError::NotADeployment(arg.to_string()));
            }
            name
        }
        None => arg,
    };
    if name.is_empty() {
        return Err(TargetError::EmptyName(arg.to_string()));
    }
    if name.contains('/') {
        return Err(TargetError::NotADeployment(arg.to_string()));
    }
    Ok(name.to_string())
}

/// Runs `kubesync history`.
pub async fn run(args: Args) -> anyhow::Result<Exit> {
    let name = parse_target(&args.deployment)?;
    let env = cluster::Environment::from_process(
        args.cluster.kubeconfig.clone(),
        Some(args.cluster.state.clone()),
    );
    let conn = cluster::connect(&env, args.cluster.context.as_deref()).await?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| conn.client.default_namespace().to_string());
    let result = history::fetch(&conn.client, &namespace, &name).await;
    conn.close().await;
    let revisions = result?;
    match args.output {
        Format::Json => println!("{}", serde_json::to_string_pretty(&revisions)?),
        Format::Text => print!("{}", history::render_text(&namespace, &name, &revisions)),
    }
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn targets_accept_the_kubectl_spellings() {
        for arg in [
            "deployment/web",
            "deploy/web",
            "deployments/web",
            "Deployment/web",
            "deployment.apps/web",
            "web",
        ] {
            assert_eq!(parse_target(arg), Ok("web".to_string()), "{arg}");
        }
        assert_eq!(
            parse_target("service/web"),
            Err(TargetError::NotADeployment("service/web".into()))
        );
        assert_eq!(
            parse_target("deployment/"),
            Err(TargetError::EmptyName("deployment/".into()))
        );
        assert_eq!(
            parse_target("deployment/a/b"),
            Err(TargetError::NotADeployment("deployment/a/b".into()))
        );
    }

    #[derive(Debug, clap::Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn flags_parse() {
        let w = Wrapper::try_parse_from([
            "history",
            "deploy/kubia",
            "-n",
            "apps",
            "--output",
            "json",
            "--kubeconfig",
            "/tmp/k",
            "--context",
            "c",
        ])
        .expect("parses");
        assert_eq!(w.args.deployment, "deploy/kubia");
        assert_eq!(w.args.namespace.as_deref(), Some("apps"));
        assert_eq!(w.args.output, Format::Json);
        assert_eq!(
            w.args.cluster.kubeconfig.as_deref(),
            Some(std::path::Path::new("/tmp/k"))
        );
        assert_eq!(w.args.cluster.context.as_deref(), Some("c"));
        let d = Wrapper::try_parse_from(["history", "kubia"]).expect("parses");
        assert_eq!(d.args.output, Format::Text);
        assert_eq!(d.args.namespace, None);
    }
}
