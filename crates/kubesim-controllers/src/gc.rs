//! The garbage collector (background propagation, k8s-semantics §1.18) for one object.
//!
//! Owns: deleting an object whose every ownerReference points to an owner uid that no
//! longer exists. Must not: look up owners itself (the driver answers `owner_exists`), or
//! handle foreground/orphan finalizers (the store does).

use serde_json::Value;

use crate::obj::{self, at, name, namespace, str_at, uid};
use crate::{Reconciled, Write};

/// Objects whose every ownerReference points to a uid that no longer exists → Delete.
pub fn sync(obj: &Value, owner_exists: &dyn Fn(&str) -> bool) -> Reconciled {
    let mut out = Reconciled::default();
    let Some(refs) = at(obj, &["metadata", "ownerReferences"]).and_then(Value::as_array) else {
        return out;
    };
    if refs.is_empty() || obj::is_deleting(obj) {
        return out;
    }
    let orphaned = refs.iter().all(|r| {
        let owner = r.get("uid").and_then(Value::as_str).unwrap_or_default();
        !owner_exists(owner)
    });
    if orphaned {
        out.writes.push(Write::Delete {
            api_version: str_at(obj, &["apiVersion"]).unwrap_or_default().to_string(),
            kind: str_at(obj, &["kind"]).unwrap_or_default().to_string(),
            namespace: namespace(obj).map(str::to_string),
            name: name(obj).to_string(),
            uid: uid(obj).to_string(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deletes_only_when_all_owners_are_gone() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1",
                "ownerReferences": [{"uid": "a"}, {"uid": "b"}]}});
        assert!(sync(&pod, &|u| u == "a").writes.is_empty());
        let r = sync(&pod, &|_| false);
        assert_eq!(
            r.writes,
            vec![Write::Delete {
                api_version: "v1".into(),
                kind: "Pod".into(),
                namespace: Some("ns".into()),
                name: "p".into(),
                uid: "u1".into()
            }]
        );
        let free = json!({"metadata": {"name": "x"}});
        assert!(sync(&free, &|_| false).writes.is_empty());
    }
}
