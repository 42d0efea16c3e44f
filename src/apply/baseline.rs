//! The baseline: what a source's objects looked like when a sync left them settled, so that a
//! later sync of the same desired state can answer "nothing to do" from the listed live
//! objects alone, without reading, parsing and comparing the commit's files.
//!
//! A sync that ends `Synced` records, for each desired object, a fingerprint of the live
//! object as far as the no-op check ([`super::noop`]) can see it: `kubesync`'s own `Apply`
//! entry (its API version and `fieldsV1`) and the live values at the fields that entry owns.
//! The record is keyed by everything the desired objects are a function of (see
//! `engine::baseline_key`: the git tree of the path, the options that shape the objects, the
//! kubesync version). An object is recorded only when the no-op check calls its state
//! unchanged *and* every field of its desired body lies within the owned fields. So:
//!
//! > same key and same fingerprint ⇒ the no-op check would read exactly what it read when the
//! > record was made ⇒ it would answer "unchanged" again.
//!
//! That holds whenever the record was made: an old record is never wrong, only possibly
//! useless (a fingerprint that no longer matches sends the sync down the full path, which
//! compares as usual).
//!
//! Pure. Must not: fingerprint anything the no-op check does not read (the baseline would stop
//! matching for nothing) or leave out anything it does read (the baseline would be wrong).
use super::noop;
use crate::manifest::ObjectId;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

/// A ConfigMap or Secret a Deployment reads from the cluster: `(kind, namespace, name)`.
pub type ConfigRef = (String, String, String);

/// The record, stored as the inventory's `baseline` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Baseline {
    /// What the desired objects were derived from ([`key`] of its parts).
    pub key: String,
    /// Every desired object, with the [`fingerprint`] of the state the sync left it in.
    pub objects: HashMap<ObjectId, String>,
    /// The ConfigMaps/Secrets that Deployments read but git does not define (their data is in
    /// the Deployments' config hash), with [`config_fingerprint`] of what was read.
    pub configs: BTreeMap<ConfigRef, String>,
}

/// A record larger than this is not kept (the inventory ConfigMap must stay well under the
/// API server's 1 MiB): about 5,000 objects.
pub const MAX_TEXT: usize = 512 * 1024;

/// Bumped when the meaning of a fingerprint changes.
const FORMAT: &str = "kubesync-baseline/1";

/// The record's key: a digest of `parts` (each one thing the desired objects depend on).
pub fn key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(FORMAT.as_bytes());
    for part in parts {
        h.update([0]);
        h.update(part.as_bytes());
    }
    crate::hex(&h.finalize()[..16])
}

/// The fingerprint of a live object's state (an object of `kind`) as the no-op check for
/// `manager` sees it; `None` when the manager has no `Apply` entry on it. Only the fields the
/// entry owns are read: an object that holds just those (and its metadata) has the same
/// fingerprint as the whole object (see [`super::listed::fingerprints`]).
pub fn fingerprint(live: &Value, kind: &str, manager: &str) -> Option<String> {
    let entry = noop::apply_entry(live, manager)?;
    let owned = owned_fields(kind, entry)?;
    Some(fingerprint_of(live, entry, &owned))
}

/// The fingerprint to record for `live` as the settled state of `desired`: `None` unless the
/// no-op check calls it unchanged and the owned fields cover every field of `desired` (else a
/// matching fingerprint later would not mean "unchanged").
pub fn settled(desired: &Value, live: &Value, manager: &str) -> Option<String> {
    if !noop::is_unchanged(desired, live, manager) {
        return None;
    }
    let entry = noop::apply_entry(live, manager)?;
    let kind = desired
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let owned = owned_fields(kind, entry)?;
    covered(&noop::comparable_desired(desired), &owned, &mut Vec::new())
        .then(|| fingerprint_of(live, entry, &owned))
}

/// The fingerprint of a ConfigMap's or Secret's data as read from the cluster (`-`: absent).
pub fn config_fingerprint(body: Option<&Value>) -> String {
    let Some(body) = body else {
        return "-".into();
    };
    let mut h = Sha256::new();
    crate::transform::hash_config_data(&mut h, body);
    crate::hex(&h.finalize()[..16])
}

impl Baseline {
    /// The stored text (one record per line, sorted); `None` when over [`MAX_TEXT`].
    pub fn to_text(&self) -> Option<String> {
        let mut objects: Vec<(&ObjectId, &String)> = self.objects.iter().collect();
        objects.sort_unstable();
        let mut out = format!("key {}\n", self.key);
        for (id, fp) in objects {
            out.push_str(&format!(
                "object {fp} {}\n",
                super::inventory::format_id(id)
            ));
        }
        for ((kind, namespace, name), fp) in &self.configs {
            out.push_str(&format!("config {fp} {kind} {namespace}/{name}\n"));
        }
        (out.len() <= MAX_TEXT).then_some(out)
    }

