//! kubesync: keeps a Kubernetes cluster equal to a git repository of manifests, and
//! understands the Deployment rollouts that doing so causes.
//!
//! Data flows `source` → `manifest` → `transform` → `plan` → `apply` → `rollout` → `report`
//! (see `docs/architecture.md`). Each stage has a plain data type at its boundary.

/// CLI subcommands: parse flags into validated configs and wire the stages together.
pub mod cli;
/// git2 access: open/clone/fetch, resolve refs, read a commit's tree.
pub mod source;
/// YAML/JSON → objects, validation, identity (group/kind/namespace/name).
pub mod manifest;
/// Desired-state transforms: ownership labels, commit annotations, config hashes.
pub mod transform;
/// Pure planning: normalisation, diffs, rollout impact, reverts, prunes.
pub mod plan;
/// Writes to the cluster: ordering, server-side apply, prune, inventory.
pub mod apply;
/// Rollout status watching, history, deadlines.
pub mod rollout;
/// The long-running agent: loop, config, health/metrics/webhook server, leader election.
pub mod agent;
/// Text, JSON and Markdown renderers.
pub mod report;
/// Cluster selection: kubeconfig, in-cluster, or the embedded kubesim cluster.
pub mod cluster;
