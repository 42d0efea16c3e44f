//! The write path every mutation takes, from HTTP handlers and from the controller driver
//! alike: decode → patch/apply → default → prepare (strategy) → validate → managedFields →
//! no-op check → store. Also deletion (propagation policies, finalizers, preconditions),
//! namespace existence, generateName/uid, and Service IP / NodePort / LoadBalancer
//! allocation. Server-side apply merges outside the store lock and commits only if the
//! object is still the one it merged against (bounded retries, then under the lock).
//!
//! Must not: speak HTTP (handlers translate to and from it) or run controllers.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use jiff::Timestamp;
use rand::Rng;
use serde_json::{Map, Value, json};

use crate::App;
use crate::clock::rfc3339;
use crate::sem::{self, Resource};
use crate::status::ApiError;
use crate::store::{ObjKey, State};

/// Who writes and how (query parameters of the request).
#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    pub dry_run: bool,
    /// fieldManager, or the User-Agent prefix; `None` only for apply (which then fails).
    pub manager: Option<String>,
    pub force: bool,
}

/// Patch content types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        let ct = ct.split(';').next().unwrap_or("").trim();
        match ct {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/json-patch+json" => Some(PatchType::Json),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    #[default]
    Background,
    Foreground,
    Orphan,
}

#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    pub dry_run: bool,
    pub propagation: Propagation,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

/// Result of a delete.
#[derive(Debug, Clone)]
pub enum Deleted {
    /// Removed; the last state (with the delete's resourceVersion).
    Gone(Value),
    /// Still present (finalizers, foreground deletion), with `deletionTimestamp`.
    Pending(Value),
}

pub fn key_of(res: &Resource, ns: Option<&str>, name: &str) -> ObjKey {
    let ns = if res.namespaced { ns.unwrap_or("") } else { "" };
    (
        res.group.to_owned(),
        res.plural.to_owned(),
        ns.to_owned(),
        name.to_owned(),
    )
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata").and_then(Value::as_object_mut) {
        Some(m) => m,
        None => unreachable_meta(),
    }
}

#[allow(clippy::panic)]
fn unreachable_meta() -> ! {
    panic!("metadata was just made an object")
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// The 5-character suffix alphabet of generateName and pod names.
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

pub fn random_suffix(n: usize) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

pub fn new_uid() -> String {
    let mut rng = rand::rng();
    let b: [u8; 16] = rng.random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-4{}-{}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        ["8", "9", "a", "b"][(b[8] & 3) as usize],
        &h[17..20],
        &h[20..32]
    )
}

/// Checks and fills what the URL determines: apiVersion/kind, namespace, name.
fn normalize_identity(
    res: &Resource,
    ns: Option<&str>,
    url_name: Option<&str>,
    obj: &mut Value,
) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml",
        ));
    }
    let api_version = res.api_version();
    match obj.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => obj["apiVersion"] = json!(api_version),
        Some(v) if v != api_version => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )));
        }
        _ => {}
    }
    match obj.get("kind").and_then(Value::as_str) {
        None | Some("") => obj["kind"] = json!(res.kind),
        Some(k) if k != res.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                res.kind
            )));
        }
        _ => {}
    }
    let meta = meta_mut(obj);
    if res.namespaced {
        let url_ns = ns.unwrap_or("default");
        match meta.get("namespace").and_then(Value::as_str) {
            Some(n) if !n.is_empty() && n != url_ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                meta.insert("namespace".into(), json!(url_ns));
            }
        }
    } else {
        meta.remove("namespace");
    }
    if let Some(url_name) = url_name {
        match meta.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() && n != url_name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({url_name})"
                )));
            }
            _ => {
                meta.insert("name".into(), json!(url_name));
            }
        }
    }
    // A typed client's `creationTimestamp: null` means absent.
    if meta.get("creationTimestamp").is_some_and(Value::is_null) {
        meta.remove("creationTimestamp");
    }
    Ok(())
}

fn check_namespace(st: &State, res: &Resource, obj: &Value) -> Result<(), ApiError> {
    if !res.namespaced {
        return Ok(());
    }
    let ns = meta_str(obj, "namespace").unwrap_or("default");
    if st
        .get(&(
            String::new(),
            "namespaces".into(),
            String::new(),
            ns.to_owned(),
        ))
        .is_none()
    {
        return Err(ApiError::not_found("", "namespaces", ns));
    }
    Ok(())
}

