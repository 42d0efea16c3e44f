//! Manifest loading: YAML/JSON bytes of a commit's files → validated [`Object`]s.
//!
//! Pure: never touches git, the filesystem or the cluster. Every error names the file, the
//! document index and the line. One bad document fails the whole set. All YAML parsing
//! lives in [`yaml`], so the parser could be swapped in one place.
use crate::source::Snapshot;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{HashMap, HashSet};

mod scope;
pub mod yaml;

pub use scope::is_namespaced;

/// The identity of a Kubernetes object: two documents with the same id are duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectId {
    /// API group, empty for the core group.
    pub group: String,
    pub version: String,
    pub kind: String,
    /// `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectId {
    /// The identity without the version: what "the same object" means across commits and
    /// for duplicates (`apps/v1` and `apps/v1beta1` Deployments named `web` are one object).
    pub fn key(&self) -> (&str, &str, Option<&str>, &str) {
        (
            &self.group,
            &self.kind,
            self.namespace.as_deref(),
            &self.name,
        )
    }
}

/// `Kind namespace/name`, or `Kind name` for cluster-scoped objects.
impl std::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// Where a document came from, for error messages and reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// Path relative to the repository root.
    pub file: String,
    /// 0-based index of the document within the file (after `List` flattening, the index of
    /// the enclosing document).
    pub document: usize,
    /// 1-based line where the document starts.
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{} (document {})",
            self.file, self.line, self.document
        )
    }
}

/// One desired object: its identity, its body as JSON, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub id: ObjectId,
    pub body: serde_json::Value,
    pub origin: Origin,
}

/// How to load a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Namespace given to namespaced objects that name none (`--namespace`).
    pub default_namespace: String,
    /// Files larger than this are an error (default 4 MiB).
    pub max_file_bytes: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            default_namespace: "default".to_string(),
            max_file_bytes: 4 * 1024 * 1024,
        }
    }
}

/// One problem in one document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadError {
    pub file: String,
    pub document: usize,
    /// 1-based line in the file.
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: document {}: {}",
            self.file, self.line, self.document, self.message
        )
    }
}

/// Every problem found in a snapshot (loading never stops at the first one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} invalid manifest(s):\n{}", .errors.len(), .errors.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
pub struct LoadErrors {
    pub errors: Vec<LoadError>,
}

impl LoadErrors {
    /// A fixed string for metrics labels.
    pub fn kind(&self) -> &'static str {
        "invalid_manifest"
    }
}

/// A decoded document before validation.
#[derive(Debug, Clone)]
struct Raw {
    value: Value,
    origin: Origin,
}

/// The value at `path` (object keys, outermost first): `Value::pointer` without building a
/// pointer string or unescaping every token (hot paths read a few fields of every object).
pub fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

/// Decoded documents by file, reused when the same file has the same bytes in another
/// commit: previewing two commits (and searching history for reverts) then parses only
/// the files that changed. Validation still runs on every load (it depends on the whole
/// set and the options).
#[derive(Debug, Default)]
pub struct Cache {
    files: HashMap<String, CachedFile>,
}

#[derive(Debug)]
struct CachedFile {
    bytes: Vec<u8>,
    raws: Vec<Raw>,
    errors: Vec<LoadError>,
}

/// Loads and validates every document of a snapshot. Returns all objects, or every error.
pub fn load(snapshot: &Snapshot, opts: &LoadOptions) -> Result<Vec<Object>, LoadErrors> {
    let files: Vec<&crate::source::File> = snapshot
        .files
        .iter()
        .filter(|f| !oversize(f, opts))
        .collect();
    let mut decoded = decode_files(&files)?.into_iter();
    let mut errors = Vec::new();
    let mut raws = Vec::new();
    for file in &snapshot.files {
        if oversize(file, opts) {
            errors.push(oversize_error(file, opts));
        } else if let Some((file_raws, file_errors)) = decoded.next() {
            raws.extend(file_raws);
            errors.extend(file_errors);
        }
    }
    validate_all(raws, errors, opts)
}

