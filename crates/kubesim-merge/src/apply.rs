//! Server-side apply (structured merge with field ownership) and the `managedFields`
//! bookkeeping of every other write.
//!
//! Owns: merging an applied configuration into the live object per [`crate::schema`], the
//! applier's owned set, removal of fields it stopped applying, conflict detection and `force`,
//! and the `metadata.managedFields` entries (FieldsV1, the 10-Update-entry cap).
//! Must not: default, validate, bump generation/resourceVersion or read a clock — the caller
//! passes the time and does those on the returned object.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use crate::fieldset::{
    FieldSet, eq_v1, field_element, has_subtree_v1, intersection_v1, item_key, item_keys,
    key_index, render_element, value_key,
};
use crate::schema::{ListType, Schema};

/// The parameters of one apply request.
#[derive(Debug, Clone, Copy)]
pub struct ApplyRequest<'a> {
    /// The `fieldManager` query parameter.
    pub manager: &'a str,
    /// `force=true`: take ownership of conflicting fields instead of failing.
    pub force: bool,
    /// The endpoint's `group/version`, recorded in the manager's entry.
    pub api_version: &'a str,
    /// `Some("status")` for applies to `/status`; only `status` is applied then.
    pub subresource: Option<&'a str>,
    /// RFC 3339 time recorded when the manager's entry changes.
    pub time: &'a str,
}

/// One `details.causes[]` entry of an apply conflict (reason `FieldManagerConflict`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictCause {
    /// `conflict with "kube-controller-manager" using apps/v1`
    pub message: String,
    /// `.spec.replicas`
    pub field: String,
}

/// Why an apply was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// 409 Conflict: fields whose values differ are owned by other managers (and no `force`).
    #[error("{message}")]
    Conflict {
        message: String,
        causes: Vec<ConflictCause>,
    },
    /// 400 BadRequest: the applied configuration is unusable (duplicate map-list keys,
    /// `metadata.managedFields` present, not an object, …).
    #[error("{0}")]
    Invalid(String),
}

impl ApplyError {
    /// The Status `message`.
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// The HTTP status for the Status object.
    pub fn code(&self) -> u16 {
        match self {
            ApplyError::Conflict { .. } => 409,
            ApplyError::Invalid(_) => 400,
        }
    }

    /// A fixed label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ApplyError::Conflict { .. } => "conflict",
            ApplyError::Invalid(_) => "invalid",
        }
    }
}

/// `metadata` fields nobody owns (stripped from every field set).
const UNOWNED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
];

/// Maps that get a `.` member when a non-apply write adds them (pointer structs and Go maps,
/// as the apiserver's comparison of typed objects reports them).
const DOTTED_MAPS: &[&str] = &[
    "labels",
    "annotations",
    "nodeSelector",
    "data",
    "binaryData",
    "stringData",
    "matchLabels",
    "limits",
    "requests",
    "rollingUpdate",
    "selector",
];

/// Which part of the object a write may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// The main resource: `status` is ignored.
    Main,
    /// The `/status` subresource: only `status` and `metadata` count (status strategies keep
    /// e.g. annotation changes, as the Deployment controller's revision annotation shows).
    Status,
}

impl Scope {
    fn of(subresource: Option<&str>) -> Scope {
        if subresource == Some("status") {
            Scope::Status
        } else {
            Scope::Main
        }
    }

    /// Whether `key` under `path` is outside every field set.
    fn ignores(self, path: &[&str], key: &str) -> bool {
        match path {
            [] => {
                key == "apiVersion"
                    || key == "kind"
                    || match self {
                        Scope::Main => key == "status",
                        Scope::Status => key != "status" && key != "metadata",
                    }
            }
            ["metadata"] => UNOWNED_METADATA.contains(&key),
            _ => false,
        }
    }
}

/// Server-side apply of `applied` (the request body as JSON) onto `live` (`None` = create).
///
/// Returns the merged object (not defaulted: the caller defaults and validates afterwards) with
/// `metadata.managedFields` updated. A no-op apply returns `live` unchanged (same
/// managedFields, same times).
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    req: &ApplyRequest,
) -> Result<Value, ApplyError> {
    let Value::Object(applied_obj) = applied else {
        return Err(ApplyError::Invalid(
            "apply patch must be a JSON object".into(),
        ));
    };
    if applied_obj
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .is_some_and(|v| !v.is_null())
    {
        return Err(ApplyError::Invalid(
            "metadata.managedFields must be nil".into(),
        ));
    }
    let str_field = |name: &str| {
        applied_obj
            .get(name)
            .and_then(Value::as_str)
            .or_else(|| live.and_then(|l| l.get(name)).and_then(Value::as_str))
    };
    let api_version = str_field("apiVersion").unwrap_or(req.api_version);
    let kind = str_field("kind").unwrap_or("");
    let schema = Schema::for_kind(api_version, kind);
    let scope = Scope::of(req.subresource);

    let new_set = config_root(&schema, scope, applied_obj).map_err(|e| {
        let meta = applied.get("metadata");
        let get = |f: &str| {
            meta.and_then(|m| m.get(f))
                .and_then(Value::as_str)
                .unwrap_or("")
        };
        ApplyError::Invalid(format!(
            "failed to create typed patch object ({}/{}; {api_version}, Kind={kind}): {e}",
            get("namespace"),
            get("name")
        ))
    })?;

    // `merged` never carries managedFields until the end: they are rebuilt from the entries.
    let mut merged = match live {
        Some(l) => clone_without_managed_fields(l),
        None => skeleton(applied_obj),
    };
    merge_root(&schema, scope, &mut merged, applied_obj);

    let mut entries = parse_entries(live.and_then(managed_fields_of));
    let me = entries.iter().position(|e| {
        e.operation == "Apply"
            && e.manager == req.manager
            && e.subresource.as_deref() == req.subresource
    });
    let set_changed = me.is_none_or(|i| !entries[i].fields_equal(&new_set));
    if set_changed && let Some(last) = me.map(|i| entries[i].owned_fields()) {
        let removal = last.difference(&new_set);
        if !removal.is_empty() {
            let others: Vec<&Value> = entries
                .iter()
                .enumerate()
                .filter(|(j, _)| Some(*j) != me)
                .filter_map(|(_, e)| e.raw_fields)
                .collect();
            prune(
                &schema,
                &mut Vec::new(),
                &mut merged,
                &removal,
                &others,
                Some(&new_set),
            );
        }
    }
    if req.manager == KUBECTL {
        sync_last_applied(&mut merged, applied_obj);
    }
    let object_changed = match live {
        Some(l) => !eq_ignoring_managed_fields(l, &merged),
        None => true,
    };
    if let Some(l) = live
        && !object_changed
        && !set_changed
    {
        // Nothing changed (and so nothing can conflict): the live object, byte for byte.
        return Ok(l.clone());
    }

    let changed = changed_fields(&schema, &mut Vec::new(), &new_set, live, Some(&merged));
    let conflicts: Vec<(usize, FieldSet)> = entries
        .iter()
        .enumerate()
        .filter(|(j, _)| Some(*j) != me)
        .map(|(j, e)| (j, e.intersection(&changed)))
        .filter(|(_, c)| !c.is_empty())
        .collect();
    if !conflicts.is_empty() && !req.force {
        // kubectl's client-side → server-side upgrade: conflicts on fields of the
        // last-applied annotation are forced; only the others are reported.
        let allowed = if req.manager == KUBECTL {
            live.and_then(|l| last_applied_fields(&schema, l))
        } else {
            None
        };
        let remaining: Vec<(usize, FieldSet)> = match &allowed {
            Some(allowed) => conflicts
                .iter()
                .map(|(j, c)| (*j, c.difference(allowed)))
                .filter(|(_, c)| !c.is_empty())
                .collect(),
            None => conflicts.clone(),
        };
        if !remaining.is_empty() {
            return Err(conflict_error(&entries, &remaining));
        }
    }
    for (j, c) in &conflicts {
        let rest = entries[*j].owned_fields().difference(c);
        entries[*j].fields = Some(rest);
    }

    match me {
        Some(i) => {
            let e = &mut entries[i];
            if set_changed {
                e.fields = Some(new_set);
            }
            e.touched = true;
            e.time = Some(req.time.to_owned());
            e.api_version = req.api_version.to_owned();
        }
        None => entries.push(Entry::new(
            req.manager,
            "Apply",
            req.api_version,
            req.time,
            req.subresource,
            new_set,
        )),
    }
    set_managed_fields(&mut merged, encode_entries(entries));
    Ok(merged)
}