    /// Reads [`Baseline::to_text`]'s output; `None` if any line is not one of its lines (a
    /// record that cannot be read whole is not used at all).
    pub fn parse(text: &str) -> Option<Baseline> {
        let mut lines = text.lines();
        let key = lines.next()?.strip_prefix("key ")?.to_string();
        let mut out = Baseline {
            key,
            objects: HashMap::new(),
            configs: BTreeMap::new(),
        };
        for line in lines {
            let (what, rest) = line.split_once(' ')?;
            let (fp, rest) = rest.split_once(' ')?;
            match what {
                "object" => {
                    let id = super::inventory::parse_id(rest)?;
                    out.objects.insert(id, fp.to_string());
                }
                "config" => {
                    let (kind, rest) = rest.split_once(' ')?;
                    let (namespace, name) = rest.split_once('/')?;
                    out.configs.insert(
                        (kind.to_string(), namespace.to_string(), name.to_string()),
                        fp.to_string(),
                    );
                }
                _ => return None,
            }
        }
        Some(out)
    }
}

/// The fields `entry` (on an object of `kind`) owns, as a `fieldsV1` set. A Secret's
/// write-only `stringData` keys are stored under `data`, so they count as owned there too (the
/// no-op check compares them as `data`).
pub(crate) fn owned_fields<'a>(kind: &str, entry: &'a Value) -> Option<Cow<'a, Value>> {
    let owned = entry.get("fieldsV1")?;
    let secret = kind == "Secret" && entry.get("apiVersion").and_then(Value::as_str) == Some("v1");
    let string_data = owned.get("f:stringData").and_then(Value::as_object);
    let (true, Some(string_data)) = (secret, string_data) else {
        return Some(Cow::Borrowed(owned));
    };
    let mut merged = owned.clone();
    if let Some(set) = merged.as_object_mut() {
        // `data` owned whole already covers every key; otherwise the keys are added to it.
        let whole = set.get("f:data").is_some_and(owns_whole);
        let data = set
            .entry("f:data")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(data) = data.as_object_mut()
            && !whole
        {
            for (k, v) in string_data {
                if k != "." {
                    data.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
    }
    Some(Cow::Owned(merged))
}

/// The set of a field in an owned set (`f:<field>`).
pub(crate) fn owned_field<'o>(owned: &'o Value, field: &str) -> Option<&'o Value> {
    owned
        .as_object()?
        .iter()
        .find(|(k, _)| k.strip_prefix("f:") == Some(field))
        .map(|(_, v)| v)
}

/// A set that owns its value as a whole: the fingerprint takes the whole value.
pub(crate) fn owns_whole(set: &Value) -> bool {
    set.as_object().is_none_or(is_leaf)
}

/// A set that owns a value as a whole (no owned children).
fn is_leaf(set: &Map<String, Value>) -> bool {
    set.keys().all(|k| k == ".")
}

/// The annotations the no-op check ignores (their values change with every commit).
fn is_volatile(path: &[&str], key: &str) -> bool {
    path.len() == 2
        && path[0] == "metadata"
        && path[1] == "annotations"
        && noop::VOLATILE_ANNOTATIONS.contains(&key)
}

/// Fields the server never lists as owned (it strips them from `fieldsV1`) that are the
/// object's identity: a baseline entry is matched to a live object by that identity, so they
/// need no fingerprint. (The other stripped fields, `uid`, `generation`, …, are not identity:
/// a desired object that sets them is not covered.)
fn is_identity(path: &[&str], key: &str) -> bool {
    match path {
        [] => key == "apiVersion" || key == "kind",
        ["metadata"] => key == "name" || key == "namespace",
        _ => false,
    }
}

/// Every field of `desired` lies within `owned` (a `fieldsV1` set), apart from its identity.
fn covered<'a>(desired: &'a Value, owned: &Value, path: &mut Vec<&'a str>) -> bool {
    let Some(set) = owned.as_object() else {
        return false;
    };
    // Owned as a whole (the fingerprint takes the whole live value), or field by field.
    let within = |value: &'a Value, children: &Value, path: &mut Vec<&'a str>| {
        children.as_object().is_some_and(is_leaf) || covered(value, children, path)
    };
    match desired {
        Value::Object(fields) => fields.iter().all(|(k, v)| {
            // A null is no value for the no-op check either; nor is an empty `status` (listed
            // objects carry none, so it is compared with nothing, and always matches).
            let empty_status = path.is_empty() && k == "status" && v.as_object().is_some_and(Map::is_empty);
            if v.is_null() || empty_status || is_volatile(path, k) || is_identity(path, k) {
                return true;
            }
            let Some(children) = set.get(&format!("f:{k}")) else {
                return false;
            };
            path.push(k);
            let ok = within(v, children, path);
            path.pop();
            ok
        }),
        Value::Array(items) => items.iter().enumerate().all(|(index, item)| {
            set.iter().any(|(entry, children)| {
                if let Some(key) = entry.strip_prefix("k:") {
                    matches!(serde_json::from_str::<Value>(key), Ok(Value::Object(key)) if noop::key_matches(&key, item))
                        && within(item, children, &mut Vec::new())
                } else if let Some(value) = entry.strip_prefix("v:") {
                    serde_json::from_str::<Value>(value).is_ok_and(|v| &v == item)
                } else if let Some(i) = entry.strip_prefix("i:") {
                    i.parse::<usize>() == Ok(index) && within(item, children, &mut Vec::new())
                } else {
                    false
                }
            })
        }),
        _ => false,
    }
}