/// [`load`], reusing (and filling) `cache` for files whose bytes are unchanged.
pub fn load_cached(
    snapshot: &Snapshot,
    opts: &LoadOptions,
    cache: &mut Cache,
) -> Result<Vec<Object>, LoadErrors> {
    let misses: Vec<&crate::source::File> = snapshot
        .files
        .iter()
        .filter(|f| !oversize(f, opts))
        .filter(|f| cache.files.get(&f.path).is_none_or(|c| c.bytes != f.bytes))
        .collect();
    let decoded = decode_files(&misses)?;
    for (file, (raws, errors)) in misses.iter().zip(decoded) {
        cache.files.insert(
            file.path.clone(),
            CachedFile {
                bytes: file.bytes.clone(),
                raws,
                errors,
            },
        );
    }
    let mut errors = Vec::new();
    let mut raws = Vec::new();
    for file in &snapshot.files {
        if oversize(file, opts) {
            errors.push(oversize_error(file, opts));
            continue;
        }
        if let Some(hit) = cache.files.get(&file.path) {
            raws.extend(hit.raws.iter().cloned());
            errors.extend(hit.errors.iter().cloned());
        }
    }
    validate_all(raws, errors, opts)
}

fn oversize(file: &crate::source::File, opts: &LoadOptions) -> bool {
    file.bytes.len() as u64 > opts.max_file_bytes
}

fn oversize_error(file: &crate::source::File, opts: &LoadOptions) -> LoadError {
    LoadError {
        file: file.path.clone(),
        document: 0,
        line: 1,
        message: format!(
            "file is {} bytes, over the limit of {} bytes",
            file.bytes.len(),
            opts.max_file_bytes
        ),
    }
}

/// One file's decoded documents and its decoding errors.
type Decoded = (Vec<Raw>, Vec<LoadError>);

/// The decoded documents and errors of each of `files`, in order, parsed spread over the
/// available cores.
fn decode_files(files: &[&crate::source::File]) -> Result<Vec<Decoded>, LoadErrors> {
    let decode = |chunk: &mut [&crate::source::File]| {
        chunk
            .iter()
            .map(|f| {
                let (mut raws, mut errors) = (Vec::new(), Vec::new());
                decode_file(&f.path, &f.bytes, &mut raws, &mut errors);
                (raws, errors)
            })
            .collect::<Vec<_>>()
    };
    let decoded = crate::in_chunks(&mut files.to_vec(), 64, decode).map_err(|_| LoadErrors {
        errors: vec![LoadError {
            file: String::new(),
            document: 0,
            line: 1,
            message: "internal error: the manifest parser panicked".to_string(),
        }],
    })?;
    Ok(decoded.into_iter().flatten().collect())
}

/// Validates decoded documents (duplicates across files included) into objects, or
/// returns every error (`errors` holds those found while decoding).
fn validate_all(
    raws: Vec<Raw>,
    mut errors: Vec<LoadError>,
    opts: &LoadOptions,
) -> Result<Vec<Object>, LoadErrors> {
    let crd_scopes = crd_scopes(&raws);
    let mut objects = Vec::with_capacity(raws.len());
    let mut seen: HashMap<(String, String, Option<String>, String), Origin> = HashMap::new();
    for raw in raws {
        match validate(raw.value, &raw.origin, opts, &crd_scopes) {
            Ok(object) => {
                let key = (
                    object.id.group.clone(),
                    object.id.kind.clone(),
                    object.id.namespace.clone(),
                    object.id.name.clone(),
                );
                if let Some(first) = seen.get(&key) {
                    errors.push(error_at(
                        &raw.origin,
                        format!("duplicate {}: also defined at {first}", object.id),
                    ));
                } else {
                    seen.insert(key, raw.origin.clone());
                    objects.push(object);
                }
            }
            Err(message) => errors.push(error_at(&raw.origin, message)),
        }
    }
    if errors.is_empty() {
        return Ok(objects);
    }
    errors.sort_by(|a, b| (&a.file, a.document, a.line).cmp(&(&b.file, b.document, b.line)));
    Err(LoadErrors { errors })
}