/// managedFields bookkeeping for a non-apply write (create, PUT, merge/JSON/strategic patch,
/// controller writes): returns `new` with the manager's Update entry owning every field whose
/// value changed (on create: every field present), those fields taken from other entries, empty
/// entries dropped and at most 10 Update entries (older ones merged into `ancient-changes`).
pub fn record_update(
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    api_version: &str,
    subresource: Option<&str>,
    time: &str,
) -> Value {
    if !new.is_object() {
        return new.clone();
    }
    let kind = new.get("kind").and_then(Value::as_str).unwrap_or("");
    let schema_version = new
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or(api_version);
    let schema = Schema::for_kind(schema_version, kind);
    let scope = Scope::of(subresource);
    let mut changed = FieldSet::default();
    let mut removed = FieldSet::default();
    diff(
        &schema,
        scope,
        &mut Vec::new(),
        old,
        new,
        &mut changed,
        &mut removed,
    );

    // A write that carries managedFields different from the stored ones replaces them (how
    // clients reset ownership); otherwise the stored ones carry over.
    let old_mf = old.and_then(managed_fields_of);
    let source = match managed_fields_of(new) {
        Some(n) if old_mf != Some(n) => Some(n),
        _ => old_mf,
    };
    let mut out = clone_without_managed_fields(new);
    if changed.is_empty() && removed.is_empty() {
        if let Some(mf) = source {
            set_managed_fields(&mut out, mf.clone());
        }
        return out;
    }
    let mut entries = parse_entries(source);
    let mine = |e: &Entry| {
        e.operation == "Update"
            && e.manager == manager
            && e.api_version == api_version
            && e.subresource.as_deref() == subresource
    };
    for e in &mut entries {
        if !changed.is_empty() && !mine(e) && !e.intersection(&changed).is_empty() {
            let rest = e.owned_fields().difference(&changed);
            e.fields = Some(rest);
        }
        if !removed.is_empty() && e.has_subtree_of(&removed) {
            let mut rest = e.owned_fields();
            rest.remove_subtrees(&removed);
            e.fields = Some(rest);
        }
    }
    if !changed.is_empty() {
        match entries.iter_mut().find(|e| mine(e)) {
            Some(e) => {
                let mut fields = e.owned_fields();
                fields.union_with(&changed);
                e.fields = Some(fields);
                e.touched = true;
                e.time = Some(time.to_owned());
            }
            None => entries.push(Entry::new(
                manager,
                "Update",
                api_version,
                time,
                subresource,
                changed,
            )),
        }
    }
    cap_updates(&mut entries);
    set_managed_fields(&mut out, encode_entries(entries));
    out
}

// ---------------------------------------------------------------------------------------------
// kubectl's last-applied-configuration annotation

/// The field manager whose applies keep `kubectl.kubernetes.io/last-applied-configuration` in
/// sync (the apiserver special-cases exactly this name).
const KUBECTL: &str = "kubectl";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

fn last_applied(obj: &Value) -> Option<&str> {
    obj.get("metadata")?
        .get("annotations")?
        .get(LAST_APPLIED)?
        .as_str()
        .filter(|s| !s.is_empty())
}

/// The field set of the configuration recorded in the live object's last-applied annotation.
fn last_applied_fields(schema: &Schema, live: &Value) -> Option<FieldSet> {
    let parsed: Value = serde_json::from_str(last_applied(live)?).ok()?;
    config_root(schema, Scope::Main, parsed.as_object()?).ok()
}

/// If the object carries a last-applied annotation, rewrite it to the applied configuration
/// (without that annotation), encoded like the apiserver does: sorted keys, trailing newline.
fn sync_last_applied(merged: &mut Value, applied: &Map<String, Value>) {
    if last_applied(merged).is_none() {
        return;
    }
    let mut config = sorted(&Value::Object(applied.clone()));
    if let Some(Value::Object(annotations)) = config
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
    {
        annotations.shift_remove(LAST_APPLIED);
    }
    let mut encoded = config.to_string();
    encoded.push('\n');
    if let Some(Value::Object(annotations)) = merged
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
    {
        annotations.insert(LAST_APPLIED.to_owned(), Value::String(encoded));
    }
}

/// A copy with every object's keys in sorted order (Go's encoding of maps).
fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .filter_map(|k| m.get(k).map(|v| (k.clone(), sorted(v))))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// managedFields entries

/// One managedFields entry. Entries read from the object keep their original JSON and are
/// re-emitted as-is unless touched: `fields` is `Some` once the field set changed, `touched`
/// once anything (time, apiVersion) changed.
#[derive(Debug, Clone)]
struct Entry<'v> {
    raw: Option<&'v Value>,
    touched: bool,
    raw_fields: Option<&'v Value>,
    manager: String,
    operation: String,
    api_version: String,
    time: Option<String>,
    subresource: Option<String>,
    fields: Option<FieldSet>,
}

impl<'v> Entry<'v> {
    fn new(
        manager: &str,
        operation: &str,
        api_version: &str,
        time: &str,
        subresource: Option<&str>,
        fields: FieldSet,
    ) -> Entry<'v> {
        Entry {
            raw: None,
            touched: true,
            raw_fields: None,
            manager: manager.to_owned(),
            operation: operation.to_owned(),
            api_version: api_version.to_owned(),
            time: Some(time.to_owned()),
            subresource: subresource.map(str::to_owned),
            fields: Some(fields),
        }
    }

    fn owned_fields(&self) -> FieldSet {
        match (&self.fields, self.raw_fields) {
            (Some(f), _) => f.clone(),
            (None, Some(raw)) => FieldSet::from_fields_v1(raw),
            (None, None) => FieldSet::default(),
        }
    }

    fn fields_equal(&self, set: &FieldSet) -> bool {
        match (&self.fields, self.raw_fields) {
            (Some(f), _) => f == set,
            (None, Some(raw)) => eq_v1(set, raw),
            (None, None) => set.is_empty(),
        }
    }

    fn intersection(&self, set: &FieldSet) -> FieldSet {
        match (&self.fields, self.raw_fields) {
            (Some(f), _) => f.intersection(set),
            (None, Some(raw)) => intersection_v1(set, raw),
            (None, None) => FieldSet::default(),
        }
    }

    fn has_subtree_of(&self, removed: &FieldSet) -> bool {
        match (&self.fields, self.raw_fields) {
            (Some(f), _) => {
                let mut probe = f.clone();
                probe.remove_subtrees(removed);
                probe != *f
            }
            (None, Some(raw)) => has_subtree_v1(removed, raw),
            (None, None) => false,
        }
    }

    fn is_empty(&self) -> bool {
        match (&self.fields, self.raw_fields) {
            (Some(f), _) => f.is_empty(),
            (None, Some(raw)) => raw.as_object().is_none_or(Map::is_empty),
            (None, None) => true,
        }
    }
}

/// How a manager is named in conflict messages (the apiserver's `printManager`).
fn render_manager(e: &Entry) -> String {
    let mut s = format!("{:?}", e.manager);
    if let Some(sub) = &e.subresource {
        s.push_str(&format!(" with subresource {sub:?}"));
    }
    if e.operation == "Update" {
        s.push_str(" using ");
        s.push_str(&e.api_version);
    }
    s
}

fn managed_fields_of(obj: &Value) -> Option<&Value> {
    obj.get("metadata")?
        .get("managedFields")
        .filter(|v| !v.is_null())
}

fn parse_entries(mf: Option<&Value>) -> Vec<Entry<'_>> {
    let Some(Value::Array(items)) = mf else {
        return Vec::new();
    };
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    items
        .iter()
        .filter(|v| v.is_object())
        .map(|v| Entry {
            raw: Some(v),
            touched: false,
            raw_fields: v.get("fieldsV1"),
            manager: s(v, "manager").unwrap_or_default(),
            operation: s(v, "operation").unwrap_or_default(),
            api_version: s(v, "apiVersion").unwrap_or_default(),
            time: s(v, "time"),
            subresource: s(v, "subresource").filter(|s| !s.is_empty()),
            fields: None,
        })
        .collect()
}