fn fingerprint_of(live: &Value, entry: &Value, owned: &Value) -> String {
    let mut f = Feed(Vec::with_capacity(2048));
    f.str(
        entry
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or(""),
    );
    f.project(owned, live, &mut Vec::new());
    crate::hex(&Sha256::digest(&f.0)[..16])
}

/// Unambiguous (tagged, length-prefixed) pieces, gathered and then hashed in one go (many
/// small hasher updates cost more than the hashing).
struct Feed(Vec<u8>);

impl Feed {
    fn tag(&mut self, t: u8) {
        self.0.push(t);
    }

    fn str(&mut self, s: &str) {
        self.0.extend_from_slice(&(s.len() as u64).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }

    /// The live values at the fields of `owned` (sorted, so the server's key order does not
    /// matter), with a mark for each owned field that is absent.
    fn project<'a>(&mut self, owned: &'a Value, live: &Value, path: &mut Vec<&'a str>) {
        let Some(set) = owned.as_object() else {
            return;
        };
        let mut entries: Vec<(&'a String, &'a Value)> =
            set.iter().filter(|(k, _)| k.as_str() != ".").collect();
        // Servers send `fieldsV1` sorted; sorting costs only when one does not.
        if !entries.is_sorted_by(|a, b| a.0 <= b.0) {
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        }
        for (entry, children) in entries {
            self.tag(b'k');
            self.str(entry);
            let child = match noop::member(entry, live) {
                noop::Member::Present(present) => {
                    self.tag(if present { b'+' } else { b'-' });
                    continue;
                }
                noop::Member::Field(child) | noop::Member::Item(child) => child,
            };
            let name = entry.strip_prefix("f:").unwrap_or("");
            let Some(child) = child else {
                self.tag(b'-');
                continue;
            };
            let leaf = owns_whole(children);
            if leaf && is_volatile(path, name) {
                self.tag(b'+');
            } else if leaf {
                self.tag(b'=');
                self.value(child);
            } else {
                self.tag(b'>');
                path.push(name);
                self.project(children, child, path);
                path.pop();
            }
        }
        self.tag(b'.');
    }