fn error_at(origin: &Origin, message: String) -> LoadError {
    LoadError {
        file: origin.file.clone(),
        document: origin.document,
        line: origin.line,
        message,
    }
}

fn decode_file(path: &str, bytes: &[u8], raws: &mut Vec<Raw>, errors: &mut Vec<LoadError>) {
    let fail = |errors: &mut Vec<LoadError>, document, line, message| {
        errors.push(LoadError {
            file: path.to_string(),
            document,
            line,
            message,
        });
    };
    let budget = yaml::Budget::new(yaml::node_budget(bytes.len()));
    if path.to_ascii_lowercase().ends_with(".json") {
        let origin = Origin {
            file: path.to_string(),
            document: 0,
            line: 1,
        };
        match yaml::parse_json(bytes, &budget) {
            Ok(Some(value)) => flatten(value, &origin, 0, raws, errors),
            Ok(None) => {}
            Err(err) => fail(
                errors,
                0,
                err.line.unwrap_or(1),
                format!("invalid JSON: {}", err.message),
            ),
        }
        return;
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        fail(errors, 0, 1, "file is not valid UTF-8".to_string());
        return;
    };
    for doc in yaml::split_documents(text) {
        let origin = Origin {
            file: path.to_string(),
            document: doc.index,
            line: doc.line,
        };
        match yaml::parse_yaml(&doc, &budget) {
            Ok(Some(value)) => flatten(value, &origin, 0, raws, errors),
            Ok(None) => {}
            Err(err) => {
                let line = err.line.unwrap_or(doc.line);
                fail(
                    errors,
                    doc.index,
                    line,
                    format!("invalid YAML: {}", err.message),
                );
                // The budget is per file: once spent, later documents would only repeat it.
                if err.message.contains("alias bomb") {
                    return;
                }
            }
        }
    }
}

/// `kind: List` (and `*List` with `items`) become their items.
fn flatten(
    value: Value,
    origin: &Origin,
    depth: usize,
    raws: &mut Vec<Raw>,
    errors: &mut Vec<LoadError>,
) {
    let is_list = value
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k == "List" || k.ends_with("List"))
        && value.get("items").is_some_and(Value::is_array);
    if !is_list {
        raws.push(Raw {
            value,
            origin: origin.clone(),
        });
        return;
    }
    if depth >= 4 {
        errors.push(error_at(
            origin,
            "Lists nested more than 4 deep".to_string(),
        ));
        return;
    }
    if let Value::Object(mut map) = value
        && let Some(Value::Array(items)) = map.remove("items")
    {
        for item in items {
            flatten(item, origin, depth + 1, raws, errors);
        }
    }
}

/// Scope of custom kinds defined by CRDs in the same set: (group, kind) → namespaced.
fn crd_scopes(raws: &[Raw]) -> HashMap<(String, String), bool> {
    let mut out = HashMap::new();
    for raw in raws {
        let v = &raw.value;
        let api = v
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if v.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition")
            || !api.starts_with("apiextensions.k8s.io/")
        {
            continue;
        }
        let spec = &v["spec"];
        if let (Some(group), Some(kind)) = (spec["group"].as_str(), spec["names"]["kind"].as_str())
        {
            let namespaced = spec["scope"].as_str() != Some("Cluster");
            out.insert((group.to_string(), kind.to_string()), namespaced);
        }
    }
    out
}

