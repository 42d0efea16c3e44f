//! Field sets as used by `managedFields`: a tree of path elements in their `FieldsV1` spelling
//! (`f:<field>`, `k:<json>`, `v:<json>`, `i:<n>`), set algebra over them, and the rendering of
//! paths for conflict messages (`.spec.template.spec.containers[name="web"].image`).
//!
//! Owns: the `FieldsV1` encoding and the identity of list items (map-list keys, set values).
//! Must not: decide who owns what — that is [`crate::apply`]'s job.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use crate::schema::{ListType, Schema, key_default};

/// A set of field paths. Children are keyed by their encoded path element; `member` says the
/// node itself is in the set (the `.` entry of `FieldsV1`, or a leaf).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSet {
    pub(crate) member: bool,
    pub(crate) children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    pub(crate) fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    /// A leaf member with no children.
    pub(crate) fn leaf() -> FieldSet {
        FieldSet {
            member: true,
            children: BTreeMap::new(),
        }
    }

    /// Decodes a `fieldsV1` object; anything malformed is skipped.
    pub(crate) fn from_fields_v1(v: &Value) -> FieldSet {
        let mut set = FieldSet::default();
        if let Value::Object(m) = v {
            for (k, child) in m {
                if k == "." {
                    set.member = true;
                    continue;
                }
                let mut c = FieldSet::from_fields_v1(child);
                if c.children.is_empty() {
                    // `{}` = a leaf member.
                    c.member = true;
                }
                set.children.insert(k.clone(), c);
            }
        }
        set
    }

    /// Encodes as a `fieldsV1` object (`.` first, then children in sorted order).
    pub(crate) fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".to_owned(), Value::Object(Map::new()));
        }
        for (k, c) in &self.children {
            m.insert(k.clone(), c.to_fields_v1());
        }
        Value::Object(m)
    }

    pub(crate) fn union_with(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (k, oc) in &other.children {
            match self.children.get_mut(k) {
                Some(c) => c.union_with(oc),
                None => {
                    self.children.insert(k.clone(), oc.clone());
                }
            }
        }
    }

    /// `self − other`, path by path (a member of `other` removes only that exact path).
    pub(crate) fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (k, c) in &self.children {
            let d = match other.children.get(k) {
                Some(oc) => c.difference(oc),
                None => c.clone(),
            };
            if !d.is_empty() {
                out.children.insert(k.clone(), d);
            }
        }
        out
    }

    pub(crate) fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (k, c) in &self.children {
            if let Some(oc) = other.children.get(k) {
                let i = c.intersection(oc);
                if !i.is_empty() {
                    out.children.insert(k.clone(), i);
                }
            }
        }
        out
    }

    /// Removes every member of `removed` together with everything below it.
    pub(crate) fn remove_subtrees(&mut self, removed: &FieldSet) {
        for (k, rc) in &removed.children {
            if rc.member {
                self.children.remove(k);
            } else if let Some(c) = self.children.get_mut(k) {
                c.remove_subtrees(rc);
                if c.is_empty() {
                    self.children.remove(k);
                }
            }
        }
    }

    /// Every member path, rendered for messages, in sorted order.
    pub(crate) fn member_paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut prefix = String::new();
        self.collect_paths(&mut prefix, &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut String, out: &mut Vec<String>) {
        if self.member {
            out.push(prefix.clone());
        }
        for (k, c) in &self.children {
            let len = prefix.len();
            render_element(k, prefix);
            c.collect_paths(prefix, out);
            prefix.truncate(len);
        }
    }
}

/// The members of `set` that are also members of the encoded `fieldsV1` value `v1` (no decoding
/// of `v1`, so checking an untouched managedFields entry allocates only for the result).
pub(crate) fn intersection_v1(set: &FieldSet, v1: &Value) -> FieldSet {
    let mut out = FieldSet::default();
    let Value::Object(m) = v1 else {
        return out;
    };
    out.member = set.member && (m.is_empty() || m.contains_key("."));
    for (k, c) in &set.children {
        if let Some(vc) = m.get(k) {
            let i = intersection_v1(c, vc);
            if !i.is_empty() {
                out.children.insert(k.clone(), i);
            }
        }
    }
    out
}

