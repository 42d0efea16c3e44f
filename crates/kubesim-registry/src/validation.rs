//! Validation run after defaulting on create and update, producing the 422 `Invalid` error
//! with one `Cause` per problem, worded like the real API server (`field.Error` rendering).
//!
//! Deep rules for Deployment, ReplicaSet, Pod, Service, Secret and ConfigMap; object-metadata
//! rules (name syntax, labels, annotations) for every kind. Must not modify the object.

use serde_json::{Value, json};

use crate::json::{
    IntOrPercent, at, base64_decode, quote, selector_matches, semantic_eq, semantic_eq_field,
};
use crate::resources::Resource;

/// One problem found by validation (`StatusCause`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueForbidden`,
    /// `FieldValueNotSupported`, `FieldValueDuplicate`, `FieldValueTooLong`.
    pub reason: &'static str,
    /// The error body without the field, e.g. `Invalid value: -1: must be greater than or equal to 0`.
    pub message: String,
    /// The field path, e.g. `spec.replicas`.
    pub field: String,
}

impl Cause {
    /// `Invalid value: <rendered>: <detail>`; `value` is already rendered (see [`render`]).
    pub fn invalid(field: impl Into<String>, value: &str, detail: &str) -> Cause {
        Cause {
            reason: "FieldValueInvalid",
            message: with_detail(format!("Invalid value: {value}"), detail),
            field: field.into(),
        }
    }

    pub fn required(field: impl Into<String>, detail: &str) -> Cause {
        Cause {
            reason: "FieldValueRequired",
            message: with_detail("Required value".to_string(), detail),
            field: field.into(),
        }
    }

    pub fn forbidden(field: impl Into<String>, detail: &str) -> Cause {
        Cause {
            reason: "FieldValueForbidden",
            message: with_detail("Forbidden".to_string(), detail),
            field: field.into(),
        }
    }

    pub fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> Cause {
        let quoted: Vec<String> = supported.iter().map(|s| quote(s)).collect();
        Cause {
            reason: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: {value}: supported values: {}",
                quoted.join(", ")
            ),
            field: field.into(),
        }
    }

    pub fn duplicate(field: impl Into<String>, value: &str) -> Cause {
        Cause {
            reason: "FieldValueDuplicate",
            message: format!("Duplicate value: {value}"),
            field: field.into(),
        }
    }

    pub fn too_long(field: impl Into<String>, max_bytes: usize) -> Cause {
        Cause {
            reason: "FieldValueTooLong",
            message: format!("Too long: may not be more than {max_bytes} bytes"),
            field: field.into(),
        }
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn with_detail(s: String, detail: &str) -> String {
    if detail.is_empty() {
        s
    } else {
        format!("{s}: {detail}")
    }
}

/// A 422 Invalid error: `<Kind>.<group> "<name>" is invalid: <causes>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct Invalid {
    /// The Kind (`Deployment`), not the resource.
    pub kind: String,
    /// API group, `""` for core.
    pub group: String,
    pub name: String,
    pub causes: Vec<Cause>,
}

impl Invalid {
    pub fn new(res: &Resource, name: &str, causes: Vec<Cause>) -> Invalid {
        Invalid {
            kind: res.kind.to_string(),
            group: res.group.to_string(),
            name: name.to_string(),
            causes,
        }
    }

    /// The Status message: one cause inline, several as `[a, b]` (duplicates dropped).
    pub fn message(&self) -> String {
        let qualified = if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        };
        let mut seen: Vec<String> = Vec::new();
        for c in &self.causes {
            let s = c.to_string();
            if !seen.contains(&s) {
                seen.push(s);
            }
        }
        match seen.len() {
            0 => format!("{qualified} {} is invalid", quote(&self.name)),
            1 => format!("{qualified} {} is invalid: {}", quote(&self.name), seen[0]),
            _ => format!(
                "{qualified} {} is invalid: [{}]",
                quote(&self.name),
                seen.join(", ")
            ),
        }
    }

    /// The full 422 `Status` body (§5.7).
    pub fn status(&self) -> Value {
        let mut details = serde_json::Map::new();
        if !self.name.is_empty() {
            details.insert("name".into(), json!(self.name));
        }
        if !self.group.is_empty() {
            details.insert("group".into(), json!(self.group));
        }
        details.insert("kind".into(), json!(self.kind));
        let causes: Vec<Value> = self
            .causes
            .iter()
            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect();
        details.insert("causes".into(), Value::Array(causes));
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message(),
            "reason": "Invalid",
            "details": details,
            "code": 422
        })
    }
}

/// Render a value the way `field.Error` does (Kubernetes ≥ 1.33, which the spec quotes:
/// `Invalid value: 0` for an IntOrString): numbers/bools bare, strings quoted, everything else
/// as compact JSON with map keys sorted (Go's `json.Marshal`), null as `null`.
pub fn render(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::String(s) => quote(s),
        Value::Number(_) | Value::Bool(_) => v.to_string(),
        other => sorted(other).to_string(),
    }
}

/// A copy of `v` with object keys sorted recursively.
fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// `null` for an absent map, else [`render`].
fn render_map(v: Option<&Value>) -> String {
    v.map_or_else(|| "null".into(), render)
}

/// A `metav1.LabelSelector` as JSON (used for immutable/empty selector messages).
fn render_selector(sel: Option<&Value>) -> String {
    render_map(sel)
}

// ---- name / label syntax (k8s.io/apimachinery/pkg/util/validation) ----

const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const CONFIG_KEY_MSG: &str =
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";
const CONFIG_KEY_FMT: &str = "[-._a-zA-Z0-9]+";
/// 1 MiB: the size limit of ConfigMap and Secret data.
pub const MAX_DATA_SIZE: usize = 1024 * 1024;
const TOTAL_ANNOTATION_SIZE: usize = 256 * 1024;

fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let mut s = format!("{msg} (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            s.push_str(" or ");
        }
        s.push_str(&format!("'{e}', "));
    }
    s.push_str(&format!("regex used for validation is '{fmt}')"));
    s
}

fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

fn is_alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

fn matches_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub fn dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !matches_dns1123_label(s) {
        errs.push(regex_error(
            DNS1123_LABEL_MSG,
            DNS1123_LABEL_FMT,
            &["my-name", "123-abc"],
        ));
    }
    errs
}

pub fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push(max_len_error(253));
    }
    if !s.split('.').all(matches_dns1123_label) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_MSG,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

pub fn dns1035_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !(matches_dns1123_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase())) {
        errs.push(regex_error(
            DNS1035_LABEL_MSG,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

fn matches_qualified_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| is_alnum(c) || c == '-' || c == '_' || c == '.')
        && s.starts_with(is_alnum)
        && s.ends_with(is_alnum)
}

pub fn qualified_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", max_len_error(63)));
    }
    if !matches_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