fn validate(
    mut value: Value,
    origin: &Origin,
    opts: &LoadOptions,
    crd_scopes: &HashMap<(String, String), bool>,
) -> Result<Object, String> {
    if !value.is_object() {
        return Err(format!(
            "expected a mapping (an object), found {}",
            type_name(&value)
        ));
    }
    let api_version = required_string(&value, "apiVersion")?;
    let kind = required_string(&value, "kind")?;
    let (group, version) = match api_version.split_once('/') {
        Some((group, version))
            if !group.is_empty() && !version.is_empty() && !version.contains('/') =>
        {
            (group.to_string(), version.to_string())
        }
        None => (String::new(), api_version.clone()),
        _ => {
            return Err(format!(
                "apiVersion {api_version:?} is not group/version or version"
            ));
        }
    };
    let metadata = match value.get_mut("metadata") {
        Some(Value::Object(metadata)) => metadata,
        Some(other) => {
            return Err(format!(
                "metadata must be a mapping, found {}",
                type_name(other)
            ));
        }
        None => return Err(format!("{kind} has no metadata.name")),
    };
    let name = match metadata.get("name") {
        Some(Value::String(name)) if !name.is_empty() => name.clone(),
        Some(Value::String(_)) | None if metadata.contains_key("generateName") => {
            return Err(
                "metadata.generateName cannot be synced: give the object a metadata.name"
                    .to_string(),
            );
        }
        Some(Value::String(_)) | None => return Err(format!("{kind} has no metadata.name")),
        Some(other) => {
            return Err(format!(
                "metadata.name must be a string, found {}",
                type_name(other)
            ));
        }
    };
    check_name(&kind, &name)?;
    let namespaced = match crd_scopes.get(&(group.clone(), kind.clone())) {
        Some(namespaced) => *namespaced,
        None => is_namespaced(&group, &kind),
    };
    let namespace = if namespaced {
        let namespace = match metadata.get("namespace") {
            Some(Value::String(ns)) if !ns.is_empty() => ns.clone(),
            Some(Value::String(_)) | None | Some(Value::Null) => opts.default_namespace.clone(),
            Some(other) => {
                return Err(format!(
                    "metadata.namespace must be a string, found {}",
                    type_name(other)
                ));
            }
        };
        if !is_dns_label(&namespace) {
            return Err(format!(
                "metadata.namespace {namespace:?} is not a valid namespace name (RFC 1123 label)"
            ));
        }
        metadata.insert("namespace".to_string(), Value::String(namespace.clone()));
        Some(namespace)
    } else {
        // The API server ignores a namespace on a cluster-scoped object; drop it so the
        // body and the identity agree.
        metadata.remove("namespace");
        None
    };
    Ok(Object {
        id: ObjectId {
            group,
            version,
            kind,
            namespace,
            name,
        },
        body: value,
        origin: origin.clone(),
    })
}

fn required_string(value: &Value, field: &str) -> Result<String, String> {
    match value.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::String(_)) | None | Some(Value::Null) => Err(format!("missing {field}")),
        Some(other) => Err(format!(
            "{field} must be a string, found {}",
            type_name(other)
        )),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

/// Kinds whose names must be RFC 1123 labels (no dots) rather than subdomains.
fn needs_label_name(kind: &str) -> bool {
    matches!(kind, "Namespace" | "Service")
}