/// Whether `set` equals the encoded `fieldsV1` value `v1`.
pub(crate) fn eq_v1(set: &FieldSet, v1: &Value) -> bool {
    let Value::Object(m) = v1 else {
        return false;
    };
    if set.children.is_empty() {
        // `{}` is a leaf member (or, at the root, the empty set).
        return m.is_empty();
    }
    let dot = m.contains_key(".");
    dot == set.member
        && m.len() == set.children.len() + usize::from(dot)
        && set
            .children
            .iter()
            .all(|(k, c)| m.get(k).is_some_and(|vc| eq_v1(c, vc)))
}

/// Whether the encoded `v1` has any path at or below a member of `removed`.
pub(crate) fn has_subtree_v1(removed: &FieldSet, v1: &Value) -> bool {
    let Value::Object(m) = v1 else {
        return false;
    };
    removed.children.iter().any(|(k, rc)| {
        m.get(k)
            .is_some_and(|vc| rc.member || has_subtree_v1(rc, vc))
    })
}

/// Appends one encoded path element in the message form of structured-merge-diff.
pub(crate) fn render_element(element: &str, out: &mut String) {
    if let Some(name) = element.strip_prefix("f:") {
        out.push('.');
        out.push_str(name);
    } else if let Some(json) = element.strip_prefix("k:") {
        out.push('[');
        match serde_json::from_str::<Map<String, Value>>(json) {
            Ok(fields) => {
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(k);
                    out.push('=');
                    out.push_str(&v.to_string());
                }
            }
            Err(_) => out.push_str(json),
        }
        out.push(']');
    } else if let Some(json) = element.strip_prefix("v:") {
        out.push_str("[=");
        out.push_str(json);
        out.push(']');
    } else if let Some(index) = element.strip_prefix("i:") {
        out.push('[');
        out.push_str(index);
        out.push(']');
    } else {
        out.push_str(element);
    }
}

/// The encoded path element of a struct/map field (`f:<name>`).
pub(crate) fn field_element(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 2);
    s.push_str("f:");
    s.push_str(name);
    s
}

/// The encoded identity of a map-list item (`k:{"containerPort":80,"protocol":"TCP"}`), with key
/// fields in sorted order and defaults filled in. `None` if the item is not an object or lacks a
/// key field that has no default.
pub(crate) fn item_key(item: &Value, keys: &[&str]) -> Option<String> {
    let obj = item.as_object()?;
    let mut sorted: Vec<&str> = keys.to_vec();
    sorted.sort_unstable();
    let mut s = String::from("k:{");
    for (i, k) in sorted.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push('"');
        s.push_str(k);
        s.push_str("\":");
        match obj.get(*k) {
            Some(v) if !v.is_null() => s.push_str(&v.to_string()),
            _ => {
                let d = key_default(k)?;
                s.push_str(&Value::String(d.to_owned()).to_string());
            }
        }
    }
    s.push('}');
    Some(s)
}

/// The encoded identity of a set item (`v:"foo"`).
pub(crate) fn value_key(item: &Value) -> String {
    let mut s = String::from("v:");
    s.push_str(&item.to_string());
    s
}

/// The identity of each item of a keyed list (map-list or set) at `path`; `None` for atomic
/// lists. Items without a usable key get `i:<index>` so they never match a keyed element.
pub(crate) fn item_keys(schema: &Schema, path: &[&str], items: &[Value]) -> Option<Vec<String>> {
    match schema.list_type(path) {
        ListType::Atomic => None,
        ListType::Set => Some(items.iter().map(value_key).collect()),
        ListType::Map(keys) => Some(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| item_key(item, keys).unwrap_or_else(|| format!("i:{i}")))
                .collect(),
        ),
    }
}