pub fn label_value(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !s.is_empty() && !matches_qualified_name_part(s) {
        errs.push(regex_error(
            LABEL_VALUE_MSG,
            &format!("({QUALIFIED_NAME_FMT})?"),
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

pub fn config_map_key(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push(max_len_error(253));
    }
    if s.is_empty()
        || !s
            .chars()
            .all(|c| is_alnum(c) || c == '-' || c == '_' || c == '.')
    {
        errs.push(regex_error(
            CONFIG_KEY_MSG,
            CONFIG_KEY_FMT,
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    if s == "." {
        errs.push("must not be '.'".into());
    } else if s == ".." {
        errs.push("must not be '..'".into());
    } else if s.starts_with("..") {
        errs.push("must not start with '..'".into());
    }
    errs
}

/// IANA service name rules used for port names.
fn port_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 15 {
        errs.push(max_len_error(15));
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if s.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if !s.chars().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if s.starts_with('-') || s.ends_with('-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";
const NONNEGATIVE: &str = "must be greater than or equal to 0";

/// Collects causes while walking an object.
#[derive(Default)]
struct Errs(Vec<Cause>);

impl Errs {
    fn push(&mut self, c: Cause) {
        self.0.push(c);
    }

    fn invalid_each(&mut self, field: &str, value: &Value, msgs: Vec<String>) {
        for m in msgs {
            self.push(Cause::invalid(field, &render(value), &m));
        }
    }

    fn nonnegative(&mut self, obj: &Value, path: &[&str], field: &str) {
        if let Some(n) = at(obj, path).and_then(Value::as_i64)
            && n < 0
        {
            self.push(Cause::invalid(field, &n.to_string(), NONNEGATIVE));
        }
    }
}

/// Validate `new` (already defaulted) for `res`; `old` is the stored object on update.
pub fn validate(res: &Resource, old: Option<&Value>, new: &Value) -> Result<(), Invalid> {
    let mut errs = Errs::default();
    validate_metadata(res, new, &mut errs);
    match (res.group, res.kind) {
        ("apps", "Deployment") => validate_deployment(new, old, &mut errs),
        ("apps", "ReplicaSet") => validate_replica_set(new, old, &mut errs),
        ("apps", "StatefulSet") => validate_stateful_set(new, old, &mut errs),
        ("apps", "DaemonSet") => validate_daemon_set(new, old, &mut errs),
        ("batch", "Job") => validate_job(new, old, &mut errs),
        ("", "Pod") => validate_pod(new, old, &mut errs),
        ("", "Service") => validate_service(new, old, &mut errs),
        ("", "Secret") => validate_secret(new, old, &mut errs),
        ("", "ConfigMap") => validate_config_map(new, old, &mut errs),
        _ => {}
    }
    if errs.0.is_empty() {
        Ok(())
    } else {
        let name = at(new, &["metadata", "name"])
            .and_then(Value::as_str)
            .unwrap_or("");
        Err(Invalid::new(res, name, errs.0))
    }
}

fn validate_metadata(res: &Resource, obj: &Value, errs: &mut Errs) {
    let name = at(obj, &["metadata", "name"])
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.is_empty() {
        errs.push(Cause::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        let msgs = match (res.group, res.kind) {
            ("", "Namespace") => dns1123_label(name),
            ("", "Service") => dns1035_label(name),
            ("rbac.authorization.k8s.io", _) => path_segment_name(name),
            _ => dns1123_subdomain(name),
        };
        errs.invalid_each("metadata.name", &json!(name), msgs);
    }
    validate_labels(at(obj, &["metadata", "labels"]), "metadata.labels", errs);
    if let Some(ann) = at(obj, &["metadata", "annotations"]).and_then(Value::as_object) {
        let mut total = 0;
        for (k, v) in ann {
            errs.invalid_each(
                "metadata.annotations",
                &json!(k),
                qualified_name(&k.to_lowercase()),
            );
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > TOTAL_ANNOTATION_SIZE {
            errs.push(Cause::too_long(
                "metadata.annotations",
                TOTAL_ANNOTATION_SIZE,
            ));
        }
    }
}

fn path_segment_name(name: &str) -> Vec<String> {
    if name == "." || name == ".." {
        return vec![format!("may not be '{name}'")];
    }
    let mut errs = Vec::new();
    for bad in ["/", "%"] {
        if name.contains(bad) {
            errs.push(format!("may not contain '{bad}'"));
        }
    }
    errs
}

fn validate_labels(labels: Option<&Value>, field: &str, errs: &mut Errs) {
    let Some(labels) = labels.and_then(Value::as_object) else {
        return;
    };
    for (k, v) in labels {
        errs.invalid_each(field, &json!(k), qualified_name(k));
        match v.as_str() {
            Some(s) => errs.invalid_each(field, v, label_value(s)),
            None => errs.push(Cause::invalid(
                field,
                &render(v),
                "label values must be strings",
            )),
        }
    }
}

// ---- workloads ----

/// Which workload `validate_selector_and_template` checks, for its rules and wording.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Workload {
    /// Deployment and ReplicaSet (both say "for deployment" / "in ReplicaSet").
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    Job,
}

/// Selector + template rules shared by the workload kinds (`spec.*`).
fn validate_selector_and_template(spec: &Value, kind: Workload, errs: &mut Errs) {
    let selector = spec.get("selector").filter(|s| !s.is_null());
    match selector {
        None => errs.push(Cause::required("spec.selector", "")),
        Some(sel) => {
            validate_labels(sel.get("matchLabels"), "spec.selector.matchLabels", errs);
            let n = sel
                .get("matchLabels")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len())
                + sel
                    .get("matchExpressions")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
            let owner = match kind {
                Workload::ReplicaSet => Some("deployment"),
                Workload::StatefulSet => Some("statefulset"),
                Workload::DaemonSet => Some("daemonset"),
                Workload::Job => None,
            };
            if let Some(owner) = owner
                && n == 0
            {
                errs.push(Cause::invalid(
                    "spec.selector",
                    &render_selector(Some(sel)),
                    &format!("empty selector is invalid for {owner}"),
                ));
            }
        }
    }
    let template = spec.get("template").filter(|t| !t.is_null());
    let labels = template.and_then(|t| at(t, &["metadata", "labels"]));
    let matches = match selector {
        // A nil selector selects nothing (and so never matches the template).
        None => Some(false),
        Some(sel) => selector_matches(sel, labels),
    };
    match matches {
        None => errs.push(Cause::invalid(
            "spec.selector",
            &render_selector(selector),
            "invalid label selector",
        )),
        Some(false) => errs.push(Cause::invalid(
            "spec.template.metadata.labels",
            &render_map(labels),
            "`selector` does not match template `labels`",
        )),
        Some(true) => {}
    }
    let empty = json!({});
    let template = template.unwrap_or(&empty);
    validate_labels(labels, "spec.template.metadata.labels", errs);
    let pod_spec = template.get("spec").unwrap_or(&empty);
    validate_pod_spec(pod_spec, "spec.template.spec", errs);
    let rp = pod_spec.get("restartPolicy").and_then(Value::as_str);
    if kind == Workload::Job {
        if let Some(rp) = rp
            && rp != "OnFailure"
            && rp != "Never"
        {
            errs.push(Cause::not_supported(
                "spec.template.spec.restartPolicy",
                &quote(rp),
                &["OnFailure", "Never"],
            ));
        }
        return;
    }
    if let Some(rp) = rp
        && rp != "Always"
    {
        errs.push(Cause::not_supported(
            "spec.template.spec.restartPolicy",
            &quote(rp),
            &["Always"],
        ));
    }
    if let Some(ads) = pod_spec
        .get("activeDeadlineSeconds")
        .filter(|v| !v.is_null())
    {
        let owner = match kind {
            Workload::StatefulSet => "StatefulSet",
            Workload::DaemonSet => "DaemonSet",
            _ => "ReplicaSet",
        };
        errs.push(Cause::invalid(
            "spec.template.spec.activeDeadlineSeconds",
            &render(ads),
            &format!("activeDeadlineSeconds in {owner} is not Supported"),
        ));
    }
}

fn validate_stateful_set(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let empty = json!({});
    let spec = obj.get("spec").unwrap_or(&empty);
    errs.nonnegative(spec, &["replicas"], "spec.replicas");
    errs.nonnegative(spec, &["minReadySeconds"], "spec.minReadySeconds");
    validate_selector_and_template(spec, Workload::StatefulSet, errs);
    if let Some(old) = old {
        const MUTABLE: [&str; 6] = [
            "replicas",
            "ordinals",
            "template",
            "updateStrategy",
            "persistentVolumeClaimRetentionPolicy",
            "minReadySeconds",
        ];
        let strip = |v: &Value| {
            let mut v = v.get("spec").cloned().unwrap_or_else(|| json!({}));
            if let Some(m) = v.as_object_mut() {
                for k in MUTABLE {
                    m.remove(k);
                }
            }
            v
        };
        if !semantic_eq(Some(&strip(obj)), Some(&strip(old))) {
            errs.push(Cause::forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            ));
        }
    }
}

fn validate_daemon_set(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let empty = json!({});
    let spec = obj.get("spec").unwrap_or(&empty);
    validate_selector_and_template(spec, Workload::DaemonSet, errs);
    errs.nonnegative(spec, &["minReadySeconds"], "spec.minReadySeconds");
    errs.nonnegative(spec, &["revisionHistoryLimit"], "spec.revisionHistoryLimit");
    selector_immutable(obj, old, errs);
}

fn validate_job(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let empty = json!({});
    let spec = obj.get("spec").unwrap_or(&empty);
    errs.nonnegative(spec, &["parallelism"], "spec.parallelism");
    errs.nonnegative(spec, &["completions"], "spec.completions");
    errs.nonnegative(spec, &["backoffLimit"], "spec.backoffLimit");
    if let Some(ads) = spec.get("activeDeadlineSeconds").and_then(Value::as_i64)
        && ads <= 0
    {
        errs.push(Cause::invalid(
            "spec.activeDeadlineSeconds",
            &ads.to_string(),
            "must be greater than 0",
        ));
    }
    validate_selector_and_template(spec, Workload::Job, errs);
    if let Some(old) = old {
        selector_immutable(obj, Some(old), errs);
        let (n, o) = (
            at(obj, &["spec", "template"]),
            at(old, &["spec", "template"]),
        );
        if !semantic_eq(n, o) {
            errs.push(Cause::invalid(
                "spec.template",
                &render_map(n),
                "field is immutable",
            ));
        }
    }
}

fn selector_immutable(new: &Value, old: Option<&Value>, errs: &mut Errs) {
    if let Some(old) = old {
        let (n, o) = (
            at(new, &["spec", "selector"]),
            at(old, &["spec", "selector"]),
        );
        if !semantic_eq(n, o) {
            errs.push(Cause::invalid(
                "spec.selector",
                &render_selector(n),
                "field is immutable",
            ));
        }
    }
}

fn validate_deployment(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let empty = json!({});
    let spec = obj.get("spec").unwrap_or(&empty);
    errs.nonnegative(spec, &["replicas"], "spec.replicas");
    validate_selector_and_template(spec, Workload::ReplicaSet, errs);
    validate_strategy(spec.get("strategy"), errs);
    errs.nonnegative(spec, &["minReadySeconds"], "spec.minReadySeconds");
    errs.nonnegative(spec, &["revisionHistoryLimit"], "spec.revisionHistoryLimit");
    if let Some(pds) = spec.get("progressDeadlineSeconds").and_then(Value::as_i64) {
        errs.nonnegative(
            spec,
            &["progressDeadlineSeconds"],
            "spec.progressDeadlineSeconds",
        );
        let min_ready = spec
            .get("minReadySeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if pds <= min_ready {
            errs.push(Cause::invalid(
                "spec.progressDeadlineSeconds",
                &pds.to_string(),
                "must be greater than minReadySeconds",
            ));
        }
    }
    selector_immutable(obj, old, errs);
}

fn validate_strategy(strategy: Option<&Value>, errs: &mut Errs) {
    let empty = json!({});
    let strategy = strategy.filter(|s| !s.is_null()).unwrap_or(&empty);
    let ru = strategy.get("rollingUpdate").filter(|r| !r.is_null());
    match strategy.get("type").and_then(Value::as_str).unwrap_or("") {
        "Recreate" => {
            if ru.is_some() {
                errs.push(Cause::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match ru {
            None => errs.push(Cause::required(
                "spec.strategy.rollingUpdate",
                "this should be defaulted and never be nil",
            )),
            Some(ru) => validate_rolling_update(ru, errs),
        },
        other => errs.push(Cause::not_supported(
            "spec.strategy.type",
            &quote(other),
            &["Recreate", "RollingUpdate"],
        )),
    }
}

fn validate_rolling_update(ru: &Value, errs: &mut Errs) {
    const MU: &str = "spec.strategy.rollingUpdate.maxUnavailable";
    const MS: &str = "spec.strategy.rollingUpdate.maxSurge";
    let mu = ru.get("maxUnavailable").and_then(IntOrPercent::from_value);
    let ms = ru.get("maxSurge").and_then(IntOrPercent::from_value);
    for (field, v) in [(MU, &mu), (MS, &ms)] {
        match v {
            Some(IntOrPercent::Int(i)) if *i < 0 => errs.push(Cause::invalid(field, &i.to_string(), NONNEGATIVE)),
            Some(IntOrPercent::Str(s)) if !is_valid_percent(s) => errs.push(Cause::invalid(
                field,
                &quote(s),
                "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
            )),
            _ => {}
        }
    }
    let raw = |v: &Option<IntOrPercent>| v.as_ref().map_or(0, IntOrPercent::raw_number);
    if raw(&mu) == 0 && raw(&ms) == 0 {
        errs.push(Cause::invalid(
            MU,
            &render_int_or_string(&mu),
            "may not be 0 when `maxSurge` is 0",
        ));
    }
    if let Some(IntOrPercent::Str(s)) = &mu
        && is_valid_percent(s)
        && raw(&mu) > 100
    {
        errs.push(Cause::invalid(
            MU,
            &quote(s),
            "must not be greater than 100%",
        ));
    }
}

fn render_int_or_string(v: &Option<IntOrPercent>) -> String {
    match v {
        Some(IntOrPercent::Int(i)) => i.to_string(),
        Some(IntOrPercent::Str(s)) => quote(s),
        None => "0".into(),
    }
}

fn is_valid_percent(s: &str) -> bool {
    s.strip_suffix('%')
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

fn validate_replica_set(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let empty = json!({});
    let spec = obj.get("spec").unwrap_or(&empty);
    errs.nonnegative(spec, &["replicas"], "spec.replicas");
    errs.nonnegative(spec, &["minReadySeconds"], "spec.minReadySeconds");
    validate_selector_and_template(spec, Workload::ReplicaSet, errs);
    selector_immutable(obj, old, errs);
}

// ---- pods ----

fn validate_pod(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let empty = json!({});
    let spec = obj.get("spec").unwrap_or(&empty);
    validate_pod_spec(spec, "spec", errs);
    if let Some(rp) = spec.get("restartPolicy").and_then(Value::as_str)
        && !["Always", "OnFailure", "Never"].contains(&rp)
    {
        errs.push(Cause::not_supported(
            "spec.restartPolicy",
            &quote(rp),
            &["Always", "OnFailure", "Never"],
        ));
    }
    if let Some(old) = old {
        let old_spec = old.get("spec").unwrap_or(&empty);
        let bind = old_spec
            .get("nodeName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty();
        let before = mutable_pod_fields_blanked(old_spec, bind);
        let after = mutable_pod_fields_blanked(spec, bind);
        if !semantic_eq(Some(&before), Some(&after)) {
            errs.push(Cause::forbidden(
                "spec",
                "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
            ));
        }
    }
}

/// A pod spec with the fields an update may change removed. With `bind`, `nodeName` is
/// ignored too (it may be set once, emulating the `/binding` subresource for the fake scheduler).
fn mutable_pod_fields_blanked(spec: &Value, bind: bool) -> Value {
    let mut s = spec.clone();
    if let Some(m) = s.as_object_mut() {
        for k in [
            "activeDeadlineSeconds",
            "tolerations",
            "terminationGracePeriodSeconds",
        ] {
            m.remove(k);
        }
        if bind {
            m.remove("nodeName");
        }
        for list in ["containers", "initContainers"] {
            if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
                for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                    c.remove("image");
                }
            }
        }
    }
    s
}

/// `ValidatePodSpec` (subset) at `path`.
fn validate_pod_spec(spec: &Value, path: &str, errs: &mut Errs) {
    let containers = spec.get("containers").and_then(Value::as_array);
    if containers.is_none_or(Vec::is_empty) {
        errs.push(Cause::required(format!("{path}.containers"), ""));
    }
    let mut names: Vec<&str> = Vec::new();
    for list in ["initContainers", "containers"] {
        let Some(cs) = spec.get(list).and_then(Value::as_array) else {
            continue;
        };
        for (i, c) in cs.iter().enumerate() {
            validate_container(c, &format!("{path}.{list}[{i}]"), &mut names, errs);
        }
    }
    if let Some(dp) = spec.get("dnsPolicy").and_then(Value::as_str) {
        let ok = ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];
        if !ok.contains(&dp) {
            errs.push(Cause::not_supported(
                format!("{path}.dnsPolicy"),
                &quote(dp),
                &ok,
            ));
        }
    }
    errs.nonnegative(
        spec,
        &["activeDeadlineSeconds"],
        &format!("{path}.activeDeadlineSeconds"),
    );
    let mut vol_names: Vec<&str> = Vec::new();
    if let Some(vols) = spec.get("volumes").and_then(Value::as_array) {
        for (i, v) in vols.iter().enumerate() {
            let field = format!("{path}.volumes[{i}].name");
            match v.get("name").and_then(Value::as_str).unwrap_or("") {
                "" => errs.push(Cause::required(field, "")),
                n => {
                    errs.invalid_each(&field, &json!(n), dns1123_label(n));
                    if vol_names.contains(&n) {
                        errs.push(Cause::duplicate(field, &quote(n)));
                    }
                    vol_names.push(n);
                }
            }
        }
    }
}

fn validate_container<'a>(c: &'a Value, path: &str, names: &mut Vec<&'a str>, errs: &mut Errs) {
    match c.get("name").and_then(Value::as_str).unwrap_or("") {
        "" => errs.push(Cause::required(format!("{path}.name"), "")),
        n => {
            if names.contains(&n) {
                errs.push(Cause::duplicate(format!("{path}.name"), &quote(n)));
            } else {
                errs.invalid_each(&format!("{path}.name"), &json!(n), dns1123_label(n));
            }
            names.push(n);
        }
    }
    if c.get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        errs.push(Cause::required(format!("{path}.image"), ""));
    }
    match c.get("imagePullPolicy").and_then(Value::as_str) {
        None => errs.push(Cause::required(format!("{path}.imagePullPolicy"), "")),
        Some(p) if !["Always", "IfNotPresent", "Never"].contains(&p) => {
            errs.push(Cause::not_supported(
                format!("{path}.imagePullPolicy"),
                &quote(p),
                &["Always", "IfNotPresent", "Never"],
            ))
        }
        Some(_) => {}
    }
    let Some(ports) = c.get("ports").and_then(Value::as_array) else {
        return;
    };
    for (i, p) in ports.iter().enumerate() {
        let pp = format!("{path}.ports[{i}]");
        if let Some(name) = p
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            errs.invalid_each(&format!("{pp}.name"), &json!(name), port_name(name));
        }
        match p.get("containerPort").and_then(Value::as_i64).unwrap_or(0) {
            0 => errs.push(Cause::required(format!("{pp}.containerPort"), "")),
            n if !(1..=65535).contains(&n) => {
                errs.push(Cause::invalid(
                    format!("{pp}.containerPort"),
                    &n.to_string(),
                    PORT_RANGE,
                ));
            }
            _ => {}
        }
        if let Some(hp) = p.get("hostPort").and_then(Value::as_i64)
            && hp != 0
            && !(1..=65535).contains(&hp)
        {
            errs.push(Cause::invalid(
                format!("{pp}.hostPort"),
                &hp.to_string(),
                PORT_RANGE,
            ));
        }
        validate_protocol(p, &format!("{pp}.protocol"), errs);
    }
}

fn validate_protocol(port: &Value, field: &str, errs: &mut Errs) {
    match port.get("protocol").and_then(Value::as_str) {
        None => errs.push(Cause::required(field, "")),
        Some(p) if !["SCTP", "TCP", "UDP"].contains(&p) => {
            errs.push(Cause::not_supported(
                field,
                &quote(p),
                &["SCTP", "TCP", "UDP"],
            ));
        }
        Some(_) => {}
    }
}

// ---- services ----

fn validate_service(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let empty = json!({});
    let spec = obj.get("spec").unwrap_or(&empty);
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    const TYPES: [&str; 4] = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    if !TYPES.contains(&ty) {
        errs.push(Cause::not_supported("spec.type", &quote(ty), &TYPES));
    }
    let cluster_ip = spec.get("clusterIP").and_then(Value::as_str).unwrap_or("");
    let headless = cluster_ip == "None";
    let ports = spec
        .get("ports")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if ports.is_empty() && !headless && ty != "ExternalName" {
        errs.push(Cause::required("spec.ports", ""));
    }
    if ty == "ExternalName" {
        match spec
            .get("externalName")
            .and_then(Value::as_str)
            .unwrap_or("")
        {
            "" => errs.push(Cause::required("spec.externalName", "")),
            n => errs.invalid_each(
                "spec.externalName",
                &json!(n),
                dns1123_subdomain(n.trim_end_matches('.')),
            ),
        }
    }
    if let Some(sa) = spec.get("sessionAffinity").and_then(Value::as_str)
        && !["ClientIP", "None"].contains(&sa)
    {
        errs.push(Cause::not_supported(
            "spec.sessionAffinity",
            &quote(sa),
            &["ClientIP", "None"],
        ));
    }
    let mut names: Vec<&str> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let pp = format!("spec.ports[{i}]");
        let name = p.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() {
            if ports.len() > 1 {
                errs.push(Cause::required(format!("{pp}.name"), ""));
            }
        } else {
            errs.invalid_each(&format!("{pp}.name"), &json!(name), dns1123_label(name));
            if names.contains(&name) {
                errs.push(Cause::duplicate(format!("{pp}.name"), &quote(name)));
            }
            names.push(name);
        }
        let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
        if !(1..=65535).contains(&port) {
            errs.push(Cause::invalid(
                format!("{pp}.port"),
                &port.to_string(),
                PORT_RANGE,
            ));
        }
        validate_protocol(p, &format!("{pp}.protocol"), errs);
        match p.get("targetPort") {
            Some(Value::Number(n)) => {
                let n = n.as_i64().unwrap_or(0);
                if !(1..=65535).contains(&n) {
                    errs.push(Cause::invalid(
                        format!("{pp}.targetPort"),
                        &n.to_string(),
                        PORT_RANGE,
                    ));
                }
            }
            Some(Value::String(s)) => {
                errs.invalid_each(&format!("{pp}.targetPort"), &json!(s), port_name(s))
            }
            _ => {}
        }
        let node_port = p.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
        if node_port != 0 {
            if ty == "ClusterIP" || ty == "ExternalName" {
                errs.push(Cause::forbidden(
                    format!("{pp}.nodePort"),
                    &format!("may not be used when `type` is '{ty}'"),
                ));
            } else if !(30000..=32767).contains(&node_port) {
                errs.push(Cause::invalid(
                    format!("{pp}.nodePort"),
                    &node_port.to_string(),
                    "provided port is not in the valid range. The range of valid ports is 30000-32767",
                ));
            }
        }
    }
    // Unique (port, protocol).
    let mut seen: Vec<(i64, &str)> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let key = (
            p.get("port").and_then(Value::as_i64).unwrap_or(0),
            p.get("protocol").and_then(Value::as_str).unwrap_or(""),
        );
        if seen.contains(&key) {
            errs.push(Cause::duplicate(
                format!("spec.ports[{i}]"),
                &format!(
                    "{{\"Name\":\"\",\"Protocol\":{},\"AppProtocol\":null,\"Port\":{},\"TargetPort\":0,\"NodePort\":0}}",
                    quote(key.1),
                    key.0
                ),
            ));
        }
        seen.push(key);
    }
    validate_labels(spec.get("selector"), "spec.selector", errs);
    if let Some(old) = old {
        let old_ip = at(old, &["spec", "clusterIP"])
            .and_then(Value::as_str)
            .unwrap_or("");
        if !old_ip.is_empty()
            && !cluster_ip.is_empty()
            && old_ip != cluster_ip
            && ty != "ExternalName"
        {
            errs.push(Cause::invalid(
                "spec.clusterIPs[0]",
                &render(&json!([cluster_ip])),
                "may not change once set",
            ));
        }
    }
}

// ---- config maps and secrets ----

fn validate_config_map(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let mut total = 0;
    let data = obj.get("data").and_then(Value::as_object);
    let binary = obj.get("binaryData").and_then(Value::as_object);
    if let Some(data) = data {
        for (k, v) in data {
            let field = format!("data[{k}]");
            errs.invalid_each(&field, &json!(k), config_map_key(k));
            if binary.is_some_and(|b| b.contains_key(k)) {
                errs.push(Cause::invalid(
                    &field,
                    &quote(k),
                    "duplicate of key present in binaryData",
                ));
            }
            total += v.as_str().map_or(0, str::len);
        }
    }
    if let Some(binary) = binary {
        for (k, v) in binary {
            let field = format!("binaryData[{k}]");
            errs.invalid_each(&field, &json!(k), config_map_key(k));
            total += decoded_len(v, &field, errs);
        }
    }
    if total > MAX_DATA_SIZE {
        errs.push(Cause::too_long("", MAX_DATA_SIZE));
    }
    immutable_data(obj, old, &["data", "binaryData"], errs);
}

fn validate_secret(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let data = obj.get("data").and_then(Value::as_object);
    let mut total = 0;
    if let Some(data) = data {
        for (k, v) in data {
            let field = format!("data[{k}]");
            errs.invalid_each(&field, &json!(k), config_map_key(k));
            total += decoded_len(v, &field, errs);
        }
    }
    if total > MAX_DATA_SIZE {
        errs.push(Cause::too_long("data", MAX_DATA_SIZE));
    }
    let has = |k: &str| data.is_some_and(|d| d.contains_key(k));
    let ty = obj.get("type").and_then(Value::as_str).unwrap_or("");
    let mut require = |k: &str| errs.push(Cause::required(format!("data[{k}]"), ""));
    match ty {
        "kubernetes.io/service-account-token"
            if at(
                obj,
                &[
                    "metadata",
                    "annotations",
                    "kubernetes.io/service-account.name",
                ],
            )
            .and_then(Value::as_str)
            .is_none_or(str::is_empty) =>
        {
            errs.push(Cause::required(
                "metadata.annotations[kubernetes.io/service-account.name]",
                "",
            ));
        }
        "kubernetes.io/dockercfg" if !has(".dockercfg") => require(".dockercfg"),
        "kubernetes.io/dockerconfigjson" if !has(".dockerconfigjson") => {
            require(".dockerconfigjson")
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            require("username");
            require("password");
        }
        "kubernetes.io/ssh-auth" if !has("ssh-privatekey") => require("ssh-privatekey"),
        "kubernetes.io/tls" => {
            if !has("tls.crt") {
                require("tls.crt");
            }
            if !has("tls.key") {
                require("tls.key");
            }
        }
        _ => {}
    }
    if let Some(old) = old {
        let old_ty = old.get("type").and_then(Value::as_str).unwrap_or("");
        if old_ty != ty {
            errs.push(Cause::invalid("type", &quote(ty), "field is immutable"));
        }
    }
    immutable_data(obj, old, &["data"], errs);
}

/// Length of a base64 value after decoding; reports values that are not valid base64.
fn decoded_len(v: &Value, field: &str, errs: &mut Errs) -> usize {
    match v {
        Value::String(s) => match base64_decode(s) {
            Ok(bytes) => bytes.len(),
            Err(i) => {
                errs.push(Cause::invalid(
                    field,
                    "\"<secret contents redacted>\"",
                    &format!("illegal base64 data at input byte {i}"),
                ));
                0
            }
        },
        Value::Null => 0,
        other => {
            errs.push(Cause::invalid(
                field,
                &render(other),
                "must be a base64-encoded string",
            ));
            0
        }
    }
}

/// `immutable: true` ConfigMaps/Secrets: data and the flag itself cannot change.
fn immutable_data(obj: &Value, old: Option<&Value>, keys: &[&str], errs: &mut Errs) {
    let Some(old) = old else { return };
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return;
    }
    const DETAIL: &str = "field is immutable when `immutable` is set";
    if obj.get("immutable").and_then(Value::as_bool) != Some(true) {
        errs.push(Cause::forbidden("immutable", DETAIL));
    }
    for k in keys {
        if !semantic_eq_field(k, obj.get(*k), old.get(*k)) {
            errs.push(Cause::forbidden(*k, DETAIL));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defaults::default;
    use crate::resources::by_kind;

    fn check(
        api_version: &str,
        kind: &str,
        old: Option<Value>,
        mut new: Value,
    ) -> Result<(), Invalid> {
        let res = by_kind(api_version, kind).unwrap();
        default(res, &mut new);
        let old = old.map(|mut o| {
            default(res, &mut o);
            o
        });
        validate(res, old.as_ref(), &new)
    }

    fn causes(r: Result<(), Invalid>) -> Vec<String> {
        r.unwrap_err().causes.iter().map(Cause::to_string).collect()
    }

    fn deployment() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}}}})
    }

    fn with(mut v: Value, pointer: &str, value: Value) -> Value {
        *v.pointer_mut(pointer).unwrap() = value;
        v
    }

    #[test]
    fn valid_deployment_passes() {
        check("apps/v1", "Deployment", None, deployment()).unwrap();
        check("apps/v1", "Deployment", Some(deployment()), deployment()).unwrap();
    }

    #[test]
    fn negative_replicas_full_status() {
        let err = check(
            "apps/v1",
            "Deployment",
            None,
            with(deployment(), "/spec/replicas", json!(-1)),
        )
        .unwrap_err();
        assert_eq!(
            err.status(),
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                "reason": "Invalid",
                "details": {"name": "web", "group": "apps", "kind": "Deployment",
                    "causes": [{"reason": "FieldValueInvalid", "message": "Invalid value: -1: must be greater than or equal to 0",
                        "field": "spec.replicas"}]},
                "code": 422})
        );
    }

    #[test]
    fn core_kind_status_has_no_group_and_several_causes_are_bracketed() {
        let err = check(
            "v1",
            "ConfigMap",
            None,
            json!({"metadata": {"name": "Bad_Name"}, "data": {"a b": "x"}}),
        )
        .unwrap_err();
        let st = err.status();
        assert!(st["details"].get("group").is_none());
        assert_eq!(st["details"]["kind"], "ConfigMap");
        let msg = st["message"].as_str().unwrap();
        assert!(msg.starts_with("ConfigMap \"Bad_Name\" is invalid: [metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"), "{msg}");
        assert!(
            msg.ends_with("regex used for validation is '[-._a-zA-Z0-9]+')]"),
            "{msg}"
        );
        assert_eq!(err.to_string(), msg);
    }

    #[test]
    fn selector_rules() {
        let mut d = deployment();
        d["spec"].as_object_mut().unwrap().remove("selector");
        assert_eq!(
            causes(check("apps/v1", "Deployment", None, d)),
            vec![
                "spec.selector: Required value".to_string(),
                "spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`".into()
            ]
        );
        assert_eq!(
            causes(check(
                "apps/v1",
                "Deployment",
                None,
                with(deployment(), "/spec/selector", json!({}))
            )),
            vec!["spec.selector: Invalid value: {}: empty selector is invalid for deployment"]
        );
        assert_eq!(
            causes(check(
                "apps/v1",
                "Deployment",
                None,
                with(
                    deployment(),
                    "/spec/selector/matchLabels/app",
                    json!("other")
                )
            )),
            vec![
                "spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`"
            ]
        );
        // Immutable on update.
        let new = with(
            deployment(),
            "/spec/selector/matchLabels",
            json!({"app": "web", "x": "y"}),
        );
        let new = with(
            new,
            "/spec/template/metadata/labels",
            json!({"app": "web", "x": "y"}),
        );
        assert_eq!(
            causes(check("apps/v1", "Deployment", Some(deployment()), new)),
            vec![
                "spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"web\",\"x\":\"y\"}}: field is immutable"
            ]
        );
    }

    #[test]
    fn restart_policy_must_be_always() {
        assert_eq!(
            causes(check("apps/v1", "Deployment", None, {
                let mut d = deployment();
                d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
                d
            })),
            vec![
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""
            ]
        );
    }

    fn strategy(s: Value) -> Result<(), Invalid> {
        let mut d = deployment();
        d["spec"]["strategy"] = s;
        check("apps/v1", "Deployment", None, d)
    }

    #[test]
    fn rolling_update_rules() {
        assert_eq!(
            causes(strategy(
                json!({"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}})
            )),
            vec![
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"
            ]
        );
        let err = strategy(json!({"rollingUpdate": {"maxSurge": "0%", "maxUnavailable": 0}}))
            .unwrap_err();
        assert_eq!(
            err.message(),
            "Deployment.apps \"web\" is invalid: spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"
        );
        strategy(json!({"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})).unwrap();
        strategy(json!({"rollingUpdate": {"maxSurge": "0%", "maxUnavailable": "100%"}})).unwrap();
        assert_eq!(
            causes(strategy(json!({"rollingUpdate": {"maxSurge": -1}}))),
            vec![
                "spec.strategy.rollingUpdate.maxSurge: Invalid value: -1: must be greater than or equal to 0"
            ]
        );
        assert_eq!(
            causes(strategy(
                json!({"rollingUpdate": {"maxUnavailable": "101%"}})
            )),
            vec![
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"101%\": must not be greater than 100%"
            ]
        );
        assert_eq!(
            causes(strategy(
                json!({"rollingUpdate": {"maxUnavailable": "abc"}})
            )),
            vec![
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"abc\": a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"
            ]
        );
        assert_eq!(
            causes(strategy(
                json!({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}})
            )),
            vec![
                "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"
            ]
        );
        strategy(json!({"type": "Recreate"})).unwrap();
        assert_eq!(
            causes(strategy(json!({"type": "Blue"}))),
            vec![
                "spec.strategy.type: Unsupported value: \"Blue\": supported values: \"Recreate\", \"RollingUpdate\""
            ]
        );
    }

    #[test]
    fn progress_deadline_must_exceed_min_ready() {
        let d = with(deployment(), "/spec/replicas", json!(1));
        let mut d2 = d.clone();
        d2["spec"]["minReadySeconds"] = json!(600);
        assert_eq!(
            causes(check("apps/v1", "Deployment", None, d2)),
            vec![
                "spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds"
            ]
        );
        let mut d3 = d;
        d3["spec"]["minReadySeconds"] = json!(-1);
        d3["spec"]["revisionHistoryLimit"] = json!(-2);
        assert_eq!(
            causes(check("apps/v1", "Deployment", None, d3)),
            vec![
                "spec.minReadySeconds: Invalid value: -1: must be greater than or equal to 0",
                "spec.revisionHistoryLimit: Invalid value: -2: must be greater than or equal to 0"
            ]
        );
    }

    #[test]
    fn container_rules() {
        let d = with(
            deployment(),
            "/spec/template/spec/containers",
            json!([{"name": "web", "image": "a"}, {"name": "web"}, {"name": "Bad", "image": "b",
                "ports": [{"containerPort": 70000, "protocol": "HTTP"}]}]),
        );
        assert_eq!(
            causes(check("apps/v1", "Deployment", None, d)),
            vec![
                "spec.template.spec.containers[1].name: Duplicate value: \"web\"".to_string(),
                "spec.template.spec.containers[1].image: Required value".into(),
                format!("spec.template.spec.containers[2].name: Invalid value: \"Bad\": {}",
                    regex_error(DNS1123_LABEL_MSG, DNS1123_LABEL_FMT, &["my-name", "123-abc"])),
                "spec.template.spec.containers[2].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive".into(),
                "spec.template.spec.containers[2].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"".into(),
            ]
        );
        let d = with(deployment(), "/spec/template/spec/containers", json!([]));
        assert_eq!(
            causes(check("apps/v1", "Deployment", None, d)),
            vec!["spec.template.spec.containers: Required value"]
        );
    }

    #[test]
    fn replica_set_rules() {
        let mut rs = deployment();
        rs["kind"] = json!("ReplicaSet");
        check("apps/v1", "ReplicaSet", None, rs.clone()).unwrap();
        assert_eq!(
            causes(check(
                "apps/v1",
                "ReplicaSet",
                None,
                with(rs.clone(), "/spec/selector", json!({}))
            )),
            vec!["spec.selector: Invalid value: {}: empty selector is invalid for deployment"]
        );
        assert_eq!(
            causes(check(
                "apps/v1",
                "ReplicaSet",
                None,
                with(rs, "/spec/replicas", json!(-3))
            )),
            vec!["spec.replicas: Invalid value: -3: must be greater than or equal to 0"]
        );
    }

    #[test]
    fn stateful_set_daemon_set_and_job_rules() {
        let mut sts = deployment();
        sts["kind"] = json!("StatefulSet");
        sts["spec"]["serviceName"] = json!("web");
        check("apps/v1", "StatefulSet", None, sts.clone()).unwrap();
        assert_eq!(
            causes(check(
                "apps/v1",
                "StatefulSet",
                None,
                with(sts.clone(), "/spec/selector", json!({}))
            )),
            vec!["spec.selector: Invalid value: {}: empty selector is invalid for statefulset"]
        );
        let changed = with(sts.clone(), "/spec/serviceName", json!("other"));
        assert_eq!(
            causes(check("apps/v1", "StatefulSet", Some(sts.clone()), changed)),
            vec![
                "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
            ]
        );
        check(
            "apps/v1",
            "StatefulSet",
            Some(sts.clone()),
            with(sts, "/spec/replicas", json!(5)),
        )
        .unwrap();

        let mut ds = deployment();
        ds["kind"] = json!("DaemonSet");
        ds["spec"].as_object_mut().unwrap().remove("replicas");
        check("apps/v1", "DaemonSet", None, ds.clone()).unwrap();
        assert_eq!(
            causes(check(
                "apps/v1",
                "DaemonSet",
                None,
                with(ds, "/spec/selector/matchLabels/app", json!("x"))
            )),
            vec![
                "spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`"
            ]
        );

        let job = json!({"metadata": {"name": "j"}, "spec": {
            "selector": {"matchLabels": {"job-name": "j"}},
            "template": {"metadata": {"labels": {"job-name": "j"}},
                "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}}});
        assert_eq!(
            causes(check("batch/v1", "Job", None, job.clone())),
            vec![
                "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
            ]
        );
        let mut ok = job;
        ok["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        check("batch/v1", "Job", None, ok.clone()).unwrap();
        let new_image = with(
            ok.clone(),
            "/spec/template/spec/containers/0/image",
            json!("busybox:2"),
        );
        let c = causes(check("batch/v1", "Job", Some(ok), new_image));
        assert_eq!(c.len(), 1);
        assert!(
            c[0].starts_with("spec.template: Invalid value: {\"metadata\":"),
            "{c:?}"
        );
        assert!(c[0].ends_with(": field is immutable"), "{c:?}");
    }

    #[test]
    fn metadata_rules() {
        assert_eq!(
            causes(check("v1", "ConfigMap", None, json!({"metadata": {}}))),
            vec!["metadata.name: Required value: name or generateName is required"]
        );
        assert_eq!(
            causes(check(
                "v1",
                "Namespace",
                None,
                json!({"metadata": {"name": "a.b"}})
            )),
            vec![format!(
                "metadata.name: Invalid value: \"a.b\": {}",
                regex_error(
                    DNS1123_LABEL_MSG,
                    DNS1123_LABEL_FMT,
                    &["my-name", "123-abc"]
                )
            )]
        );
        assert_eq!(
            causes(check(
                "v1",
                "Service",
                None,
                json!({"metadata": {"name": "1web"}, "spec": {"ports": [{"port": 80}]}})
            )),
            vec![
                "metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
            ]
        );
        let long = "a".repeat(254);
        assert_eq!(
            causes(check(
                "v1",
                "ConfigMap",
                None,
                json!({"metadata": {"name": long}})
            )),
            vec![format!(
                "metadata.name: Invalid value: \"{long}\": must be no more than 253 characters"
            )]
        );
        check(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            None,
            json!({"metadata": {"name": "system:controller:x"}}),
        )
        .unwrap();
        assert_eq!(
            causes(check(
                "rbac.authorization.k8s.io/v1",
                "Role",
                None,
                json!({"metadata": {"name": "a/b"}})
            )),
            vec!["metadata.name: Invalid value: \"a/b\": may not contain '/'"]
        );
        assert_eq!(
            causes(check(
                "v1",
                "ConfigMap",
                None,
                json!({"metadata": {"name": "c",
                "labels": {"bad key!": "v", "ok": "bad value!", "example.com/x": "y"}}})
            )),
            vec![
                "metadata.labels: Invalid value: \"bad key!\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                "metadata.labels: Invalid value: \"bad value!\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
            ]
        );
        assert_eq!(
            causes(check(
                "v1",
                "ConfigMap",
                None,
                json!({"metadata": {"name": "c", "annotations": {"a/b/c": "x", "/x": "y"}}})
            )),
            vec![
                "metadata.annotations: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                "metadata.annotations: Invalid value: \"/x\": prefix part must be non-empty",
            ]
        );
        let big = "x".repeat(TOTAL_ANNOTATION_SIZE + 1);
        assert_eq!(
            causes(check(
                "v1",
                "ConfigMap",
                None,
                json!({"metadata": {"name": "c", "annotations": {"a": big}}})
            )),
            vec!["metadata.annotations: Too long: may not be more than 262144 bytes"]
        );
        // Other kinds: metadata only.
        check(
            "coordination.k8s.io/v1",
            "Lease",
            None,
            json!({"metadata": {"name": "j"}, "spec": {"anything": 1}}),
        )
        .unwrap();
    }

    #[test]
    fn config_map_rules() {
        check(
            "v1",
            "ConfigMap",
            None,
            json!({"metadata": {"name": "c"}, "data": {"a.conf": "x", "B_2-c": "y"}}),
        )
        .unwrap();
        assert_eq!(
            causes(check(
                "v1",
                "ConfigMap",
                None,
                json!({"metadata": {"name": "c"}, "data": {"..x": "1", "k": "1"}, "binaryData": {"k": "eA=="}})
            )),
            vec![
                "data[..x]: Invalid value: \"..x\": must not start with '..'",
                "data[k]: Invalid value: \"k\": duplicate of key present in binaryData",
            ]
        );
        let big = "x".repeat(MAX_DATA_SIZE);
        assert_eq!(
            causes(check(
                "v1",
                "ConfigMap",
                None,
                json!({"metadata": {"name": "c"}, "data": {"a": big, "b": "y"}})
            )),
            vec![": Too long: may not be more than 1048576 bytes"]
        );
        let old = json!({"metadata": {"name": "c"}, "data": {"a": "1"}, "immutable": true});
        assert_eq!(
            causes(check(
                "v1",
                "ConfigMap",
                Some(old.clone()),
                json!({"metadata": {"name": "c"}, "data": {"a": "2"}, "immutable": true})
            )),
            vec!["data: Forbidden: field is immutable when `immutable` is set"]
        );
        check(
            "v1",
            "ConfigMap",
            Some(old),
            json!({"metadata": {"name": "c"}, "data": {"a": "1"}, "immutable": true}),
        )
        .unwrap();
    }

    #[test]
    fn secret_rules() {
        check(
            "v1",
            "Secret",
            None,
            json!({"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}}),
        )
        .unwrap();
        assert_eq!(
            causes(check(
                "v1",
                "Secret",
                None,
                json!({"metadata": {"name": "s"}, "data": {"a": "not base64!"}})
            )),
            vec![
                "data[a]: Invalid value: \"<secret contents redacted>\": illegal base64 data at input byte 3"
            ]
        );
        assert_eq!(
            causes(check(
                "v1",
                "Secret",
                None,
                json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": ""}})
            )),
            vec!["data[tls.key]: Required value"]
        );
        let old = json!({"metadata": {"name": "s"}, "type": "Opaque"});
        assert_eq!(
            causes(check(
                "v1",
                "Secret",
                Some(old),
                json!({"metadata": {"name": "s"}, "type": "kubernetes.io/basic-auth", "data": {"username": ""}})
            )),
            vec!["type: Invalid value: \"kubernetes.io/basic-auth\": field is immutable"]
        );
        let big = crate::json::base64_encode(&vec![0u8; MAX_DATA_SIZE + 1]);
        assert_eq!(
            causes(check(
                "v1",
                "Secret",
                None,
                json!({"metadata": {"name": "s"}, "data": {"a": big}})
            )),
            vec!["data: Too long: may not be more than 1048576 bytes"]
        );
    }

    fn svc(spec: Value) -> Result<(), Invalid> {
        check(
            "v1",
            "Service",
            None,
            json!({"metadata": {"name": "web"}, "spec": spec}),
        )
    }

    #[test]
    fn service_rules() {
        svc(json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}))
            .unwrap();
        svc(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]})).unwrap();
        svc(json!({"type": "ExternalName", "externalName": "example.com"})).unwrap();
        svc(json!({"clusterIP": "None"})).unwrap();
        assert_eq!(causes(svc(json!({}))), vec!["spec.ports: Required value"]);
        assert_eq!(
            causes(svc(json!({"ports": [{"port": 0}]}))),
            vec![
                "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive"
            ]
        );
        assert_eq!(
            causes(svc(
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]})
            )),
            vec![
                "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"
            ]
        );
        assert_eq!(
            causes(svc(json!({"ports": [{"port": 80, "nodePort": 30080}]}))),
            vec!["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]
        );
        assert_eq!(
            causes(svc(
                json!({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]})
            )),
            vec![
                "spec.ports[1]: Duplicate value: {\"Name\":\"\",\"Protocol\":\"TCP\",\"AppProtocol\":null,\"Port\":80,\"TargetPort\":0,\"NodePort\":0}"
            ]
        );
        assert_eq!(
            causes(svc(json!({"ports": [{"port": 80}, {"port": 81}]}))),
            vec![
                "spec.ports[0].name: Required value",
                "spec.ports[1].name: Required value"
            ]
        );
        assert_eq!(
            causes(svc(
                json!({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81, "protocol": "UDP"}]})
            )),
            vec!["spec.ports[1].name: Duplicate value: \"a\""]
        );
        assert_eq!(
            causes(svc(json!({"type": "ExternalName"}))),
            vec!["spec.externalName: Required value"]
        );
        assert_eq!(
            causes(svc(json!({"type": "Foo", "ports": [{"port": 1}]}))),
            vec![
                "spec.type: Unsupported value: \"Foo\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""
            ]
        );
        let old = json!({"metadata": {"name": "web"}, "spec": {"clusterIP": "10.96.0.1", "ports": [{"port": 80}]}});
        assert_eq!(
            causes(check(
                "v1",
                "Service",
                Some(old),
                json!({"metadata": {"name": "web"}, "spec": {"clusterIP": "10.96.0.2", "ports": [{"port": 80}]}})
            )),
            vec!["spec.clusterIPs[0]: Invalid value: [\"10.96.0.2\"]: may not change once set"]
        );
    }

    #[test]
    fn pod_rules() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}});
        check("v1", "Pod", None, pod.clone()).unwrap();
        assert_eq!(
            causes(check(
                "v1",
                "Pod",
                None,
                with(pod.clone(), "/spec/containers/0/name", json!(""))
            )),
            vec!["spec.containers[0].name: Required value"]
        );
        let mut p = pod.clone();
        p["spec"]["restartPolicy"] = json!("Sometimes");
        assert_eq!(
            causes(check("v1", "Pod", None, p)),
            vec![
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
            ]
        );
        // Image changes and binding a node are allowed; other spec changes are not.
        let new = with(pod.clone(), "/spec/containers/0/image", json!("busybox:2"));
        let mut new = new;
        new["spec"]["nodeName"] = json!("node-1");
        check("v1", "Pod", Some(pod.clone()), new.clone()).unwrap();
        let moved = with(new.clone(), "/spec/nodeName", json!("node-2"));
        assert_eq!(causes(check("v1", "Pod", Some(new), moved)).len(), 1);
        let mut changed = pod.clone();
        changed["spec"]["containers"][0]["command"] = json!(["sh"]);
        let c = causes(check("v1", "Pod", Some(pod), changed));
        assert!(
            c[0].starts_with("spec: Forbidden: pod updates may not change fields other than"),
            "{c:?}"
        );
    }

    #[test]
    fn render_values() {
        assert_eq!(render(&json!("a")), "\"a\"");
        assert_eq!(render(&json!(3)), "3");
        assert_eq!(
            render(&json!({"b": {"d": 2, "c": 1}, "a": "2"})),
            "{\"a\":\"2\",\"b\":{\"c\":1,\"d\":2}}"
        );
        assert_eq!(render(&json!(["x"])), "[\"x\"]");
        assert_eq!(render(&Value::Null), "null");
    }
}