    /// A whole value, object keys sorted.
    fn value(&mut self, v: &Value) {
        match v {
            Value::Null => self.tag(b'n'),
            Value::Bool(b) => self.tag(if *b { b't' } else { b'f' }),
            Value::Number(n) => {
                self.tag(b'#');
                self.str(&n.to_string());
            }
            Value::String(s) => {
                self.tag(b's');
                self.str(s);
            }
            Value::Array(items) => {
                self.tag(b'[');
                self.0
                    .extend_from_slice(&(items.len() as u64).to_le_bytes());
                for item in items {
                    self.value(item);
                }
            }
            Value::Object(map) => {
                self.tag(b'{');
                self.0.extend_from_slice(&(map.len() as u64).to_le_bytes());
                let mut fields: Vec<(&String, &Value)> = map.iter().collect();
                if !fields.is_sorted_by(|a, b| a.0 <= b.0) {
                    fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
                }
                for (k, v) in fields {
                    self.str(k);
                    self.value(v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn desired() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default",
                "labels": {"app": "web"},
                "annotations": {"kubesync.io/commit": "bbbb"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                        "ports": [{"containerPort": 80}]}]}}}})
    }

    fn live() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "resourceVersion": "7",
                "labels": {"app": "web"},
                "annotations": {"kubesync.io/commit": "aaaa", "deployment.kubernetes.io/revision": "1"},
                "managedFields": [
                    {"manager": "kubesync", "operation": "Apply", "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}, "f:annotations": {"f:kubesync.io/commit": {}}},
                      "f:spec": {"f:replicas": {}, "f:selector": {},
                        "f:template": {"f:metadata": {"f:labels": {"f:app": {}}},
                          "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {},
                            "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}}}}}}}]},
            "spec": {"replicas": 2, "progressDeadlineSeconds": 600, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}},
            "status": {"replicas": 2}})
    }

    #[test]
    fn settled_state_is_recorded_and_matches_itself() {
        let fp = settled(&desired(), &live(), "kubesync").unwrap();
        assert_eq!(
            fingerprint(&live(), "Deployment", "kubesync").as_deref(),
            Some(fp.as_str())
        );
        assert_eq!(fp.len(), 32);
    }

    #[test]
    fn what_the_no_op_check_ignores_keeps_the_fingerprint() {
        let fp = fingerprint(&live(), "Deployment", "kubesync").unwrap();
        let mut l = live();
        l["status"]["replicas"] = json!(3);
        l["metadata"]["resourceVersion"] = json!("8");
        l["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = json!("2");
        l["metadata"]["annotations"]["kubesync.io/commit"] = json!("cccc");
        l["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("Always");
        l["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "sidecar", "image": "envoy"}));
        assert_eq!(fingerprint(&l, "Deployment", "kubesync").unwrap(), fp);
    }

    #[test]
    fn what_the_no_op_check_reads_changes_the_fingerprint() {
        let fp = fingerprint(&live(), "Deployment", "kubesync").unwrap();
        let changes: [fn(&mut Value); 6] = [
            |l| l["spec"]["replicas"] = json!(3),
            |l| l["spec"]["selector"]["matchLabels"]["tier"] = json!("x"),
            |l| l["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28"),
            |l| l["metadata"]["labels"]["app"] = json!("other"),
            |l| l["metadata"]["managedFields"][0]["apiVersion"] = json!("apps/v1beta2"),
            |l| {
                l["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]
                    .as_object_mut()
                    .unwrap()
                    .remove("f:replicas");
            },
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut l = live();
            change(&mut l);
            assert_ne!(
                fingerprint(&l, "Deployment", "kubesync").unwrap(),
                fp,
                "change {i}"
            );
        }
        let mut l = live();
        l["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(81);
        assert_ne!(
            fingerprint(&l, "Deployment", "kubesync").unwrap(),
            fp,
            "key of an owned item"
        );
        assert!(fingerprint(&live(), "Deployment", "kubectl").is_none());
    }

    #[test]
    fn not_recorded_unless_unchanged_and_covered() {
        let mut d = desired();
        d["spec"]["replicas"] = json!(3);
        assert!(settled(&d, &live(), "kubesync").is_none(), "a change");
        // A desired field someone else owns: unchanged now, but the fingerprint would not see
        // it change.
        let mut d = desired();
        d["spec"]["progressDeadlineSeconds"] = json!(600);
        assert!(noop::is_unchanged(&d, &live(), "kubesync"));
        assert!(settled(&d, &live(), "kubesync").is_none(), "not covered");
    }

    #[test]
    fn nulls_and_an_empty_status_need_no_owner() {
        let mut d = desired();
        d["metadata"]["creationTimestamp"] = Value::Null;
        d["status"] = json!({});
        assert!(settled(&d, &live(), "kubesync").is_some());
        d["status"] = json!({"replicas": 1});
        assert!(settled(&d, &live(), "kubesync").is_none());
    }

    #[test]
    fn secret_string_data_is_fingerprinted_as_data() {
        let d = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"password": "hunter2"}});
        let l = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "managedFields": [
            {"manager": "kubesync", "operation": "Apply", "apiVersion": "v1",
             "fieldsV1": {"f:metadata": {"f:name": {}}, "f:stringData": {".": {}, "f:password": {}}}}]},
            "data": {"password": "aHVudGVyMg=="}, "type": "Opaque"});
        let fp = settled(&d, &l, "kubesync").unwrap();
        let mut l2 = l.clone();
        l2["data"]["password"] = json!("b3RoZXI=");
        assert_ne!(fingerprint(&l2, "Secret", "kubesync").unwrap(), fp);
        let mut l3 = l.clone();
        l3["data"]["other"] = json!("eA==");
        assert_eq!(fingerprint(&l3, "Secret", "kubesync").unwrap(), fp);
    }

    #[test]
    fn text_round_trip() {
        let id = |line: &str| super::super::inventory::parse_id(line).unwrap();
        let b = Baseline {
            key: key(&["tree", "source"]),
            objects: [
                (id("apps/v1 Deployment default/web"), "a".repeat(32)),
                (id("v1 Namespace team"), "b".repeat(32)),
            ]
            .into(),
            configs: [(
                (
                    "ConfigMap".to_string(),
                    "default".to_string(),
                    "env".to_string(),
                ),
                "-".to_string(),
            )]
            .into(),
        };
        let text = b.to_text().unwrap();
        assert_eq!(Baseline::parse(&text), Some(b));
        assert!(Baseline::parse("key k\nobject x\n").is_none());
        assert!(Baseline::parse("").is_none());
        assert_ne!(key(&["a", "bc"]), key(&["ab", "c"]));
    }
}
