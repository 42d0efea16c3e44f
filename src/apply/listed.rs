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
    let items = read_list(
        text,
        Item {
            manager,
            metadata: false,
        },
    )?;
    Ok(RawList { items })
}

/// The items of a list response, each read with `item`.
fn read_list<'a, S: DeserializeSeed<'a> + Copy>(
    text: &'a str,
    item: S,
) -> Result<Vec<S::Value>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let items = ListSeed(item).deserialize(&mut de)?;
    de.end()?;
    Ok(items)
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

seed!(
    Item => Value,
    Entries => Value,
    Entry => Option<Value>,
    FingerprintItem => Fingerprinted,
    Owned => Value,
);

/// A list object: its `items`, each read with the item seed; every other field skipped.
struct ListSeed<S>(S);

impl<'de, S: DeserializeSeed<'de> + Copy> DeserializeSeed<'de> for ListSeed<S> {
    type Value = Vec<S::Value>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, S: DeserializeSeed<'de> + Copy> Visitor<'de> for ListSeed<S> {
    type Value = Vec<S::Value>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "items" {
                items = map.next_value_seed(Items(self.0))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(items)
    }
}

/// `items`: an array of objects (each read with the item seed), or null.
struct Items<S>(S);

impl<'de, S: DeserializeSeed<'de> + Copy> DeserializeSeed<'de> for Items<S> {
    type Value = Vec<S::Value>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, S: DeserializeSeed<'de> + Copy> Visitor<'de> for Items<S> {
    type Value = Vec<S::Value>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of objects or null")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(self.0)? {
            out.push(item);
        }
        Ok(out)
    }
}

/// One object (`metadata: false`): every field but `status`, its metadata read the same way
/// with `metadata: true`: every field, with only `manager`'s entries in `managedFields`.
#[derive(Clone, Copy)]
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

/// One listed object as the baseline check reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprinted {
    pub name: String,
    pub namespace: Option<String>,
    /// [`super::baseline::fingerprint`] of the object (`None`: `manager` has no apply entry).
    pub fingerprint: Option<String>,
}

/// Parses a list response of objects of `kind` into their fingerprints only. Each object is
/// built with just what the fingerprint reads (its metadata and the fields `manager` owns;
/// the rest is skipped unbuilt), so this costs a fraction of [`parse`]. The fingerprint is the
/// one the whole object has: owned fields are kept whole down to what the owned set names.
pub fn fingerprints(
    text: &str,
    manager: &str,
    kind: &str,
) -> Result<Vec<Fingerprinted>, serde_json::Error> {
    read_list(text, FingerprintItem { manager, kind })
}

/// One object, built with its metadata (as [`Item`] reads it) and the fields its owned set
/// names. A field that comes before `metadata` (no server writes one) is kept whole.
#[derive(Clone, Copy)]
struct FingerprintItem<'m> {
    manager: &'m str,
    kind: &'m str,
}

impl<'de> Visitor<'de> for FingerprintItem<'_> {
    type Value = Fingerprinted;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        use super::baseline::{owned_field, owned_fields, owns_whole};
        let (manager, kind) = (self.manager, self.kind);
        let mut out = Map::new();
        let mut metadata_seen = false;
        while let Some(key) = map.next_key::<String>()? {
            let value = match key.as_str() {
                "status" => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
                "metadata" => {
                    metadata_seen = true;
                    map.next_value_seed(Item {
                        manager,
                        metadata: true,
                    })?
                }
                _ if !metadata_seen => map.next_value::<Value>()?,
                _ => {
                    let owned = out
                        .get("metadata")
                        .and_then(|m| super::noop::apply_entry_of(m, manager))
                        .and_then(|entry| owned_fields(kind, entry));
                    match owned.as_deref().and_then(|o| owned_field(o, &key)) {
                        Some(set) if owns_whole(set) => map.next_value::<Value>()?,
                        Some(set) => map.next_value_seed(Owned { set })?,
                        None => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    }
                }
            };
            out.insert(key, value);
        }
        let object = Value::Object(out);
        let meta = |field: &str| {
            crate::manifest::at(&object, &["metadata", field])
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        Ok(Fingerprinted {
            name: meta("name").unwrap_or_default(),
            namespace: meta("namespace"),
            fingerprint: super::baseline::fingerprint(&object, kind, manager),
        })
    }
}