fn check_name(kind: &str, name: &str) -> Result<(), String> {
    if needs_label_name(kind) {
        if kind == "Service" && !name.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(format!(
                "metadata.name {name:?}: a Service name must start with a lowercase letter"
            ));
        }
        if !is_dns_label(name) {
            return Err(format!(
                "metadata.name {name:?} is not a valid {kind} name: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit"
            ));
        }
    } else if !is_dns_subdomain(name) {
        return Err(format!(
            "metadata.name {name:?} is not a valid DNS name: at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// RFC 1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// The names of the objects in `objects`, for quick membership tests.
pub fn ids(objects: &[Object]) -> HashSet<&ObjectId> {
    objects.iter().map(|o| &o.id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Commit, File};

    fn snapshot(files: &[(&str, &str)]) -> Snapshot {
        Snapshot {
            commit: Commit {
                sha: "0".repeat(40),
                subject: String::new(),
                time: 0,
            },
            files: files
                .iter()
                .map(|(p, t)| File {
                    path: p.to_string(),
                    bytes: t.as_bytes().to_vec(),
                })
                .collect(),
        }
    }

    fn errors(files: &[(&str, &str)]) -> Vec<LoadError> {
        load(&snapshot(files), &LoadOptions::default())
            .unwrap_err()
            .errors
    }

    #[test]
    fn namespaced_objects_get_the_default_namespace() {
        let objs = load(
            &snapshot(&[("a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: team, namespace: x}\n")]),
            &LoadOptions { default_namespace: "prod".into(), ..LoadOptions::default() },
        )
        .unwrap();
        assert_eq!(objs[0].id.namespace.as_deref(), Some("prod"));
        assert_eq!(objs[0].body["metadata"]["namespace"], "prod");
        assert_eq!(objs[1].id.namespace, None);
        assert!(objs[1].body["metadata"].get("namespace").is_none());
        assert_eq!(
            objs[1].origin,
            Origin {
                file: "a.yaml".into(),
                document: 1,
                line: 5
            }
        );
    }

    #[test]
    fn every_error_is_reported_with_its_place() {
        let errs = errors(&[
            (
                "a.yaml",
                "kind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n",
            ),
            ("b.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n"),
        ]);
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert_eq!(
            (errs[0].file.as_str(), errs[0].document, errs[0].line),
            ("a.yaml", 0, 1)
        );
        assert!(errs[0].message.contains("apiVersion"));
        assert_eq!((errs[1].document, errs[1].line), (1, 4));
        assert!(errs[1].message.contains("Bad_Name"));
        assert_eq!(errs[2].file, "b.yaml");
    }

    #[test]
    fn duplicates_name_both_places() {
        let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n";
        let errs = errors(&[("a.yaml", cm), ("b.yaml", &format!("# x\n{cm}"))]);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].file, "b.yaml");
        assert!(errs[0].message.contains("a.yaml:1"), "{}", errs[0].message);
    }

    #[test]
    fn lists_are_flattened_and_empty_documents_skipped() {
        let list = "---\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a}\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: b}\n";
        let objs = load(&snapshot(&[("l.yaml", list)]), &LoadOptions::default()).unwrap();
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[1].origin.document, 1);
        assert_eq!(objs[1].origin.line, 3);
    }

    #[test]
    fn json_and_crd_scopes() {
        let crd = r#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"widgets.example.com"},"spec":{"group":"example.com","scope":"Cluster","names":{"kind":"Widget","plural":"widgets"}}}"#;
        let widget =
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: ignored}\n";
        let objs = load(
            &snapshot(&[("crd.json", crd), ("w.yaml", widget)]),
            &LoadOptions::default(),
        )
        .unwrap();
        assert_eq!(objs[1].id.namespace, None);
        assert_eq!(objs[1].id.group, "example.com");
        assert_eq!(objs[0].id.namespace, None);
    }

    #[test]
    fn oversize_files_and_bad_shapes_are_errors() {
        let opts = LoadOptions {
            max_file_bytes: 10,
            ..LoadOptions::default()
        };
        let err = load(&snapshot(&[("big.yaml", "apiVersion: v1\n")]), &opts).unwrap_err();
        assert!(err.errors[0].message.contains("over the limit"));
        let errs = errors(&[
            ("s.yaml", "- a\n- b\n"),
            (
                "x.yaml",
                "apiVersion: a/b/c\nkind: X\nmetadata: {name: x}\n",
            ),
        ]);
        assert_eq!(errs.len(), 2);
        assert!(errs[0].message.contains("mapping"));
        assert!(errs[1].message.contains("group/version"));
    }

    #[test]
    fn dns_names() {
        assert!(is_dns_subdomain("web.v1-a"));
        assert!(!is_dns_subdomain("Web"));
        assert!(!is_dns_subdomain("-web"));
        assert!(!is_dns_subdomain(&"a".repeat(254)));
        assert!(!is_dns_label("a.b"));
        assert!(check_name("Service", "1abc").is_err());
        assert!(check_name("Deployment", "1abc").is_ok());
    }
}