fn manager(opts: &WriteOpts) -> &str {
    opts.manager.as_deref().unwrap_or("unknown")
}

/// POST.
pub fn create(
    app: &App,
    res: &'static Resource,
    ns: Option<&str>,
    mut obj: Value,
    opts: &WriteOpts,
) -> Result<Value, ApiError> {
    normalize_identity(res, ns, None, &mut obj)?;
    let now = app.clock.now();
    let mut st = app.store.lock();
    let meta = meta_mut(&mut obj);
    let has_name = meta
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    if !has_name {
        let Some(base) = meta
            .get("generateName")
            .and_then(Value::as_str)
            .filter(|g| !g.is_empty())
            .map(str::to_owned)
        else {
            return Err(ApiError::invalid(
                res.kind,
                res.group,
                "",
                "metadata.name",
                "FieldValueRequired",
                "Required value: name or generateName is required",
            ));
        };
        let ns_now = meta
            .get("namespace")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let name = loop {
            let candidate = format!("{base}{}", random_suffix(5));
            if st
                .get(&key_of(res, ns_now.as_deref(), &candidate))
                .is_none()
            {
                break candidate;
            }
        };
        meta.insert("name".into(), json!(name));
    }
    for f in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
    ] {
        meta.remove(f);
    }
    meta.insert("uid".into(), json!(new_uid()));
    meta.insert("creationTimestamp".into(), json!(rfc3339(now)));
    finish_create(app, &mut st, res, obj, opts, None, now)
}

/// The common tail of create and apply-create. `applied` = managedFields already set by apply.
fn finish_create(
    app: &App,
    st: &mut State,
    res: &'static Resource,
    mut obj: Value,
    opts: &WriteOpts,
    applied: Option<()>,
    now: Timestamp,
) -> Result<Value, ApiError> {
    check_namespace(st, res, &obj)?;
    let name = meta_str(&obj, "name").unwrap_or_default().to_owned();
    let key = key_of(res, meta_str(&obj, "namespace"), &name);
    if st.get(&key).is_some() {
        return Err(ApiError::already_exists(res.group, res.plural, &name));
    }
    sem::default(res, &mut obj);
    sem::prepare_create(res, &mut obj);
    if res.group.is_empty() && res.kind == "Service" {
        allocate_service(app, st, None, &mut obj);
    }
    sem::validate(res, None, &obj)?;
    if applied.is_none() {
        obj = sem::record_update(None, &obj, manager(opts), &res.api_version(), None, now);
    }
    if opts.dry_run {
        meta_mut(&mut obj).remove("resourceVersion");
        return Ok(obj);
    }
    Ok((*st.put(key, obj)).clone())
}

/// Copies what clients may not change from the stored object.
fn carry_server_fields(old: &Value, new: &mut Value) {
    let old_meta = old.get("metadata").cloned().unwrap_or(json!({}));
    let meta = meta_mut(new);
    for f in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "resourceVersion",
    ] {
        match old_meta.get(f) {
            Some(v) => meta.insert(f.into(), v.clone()),
            None => meta.remove(f),
        };
    }
    if meta.get("managedFields").is_none_or(Value::is_null)
        && let Some(mf) = old_meta.get("managedFields")
    {
        meta.insert("managedFields".into(), mf.clone());
    }
}

/// The common tail of PUT, patch and apply on an existing object.
#[allow(clippy::too_many_arguments)]
fn finish_update(
    app: &App,
    st: &mut State,
    res: &'static Resource,
    key: ObjKey,
    old: &Value,
    mut new: Value,
    sub: Option<&str>,
    opts: &WriteOpts,
    applied: bool,
    now: Timestamp,
) -> Result<Value, ApiError> {
    // Optimistic lock: a resourceVersion in the request must match the stored one.
    if let Some(rv) = meta_str(&new, "resourceVersion").filter(|r| !r.is_empty())
        && Some(rv) != meta_str(old, "resourceVersion")
    {
        return Err(ApiError::conflict(res.group, res.plural, &key.3));
    }
    carry_server_fields(old, &mut new);
    {
        let meta = meta_mut(&mut new);
        meta.insert("name".into(), json!(key.3));
        if res.namespaced {
            meta.insert("namespace".into(), json!(key.2));
        }
    }
    sem::default(res, &mut new);
    // A /scale write has already been turned into the whole object: the main resource's
    // strategy applies, while managedFields record the subresource.
    let strategy_sub = if sub == Some("scale") { None } else { sub };
    sem::prepare_update(res, old, &mut new, strategy_sub);
    if res.group.is_empty() && res.kind == "Service" {
        allocate_service(app, st, Some(old), &mut new);
    }
    sem::validate(res, Some(old), &new)?;
    if !applied {
        new = sem::record_update(Some(old), &new, manager(opts), &res.api_version(), sub, now);
    }
    if new == *old {
        return Ok(old.clone());
    }
    if opts.dry_run {
        return Ok(new);
    }
    let terminating = new
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null());
    let no_finalizers = new
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if terminating && no_finalizers {
        st.put(key.clone(), new);
        return Ok(st.delete(&key).map(|v| (*v).clone()).unwrap_or(Value::Null));
    }
    Ok((*st.put(key, new)).clone())
}