/// Drops empty entries and encodes the rest in the apiserver's order (Apply before Update, then
/// by time, manager, apiVersion, subresource).
fn encode_entries(mut entries: Vec<Entry>) -> Value {
    entries.retain(|e| !e.is_empty());
    entries.sort_by(|a, b| {
        (
            &a.operation,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                &b.operation,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    Value::Array(
        entries
            .into_iter()
            .map(|e| {
                let fields = match (e.fields, e.raw) {
                    (None, Some(raw)) if !e.touched => return raw.clone(),
                    (Some(f), _) => f.to_fields_v1(),
                    (None, _) => e
                        .raw_fields
                        .cloned()
                        .unwrap_or_else(|| Value::Object(Map::new())),
                };
                let mut m = Map::new();
                m.insert("manager".into(), Value::String(e.manager));
                m.insert("operation".into(), Value::String(e.operation));
                m.insert("apiVersion".into(), Value::String(e.api_version));
                if let Some(t) = e.time {
                    m.insert("time".into(), Value::String(t));
                }
                m.insert("fieldsType".into(), Value::String("FieldsV1".into()));
                m.insert("fieldsV1".into(), fields);
                if let Some(sub) = e.subresource {
                    m.insert("subresource".into(), Value::String(sub));
                }
                Value::Object(m)
            })
            .collect(),
    )
}

/// Writes `metadata.managedFields` (removing it when there are no entries).
fn set_managed_fields(obj: &mut Value, mf: Value) {
    let Value::Object(root) = obj else { return };
    let empty = mf.as_array().is_some_and(Vec::is_empty);
    match root.get_mut("metadata") {
        Some(Value::Object(meta)) => {
            if empty {
                meta.shift_remove("managedFields");
            } else {
                meta.insert("managedFields".into(), mf);
            }
        }
        _ if !empty => {
            let mut meta = Map::new();
            meta.insert("managedFields".into(), mf);
            root.insert("metadata".into(), Value::Object(meta));
        }
        _ => {}
    }
}

/// A deep copy of an object without `metadata.managedFields`.
fn clone_without_managed_fields(v: &Value) -> Value {
    let Value::Object(root) = v else {
        return v.clone();
    };
    Value::Object(
        root.iter()
            .map(|(k, v)| match v {
                Value::Object(meta) if k == "metadata" => (
                    k.clone(),
                    Value::Object(
                        meta.iter()
                            .filter(|(mk, _)| *mk != "managedFields")
                            .map(|(mk, mv)| (mk.clone(), mv.clone()))
                            .collect(),
                    ),
                ),
                _ => (k.clone(), v.clone()),
            })
            .collect(),
    )
}

/// Equality of two objects disregarding `metadata.managedFields`.
fn eq_ignoring_managed_fields(a: &Value, b: &Value) -> bool {
    fn without(m: &Map<String, Value>) -> impl Iterator<Item = (&String, &Value)> {
        m.iter().filter(|(k, _)| *k != "managedFields")
    }
    let (Value::Object(x), Value::Object(y)) = (a, b) else {
        return a == b;
    };
    x.len() == y.len()
        && x.iter().all(|(k, av)| match (y.get(k), av) {
            (Some(Value::Object(bm)), Value::Object(am)) if k == "metadata" => {
                without(am).count() == without(bm).count()
                    && without(am).all(|(mk, mv)| bm.get(mk) == Some(mv))
            }
            (Some(bv), _) => av == bv,
            (None, _) => false,
        })
}

/// Keeps at most 10 Update entries by merging the oldest into one `ancient-changes` entry.
fn cap_updates(entries: &mut Vec<Entry>) {
    const MAX_UPDATE_ENTRIES: usize = 10;
    entries.retain(|e| !e.is_empty());
    let mut updates: Vec<usize> = (0..entries.len())
        .filter(|&i| entries[i].operation == "Update")
        .collect();
    if updates.len() <= MAX_UPDATE_ENTRIES {
        return;
    }
    updates.sort_by(|&a, &b| {
        (&entries[a].time, &entries[a].manager).cmp(&(&entries[b].time, &entries[b].manager))
    });
    let merge: Vec<usize> = updates[..updates.len() - MAX_UPDATE_ENTRIES + 1].to_vec();
    let mut fields = FieldSet::default();
    let (mut api_version, mut time) = (String::new(), String::new());
    for &i in &merge {
        let e = &entries[i];
        fields.union_with(&e.owned_fields());
        api_version.clone_from(&e.api_version);
        time = e.time.clone().unwrap_or_default();
    }
    let drop: HashSet<usize> = merge.into_iter().collect();
    let mut i = 0;
    entries.retain(|_| {
        let keep = !drop.contains(&i);
        i += 1;
        keep
    });
    entries.push(Entry::new(
        "ancient-changes",
        "Update",
        &api_version,
        &time,
        None,
        fields,
    ));
}

fn conflict_error(entries: &[Entry], conflicts: &[(usize, FieldSet)]) -> ApplyError {
    let mut by_manager: Vec<(String, Vec<String>)> = conflicts
        .iter()
        .map(|(j, set)| (render_manager(&entries[*j]), set.member_paths()))
        .collect();
    by_manager.sort();
    let total: usize = by_manager.iter().map(|(_, p)| p.len()).sum();
    let mut causes = Vec::with_capacity(total);
    for (m, paths) in &by_manager {
        for p in paths {
            causes.push(ConflictCause {
                message: format!("conflict with {m}"),
                field: p.clone(),
            });
        }
    }
    let message = if total == 1 {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            by_manager[0].0, causes[0].field
        )
    } else {
        let mut lines = Vec::new();
        for (m, paths) in &by_manager {
            lines.push(format!("conflicts with {m}:"));
            lines.extend(paths.iter().map(|p| format!("- {p}")));
        }
        format!("Apply failed with {total} conflicts: {}", lines.join("\n"))
    };
    ApplyError::Conflict { message, causes }
}

// ---------------------------------------------------------------------------------------------
// The applied configuration

/// The applied config's top-level and metadata fields that take part in apply (unowned fields,
/// the ignored half of the object and `null`s are skipped).
fn applied_fields<'a>(
    scope: Scope,
    path: &'a [&'a str],
    m: &'a Map<String, Value>,
) -> impl Iterator<Item = (&'a String, &'a Value)> {
    m.iter()
        .filter(move |(k, v)| !v.is_null() && !scope.ignores(path, k))
}