/// Index from item identity to position (first occurrence wins).
pub(crate) fn key_index(keys: &[String]) -> HashMap<&str, usize> {
    let mut m = HashMap::with_capacity(keys.len());
    for (i, k) in keys.iter().enumerate() {
        m.entry(k.as_str()).or_insert(i);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_v1_round_trip() {
        let v = json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}}}
            }
        });
        let set = FieldSet::from_fields_v1(&v);
        assert_eq!(set.to_fields_v1(), v);
        assert_eq!(
            set.member_paths(),
            vec![
                ".metadata.labels.app",
                ".spec.replicas",
                ".spec.selector",
                ".spec.template.spec.containers[name=\"web\"]",
                ".spec.template.spec.containers[name=\"web\"].image",
                ".spec.template.spec.containers[name=\"web\"].name",
            ]
        );
    }

    #[test]
    fn set_algebra() {
        let a = FieldSet::from_fields_v1(&json!({"f:a": {}, "f:b": {"f:c": {}, "f:d": {}}}));
        let b = FieldSet::from_fields_v1(&json!({"f:b": {"f:c": {}}, "f:e": {}}));
        assert_eq!(
            a.difference(&b).to_fields_v1(),
            json!({"f:a": {}, "f:b": {"f:d": {}}})
        );
        assert_eq!(
            a.intersection(&b).to_fields_v1(),
            json!({"f:b": {"f:c": {}}})
        );
        let mut u = a.clone();
        u.union_with(&b);
        assert_eq!(
            u.to_fields_v1(),
            json!({"f:a": {}, "f:b": {"f:c": {}, "f:d": {}}, "f:e": {}})
        );
        let mut r = a.clone();
        r.remove_subtrees(&FieldSet::from_fields_v1(&json!({"f:b": {}})));
        assert_eq!(r.to_fields_v1(), json!({"f:a": {}}));
    }

    #[test]
    fn encoded_comparisons() {
        let v1 = json!({"f:a": {}, "f:b": {".": {}, "f:c": {}}});
        let set = FieldSet::from_fields_v1(&v1);
        assert!(eq_v1(&set, &v1));
        assert!(!eq_v1(&set, &json!({"f:a": {}, "f:b": {"f:c": {}}})));
        assert!(!eq_v1(&set, &json!({"f:a": {}})));
        assert!(eq_v1(&FieldSet::default(), &json!({})));
        let probe = FieldSet::from_fields_v1(&json!({"f:b": {"f:c": {}, "f:d": {}}, "f:x": {}}));
        assert_eq!(
            intersection_v1(&probe, &v1).to_fields_v1(),
            json!({"f:b": {"f:c": {}}})
        );
        assert!(has_subtree_v1(
            &FieldSet::from_fields_v1(&json!({"f:b": {}})),
            &v1
        ));
        assert!(!has_subtree_v1(
            &FieldSet::from_fields_v1(&json!({"f:x": {}})),
            &v1
        ));
    }

    #[test]
    fn keys_and_rendering() {
        let port = json!({"containerPort": 80});
        let k = item_key(&port, &["containerPort", "protocol"]);
        assert_eq!(
            k.as_deref(),
            Some("k:{\"containerPort\":80,\"protocol\":\"TCP\"}")
        );
        assert_eq!(item_key(&json!({"image": "x"}), &["name"]), None);
        assert_eq!(value_key(&json!("foo")), "v:\"foo\"");
        let mut s = String::new();
        render_element(k.as_deref().unwrap_or_default(), &mut s);
        render_element("v:\"a\"", &mut s);
        render_element("i:3", &mut s);
        assert_eq!(s, "[containerPort=80,protocol=\"TCP\"][=\"a\"][3]");
    }
}