/// PUT (main resource or a subresource such as `status`).
pub fn update(
    app: &App,
    res: &'static Resource,
    ns: Option<&str>,
    name: &str,
    sub: Option<&str>,
    mut obj: Value,
    opts: &WriteOpts,
) -> Result<Value, ApiError> {
    normalize_identity(res, ns, Some(name), &mut obj)?;
    let now = app.clock.now();
    let mut st = app.store.lock();
    let key = key_of(res, ns, name);
    let Some(old) = st.get(&key) else {
        return Err(ApiError::not_found(res.group, res.plural, name));
    };
    if sub == Some("scale") {
        let mut new = (*old).clone();
        sem::apply_scale(res, &mut new, &obj)?;
        let rv = meta_str(&obj, "resourceVersion").map(str::to_owned);
        if let Some(rv) = rv {
            meta_mut(&mut new).insert("resourceVersion".into(), json!(rv));
        }
        return finish_update(app, &mut st, res, key, &old, new, sub, opts, false, now);
    }
    finish_update(app, &mut st, res, key, &old, obj, sub, opts, false, now)
}

fn parse_body(body: &[u8], yaml: bool) -> Result<Value, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(e) if !yaml => Err(ApiError::bad_request(format!("error decoding patch: {e}"))),
        Err(_) => serde_yaml::from_slice::<Value>(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}"))),
    }
}

/// PATCH with any of the four content types. Returns the object and whether it was created.
#[allow(clippy::too_many_arguments)]
pub fn patch(
    app: &App,
    res: &'static Resource,
    ns: Option<&str>,
    name: &str,
    sub: Option<&str>,
    ptype: PatchType,
    body: &[u8],
    opts: &WriteOpts,
) -> Result<(Value, bool), ApiError> {
    let now = app.clock.now();
    let patch = parse_body(body, ptype == PatchType::Apply)?;
    if ptype != PatchType::Apply && opts.force {
        return Err(ApiError::invalid(
            "PatchOptions",
            "meta.k8s.io",
            "",
            "force",
            "FieldValueForbidden",
            "Forbidden: may not be specified for non-apply patch",
        ));
    }
    if ptype == PatchType::Apply {
        return apply_patch(app, res, ns, name, sub, patch, opts, now);
    }
    let mut st = app.store.lock();
    let key = key_of(res, ns, name);
    let Some(old) = st.get(&key) else {
        return Err(ApiError::not_found(res.group, res.plural, name));
    };
    let base = if sub == Some("scale") {
        sem::scale_of(res, &old).ok_or_else(ApiError::no_route)?
    } else {
        (*old).clone()
    };
    let mut patched = match ptype {
        PatchType::Merge => sem::merge_patch(&base, &patch),
        PatchType::Json => sem::json_patch(&base, &patch)?,
        PatchType::Strategic => {
            let (api_version, kind) = if sub == Some("scale") {
                ("autoscaling/v1".to_owned(), "Scale")
            } else {
                (res.api_version(), res.kind)
            };
            sem::strategic_merge_patch(&api_version, kind, &base, &patch)?
        }
        PatchType::Apply => base,
    };
    if sub == Some("scale") {
        let mut new = (*old).clone();
        sem::apply_scale(res, &mut new, &patched)?;
        if let Some(rv) = meta_str(&patched, "resourceVersion").map(str::to_owned) {
            meta_mut(&mut new).insert("resourceVersion".into(), json!(rv));
        }
        patched = new;
    }
    if !patched.is_object() {
        return Err(ApiError::bad_request("patched object is not a JSON object"));
    }
    // Identity cannot change through a patch.
    {
        let meta = meta_mut(&mut patched);
        meta.insert("name".into(), json!(name));
    }
    patched["apiVersion"] = json!(res.api_version());
    patched["kind"] = json!(res.kind);
    let out = finish_update(app, &mut st, res, key, &old, patched, sub, opts, false, now)?;
    Ok((out, false))
}

