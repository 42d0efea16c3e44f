//! kubesync: keeps a Kubernetes cluster equal to a git repository of manifests, and
//! understands the Deployment rollouts that doing so causes.
//!
//! Data flows `source` → `manifest` → `transform` → `plan` → `apply` → `rollout` → `report`
//! (see `docs/architecture.md`). Each stage has a plain data type at its boundary.

/// The long-running agent: loop, config, health/metrics/webhook server, leader election.
pub mod agent;
/// Writes to the cluster: ordering, server-side apply, prune, inventory.
pub mod apply;
/// Standard base64 (Secret data, known_hosts keys).
pub mod base64;
/// CLI subcommands: parse flags into validated configs and wire the stages together.
pub mod cli;
/// Cluster selection: kubeconfig, in-cluster, or the embedded kubesim cluster.
pub mod cluster;
/// Large data a one-shot command is done with: left to the exit instead of freed.
pub mod dispose;
/// One sync or diff of one source at one commit, as a library call.
pub mod engine;
/// One readable line per error (cause chains without repeats, kube API errors).
pub mod errors;
/// YAML/JSON → objects, validation, identity (group/kind/namespace/name).
pub mod manifest;
/// Pure planning: normalisation, diffs, rollout impact, reverts, prunes.
pub mod plan;
/// Text, JSON and Markdown renderers.
pub mod report;
/// Rollout status watching, history, deadlines.
pub mod rollout;
/// git2 access: open/clone/fetch, resolve refs, read a commit's tree.
pub mod source;
/// Desired-state transforms: ownership labels, commit annotations, config hashes.
pub mod transform;

/// The number of threads worth running CPU work on (at most 8), read once: the standard
/// library reads the cgroup files again on every call.
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8)
    })
}