/// A value under an owned set with owned children: a mapping keeps only the owned keys
/// (each whole, or again by its set); anything else is kept whole.
struct Owned<'o> {
    set: &'o Value,
}

impl<'de> Visitor<'de> for Owned<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        use super::baseline::{owned_field, owns_whole};
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = match owned_field(self.set, &key) {
                Some(set) if owns_whole(set) => map.next_value::<Value>()?,
                Some(set) => map.next_value_seed(Owned { set })?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
    // Lists are kept whole: their owned items are found by key fields, which every item has.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element::<Value>()? {
            out.push(item);
        }
        Ok(Value::Array(out))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
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
    fn fingerprints_equal_those_of_the_whole_objects() {
        let entry = |fields: serde_json::Value| {
            json!({"manager": "kubesync", "operation": "Apply", "apiVersion": "v1",
                   "fieldsType": "FieldsV1", "fieldsV1": fields})
        };
        let theirs = json!({"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                            "fieldsV1": {"f:data": {"f:extra": {}}}});
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "a", "managedFields": [theirs,
                entry(json!({"f:metadata": {"f:labels": {"f:x": {}}}, "f:stringData": {"f:p": {}},
                             "f:type": {}}))],
                "labels": {"x": "1"}},
            "data": {"p": "cA==", "extra": "ZQ=="}, "type": "Opaque"});
        let service = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "a", "managedFields": [
                entry(json!({"f:spec": {"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}":
                    {".": {}, "f:port": {}, "f:targetPort": {}}}, "f:selector": {}}}))]},
            "spec": {"clusterIP": "10.0.0.1", "selector": {"app": "web"},
                     "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}]},
            "status": {"loadBalancer": {}}});
        // Owned fields that come before `metadata` are kept whole.
        let early = json!({"data": {"k": "v"}, "metadata": {"name": "early", "managedFields": [
            entry(json!({"f:data": {"f:k": {}}}))]}});
        let unmanaged = json!({"metadata": {"name": "plain"}, "data": {"k": "v"}});
        for (kind, items) in [
            ("Secret", vec![secret]),
            ("Service", vec![service]),
            ("ConfigMap", vec![early, unmanaged]),
        ] {
            let text = json!({"items": items}).to_string();
            let full = parse(&text, "kubesync").unwrap().items;
            let fast = fingerprints(&text, "kubesync", kind).unwrap();
            assert_eq!(full.len(), fast.len());
            for (whole, f) in full.iter().zip(&fast) {
                let want = crate::apply::baseline::fingerprint(whole, kind, "kubesync");
                assert_eq!(f.fingerprint, want, "{kind} {}", f.name);
                assert_eq!(Some(f.name.as_str()), whole["metadata"]["name"].as_str());
                assert_eq!(
                    f.namespace.as_deref(),
                    whole["metadata"]["namespace"].as_str()
                );
            }
        }
        let text = json!({"items": [{"metadata": {"name": "plain"}}]}).to_string();
        assert_eq!(
            fingerprints(&text, "kubesync", "ConfigMap").unwrap()[0].fingerprint,
            None
        );
        assert!(
            fingerprints(r#"{"items": null}"#, "k", "ConfigMap")
                .unwrap()
                .is_empty()
        );
        assert!(fingerprints(r#"{"items": [{"a": 1}"#, "k", "ConfigMap").is_err());
    }

    #[test]
    fn null_or_missing_items_are_none_and_bad_json_is_an_error() {
        assert!(parse(r#"{"items": null}"#, "k").unwrap().items.is_empty());
        assert!(parse(r#"{"kind": "List"}"#, "k").unwrap().items.is_empty());
        assert!(parse(r#"{"items": [{"a": 1}"#, "k").is_err());
        assert!(parse(r#"{"items": []} trailing"#, "k").is_err());
    }
}