/// Merges of one apply computed outside the store lock before one is made under it.
const APPLY_ATTEMPTS: usize = 3;

#[allow(clippy::too_many_arguments)]
fn apply_patch(
    app: &App,
    res: &'static Resource,
    ns: Option<&str>,
    name: &str,
    sub: Option<&str>,
    applied: Value,
    opts: &WriteOpts,
    now: Timestamp,
) -> Result<(Value, bool), ApiError> {
    let Some(manager) = opts.manager.as_deref() else {
        return Err(ApiError::invalid(
            "PatchOptions",
            "meta.k8s.io",
            "",
            "fieldManager",
            "FieldValueRequired",
            "Required value: is required for apply patch",
        ));
    };
    if !applied.is_object() {
        return Err(ApiError::bad_request("apply patch must be an object"));
    }
    let api_version = res.api_version();
    let given = applied
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if given != api_version || applied.get("kind").and_then(Value::as_str) != Some(res.kind) {
        return Err(ApiError::bad_request(format!(
            "Incorrect version specified in apply patch. Specified patch version: {given}, expected: {api_version}"
        )));
    }
    if applied
        .pointer("/metadata/managedFields")
        .is_some_and(|v| !v.is_null())
    {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }
    let mut applied = applied;
    normalize_identity(res, ns, Some(name), &mut applied)?;
    let key = key_of(res, ns, name);
    let merge = |old: Option<&Value>| -> Result<Value, ApiError> {
        let Some(old) = old else {
            if sub.is_some() {
                return Err(ApiError::not_found(res.group, res.plural, name));
            }
            let mut obj = sem::apply(None, &applied, manager, opts.force, &api_version, None, now)?;
            let meta = meta_mut(&mut obj);
            meta.remove("resourceVersion");
            meta.insert("uid".into(), json!(new_uid()));
            meta.insert("creationTimestamp".into(), json!(rfc3339(now)));
            return Ok(obj);
        };
        if let Some(rv) = meta_str(&applied, "resourceVersion").filter(|r| !r.is_empty())
            && Some(rv) != meta_str(old, "resourceVersion")
        {
            return Err(ApiError::conflict(res.group, res.plural, name));
        }
        let mut merged = sem::apply(
            Some(old),
            &applied,
            manager,
            opts.force,
            &api_version,
            sub,
            now,
        )?;
        meta_mut(&mut merged).remove("resourceVersion");
        Ok(merged)
    };
    // The merge is a pure function of the stored object: compute it without the store lock
    // (concurrent applies of other objects proceed meanwhile) and commit only if the object
    // is still the one merged against; after APPLY_ATTEMPTS lost races, merge under the lock.
    let mut attempt = 1;
    let (mut st, current, merged) = loop {
        let seen = app.store.get(&key);
        let merged = merge(seen.as_deref());
        let st = app.store.lock();
        let current = st.get(&key);
        let same = match (&seen, &current) {
            (None, None) => true,
            (Some(a), Some(b)) => std::sync::Arc::ptr_eq(a, b),
            _ => false,
        };
        if same {
            break (st, current, merged);
        }
        if attempt >= APPLY_ATTEMPTS {
            let merged = merge(current.as_deref());
            break (st, current, merged);
        }
        drop(st);
        attempt += 1;
    };
    let merged = merged?;
    match current {
        None => {
            let obj = finish_create(app, &mut st, res, merged, opts, Some(()), now)?;
            Ok((obj, true))
        }
        Some(old) => {
            let out = finish_update(app, &mut st, res, key, &old, merged, sub, opts, true, now)?;
            Ok((out, false))
        }
    }
}

/// Every object (any resource) that lists `uid` among its ownerReferences.
pub fn dependents_of(
    st: &State,
    namespace: &str,
    uid: &str,
) -> Vec<(ObjKey, std::sync::Arc<Value>)> {
    let mut out = Vec::new();
    for res in sem::resources() {
        let ns = if res.namespaced {
            Some(namespace)
        } else {
            None
        };
        for obj in st.list(res.group, res.plural, ns) {
            let owned = obj
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| {
                    refs.iter()
                        .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid))
                });
            if owned {
                let name = meta_str(&obj, "name").unwrap_or_default();
                out.push((key_of(res, meta_str(&obj, "namespace"), name), obj.clone()));
            }
        }
    }
    out
}

