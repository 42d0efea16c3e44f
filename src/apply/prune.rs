//! Prune selection: which live objects a sync deletes, and the guards that stop a sync from
//! deleting by surprise.
//!
//! Pure. Candidates are only objects that carry this source's ownership labels (the caller
//! lists them by label selector); this module never widens that set.
use crate::manifest::ObjectId;
use std::collections::HashSet;

/// Why a prune was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PruneRefused {
    #[error(
        "refusing to prune: the source contains no objects (an empty or unreadable source never prunes)"
    )]
    EmptySource,
    #[error(
        "refusing to prune {prune} of {managed} managed objects (more than half); pass --allow-mass-prune if this is intended"
    )]
    MassPrune { prune: usize, managed: usize },
}

/// The managed live objects that the desired set no longer contains, in deletion order
/// (dependents first, Namespaces last).
pub fn select<'a>(
    desired: impl IntoIterator<Item = &'a ObjectId>,
    managed_live: impl IntoIterator<Item = &'a ObjectId>,
) -> Vec<ObjectId> {
    let desired: HashSet<Key<'_>> = desired.into_iter().map(key).collect();
    let mut out: Vec<ObjectId> = managed_live
        .into_iter()
        .filter(|id| !desired.contains(&key(id)))
        .cloned()
        .collect();
    out.sort_by(|a, b| {
        (super::order::prune_order(&a.group, &a.kind), a)
            .cmp(&(super::order::prune_order(&b.group, &b.kind), b))
    });
    out
}

/// Identity for pruning ignores the API version: `apps/v1` and `apps/v1beta1` of the same
/// object are the same object.
type Key<'a> = (&'a str, &'a str, Option<&'a str>, &'a str);

fn key(id: &ObjectId) -> Key<'_> {
    (&id.group, &id.kind, id.namespace.as_deref(), &id.name)
}

/// Refuses an empty source, and removing more than half of the managed objects unless
/// `allow_mass_prune`.
pub fn guard(
    desired_count: usize,
    managed: usize,
    prune: usize,
    allow_mass_prune: bool,
) -> Result<(), PruneRefused> {
    if desired_count == 0 {
        return Err(PruneRefused::EmptySource);
    }
    if !allow_mass_prune && prune * 2 > managed {
        return Err(PruneRefused::MassPrune { prune, managed });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn id(group: &str, kind: &str, name: &str) -> ObjectId {
        ObjectId {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            namespace: (kind != "Namespace").then(|| "default".into()),
            name: name.into(),
        }
    }

    #[test]
    fn selects_only_what_desired_lacks_dependents_first() {
        let desired: BTreeSet<_> =
            [id("", "ConfigMap", "a"), id("apps", "Deployment", "web")].into();
        let live: BTreeSet<_> = [
            id("", "ConfigMap", "a"),
            id("", "ConfigMap", "old"),
            id("", "Namespace", "team"),
            id("apps", "Deployment", "web"),
            id("apps", "Deployment", "gone"),
        ]
        .into();
        let pruned = select(&desired, &live);
        let names: Vec<_> = pruned.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["gone", "old", "team"]);
    }

    #[test]
    fn version_does_not_matter() {
        let mut d = id("apps", "Deployment", "web");
        d.version = "v1beta1".into();
        let desired: BTreeSet<_> = [d].into();
        let live: BTreeSet<_> = [id("apps", "Deployment", "web")].into();
        assert!(select(&desired, &live).is_empty());
    }

    #[test]
    fn guards() {
        assert_eq!(guard(0, 10, 10, true), Err(PruneRefused::EmptySource));
        assert_eq!(
            guard(4, 10, 6, false),
            Err(PruneRefused::MassPrune {
                prune: 6,
                managed: 10
            })
        );
        assert_eq!(guard(5, 10, 5, false), Ok(()));
        assert_eq!(guard(4, 10, 6, true), Ok(()));
        assert_eq!(guard(1, 0, 0, false), Ok(()));
    }
}
