//! Reading a list of managed objects: each item as JSON, less what no reader of a listed
//! object uses. An item's `status` and the `managedFields` entries of other managers (the
//! controllers' status writers, mostly) are skipped while parsing: on a list of Deployments
//! they are over a third of the bytes, and building them into values was a large share of a
//! no-op sync's CPU time.
//!
//! Owns: the shape of a listed object. Must not: drop anything the no-op check
//! ([`super::noop`]), the diff (which strips status and managedFields anyway) or the rollout
//! code reads from a listed object: its spec/data, metadata, and `kubesync`'s own entries.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// A list response: only its items are kept (`null` items, as some servers send for an empty
/// list, read as none).
pub struct RawList {
    pub items: Vec<Value>,
}

/// Parses a list response (JSON text) of objects managed by `manager`.
pub fn parse(text: &str, manager: &str) -> Result<RawList, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let list = ListSeed { manager }.deserialize(&mut de)?;
    de.end()?;
    Ok(list)
}

/// A seed that hands the whole value to its own `Visitor` impl (which picks what to build).
macro_rules! seed {
    ($($ty:ident => $out:ty),* $(,)?) => {$(
        impl<'de> DeserializeSeed<'de> for $ty<'_> {
            type Value = $out;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<$out, D::Error> {
                d.deserialize_any(self)
            }
        }
    )*};
}

seed!(Items => Vec<Value>, Item => Value, Entries => Value, Entry => Option<Value>);

struct ListSeed<'m> {
    manager: &'m str,
}

impl<'de> DeserializeSeed<'de> for ListSeed<'_> {
    type Value = RawList;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RawList, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ListSeed<'_> {
    type Value = RawList;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawList, A::Error> {
        let mut items = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "items" {
                items = map.next_value_seed(Items {
                    manager: self.manager,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(RawList { items })
    }
}

/// `items`: an array of objects, or null.
struct Items<'m> {
    manager: &'m str,
}

impl<'de> Visitor<'de> for Items<'_> {
    type Value = Vec<Value>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of objects or null")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Vec<Value>, E> {
        Ok(Vec::new())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Value>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(Item {
            manager: self.manager,
            metadata: false,
        })? {
            out.push(item);
        }
        Ok(out)
    }
}

/// One object (`metadata: false`): every field but `status`, its metadata read the same way
/// with `metadata: true`: every field, with only `manager`'s entries in `managedFields`.
struct Item<'m> {
    manager: &'m str,
    metadata: bool,
}

impl<'de> Visitor<'de> for Item<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.metadata {
            "object metadata"
        } else {
            "an object"
        })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let manager = self.manager;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = match (self.metadata, key.as_str()) {
                (false, "status") => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
                (false, "metadata") => map.next_value_seed(Item {
                    manager,
                    metadata: true,
                })?,
                (true, "managedFields") => map.next_value_seed(Entries { manager })?,
                _ => map.next_value::<Value>()?,
            };
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// `managedFields`: the entries of `manager` (others are skipped unread where their
/// `manager` comes first, as servers write it).
struct Entries<'m> {
    manager: &'m str,
}

impl<'de> Visitor<'de> for Entries<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("managedFields entries")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(entry) = seq.next_element_seed(Entry {
            manager: self.manager,
        })? {
            out.extend(entry);
        }
        Ok(Value::Array(out))
    }
}

/// One managedFields entry, or `None` when it belongs to another manager.
struct Entry<'m> {
    manager: &'m str,
}

impl<'de> Visitor<'de> for Entry<'_> {
    type Value = Option<Value>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a managedFields entry")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Value>, A::Error> {
        let mut out = Map::new();
        let mut first = true;
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value::<Value>()?;
            if first && key == "manager" && value.as_str() != Some(self.manager) {
                // Someone else's entry: the rest is skipped without building it.
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                return Ok(None);
            }
            first = false;
            out.insert(key, value);
        }
        let ours = out.get("manager").and_then(Value::as_str) == Some(self.manager);
        Ok(ours.then_some(Value::Object(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_all_but_status_and_other_managers_entries() {
        let ours = json!({"manager": "kubesync", "operation": "Apply", "apiVersion": "apps/v1",
                          "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}});
        // `manager` not first: still read, and kept or dropped by its value.
        let ours_late = json!({"operation": "Update", "manager": "kubesync", "fieldsV1": {}});
        let theirs = json!({"manager": "kube-controller-manager", "operation": "Update",
                            "subresource": "status", "fieldsV1": {"f:status": {}}});
        let theirs_late = json!({"operation": "Update", "manager": "kubectl-edit"});
        let item = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "ns", "labels": {"a": "b"},
                         "annotations": {"deployment.kubernetes.io/revision": "3"},
                         "managedFields": [theirs, ours, theirs_late, ours_late]},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c"}]}}},
            "status": {"replicas": 2, "conditions": [{"type": "Available"}]},
        });
        let text = json!({"kind": "DeploymentList", "apiVersion": "apps/v1",
                          "metadata": {"resourceVersion": "9"}, "items": [item.clone()]})
        .to_string();
        let list = parse(&text, "kubesync").unwrap();
        let mut want = item;
        want.as_object_mut().unwrap().remove("status");
        want["metadata"]["managedFields"] = json!([ours, ours_late]);
        assert_eq!(list.items, vec![want]);
    }

    #[test]
    fn null_or_missing_items_are_none_and_bad_json_is_an_error() {
        assert!(parse(r#"{"items": null}"#, "k").unwrap().items.is_empty());
        assert!(parse(r#"{"kind": "List"}"#, "k").unwrap().items.is_empty());
        assert!(parse(r#"{"items": [{"a": 1}"#, "k").is_err());
        assert!(parse(r#"{"items": []} trailing"#, "k").is_err());
    }
}