/// DELETE of one object.
pub fn delete(
    app: &App,
    res: &'static Resource,
    ns: Option<&str>,
    name: &str,
    opts: &DeleteOpts,
) -> Result<Deleted, ApiError> {
    let now = app.clock.now();
    let mut st = app.store.lock();
    delete_locked(&mut st, res, ns, name, opts, now)
}

pub(crate) fn delete_locked(
    st: &mut State,
    res: &'static Resource,
    ns: Option<&str>,
    name: &str,
    opts: &DeleteOpts,
    now: Timestamp,
) -> Result<Deleted, ApiError> {
    let key = key_of(res, ns, name);
    let Some(old) = st.get(&key) else {
        return Err(ApiError::not_found(res.group, res.plural, name));
    };
    let uid = meta_str(&old, "uid").unwrap_or_default().to_owned();
    if let Some(want) = &opts.precondition_uid
        && *want != uid
    {
        return Err(ApiError {
            details: Some(Box::new(
                json!({"name": name, "group": res.group, "kind": res.plural}),
            )),
            ..ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {want}, UID in object meta: {uid}",
                    res.group_resource()
                ),
            )
        });
    }
    if let Some(want) = &opts.precondition_rv {
        let have = meta_str(&old, "resourceVersion").unwrap_or_default();
        if want != have {
            return Err(ApiError {
                details: Some(Box::new(
                    json!({"name": name, "group": res.group, "kind": res.plural}),
                )),
                ..ApiError::new(
                    409,
                    "Conflict",
                    format!(
                        "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {have}",
                        res.group_resource()
                    ),
                )
            });
        }
    }
    let already_terminating = old
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null());
    let mut finalizers: Vec<Value> = old
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if already_terminating {
        return Ok(Deleted::Pending((*old).clone()));
    }
    if opts.propagation == Propagation::Foreground {
        let has_deps = !dependents_of(st, &key.2, &uid).is_empty();
        if has_deps && !finalizers.iter().any(|f| f == "foregroundDeletion") {
            finalizers.push(json!("foregroundDeletion"));
        }
    }
    if !finalizers.is_empty() {
        let mut new = (*old).clone();
        let meta = meta_mut(&mut new);
        meta.insert("deletionTimestamp".into(), json!(rfc3339(now)));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        meta.insert("finalizers".into(), Value::Array(finalizers));
        if opts.dry_run {
            return Ok(Deleted::Pending(new));
        }
        return Ok(Deleted::Pending((*st.put(key, new)).clone()));
    }
    if opts.dry_run {
        return Ok(Deleted::Gone((*old).clone()));
    }
    if opts.propagation == Propagation::Orphan {
        for (dkey, dep) in dependents_of(st, &key.2, &uid) {
            let mut d = (*dep).clone();
            if let Some(refs) = d
                .pointer_mut("/metadata/ownerReferences")
                .and_then(Value::as_array_mut)
            {
                refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid.as_str()));
                if refs.is_empty() {
                    meta_mut(&mut d).remove("ownerReferences");
                }
            }
            st.put(dkey, d);
        }
    }
    if res.group.is_empty() && res.kind == "Namespace" {
        // Namespaces take their content with them.
        for r in sem::resources().iter().filter(|r| r.namespaced) {
            for obj in st.list(r.group, r.plural, Some(name)) {
                let n = meta_str(&obj, "name").unwrap_or_default().to_owned();
                st.delete(&key_of(r, Some(name), &n));
            }
        }
    }
    let gone = st.delete(&key).map(|v| (*v).clone()).unwrap_or(Value::Null);
    Ok(Deleted::Gone(gone))
}