/// The field set of the applied configuration.
fn config_root(
    schema: &Schema,
    scope: Scope,
    applied: &Map<String, Value>,
) -> Result<FieldSet, String> {
    let mut set = FieldSet::default();
    let mut path = Vec::new();
    for (k, v) in applied_fields(scope, &[], applied) {
        let mut node = FieldSet::default();
        path.push(k.as_str());
        match v {
            Value::Object(meta) if k == "metadata" => {
                for (mk, mv) in applied_fields(scope, &["metadata"], meta) {
                    path.push(mk.as_str());
                    let child = node.children.entry(field_element(mk)).or_default();
                    config_fields(schema, &mut path, mv, child)?;
                    path.pop();
                }
            }
            _ => config_fields(schema, &mut path, v, &mut node)?,
        }
        path.pop();
        // Metadata with only unowned fields (just a name) owns nothing.
        if !node.is_empty() {
            set.children.insert(field_element(k), node);
        }
    }
    Ok(set)
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

/// The start of a created object: apiVersion, kind, metadata.name/namespace from the body.
fn skeleton(applied: &Map<String, Value>) -> Value {
    let mut root = Map::new();
    for k in ["apiVersion", "kind"] {
        if let Some(v) = applied.get(k).filter(|v| !v.is_null()) {
            root.insert(k.into(), v.clone());
        }
    }
    let mut meta = Map::new();
    if let Some(Value::Object(m)) = applied.get("metadata") {
        for k in ["name", "namespace"] {
            if let Some(v) = m.get(k).filter(|v| !v.is_null()) {
                meta.insert(k.into(), v.clone());
            }
        }
    }
    root.insert("metadata".into(), Value::Object(meta));
    Value::Object(root)
}

fn dotted_path(path: &[&str]) -> String {
    let mut s = String::new();
    for p in path {
        s.push('.');
        s.push_str(p);
    }
    s
}

/// The field set of a configuration value (`node` is the value's own node): leaves, list items
/// with their `.`, no `.` on maps. Rejects duplicate and keyless map-list items.
fn config_fields<'a>(
    schema: &Schema,
    path: &mut Vec<&'a str>,
    v: &'a Value,
    node: &mut FieldSet,
) -> Result<(), String> {
    match v {
        Value::Object(m) if m.values().any(|v| !v.is_null()) && !schema.is_atomic_map(path) => {
            for (k, c) in m {
                if c.is_null() {
                    continue;
                }
                path.push(k);
                let child = node.children.entry(field_element(k)).or_default();
                config_fields(schema, path, c, child)?;
                path.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => match schema.list_type(path) {
            ListType::Atomic => node.member = true,
            ListType::Set => {
                for item in items {
                    let key = value_key(item);
                    if node.children.contains_key(&key) {
                        let mut r = String::new();
                        render_element(&key, &mut r);
                        return Err(format!(
                            "{}: duplicate entries for key {r}",
                            dotted_path(path)
                        ));
                    }
                    node.children.insert(key, FieldSet::leaf());
                }
            }
            ListType::Map(keys) => {
                for (i, item) in items.iter().enumerate() {
                    let Some(key) = item_key(item, keys) else {
                        return Err(format!(
                            "{}: element {i}: associative list with keys has an element that omits key field {:?} (and doesn't have default value)",
                            dotted_path(path),
                            keys.iter()
                                .find(|k| item.get(**k).is_none())
                                .copied()
                                .unwrap_or("")
                        ));
                    };
                    if node.children.contains_key(&key) {
                        let mut r = String::new();
                        render_element(&key, &mut r);
                        return Err(format!(
                            "{}: duplicate entries for key {r}",
                            dotted_path(path)
                        ));
                    }
                    let mut child = FieldSet::leaf();
                    if let Value::Object(m) = item {
                        for (k, c) in m {
                            if c.is_null() {
                                continue;
                            }
                            path.push(k);
                            let grand = child.children.entry(field_element(k)).or_default();
                            config_fields(schema, path, c, grand)?;
                            path.pop();
                        }
                    }
                    node.children.insert(key, child);
                }
            }
        },
        _ => node.member = true,
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Structured merge

/// Merges the applied configuration into the (live or skeleton) object.
fn merge_root(schema: &Schema, scope: Scope, target: &mut Value, applied: &Map<String, Value>) {
    let Value::Object(t) = target else { return };
    let mut path = Vec::new();
    for (k, v) in applied_fields(scope, &[], applied) {
        path.push(k.as_str());
        match (t.get_mut(k), v) {
            (Some(Value::Object(tm)), Value::Object(meta)) if k == "metadata" => {
                for (mk, mv) in applied_fields(scope, &["metadata"], meta) {
                    path.push(mk.as_str());
                    match tm.get_mut(mk) {
                        Some(tv) => merge_into(schema, &mut path, tv, mv),
                        None => {
                            tm.insert(mk.clone(), strip_nulls(mv));
                        }
                    }
                    path.pop();
                }
            }
            (Some(tv), _) => merge_into(schema, &mut path, tv, v),
            (None, _) => {
                t.insert(k.clone(), strip_nulls(v));
            }
        }
        path.pop();
    }
}

/// Merges `cfg` into `target` per the schema: granular maps recursively, map-lists and sets by
/// item identity (structured-merge-diff's ordering), everything else replaced.
fn merge_into<'a>(schema: &Schema, path: &mut Vec<&'a str>, target: &mut Value, cfg: &'a Value) {
    match (target, cfg) {
        (Value::Object(t), Value::Object(c)) if !schema.is_atomic_map(path) => {
            for (k, v) in c {
                if v.is_null() {
                    continue;
                }
                path.push(k);
                match t.get_mut(k) {
                    Some(tv) => merge_into(schema, path, tv, v),
                    None => {
                        t.insert(k.clone(), strip_nulls(v));
                    }
                }
                path.pop();
            }
        }
        (Value::Array(t), Value::Array(c)) => match item_keys(schema, path, c) {
            Some(rkeys) => {
                let lkeys = item_keys(schema, path, t).unwrap_or_default();
                merge_list(schema, path, t, c, &lkeys, &rkeys);
            }
            None => *t = c.iter().map(strip_nulls).collect(),
        },
        (t, c) => *t = strip_nulls(c),
    }
}

/// structured-merge-diff's `visitListItems` ordering: shared items follow the applied order,
/// live-only items stay where they were, applied-only items go after their predecessor.
fn merge_list<'a>(
    schema: &Schema,
    path: &mut Vec<&'a str>,
    target: &mut Vec<Value>,
    cfg: &'a [Value],
    lkeys: &[String],
    rkeys: &[String],
) {
    let lidx = key_index(lkeys);
    let ridx = key_index(rkeys);
    let mut slots: Vec<Option<Value>> = std::mem::take(target).into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(slots.len().max(cfg.len()));
    let mut shared = rkeys
        .iter()
        .filter(|k| lidx.contains_key(k.as_str()))
        .map(String::as_str)
        .collect::<std::collections::VecDeque<&str>>();
    let mut next_shared = shared.pop_front();
    let mut merged_rhs: HashSet<&str> = HashSet::with_capacity(rkeys.len());
    let (llen, rlen) = (lkeys.len(), rkeys.len());
    let (mut li, mut ri) = (0, 0);
    let take_merged =
        |slots: &mut Vec<Option<Value>>, key: &str, ri: usize, path: &mut Vec<&'a str>| match lidx
            .get(key)
            .and_then(|&i| slots[i].take())
        {
            Some(mut l) => {
                merge_into(schema, path, &mut l, &cfg[ri]);
                l
            }
            None => cfg[ri].clone(),
        };
    while li < llen || ri < rlen {
        if li < llen && ri < rlen {
            if lkeys[li] == rkeys[ri] {
                merged_rhs.insert(&rkeys[ri]);
                let item = match slots[li].take() {
                    Some(mut l) => {
                        merge_into(schema, path, &mut l, &cfg[ri]);
                        l
                    }
                    None => strip_nulls(&cfg[ri]),
                };
                out.push(item);
                li += 1;
                ri += 1;
                next_shared = shared.pop_front();
                continue;
            }
            if ridx.contains_key(lkeys[li].as_str()) && next_shared.is_some_and(|n| n != lkeys[li])
            {
                li += 1;
                continue;
            }
        }
        if li < llen {
            let key = lkeys[li].as_str();
            if !ridx.contains_key(key) {
                if let Some(v) = slots[li].take() {
                    out.push(v);
                }
                li += 1;
                continue;
            } else if merged_rhs.contains(key) {
                li += 1;
                continue;
            }
        }
        if ri < rlen {
            let key = rkeys[ri].as_str();
            merged_rhs.insert(key);
            out.push(take_merged(&mut slots, key, ri, path));
            ri += 1;
            if next_shared == Some(key) {
                next_shared = shared.pop_front();
            }
        } else {
            // Only reachable with duplicate live keys: keep whatever is left.
            li += 1;
        }
    }
    *target = out;
}

/// Removes from `value` every member of `removal` that no other manager owns (`others` are the
/// other entries' `fieldsV1` nodes at this position) and under which the applier owns nothing
/// any more (`keep`, its new set), dropping maps and lists left empty unless the applier still
/// owns them. Returns whether anything was removed.
fn prune<'a>(
    schema: &Schema,
    path: &mut Vec<&'a str>,
    value: &mut Value,
    removal: &'a FieldSet,
    others: &[&Value],
    keep: Option<&FieldSet>,
) -> bool {
    let mut changed = false;
    let others_at =
        |key: &str| -> Vec<&Value> { others.iter().filter_map(|o| o.get(key)).collect() };
    match value {
        Value::Object(m) => {
            for (key, rnode) in &removal.children {
                let Some(name) = key.strip_prefix("f:") else {
                    continue;
                };
                let o = others_at(key);
                let kp = keep.and_then(|k| k.children.get(key));
                if rnode.member && o.is_empty() && kp.is_none() {
                    changed |= m.shift_remove(name).is_some();
                } else if !rnode.children.is_empty()
                    && let Some(child) = m.get_mut(name)
                {
                    path.push(name);
                    let c = prune(schema, path, child, rnode, &o, kp);
                    path.pop();
                    if c {
                        changed = true;
                        if is_empty_container(child) && kp.is_none() {
                            m.shift_remove(name);
                        }
                    }
                }
            }
        }
        Value::Array(items) => {
            let Some(keys) = item_keys(schema, path, items) else {
                return false;
            };
            let idx: HashMap<&str, usize> = key_index(&keys);
            let mut drop = Vec::new();
            for (key, rnode) in &removal.children {
                let Some(&i) = idx.get(key.as_str()) else {
                    continue;
                };
                let o = others_at(key);
                let kp = keep.and_then(|k| k.children.get(key));
                if rnode.member && o.is_empty() && kp.is_none() {
                    drop.push(i);
                } else if !rnode.children.is_empty() {
                    changed |= prune(schema, path, &mut items[i], rnode, &o, kp);
                }
            }
            if !drop.is_empty() {
                changed = true;
                drop.sort_unstable();
                for i in drop.into_iter().rev() {
                    items.remove(i);
                }
            }
        }
        _ => {}
    }
    changed
}

fn is_empty_container(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Looks children up by encoded path element in an object or keyed list.
enum Children<'v> {
    None,
    Object(&'v Map<String, Value>),
    List(&'v [Value], HashMap<String, usize>),
}

impl<'v> Children<'v> {
    fn of(schema: &Schema, path: &[&str], v: Option<&'v Value>) -> Children<'v> {
        match v {
            Some(Value::Object(m)) => Children::Object(m),
            Some(Value::Array(a)) => match item_keys(schema, path, a) {
                Some(keys) => {
                    let mut idx = HashMap::with_capacity(keys.len());
                    for (i, k) in keys.into_iter().enumerate() {
                        idx.entry(k).or_insert(i);
                    }
                    Children::List(a, idx)
                }
                None => Children::None,
            },
            _ => Children::None,
        }
    }

    fn get(&self, key: &str) -> Option<&'v Value> {
        match self {
            Children::None => None,
            Children::Object(m) => m.get(key.strip_prefix("f:")?),
            Children::List(a, idx) => idx.get(key).and_then(|&i| a.get(i)),
        }
    }
}

/// The members of the applied set `a` whose value differs between `live` and `merged` (leaves
/// compared by value; list items count as changed only when added).
fn changed_fields<'a>(
    schema: &Schema,
    path: &mut Vec<&'a str>,
    a: &'a FieldSet,
    live: Option<&Value>,
    merged: Option<&Value>,
) -> FieldSet {
    let mut out = FieldSet::default();
    if a.member {
        out.member = if a.children.is_empty() {
            live != merged
        } else {
            live.is_none()
        };
    }
    if a.children.is_empty() {
        return out;
    }
    let lc = Children::of(schema, path, live);
    let mc = Children::of(schema, path, merged);
    for (key, ac) in &a.children {
        let field = key.strip_prefix("f:");
        if let Some(f) = field {
            path.push(f);
        }
        let c = changed_fields(schema, path, ac, lc.get(key), mc.get(key));
        if field.is_some() {
            path.pop();
        }
        if !c.is_empty() {
            out.children.insert(key.clone(), c);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Comparison for non-apply writes

/// Compares `old` and `new` (the value at `path`): `changed` gets added/modified fields (added
/// list items and added maps of [`DOTTED_MAPS`] with their `.`), `removed` the removed ones.
fn diff<'a>(
    schema: &Schema,
    scope: Scope,
    path: &mut Vec<&'a str>,
    old: Option<&Value>,
    new: &'a Value,
    changed: &mut FieldSet,
    removed: &mut FieldSet,
) {
    match new {
        Value::Object(n) if !n.is_empty() && !schema.is_atomic_map(path) => {
            let old_obj = old.and_then(Value::as_object);
            if old_obj.is_none() && path.last().is_some_and(|l| DOTTED_MAPS.contains(l)) {
                changed.member = true;
            }
            for (k, nv) in n {
                if scope.ignores(path, k) {
                    continue;
                }
                path.push(k);
                let mut c = FieldSet::default();
                let mut r = FieldSet::default();
                diff(
                    schema,
                    scope,
                    path,
                    old_obj.and_then(|o| o.get(k)),
                    nv,
                    &mut c,
                    &mut r,
                );
                path.pop();
                let key = field_element(k);
                if !r.is_empty() {
                    removed.children.insert(key.clone(), r);
                }
                if !c.is_empty() {
                    changed.children.insert(key, c);
                }
            }
            if let Some(o) = old_obj {
                for k in o.keys() {
                    if !n.contains_key(k) && !scope.ignores(path, k) {
                        removed.children.insert(field_element(k), FieldSet::leaf());
                    }
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let keys = item_keys(schema, path, items).filter(|keys| {
                !keys.iter().any(|k| k.starts_with("i:")) && key_index(keys).len() == keys.len()
            });
            let Some(keys) = keys else {
                if old != Some(new) {
                    changed.member = true;
                }
                return;
            };
            let old_children = Children::of(schema, path, old);
            for (item, key) in items.iter().zip(&keys) {
                let ov = old_children.get(key);
                let mut c = FieldSet::default();
                let mut r = FieldSet::default();
                if item.is_object() {
                    diff(schema, scope, path, ov, item, &mut c, &mut r);
                } else if ov != Some(item) {
                    c.member = true;
                }
                if ov.is_none() {
                    c.member = true;
                }
                if !r.is_empty() {
                    removed.children.insert(key.clone(), r);
                }
                if !c.is_empty() {
                    changed.children.insert(key.clone(), c);
                }
            }
            if let Some(Value::Array(old_items)) = old
                && let Some(old_keys) = item_keys(schema, path, old_items)
            {
                let new_idx = key_index(&keys);
                for k in old_keys {
                    if !new_idx.contains_key(k.as_str()) {
                        removed.children.insert(k, FieldSet::leaf());
                    }
                }
            }
        }
        _ => {
            if old != Some(new) {
                changed.member = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T1: &str = "2026-11-21T22:12:28Z";
    const T2: &str = "2026-11-21T22:13:00Z";
    const T3: &str = "2026-11-21T22:14:00Z";

    fn req<'a>(manager: &'a str, force: bool, time: &'a str) -> ApplyRequest<'a> {
        ApplyRequest {
            manager,
            force,
            api_version: "apps/v1",
            subresource: None,
            time,
        }
    }

    fn web(image: &str, replicas: i64) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": image}]}
                }
            }
        })
    }

    fn entries_of(obj: &Value) -> Vec<Value> {
        obj["metadata"]["managedFields"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn entry<'v>(obj: &'v Value, manager: &str, op: &str) -> Option<&'v Value> {
        obj["metadata"]["managedFields"]
            .as_array()?
            .iter()
            .find(|e| e["manager"] == manager && e["operation"] == op)
    }

    fn conflict(err: ApplyError) -> (String, Vec<ConflictCause>) {
        match err {
            ApplyError::Conflict { message, causes } => (message, causes),
            other => panic!("expected a conflict, got {other:?}"),
        }
    }

    /// What the controller does after the first apply: the replica count as an Update.
    fn controller_scales(live: &Value, replicas: i64) -> Value {
        let mut new = live.clone();
        new["spec"]["replicas"] = json!(replicas);
        record_update(
            Some(live),
            &new,
            "kube-controller-manager",
            "apps/v1",
            None,
            T2,
        )
    }

    #[test]
    fn create_via_apply_records_exactly_the_applied_fields() {
        let out = apply(None, &web("nginx:1.25", 2), &req("kubectl", false, T1)).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:1.25"
        );
        assert_eq!(out["metadata"]["name"], "web");
        assert_eq!(
            entries_of(&out),
            vec![json!({
                "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": T1,
                "fieldsType": "FieldsV1",
                "fieldsV1": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {
                        "f:replicas": {},
                        "f:selector": {},
                        "f:template": {
                            "f:metadata": {"f:labels": {"f:app": {}}},
                            "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}}
                        }
                    }
                }
            })]
        );
    }

    #[test]
    fn reapply_identical_is_a_noop() {
        let live = apply(None, &web("nginx:1.25", 2), &req("kubectl", false, T1)).unwrap();
        let again = apply(
            Some(&live),
            &web("nginx:1.25", 2),
            &req("kubectl", false, T2),
        )
        .unwrap();
        assert_eq!(again, live);
        assert_eq!(entry(&again, "kubectl", "Apply").unwrap()["time"], T1);
        // Byte-identical serialization too (key order kept).
        assert_eq!(again.to_string(), live.to_string());
    }

    #[test]
    fn changed_value_updates_object_and_time() {
        let live = apply(None, &web("nginx:1.25", 2), &req("kubectl", false, T1)).unwrap();
        let out = apply(
            Some(&live),
            &web("nginx:1.26", 2),
            &req("kubectl", false, T2),
        )
        .unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:1.26"
        );
        let e = entry(&out, "kubectl", "Apply").unwrap();
        assert_eq!(e["time"], T2);
        assert_eq!(
            e["fieldsV1"],
            entry(&live, "kubectl", "Apply").unwrap()["fieldsV1"]
        );
    }

    #[test]
    fn omitted_fields_are_removed_unless_owned_by_others() {
        let mut first = web("nginx:1.25", 2);
        first["metadata"]["labels"]["tier"] = json!("front");
        first["metadata"]["annotations"] = json!({"note": "x"});
        first["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "sidecar", "image": "busybox", "args": ["sleep"]}));
        let live = apply(None, &first, &req("kubectl", false, T1)).unwrap();
        // Another manager (a controller) sets an annotation of its own and the replica count.
        let mut new = live.clone();
        new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = json!("1");
        let live = record_update(
            Some(&live),
            &new,
            "kube-controller-manager",
            "apps/v1",
            None,
            T2,
        );

        // Re-apply without tier, note, the sidecar, and replicas.
        let mut second = web("nginx:1.25", 2);
        second["spec"]
            .as_object_mut()
            .unwrap()
            .shift_remove("replicas");
        let out = apply(Some(&live), &second, &req("kubectl", false, T3)).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(
            out["metadata"]["annotations"],
            json!({"deployment.kubernetes.io/revision": "1"})
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "web", "image": "nginx:1.25"}])
        );
        assert!(out["spec"].get("replicas").is_none());
        let fields = &entry(&out, "kubectl", "Apply").unwrap()["fieldsV1"];
        assert!(fields["f:spec"].get("f:replicas").is_none());
        assert!(fields["f:metadata"]["f:labels"].get("f:tier").is_none());

        // A field the applier drops but the controller also owns stays.
        let live = controller_scales(&out, 3);
        let mut third = second.clone();
        third["spec"]["replicas"] = json!(3);
        let shared = apply(Some(&live), &third, &req("kubectl", false, T3)).unwrap();
        let dropped = apply(Some(&shared), &second, &req("kubectl", false, T3)).unwrap();
        assert_eq!(dropped["spec"]["replicas"], 3);
        assert!(
            entry(&dropped, "kubectl", "Apply").unwrap()["fieldsV1"]["f:spec"]
                .get("f:replicas")
                .is_none()
        );
        assert!(entry(&dropped, "kube-controller-manager", "Update").unwrap()["fieldsV1"]["f:spec"]["f:replicas"].is_object());
    }

    #[test]
    fn same_value_is_shared_ownership() {
        let live = apply(None, &web("nginx:1.25", 2), &req("kubectl", false, T1)).unwrap();
        let other = apply(Some(&live), &web("nginx:1.25", 2), &req("other", false, T2)).unwrap();
        assert_eq!(
            entry(&other, "kubectl", "Apply").unwrap()["fieldsV1"],
            entry(&other, "other", "Apply").unwrap()["fieldsV1"]
        );
        assert_eq!(entry(&other, "kubectl", "Apply").unwrap()["time"], T1);
        // The first applier can now drop the image; the other manager keeps it alive.
        let mut no_image = web("nginx:1.25", 2);
        no_image["spec"]["template"]["spec"]["containers"][0]
            .as_object_mut()
            .unwrap()
            .shift_remove("image");
        let out = apply(Some(&other), &no_image, &req("kubectl", false, T3)).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:1.25"
        );
    }

    #[test]
    fn conflicts_without_force() {
        let live = apply(None, &web("nginx:1.25", 2), &req("kubectl", false, T1)).unwrap();
        let live = controller_scales(&live, 5);
        // Different value for a field owned by an Update manager.
        let (message, causes) = conflict(
            apply(
                Some(&live),
                &web("nginx:1.25", 2),
                &req("kubectl", false, T3),
            )
            .unwrap_err(),
        );
        assert_eq!(
            message,
            "Apply failed with 1 conflict: conflict with \"kube-controller-manager\" using apps/v1: .spec.replicas"
        );
        assert_eq!(
            causes,
            vec![ConflictCause {
                message: "conflict with \"kube-controller-manager\" using apps/v1".into(),
                field: ".spec.replicas".into()
            }]
        );
        // Applying the controller's value is fine.
        let ok = apply(
            Some(&live),
            &web("nginx:1.25", 5),
            &req("kubectl", false, T3),
        )
        .unwrap();
        assert_eq!(ok["spec"]["replicas"], 5);

        // Another Apply manager: no "using", several conflicts grouped by manager.
        let mut theirs = web("nginx:1.25", 2);
        theirs["metadata"]["labels"]["app"] = json!("web");
        let live = apply(None, &web("nginx:1.25", 2), &req("kubectl", false, T1)).unwrap();
        let mut mine = web("nginx:1.26", 3);
        mine["metadata"]["labels"]["app"] = json!("api");
        let err = apply(Some(&live), &mine, &req("ci", false, T2)).unwrap_err();
        assert_eq!(err.code(), 409);
        let (message, causes) = conflict(err);
        assert_eq!(
            message,
            "Apply failed with 3 conflicts: conflicts with \"kubectl\":\n- .metadata.labels.app\n- .spec.replicas\n- .spec.template.spec.containers[name=\"web\"].image"
        );
        assert_eq!(causes.len(), 3);
        assert_eq!(
            causes[2].field,
            ".spec.template.spec.containers[name=\"web\"].image"
        );
        assert_eq!(causes[2].message, "conflict with \"kubectl\"");
    }

    #[test]
    fn conflict_message_orders_managers_and_renders_subresource() {
        let live = apply(None, &web("nginx:1.25", 2), &req("a-tool", false, T1)).unwrap();
        let mut new = live.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:9");
        let live = record_update(Some(&live), &new, "z-ctl", "apps/v1", None, T2);
        let mut new = live.clone();
        new["spec"]["replicas"] = json!(7);
        let live = record_update(Some(&live), &new, "b-ctl", "apps/v1", Some("scale"), T2);
        let (message, _) =
            conflict(apply(Some(&live), &web("nginx:1.25", 2), &req("me", false, T3)).unwrap_err());
        assert_eq!(
            message,
            "Apply failed with 2 conflicts: conflicts with \"b-ctl\" with subresource \"scale\" using apps/v1:\n- .spec.replicas\nconflicts with \"z-ctl\" using apps/v1:\n- .spec.template.spec.containers[name=\"web\"].image"
        );
    }

    #[test]
    fn force_moves_ownership() {
        let live = apply(None, &web("nginx:1.25", 2), &req("kubectl", false, T1)).unwrap();
        let live = controller_scales(&live, 5);
        assert!(entry(&live, "kube-controller-manager", "Update").is_some());
        let out = apply(
            Some(&live),
            &web("nginx:1.25", 2),
            &req("kubectl", true, T3),
        )
        .unwrap();
        assert_eq!(out["spec"]["replicas"], 2);
        // The controller's only field moved, so its entry is gone.
        assert!(entry(&out, "kube-controller-manager", "Update").is_none());
        assert_eq!(entry(&out, "kubectl", "Apply").unwrap()["time"], T3);
    }

    #[test]
    fn status_is_not_applied_on_the_main_resource() {
        let live = apply(None, &web("nginx:1.25", 2), &req("kubectl", false, T1)).unwrap();
        let mut with_status = live.clone();
        with_status["status"] = json!({"replicas": 2});
        let live = record_update(
            Some(&live),
            &with_status,
            "kube-controller-manager",
            "apps/v1",
            Some("status"),
            T2,
        );
        let mut body = web("nginx:1.25", 2);
        body["status"] = json!({"replicas": 9});
        let out = apply(Some(&live), &body, &req("kubectl", false, T3)).unwrap();
        assert_eq!(out["status"], json!({"replicas": 2}));
        assert_eq!(out, live);
        let e = entry(&live, "kube-controller-manager", "Update").unwrap();
        assert_eq!(e["subresource"], "status");
        assert_eq!(
            e["fieldsV1"],
            // `status` is a value struct: no `.` of its own.
            json!({"f:status": {"f:replicas": {}}})
        );
    }

    #[test]
    fn status_subresource_apply_only_touches_status() {
        let live = apply(None, &web("nginx:1.25", 2), &req("kubectl", false, T1)).unwrap();
        let mut body = web("nginx:1.99", 9);
        body["metadata"]
            .as_object_mut()
            .unwrap()
            .shift_remove("labels");
        body["status"] =
            json!({"replicas": 2, "conditions": [{"type": "Available", "status": "True"}]});
        let r = ApplyRequest {
            subresource: Some("status"),
            ..req("ctl", false, T2)
        };
        let out = apply(Some(&live), &body, &r).unwrap();
        assert_eq!(out["spec"], live["spec"]);
        assert_eq!(out["status"]["replicas"], 2);
        let e = entry(&out, "ctl", "Apply").unwrap();
        assert_eq!(e["subresource"], "status");
        assert_eq!(
            e["fieldsV1"],
            json!({"f:status": {"f:conditions": {"k:{\"type\":\"Available\"}": {".": {}, "f:status": {}, "f:type": {}}}, "f:replicas": {}}})
        );
    }

    #[test]
    fn invalid_bodies() {
        let mut dup = web("nginx:1.25", 2);
        dup["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "web", "image": "x"}));
        let cases = [
            (
                dup,
                "failed to create typed patch object (default/web; apps/v1, Kind=Deployment): .spec.template.spec.containers: duplicate entries for key [name=\"web\"]",
            ),
            (
                {
                    let mut v = web("nginx:1.25", 2);
                    v["metadata"]["managedFields"] = json!([]);
                    v
                },
                "metadata.managedFields must be nil",
            ),
            (json!([1]), "apply patch must be a JSON object"),
            (
                {
                    let mut v = web("nginx:1.25", 2);
                    v["spec"]["template"]["spec"]["containers"][0]
                        .as_object_mut()
                        .unwrap()
                        .shift_remove("name");
                    v
                },
                "failed to create typed patch object (default/web; apps/v1, Kind=Deployment): .spec.template.spec.containers: element 0: associative list with keys has an element that omits key field \"name\" (and doesn't have default value)",
            ),
        ];
        for (body, msg) in cases {
            let err = apply(None, &body, &req("kubectl", false, T1)).unwrap_err();
            assert!(matches!(err, ApplyError::Invalid(_)), "{body}");
            assert_eq!(err.code(), 400);
            assert_eq!(err.message(), msg);
        }
    }

    #[test]
    fn record_update_on_create_owns_everything_present() {
        let mut obj = web("nginx:1.25", 2);
        obj["metadata"]["uid"] = json!("u1");
        obj["metadata"]["creationTimestamp"] = json!(T1);
        obj["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}});
        obj["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80}]);
        obj["spec"]["template"]["spec"]["containers"][0]["resources"] = json!({});
        obj["status"] = json!({});
        let out = record_update(None, &obj, "kubectl-create", "apps/v1", None, T1);
        let e = entries_of(&out);
        assert_eq!(e.len(), 1);
        assert_eq!(
            e[0],
            json!({
                "manager": "kubectl-create", "operation": "Update", "apiVersion": "apps/v1", "time": T1,
                "fieldsType": "FieldsV1",
                "fieldsV1": {
                    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                    "f:spec": {
                        "f:replicas": {},
                        "f:selector": {},
                        "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}, "f:maxUnavailable": {}}, "f:type": {}},
                        "f:template": {
                            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                            "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {
                                ".": {}, "f:image": {}, "f:name": {},
                                "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}},
                                "f:resources": {}
                            }}}
                        }
                    }
                }
            })
        );
        // Everything except managedFields is the input.
        let mut stripped = out.clone();
        stripped["metadata"]
            .as_object_mut()
            .unwrap()
            .shift_remove("managedFields");
        assert_eq!(stripped, obj);
    }

    #[test]
    fn record_update_takes_changed_fields_from_others() {
        let live = apply(None, &web("nginx:1.25", 2), &req("kubectl", false, T1)).unwrap();
        // kubectl set image (SMP) by another manager.
        let mut new = live.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.26");
        new["metadata"]["annotations"] = json!({"a": "b"});
        let out = record_update(Some(&live), &new, "kubectl-set", "apps/v1", None, T2);
        let mine = entry(&out, "kubectl-set", "Update").unwrap();
        assert_eq!(
            mine["fieldsV1"],
            json!({"f:metadata": {"f:annotations": {".": {}, "f:a": {}}},
                   "f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {"f:image": {}}}}}}})
        );
        let applier = entry(&out, "kubectl", "Apply").unwrap();
        assert!(applier["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"].get("f:image").is_none());
        assert_eq!(applier["time"], T1);
        // Apply entries sort before Update entries.
        assert_eq!(entries_of(&out)[0]["operation"], "Apply");
        // No change: managedFields untouched.
        assert_eq!(
            record_update(Some(&out), &out, "other", "apps/v1", None, T3),
            out
        );
        // Removing the annotation removes it from the owner's set (and the now empty entry stays
        // only while it owns something).
        let mut gone = out.clone();
        gone["metadata"]
            .as_object_mut()
            .unwrap()
            .shift_remove("annotations");
        let after = record_update(Some(&out), &gone, "third", "apps/v1", None, T3);
        assert!(
            entry(&after, "kubectl-set", "Update").unwrap()["fieldsV1"]["f:metadata"].is_null()
        );
        assert!(entry(&after, "third", "Update").is_none());
    }

    #[test]
    fn record_update_caps_update_entries() {
        let mut live = apply(None, &web("nginx:1.25", 2), &req("kubectl", false, T1)).unwrap();
        for i in 0..12 {
            let mut new = live.clone();
            if new["metadata"].get("annotations").is_none() {
                new["metadata"]["annotations"] = json!({});
            }
            new["metadata"]["annotations"][format!("m{i}")] = json!("x");
            let t = format!("2026-11-21T23:{i:02}:00Z");
            live = record_update(Some(&live), &new, &format!("m{i:02}"), "apps/v1", None, &t);
        }
        let e = entries_of(&live);
        let updates: Vec<&Value> = e.iter().filter(|e| e["operation"] == "Update").collect();
        assert_eq!(updates.len(), 10);
        assert!(updates.iter().any(|e| e["manager"] == "ancient-changes"));
        assert!(updates.iter().any(|e| e["manager"] == "m11"));
        assert!(!updates.iter().any(|e| e["manager"] == "m00"));
    }

    #[test]
    fn map_list_merge_order_and_sets() {
        let mut live = web("nginx:1.25", 2);
        live["metadata"]["finalizers"] = json!(["a"]);
        live["spec"]["template"]["spec"]["containers"] = json!([{"name": "a", "image": "1"}, {"name": "x", "image": "2"}, {"name": "b", "image": "3"}]);
        let live = record_update(None, &live, "creator", "apps/v1", None, T1);
        let mut body = web("nginx:1.25", 2);
        body["metadata"]["finalizers"] = json!(["b"]);
        body["spec"]["template"]["spec"]["containers"] = json!([{"name": "a", "image": "1"}, {"name": "c", "image": "4"}, {"name": "b", "image": "3"}]);
        let out = apply(Some(&live), &body, &req("kubectl", false, T2)).unwrap();
        let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "x", "c", "b"]);
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b"]));
        let f = &entry(&out, "kubectl", "Apply").unwrap()["fieldsV1"];
        assert_eq!(f["f:metadata"]["f:finalizers"], json!({"v:\"b\"": {}}));
    }

    #[test]
    fn service_ports_keyed_by_port_and_protocol() {
        let svc = |target: i64| {
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
                   "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": target}]}})
        };
        let r = ApplyRequest {
            api_version: "v1",
            ..req("kubectl", false, T1)
        };
        let live = apply(None, &svc(8080), &r).unwrap();
        assert_eq!(
            entry(&live, "kubectl", "Apply").unwrap()["fieldsV1"]["f:spec"],
            json!({"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}, "f:targetPort": {}}},
                   "f:selector": {"f:app": {}}})
        );
        // The defaulted protocol in the live object matches the key of an item that omits it.
        let mut defaulted = live.clone();
        defaulted["spec"]["ports"][0]["protocol"] = json!("TCP");
        let out = apply(Some(&defaulted), &svc(9090), &r).unwrap();
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port": 80, "targetPort": 9090, "protocol": "TCP"}])
        );
        let (message, _) =
            conflict(apply(Some(&out), &svc(1), &ApplyRequest { manager: "x", ..r }).unwrap_err());
        assert_eq!(
            message,
            "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.ports[port=80,protocol=\"TCP\"].targetPort"
        );
    }

    #[test]
    fn atomic_selector_and_granular_labels() {
        let live = apply(None, &web("nginx:1.25", 2), &req("kubectl", false, T1)).unwrap();
        let mut body = web("nginx:1.25", 2);
        body["spec"]["selector"] = json!({"matchLabels": {"tier": "x"}});
        body["metadata"]["labels"] = json!({"extra": "1"});
        let out = apply(Some(&live), &body, &req("kubectl", false, T2)).unwrap();
        // Atomic: replaced whole, not merged.
        assert_eq!(
            out["spec"]["selector"],
            json!({"matchLabels": {"tier": "x"}})
        );
        // Granular: `app` dropped by its only owner, `extra` added.
        assert_eq!(out["metadata"]["labels"], json!({"extra": "1"}));
    }

    #[test]
    fn unknown_kinds_lists_atomic() {
        let body = |items: Value| {
            json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w"}, "spec": {"items": items, "m": {"a": 1}}})
        };
        let r = ApplyRequest {
            api_version: "example.com/v1",
            ..req("kubectl", false, T1)
        };
        let live = apply(None, &body(json!([{"name": "a"}])), &r).unwrap();
        assert_eq!(
            entry(&live, "kubectl", "Apply").unwrap()["fieldsV1"],
            json!({"f:spec": {"f:items": {}, "f:m": {"f:a": {}}}})
        );
        let out = apply(Some(&live), &body(json!([{"name": "b"}])), &r).unwrap();
        assert_eq!(out["spec"]["items"], json!([{"name": "b"}]));
    }

    /// What kubesim's API layer does after an apply creates an object.
    fn default_deployment(obj: &mut Value) {
        obj["spec"]["progressDeadlineSeconds"] = json!(600);
        for c in obj["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
        {
            c["imagePullPolicy"] = json!("IfNotPresent");
            c["terminationMessagePath"] = json!("/dev/termination-log");
            if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports {
                    p["protocol"] = json!("TCP");
                }
            }
        }
    }

    #[test]
    fn reapply_after_server_defaulting_is_a_noop_and_defaults_survive() {
        let mut body = web("nginx:1.25", 2);
        body["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80}]);
        let mut live = apply(None, &body, &req("kubectl", false, T1)).unwrap();
        default_deployment(&mut live);
        let again = apply(Some(&live), &body, &req("kubectl", false, T2)).unwrap();
        assert_eq!(again, live);
        // Dropping the port removes the item although a default was added inside it.
        body["spec"]["template"]["spec"]["containers"][0]
            .as_object_mut()
            .unwrap()
            .shift_remove("ports");
        let out = apply(Some(&live), &body, &req("kubectl", false, T2)).unwrap();
        let c = &out["spec"]["template"]["spec"]["containers"][0];
        assert!(c.get("ports").is_none(), "{c}");
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(out["spec"]["progressDeadlineSeconds"], 600);
    }

    #[test]
    fn rollout_undo_json_patch_is_recorded_as_update() {
        use crate::json_patch;
        let mut live = apply(None, &web("nginx:1.25", 2), &req("kubectl", false, T1)).unwrap();
        live["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "2"});
        let patch = json!([
            {"op": "replace", "path": "/spec/template", "value": {
                "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.24", "resources": {}}]}}},
            {"op": "replace", "path": "/metadata/annotations", "value": {
                "deployment.kubernetes.io/revision": "1", "kubernetes.io/change-cause": "set image nginx:1.24"}}
        ]);
        let mut new = json_patch(&live, &patch).unwrap();
        // The caller normalises the null timestamp before recording.
        new["spec"]["template"]["metadata"]
            .as_object_mut()
            .unwrap()
            .shift_remove("creationTimestamp");
        let out = record_update(Some(&live), &new, "kubectl-rollout", "apps/v1", None, T2);
        let e = entry(&out, "kubectl-rollout", "Update").unwrap();
        assert_eq!(
            e["fieldsV1"],
            json!({
                "f:metadata": {"f:annotations": {"f:deployment.kubernetes.io/revision": {}, "f:kubernetes.io/change-cause": {}}},
                "f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {"f:image": {}, "f:resources": {}}}}}}
            })
        );
        // The applier lost the image, so applying its old image again now conflicts.
        let (message, _) = conflict(
            apply(
                Some(&out),
                &web("nginx:1.25", 2),
                &req("kubectl", false, T3),
            )
            .unwrap_err(),
        );
        assert_eq!(
            message,
            "Apply failed with 1 conflict: conflict with \"kubectl-rollout\" using apps/v1: .spec.template.spec.containers[name=\"web\"].image"
        );
    }

    #[test]
    fn pod_apply_and_env_map_list() {
        let pod = |env: Value| {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
                   "spec": {"containers": [{"name": "c", "image": "busybox", "env": env,
                                            "command": ["sh", "-c", "sleep 1"]}]}})
        };
        let r = ApplyRequest {
            api_version: "v1",
            ..req("kubectl", false, T1)
        };
        let live = apply(
            None,
            &pod(json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])),
            &r,
        )
        .unwrap();
        let f = &entry(&live, "kubectl", "Apply").unwrap()["fieldsV1"];
        assert_eq!(
            f["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"],
            json!({".": {}, "f:command": {}, "f:env": {
                "k:{\"name\":\"A\"}": {".": {}, "f:name": {}, "f:value": {}},
                "k:{\"name\":\"B\"}": {".": {}, "f:name": {}, "f:value": {}}},
                "f:image": {}, "f:name": {}})
        );
        let out = apply(Some(&live), &pod(json!([{"name": "B", "value": "3"}])), &r).unwrap();
        assert_eq!(
            out["spec"]["containers"][0]["env"],
            json!([{"name": "B", "value": "3"}])
        );
    }

    #[test]
    fn applied_order_wins_for_shared_items() {
        let mut body = web("nginx:1.25", 2);
        body["spec"]["template"]["spec"]["containers"] =
            json!([{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]);
        let live = apply(None, &body, &req("kubectl", false, T1)).unwrap();
        body["spec"]["template"]["spec"]["containers"] =
            json!([{"name": "b", "image": "2"}, {"name": "a", "image": "1"}]);
        let out = apply(Some(&live), &body, &req("kubectl", false, T2)).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "b", "image": "2"}, {"name": "a", "image": "1"}])
        );
    }

    #[test]
    fn disjoint_appliers_coexist() {
        let mut base = web("nginx:1.25", 2);
        base["spec"]
            .as_object_mut()
            .unwrap()
            .shift_remove("replicas");
        let live = apply(None, &base, &req("kubectl", false, T1)).unwrap();
        let scaler = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                            "metadata": {"name": "web", "namespace": "default"}, "spec": {"replicas": 4}});
        let live = apply(Some(&live), &scaler, &req("autoscaler", false, T2)).unwrap();
        assert_eq!(live["spec"]["replicas"], 4);
        assert_eq!(
            entry(&live, "autoscaler", "Apply").unwrap()["fieldsV1"],
            json!({"f:spec": {"f:replicas": {}}})
        );
        // The first applier re-applies a new image without replicas: no conflict, replicas stay.
        let out = apply(
            Some(&live),
            &web_without_replicas("nginx:1.26"),
            &req("kubectl", false, T3),
        )
        .unwrap();
        assert_eq!(out["spec"]["replicas"], 4);
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:1.26"
        );
        // Managed fields: Apply entries ordered by time.
        let managers: Vec<Value> = entries_of(&out)
            .iter()
            .map(|e| e["manager"].clone())
            .collect();
        assert_eq!(managers, [json!("autoscaler"), json!("kubectl")]);
    }

    fn web_without_replicas(image: &str) -> Value {
        let mut v = web(image, 0);
        v["spec"].as_object_mut().unwrap().shift_remove("replicas");
        v
    }

    #[test]
    fn kubectl_client_side_to_server_side_upgrade() {
        // Created by client-side apply: everything owned by an Update entry, plus the annotation.
        let mut csa = web("nginx:1.25", 2);
        let last = sorted(&web("nginx:1.25", 2)).to_string() + "\n";
        csa["metadata"]["annotations"] = json!({LAST_APPLIED: last});
        let live = record_update(None, &csa, "kubectl-client-side-apply", "apps/v1", None, T1);

        // Another manager (not kubectl) conflicts as usual.
        let err = apply(Some(&live), &web("nginx:1.26", 2), &req("other", false, T2)).unwrap_err();
        assert_eq!(err.code(), 409);

        // kubectl: conflicts on last-applied fields are forced, the annotation is rewritten.
        let out = apply(
            Some(&live),
            &web("nginx:1.26", 2),
            &req("kubectl", false, T2),
        )
        .unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:1.26"
        );
        let annotation = out["metadata"]["annotations"][LAST_APPLIED]
            .as_str()
            .unwrap();
        assert!(annotation.ends_with("}\n"));
        let parsed: Value = serde_json::from_str(annotation).unwrap();
        assert_eq!(parsed, web("nginx:1.26", 2));
        let csa_entry = entry(&out, "kubectl-client-side-apply", "Update").unwrap();
        assert!(csa_entry["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
            ["k:{\"name\":\"web\"}"]
            .get("f:image")
            .is_none());

        // A conflict outside the last-applied fields is still reported, alone.
        let mut new = out.clone();
        new["spec"]["paused"] = json!(true);
        let live = record_update(Some(&out), &new, "kubectl-rollout", "apps/v1", None, T3);
        let mut body = web("nginx:1.27", 2);
        body["spec"]["paused"] = json!(false);
        let (message, _) =
            conflict(apply(Some(&live), &body, &req("kubectl", false, T3)).unwrap_err());
        assert_eq!(
            message,
            "Apply failed with 1 conflict: conflict with \"kubectl-rollout\" using apps/v1: .spec.paused"
        );
    }

    /// A deterministic generator of Deployment configs varying labels, containers, env and
    /// ports, for invariant checks over many apply sequences.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }

        fn config(&mut self) -> Value {
            let mut labels = Map::new();
            for k in ["a", "b", "c"] {
                if self.next(2) == 0 {
                    labels.insert(k.into(), json!(format!("v{}", self.next(2))));
                }
            }
            let mut containers = Vec::new();
            let mut names = vec!["web", "side", "init"];
            let count = 1 + self.next(3) as usize;
            for _ in 0..count {
                let name = names.remove(self.next(names.len() as u64) as usize);
                let mut c = json!({"name": name, "image": format!("img:{}", self.next(3))});
                let mut env = Vec::new();
                for e in ["X", "Y", "Z"] {
                    if self.next(2) == 0 {
                        env.push(json!({"name": e, "value": format!("{}", self.next(2))}));
                    }
                }
                if !env.is_empty() {
                    c["env"] = json!(env);
                }
                if self.next(2) == 0 {
                    c["ports"] = json!([{"containerPort": 80 + self.next(2)}]);
                }
                containers.push(c);
            }
            let mut v = web("x", 1);
            v["metadata"]["labels"] = Value::Object(labels);
            v["spec"]["template"]["spec"]["containers"] = json!(containers);
            if self.next(3) == 0 {
                v["spec"].as_object_mut().unwrap().shift_remove("replicas");
            }
            v
        }
    }

    /// Every leaf of `cfg` is present in `obj` with the same value (lists by key).
    fn contains_config(schema: &Schema, path: &mut Vec<String>, obj: &Value, cfg: &Value) -> bool {
        match (obj, cfg) {
            (Value::Object(o), Value::Object(c)) => c.iter().all(|(k, cv)| {
                path.push(k.clone());
                let ok = o
                    .get(k)
                    .is_some_and(|ov| contains_config(schema, path, ov, cv));
                path.pop();
                ok
            }),
            (Value::Array(o), Value::Array(c)) => {
                let p: Vec<&str> = path.iter().map(String::as_str).collect();
                match schema.list_type(&p) {
                    ListType::Map(keys) => c.iter().all(|ci| {
                        let key = item_key(ci, keys);
                        o.iter()
                            .find(|oi| item_key(oi, keys) == key)
                            .is_some_and(|oi| contains_config(schema, path, oi, ci))
                    }),
                    _ => o == c,
                }
            }
            _ => obj == cfg,
        }
    }

    #[test]
    fn random_apply_sequences_keep_invariants() {
        let schema = Schema::for_kind("apps/v1", "Deployment");
        let mut g = Gen(7);
        for _ in 0..60 {
            let mut live: Option<Value> = None;
            for step in 0..6 {
                let cfg = g.config();
                let out = apply(live.as_ref(), &cfg, &req("kubectl", false, T1)).unwrap();
                // The applied config is fully reflected in the result.
                let mut stripped = cfg.clone();
                stripped["metadata"]
                    .as_object_mut()
                    .unwrap()
                    .shift_remove("name");
                stripped["metadata"]
                    .as_object_mut()
                    .unwrap()
                    .shift_remove("namespace");
                assert!(
                    contains_config(&schema, &mut Vec::new(), &out, &stripped),
                    "step {step}: {cfg} not in {}\nprevious: {}",
                    out["spec"],
                    live.as_ref()
                        .map(|l| l["spec"].to_string())
                        .unwrap_or_default()
                );
                // A single applier: the object holds exactly the config (plus identity).
                let mut bare = out.clone();
                bare["metadata"]
                    .as_object_mut()
                    .unwrap()
                    .shift_remove("managedFields");
                assert!(
                    contains_config(&schema, &mut Vec::new(), &cfg, &bare),
                    "step {step}: result {bare} has more than {cfg}"
                );
                // The Apply entry is exactly the config's field set.
                let cfg_set = config_root(&schema, Scope::Main, cfg.as_object().unwrap()).unwrap();
                let e = entry(&out, "kubectl", "Apply").unwrap();
                assert!(eq_v1(&cfg_set, &e["fieldsV1"]), "step {step}");
                // Re-applying is a no-op.
                let again = apply(Some(&out), &cfg, &req("kubectl", false, T2)).unwrap();
                assert_eq!(again, out);
                live = Some(out);
            }
        }
    }

    /// Every path owned in `set` exists in `v`.
    fn owned_paths_exist(
        schema: &Schema,
        path: &mut Vec<String>,
        set: &FieldSet,
        v: &Value,
    ) -> bool {
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        let children = Children::of(schema, &p, Some(v));
        set.children.iter().all(|(k, c)| {
            let Some(child) = children.get(k) else {
                return false;
            };
            let field = k.strip_prefix("f:");
            if let Some(f) = field {
                path.push(f.to_owned());
            }
            let ok = owned_paths_exist(schema, path, c, child);
            if field.is_some() {
                path.pop();
            }
            ok
        })
    }

    #[test]
    fn random_multi_manager_sequences_keep_invariants() {
        let schema = Schema::for_kind("apps/v1", "Deployment");
        let mut g = Gen(11);
        let mut conflicts = 0;
        for _ in 0..40 {
            let mut live = apply(None, &g.config(), &req("kubectl", false, T1)).unwrap();
            for step in 0..10 {
                let before = live.clone();
                let (manager, cfg) = match g.next(4) {
                    0 => ("kubectl", Some(g.config())),
                    1 => {
                        // A partial applier: some labels and maybe the replica count.
                        let mut c = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                            "metadata": {"name": "web", "namespace": "default",
                                         "labels": {"b": format!("v{}", g.next(2))}}});
                        if g.next(2) == 0 {
                            c["spec"] = json!({"replicas": g.next(3)});
                        }
                        ("other", Some(c))
                    }
                    _ => ("ctl", None),
                };
                let result = match cfg {
                    Some(cfg) => {
                        let force = g.next(3) == 0;
                        match apply(Some(&live), &cfg, &req(manager, force, T2)) {
                            Ok(out) => {
                                let cfg_set =
                                    config_root(&schema, Scope::Main, cfg.as_object().unwrap())
                                        .unwrap();
                                let e = entry(&out, manager, "Apply").unwrap();
                                assert!(eq_v1(&cfg_set, &e["fieldsV1"]), "step {step}");
                                let again =
                                    apply(Some(&out), &cfg, &req(manager, false, T3)).unwrap();
                                assert_eq!(again, out, "step {step}: re-apply not a no-op");
                                Some(out)
                            }
                            Err(ApplyError::Conflict { .. }) => {
                                assert!(!force);
                                conflicts += 1;
                                None
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                    None => {
                        let mut new = live.clone();
                        new["spec"]["replicas"] = json!(g.next(4));
                        if g.next(2) == 0 {
                            new["metadata"]["labels"]["c"] = json!("ctl");
                        }
                        Some(record_update(Some(&live), &new, "ctl", "apps/v1", None, T2))
                    }
                };
                if let Some(out) = result {
                    live = out;
                }
                for e in entries_of(&live) {
                    let set = FieldSet::from_fields_v1(&e["fieldsV1"]);
                    assert!(
                        owned_paths_exist(&schema, &mut Vec::new(), &set, &live),
                        "step {step}: {} owns a missing path\nbefore: {before}\nafter: {live}",
                        e["manager"]
                    );
                }
            }
        }
        assert!(conflicts > 0, "the sequences should exercise conflicts");
    }

    #[test]
    fn typical_deployment_apply_is_fast() {
        let mut body = web("nginx:1.25", 3);
        body["spec"]["template"]["spec"]["containers"][0]["env"] = json!(
            (0..10)
                .map(|i| json!({"name": format!("E{i}"), "value": "v"}))
                .collect::<Vec<_>>()
        );
        body["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80}]);
        let live = apply(None, &body, &req("kubectl", false, T1)).unwrap();
        let live = controller_scales(&live, 3);
        let start = std::time::Instant::now();
        let n: u32 = std::env::var("APPLY_BENCH_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if cfg!(debug_assertions) { 20 } else { 200 });
        for i in 0..n {
            body["spec"]["template"]["spec"]["containers"][0]["image"] =
                json!(format!("nginx:{i}"));
            let out = apply(Some(&live), &body, &req("kubectl", false, T2)).unwrap();
            assert!(out.is_object());
        }
        let per = start.elapsed() / n;
        eprintln!("apply: {per:?} per call");
        let start = std::time::Instant::now();
        for _ in 0..n {
            let c = live.clone();
            assert!(c.is_object());
        }
        eprintln!(
            "clone of live (reference): {:?} per call",
            start.elapsed() / n
        );
        let start = std::time::Instant::now();
        for i in 0..n {
            let mut new = live.clone();
            new["status"] = json!({"observedGeneration": 1, "replicas": i, "updatedReplicas": i,
                "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]});
            let out = record_update(
                Some(&live),
                &new,
                "kube-controller-manager",
                "apps/v1",
                Some("status"),
                T2,
            );
            assert!(out.is_object());
        }
        let per_update = start.elapsed() / n;
        eprintln!("record_update (status write, incl. building it): {per_update:?} per call");
        // Only optimised builds are timed (debug builds on a loaded 2-core machine are not
        // meaningful); the bound is generous because the machine is shared.
        let bound = std::time::Duration::from_millis(5);
        assert!(cfg!(debug_assertions) || per < bound, "{per:?}");
        assert!(
            cfg!(debug_assertions) || per_update < bound,
            "{per_update:?}"
        );
    }
}
