//! Write ordering: which stage an object is applied in. Objects in one stage are written
//! concurrently; a stage starts only when the previous one is done, so that a Deployment never
//! starts before the ConfigMap it reads, nor anything before its Namespace.
//!
//! Pure.
use serde::Serialize;

/// The stages of a sync, in write order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Stage {
    /// Namespaces (and CustomResourceDefinitions, which other objects' kinds depend on).
    Namespaces,
    /// ConfigMaps and Secrets: what pods read at start.
    Config,
    /// Services.
    Services,
    /// Deployments.
    Deployments,
    /// Every other kind the server's discovery knows.
    Rest,
}

impl Stage {
    pub const ALL: [Stage; 5] = [
        Stage::Namespaces,
        Stage::Config,
        Stage::Services,
        Stage::Deployments,
        Stage::Rest,
    ];

    /// The stage of an object of `group`/`kind`.
    pub fn of(group: &str, kind: &str) -> Stage {
        match (group, kind) {
            ("", "Namespace") | ("apiextensions.k8s.io", "CustomResourceDefinition") => {
                Stage::Namespaces
            }
            ("", "ConfigMap") | ("", "Secret") => Stage::Config,
            ("", "Service") => Stage::Services,
            ("apps", "Deployment") => Stage::Deployments,
            _ => Stage::Rest,
        }
    }
}

/// Prunes run in the reverse order of writes: dependents first, Namespaces last.
pub fn prune_order(group: &str, kind: &str) -> std::cmp::Reverse<Stage> {
    std::cmp::Reverse(Stage::of(group, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_in_write_order() {
        let mut kinds = vec![
            ("apps", "Deployment"),
            ("networking.k8s.io", "Ingress"),
            ("", "Service"),
            ("", "Secret"),
            ("", "Namespace"),
            ("", "ConfigMap"),
        ];
        kinds.sort_by_key(|(g, k)| Stage::of(g, k));
        assert_eq!(
            kinds,
            vec![
                ("", "Namespace"),
                ("", "Secret"),
                ("", "ConfigMap"),
                ("", "Service"),
                ("apps", "Deployment"),
                ("networking.k8s.io", "Ingress"),
            ]
        );
        assert!(prune_order("", "Namespace") > prune_order("apps", "Deployment"));
    }
}