/// ClusterIP from 10.96.0.0/12, NodePorts from 30000–32767, LoadBalancer ingress from the pool.
fn allocate_service(app: &App, st: &State, old: Option<&Value>, svc: &mut Value) {
    // The store keeps what every Service holds (`State::allocated`), so this costs the same
    // with ten Services or ten thousand; `old` (the stored state of this Service) does not
    // count as taken.
    let taken = &st.allocated;
    let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_owned();
    if ty == "ExternalName" {
        return;
    }
    let old_ip = old
        .and_then(|o| o.pointer("/spec/clusterIP"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let has_ip = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    if !has_ip {
        let ip = old_ip.unwrap_or_else(|| {
            let base = u32::from(Ipv4Addr::new(10, 96, 0, 10));
            (0..(1u32 << 20) - 20)
                .map(|i| base + i)
                .find(|ip| !taken.cluster_ip_taken(*ip, old))
                .map(|ip| Ipv4Addr::from(ip).to_string())
                .unwrap_or_else(|| "10.96.0.10".into())
        });
        spec.insert("clusterIP".into(), json!(ip));
    }
    if let Some(ip) = spec.get("clusterIP").cloned() {
        spec.insert("clusterIPs".into(), json!([ip]));
    }
    let needs_node_ports = ty == "NodePort" || ty == "LoadBalancer";
    let old_ports: Vec<Value> = old
        .and_then(|o| o.pointer("/spec/ports"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // NodePorts given to this Service's other ports in this write.
    let mut mine: BTreeSet<u64> = BTreeSet::new();
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut() {
            if !needs_node_ports {
                if let Some(m) = p.as_object_mut() {
                    m.remove("nodePort");
                }
                continue;
            }
            if let Some(n) = p.get("nodePort").and_then(Value::as_u64).filter(|n| *n > 0) {
                mine.insert(n);
                continue;
            }
            let reuse = old_ports
                .iter()
                .find(|o| o.get("port") == p.get("port"))
                .and_then(|o| o.get("nodePort"))
                .and_then(Value::as_u64);
            let np = reuse.unwrap_or_else(|| {
                (30000..=32767)
                    .find(|n| !mine.contains(n) && !taken.node_port_taken(*n, old))
                    .unwrap_or(30000)
            });
            mine.insert(np);
            p["nodePort"] = json!(np);
        }
    }
    if ty == "LoadBalancer" {
        let has = svc
            .pointer("/status/loadBalancer/ingress")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if !has {
            let free = app
                .lb_pool
                .iter()
                .map(ToString::to_string)
                .find(|ip| !taken.lb_ip_taken(ip, old));
            svc["status"] = match free {
                Some(ip) => json!({"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}),
                None => json!({"loadBalancer": {}}),
            };
        }
    } else if let Some(st) = svc.get_mut("status").and_then(Value::as_object_mut) {
        st.insert("loadBalancer".into(), json!({}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_and_suffix_shapes() {
        let u = new_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(u.matches('-').count(), 4);
        let s = random_suffix(5);
        assert_eq!(s.len(), 5);
        assert!(s.bytes().all(|b| ALPHABET.contains(&b)));
    }

    #[test]
    fn patch_types() {
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml"),
            Some(PatchType::Apply)
        );
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchType::Merge)
        );
        assert_eq!(PatchType::from_content_type("text/plain"), None);
    }

    /// Applies of different managers to one object race (merges run outside the store
    /// lock): none is lost, each manager owns its field, and no-op re-applies do not write.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_applies_to_one_object_keep_every_manager() {
        let cluster = crate::Cluster::start(crate::Config::default())
            .await
            .unwrap();
        let app = cluster.app.clone();
        let res = sem::by_kind("v1", "ConfigMap").unwrap();
        let mut tasks = Vec::new();
        for m in 0..8 {
            let app = app.clone();
            tasks.push(tokio::task::spawn_blocking(move || {
                let opts = WriteOpts {
                    manager: Some(format!("m{m}")),
                    ..WriteOpts::default()
                };
                for round in 0..40 {
                    let body = json!({
                        "apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "shared"},
                        "data": {format!("k{m}"): format!("{}", round / 2)},
                    });
                    let body = serde_json::to_vec(&body).unwrap();
                    patch(
                        &app,
                        res,
                        Some("default"),
                        "shared",
                        None,
                        PatchType::Apply,
                        &body,
                        &opts,
                    )
                    .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let key = key_of(res, Some("default"), "shared");
        let obj = app.store.get(&key).unwrap();
        for m in 0..8 {
            assert_eq!(obj["data"][format!("k{m}")], "19");
        }
        let managers: BTreeSet<&str> = obj["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(managers.len(), 8, "{managers:?}");
        // 20 distinct values per manager, each applied twice: the second is a no-op.
        let writes = app
            .store
            .watch_from("", "configmaps", 0)
            .unwrap()
            .0
            .iter()
            .filter(|e| e.key == key)
            .count();
        assert_eq!(writes, 8 * 20);
        cluster.shutdown().await;
    }
}
