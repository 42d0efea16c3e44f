//! The Deployment controller (k8s-semantics §1.3–1.15): one `syncDeployment` per call.
//!
//! Owns: ReplicaSet adoption/release, new-vs-old ReplicaSet selection by template
//! (`EqualIgnoreHash`), new ReplicaSet creation with a deterministic template hash, revision
//! bookkeeping (reuse of an old ReplicaSet on rollback, `revision-history`), RollingUpdate and
//! Recreate steps, the paused/scaling path with proportional scaling, history cleanup, status,
//! conditions and the progress deadline requeue.
//! Must not: touch pods (the ReplicaSet controller does), read a clock or keep state; every
//! write to one object appears at most once per call (later changes are folded into it), and
//! the Deployment itself is written at most once, through `/status` (which takes annotations).

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

use crate::obj::{
    self, annotation, at, controller_uid, creation, fmt_time, i64_at, is_deleting, name, namespace,
    parse_time, sem_eq, str_at, uid,
};
use crate::{Reconciled, Write};

/// Label added to every ReplicaSet (and its pods) of a Deployment.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Revision of a ReplicaSet (and of the Deployment's current one).
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions of a reused ReplicaSet, comma-separated, oldest first.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// `d.spec.replicas` when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// `d.spec.replicas + maxSurge` when the ReplicaSet was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
const ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Annotations never copied from a Deployment to its ReplicaSets.
const SKIP_ANNOTATIONS: [&str; 6] = [
    LAST_APPLIED,
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    ROLLBACK_TO,
];
const MAX_REV_HISTORY_CHARS: usize = 2000;
const HASH_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
const COMPONENT: &str = "deployment-controller";

/// The pod-template hash used for ReplicaSet names: FNV-1a 32 over the normalized template
/// (sorted keys, nulls/empties dropped) plus the collision count as 8 little-endian bytes,
/// the decimal digits mapped through the `SafeEncodeString` alphabet.
pub fn template_hash(template: &Value, collision_count: Option<i64>) -> String {
    let mut bytes = serde_json::to_vec(&obj::normalize(template)).unwrap_or_default();
    if let Some(cc) = collision_count {
        // Go writes a uint32 into an 8-byte slice: 4 value bytes then 4 zero bytes.
        let mut extra = [0u8; 8];
        extra[..4].copy_from_slice(&(cc as u32).to_le_bytes());
        bytes.extend_from_slice(&extra);
    }
    obj::fnv1a32(&bytes)
        .to_string()
        .bytes()
        .map(|b| char::from(HASH_ALPHABET[usize::from(b) % HASH_ALPHABET.len()]))
        .collect()
}

/// One sync of Deployment `d` (stored form). `rss`: every ReplicaSet of d's namespace
/// (adoption/release and ownership filtering happen here; an adoption or release is a step of
/// its own); `pods`: the namespace's pods (Recreate waits for old ones). Returns the
/// ReplicaSet creates/updates/deletes, `ScalingReplicaSet` events and at most one
/// `UpdateStatus` of `d` (status + the revision annotation), only when something changed;
/// `requeue_at` = Progressing.lastUpdateTime + progressDeadlineSeconds + 1s while a rollout
/// is incomplete and not yet timed out.
pub fn sync(d: &Value, rss: &[Value], pods: &[Value], now: Timestamp) -> Reconciled {
    let now = obj::trunc(now);
    let mut out = Reconciled::default();
    let d_uid = uid(d);
    let ns = namespace(d);
    let selector = at(d, &["spec", "selector"]);
    let deleting = is_deleting(d);
    let mut owned = Vec::new();
    for rs in rss.iter().filter(|rs| namespace(rs) == ns) {
        let matches = obj::selector_matches(selector, at(rs, &["metadata", "labels"]));
        match controller_uid(rs) {
            Some(u) if u == d_uid => {
                if !matches && !deleting {
                    out.writes
                        .push(Write::Update(obj::without_owner(rs, d_uid)));
                } else {
                    owned.push(rs.clone());
                }
            }
            Some(_) => {}
            None => {
                if matches && !deleting && !is_deleting(rs) {
                    let r = obj::owner_ref("apps/v1", "Deployment", d);
                    out.writes.push(Write::Update(obj::with_owner(rs, r)));
                }
            }
        }
    }
    if !out.writes.is_empty() {
        // Adoption/release is one step; the next call sees the new ownership.
        return out;
    }
    owned.sort_by(by_creation);
    let taken: Vec<String> = rss
        .iter()
        .filter(|rs| namespace(rs) == ns)
        .map(|rs| name(rs).to_string())
        .collect();
    let mut cx = Cx {
        orig: d,
        d: d.clone(),
        now,
        rss: owned,
        new_idx: None,
        writes: Vec::new(),
        taken,
        rollout_path: false,
    };
    cx.run(pods);
    cx.finish()
}

fn by_creation(a: &Value, b: &Value) -> std::cmp::Ordering {
    let key = |v: &Value| (creation(v).unwrap_or(Timestamp::MAX), name(v).to_string());
    key(a).cmp(&key(b))
}

fn spec_replicas(v: &Value) -> i64 {
    i64_at(v, &["spec", "replicas"]).unwrap_or(1)
}

fn status_i(v: &Value, field: &str) -> i64 {
    i64_at(v, &["status", field]).unwrap_or(0)
}

fn revision(rs: &Value) -> Option<i64> {
    annotation(rs, REVISION).and_then(|r| r.parse().ok())
}

/// `GetScaledValueFromIntOrPercent`.
fn scaled(v: Option<&Value>, total: i64, round_up: bool) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => {
            let pct = s.strip_suffix('%').unwrap_or(s).parse::<i64>().unwrap_or(0);
            let prod = pct * total;
            if round_up {
                (prod + 99).div_euclid(100)
            } else {
                prod.div_euclid(100)
            }
        }
        _ => 0,
    }
}

fn is_rolling(d: &Value) -> bool {
    str_at(d, &["spec", "strategy", "type"]).unwrap_or("RollingUpdate") == "RollingUpdate"
}

/// `ResolveFenceposts` → (surge, unavailable).
fn fenceposts(d: &Value) -> (i64, i64) {
    let desired = spec_replicas(d);
    let ru = at(d, &["spec", "strategy", "rollingUpdate"]);
    let surge = scaled(ru.and_then(|r| r.get("maxSurge")), desired, true);
    let mut unavailable = scaled(ru.and_then(|r| r.get("maxUnavailable")), desired, false);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

fn max_surge(d: &Value) -> i64 {
    if !is_rolling(d) {
        return 0;
    }
    fenceposts(d).0
}

fn max_unavailable(d: &Value) -> i64 {
    let desired = spec_replicas(d);
    if !is_rolling(d) || desired == 0 {
        return 0;
    }
    fenceposts(d).1.min(desired)
}

fn progress_deadline(d: &Value) -> Option<i64> {
    i64_at(d, &["spec", "progressDeadlineSeconds"]).filter(|s| *s != i64::from(i32::MAX))
}

/// `EqualIgnoreHash` of two pod templates.
fn equal_ignore_hash(a: &Value, b: &Value) -> bool {
    let strip = |t: &Value| {
        let mut t = t.clone();
        obj::remove(&mut t, &["metadata", "labels", POD_TEMPLATE_HASH]);
        t
    };
    sem_eq(&strip(a), &strip(b))
}

fn conditions(status: &Value) -> Vec<Value> {
    status
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn cond<'a>(conds: &'a [Value], ty: &str) -> Option<&'a Value> {
    conds
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
}

fn cond_field<'a>(c: &'a Value, f: &str) -> &'a str {
    c.get(f).and_then(Value::as_str).unwrap_or_default()
}

fn new_condition(ty: &str, status: &str, reason: &str, message: String, now: Timestamp) -> Value {
    json!({
        "type": ty,
        "status": status,
        "lastUpdateTime": fmt_time(now),
        "lastTransitionTime": fmt_time(now),
        "reason": reason,
        "message": message,
    })
}

/// `SetDeploymentCondition`: same status and reason → no change; else keep the transition
/// time when the status is unchanged, drop the old one and append.
fn set_condition(conds: &mut Vec<Value>, mut c: Value) {
    let ty = cond_field(&c, "type").to_string();
    if let Some(cur) = cond(conds, &ty) {
        if cond_field(cur, "status") == cond_field(&c, "status")
            && cond_field(cur, "reason") == cond_field(&c, "reason")
        {
            return;
        }
        if cond_field(cur, "status") == cond_field(&c, "status")
            && let Some(ltt) = cur.get("lastTransitionTime").cloned()
        {
            obj::set(&mut c, &["lastTransitionTime"], ltt);
        }
    }
    remove_condition(conds, &ty);
    conds.push(c);
}

fn remove_condition(conds: &mut Vec<Value>, ty: &str) {
    conds.retain(|c| c.get("type").and_then(Value::as_str) != Some(ty));
}

/// `DeploymentComplete(d, status)`.
fn complete(d: &Value, st: &Value) -> bool {
    let want = spec_replicas(d);
    let f = |k: &str| st.get(k).and_then(Value::as_i64).unwrap_or(0);
    f("updatedReplicas") == want
        && f("replicas") == want
        && f("availableReplicas") == want
        && f("observedGeneration") >= obj::generation(d)
}

/// Status comparison that ignores the difference between an absent and a zero field.
fn status_key(st: Option<&Value>) -> Value {
    let mut n = st.map(obj::normalize).unwrap_or(Value::Null);
    if let Some(m) = n.as_object_mut() {
        m.retain(|_, v| v.as_i64() != Some(0));
    }
    n
}

/// Working state of one sync.
struct Cx<'a> {
    orig: &'a Value,
    /// The Deployment as it will be written (status and annotations change).
    d: Value,
    now: Timestamp,
    /// Owned ReplicaSets, oldest first, with this call's changes applied.
    rss: Vec<Value>,
    new_idx: Option<usize>,
    writes: Vec<Write>,
    /// Every ReplicaSet name in the namespace (hash-collision detection).
    taken: Vec<String>,
    /// Whether the rollout paths ran (they alone requeue for the progress deadline).
    rollout_path: bool,
}

impl Cx<'_> {
    fn replicas(&self) -> i64 {
        spec_replicas(&self.d)
    }

    fn run(&mut self, pods: &[Value]) {
        if is_deleting(&self.d) {
            self.sync_revision();
            self.sync_deployment_status();
            return;
        }
        self.check_paused_conditions();
        if at(&self.d, &["spec", "paused"]).and_then(Value::as_bool) == Some(true) {
            self.sync_scale();
            return;
        }
        self.sync_revision();
        if self.is_scaling_event() {
            self.sync_scale();
            return;
        }
        self.rollout_path = true;
        if is_rolling(&self.d) {
            self.rollout_rolling();
        } else {
            self.rollout_recreate(pods);
        }
    }

    fn finish(mut self) -> Reconciled {
        let status_changed =
            status_key(self.orig.get("status")) != status_key(self.d.get("status"));
        let ann_changed = !sem_eq(
            at(self.orig, &["metadata", "annotations"]).unwrap_or(&Value::Null),
            at(&self.d, &["metadata", "annotations"]).unwrap_or(&Value::Null),
        );
        if status_changed || ann_changed {
            self.writes.push(Write::UpdateStatus(self.d.clone()));
        }
        let requeue_at = if self.rollout_path {
            self.stuck_requeue()
        } else {
            None
        };
        Reconciled {
            writes: self.writes,
            requeue_at,
        }
    }

    /// `requeueStuckDeployment`: at Progressing.lastUpdateTime + deadline + 1s.
    fn stuck_requeue(&self) -> Option<Timestamp> {
        let pds = progress_deadline(&self.d)?;
        let status = self.d.get("status").cloned().unwrap_or(Value::Null);
        let conds = conditions(&status);
        let c = cond(&conds, "Progressing")?;
        // NewReplicaSetAvailable never times out (a scale-up after completion keeps that
        // reason), so a requeue would only spin.
        if complete(&self.d, &status)
            || matches!(
                cond_field(c, "reason"),
                "ProgressDeadlineExceeded" | "NewReplicaSetAvailable"
            )
        {
            return None;
        }
        let lut = parse_time(cond_field(c, "lastUpdateTime"))?;
        let at = lut.checked_add(SignedDuration::from_secs(pds + 1)).ok()?;
        // The real controller rate-limits an overdue requeue; one second here.
        let soonest = self.now.checked_add(SignedDuration::from_secs(1)).ok()?;
        Some(at.max(soonest))
    }

    fn status(&self) -> Value {
        self.d.get("status").cloned().unwrap_or_else(|| json!({}))
    }

    fn set_conditions(&mut self, conds: Vec<Value>) {
        let mut st = self.status();
        if conds.is_empty() {
            obj::remove(&mut st, &["conditions"]);
        } else {
            obj::set(&mut st, &["conditions"], Value::Array(conds));
        }
        obj::set(&mut self.d, &["status"], st);
    }

    fn set_d_annotation(&mut self, key: &str, value: &str) {
        obj::set(
            &mut self.d,
            &["metadata", "annotations", key],
            Value::String(value.to_string()),
        );
    }

    fn event(&mut self, ty: &str, reason: &str, message: String) {
        self.writes.push(Write::Event(obj::event(
            self.orig, ty, reason, message, COMPONENT,
        )));
    }

    /// Records a changed ReplicaSet: folded into this call's earlier write of it, if any.
    fn put_rs(&mut self, idx: usize, rs: Value) {
        let rs_name = name(&rs).to_string();
        self.rss[idx] = rs.clone();
        for w in &mut self.writes {
            match w {
                Write::Create(v) | Write::Update(v)
                    if name(v) == rs_name && v.get("kind") == rs.get("kind") =>
                {
                    *v = rs;
                    return;
                }
                _ => {}
            }
        }
        self.writes.push(Write::Update(rs));
    }

    fn old_indices(&self) -> Vec<usize> {
        (0..self.rss.len())
            .filter(|i| Some(*i) != self.new_idx)
            .collect()
    }

    fn check_paused_conditions(&mut self) {
        if progress_deadline(&self.d).is_none() {
            return;
        }
        let mut conds = conditions(&self.status());
        let reason = cond(&conds, "Progressing").map(|c| cond_field(c, "reason").to_string());
        if reason.as_deref() == Some("ProgressDeadlineExceeded") {
            return;
        }
        let paused_exists = reason.as_deref() == Some("DeploymentPaused");
        let paused = at(&self.d, &["spec", "paused"]).and_then(Value::as_bool) == Some(true);
        let c = if paused && !paused_exists {
            new_condition(
                "Progressing",
                "Unknown",
                "DeploymentPaused",
                "Deployment is paused".into(),
                self.now,
            )
        } else if !paused && paused_exists {
            new_condition(
                "Progressing",
                "Unknown",
                "DeploymentResumed",
                "Deployment is resumed".into(),
                self.now,
            )
        } else {
            return;
        };
        set_condition(&mut conds, c);
        self.set_conditions(conds);
    }

    /// `getAllReplicaSetsAndSyncRevision(create=false)`: finds the new ReplicaSet and
    /// re-syncs its annotations/revision; sets the Deployment's revision annotation.
    fn sync_revision(&mut self) {
        let template = at(&self.d, &["spec", "template"])
            .cloned()
            .unwrap_or(Value::Null);
        self.new_idx = self.rss.iter().position(|rs| {
            at(rs, &["spec", "template"]).is_some_and(|t| equal_ignore_hash(t, &template))
        });
        let Some(idx) = self.new_idx else {
            return;
        };
        let new_revision = self.max_old_revision() + 1;
        let mut copy = self.rss[idx].clone();
        let mut changed = self.set_new_rs_annotations(&mut copy, new_revision, true);
        let d_mrs = i64_at(&self.d, &["spec", "minReadySeconds"]).unwrap_or(0);
        if i64_at(&copy, &["spec", "minReadySeconds"]).unwrap_or(0) != d_mrs {
            obj::set(&mut copy, &["spec", "minReadySeconds"], json!(d_mrs));
            changed = true;
        }
        if changed {
            // Real controller returns the updated RS; the Deployment's revision follows on
            // the next sync.
            self.put_rs(idx, copy);
            return;
        }
        if let Some(rev) = annotation(&copy, REVISION).map(str::to_string)
            && annotation(&self.d, REVISION) != Some(rev.as_str())
        {
            self.set_d_annotation(REVISION, &rev);
        }
        if progress_deadline(&self.d).is_some() {
            let mut conds = conditions(&self.status());
            if cond(&conds, "Progressing").is_none() {
                let msg = format!("Found new replica set \"{}\"", name(&copy));
                set_condition(
                    &mut conds,
                    new_condition("Progressing", "True", "FoundNewReplicaSet", msg, self.now),
                );
                self.set_conditions(conds);
            }
        }
    }

    fn max_old_revision(&self) -> i64 {
        self.old_indices()
            .iter()
            .filter_map(|i| revision(&self.rss[*i]))
            .max()
            .unwrap_or(0)
    }

    /// `SetNewReplicaSetAnnotations`; returns whether anything changed.
    fn set_new_rs_annotations(&self, rs: &mut Value, new_revision: i64, exists: bool) -> bool {
        let mut changed = false;
        if let Some(anns) = at(&self.d, &["metadata", "annotations"]).and_then(Value::as_object) {
            for (k, v) in anns {
                if SKIP_ANNOTATIONS.contains(&k.as_str()) {
                    continue;
                }
                if at(rs, &["metadata", "annotations", k]) != Some(v) {
                    obj::set(rs, &["metadata", "annotations", k], v.clone());
                    changed = true;
                }
            }
        }
        let old = annotation(rs, REVISION).map(str::to_string);
        let old_int = match old.as_deref() {
            None | Some("") => 0,
            Some(s) => match s.parse::<i64>() {
                Ok(n) => n,
                Err(_) => return false,
            },
        };
        if old_int < new_revision {
            obj::set(
                rs,
                &["metadata", "annotations", REVISION],
                json!(new_revision.to_string()),
            );
            changed = true;
            if let Some(old) = old.filter(|o| !o.is_empty()) {
                let hist = annotation(rs, REVISION_HISTORY)
                    .unwrap_or_default()
                    .to_string();
                let value = if hist.is_empty() {
                    Some(old)
                } else {
                    let mut entries: Vec<&str> = hist.split(',').collect();
                    let mut total = hist.len() + old.len() + 1;
                    let mut start = 0;
                    while total > MAX_REV_HISTORY_CHARS && start < entries.len() {
                        total -= entries[start].len() + 1;
                        start += 1;
                    }
                    (total <= MAX_REV_HISTORY_CHARS).then(|| {
                        entries = entries.split_off(start);
                        entries.push(&old);
                        entries.join(",")
                    })
                };
                if let Some(value) = value {
                    obj::set(
                        rs,
                        &["metadata", "annotations", REVISION_HISTORY],
                        json!(value),
                    );
                }
            }
        }
        if !exists {
            let desired = self.replicas();
            changed |= set_replicas_annotations(rs, desired, desired + max_surge(&self.d));
        }
        changed
    }

    /// Creates the new ReplicaSet (`getNewReplicaSet(create=true)` when none exists).
    /// Returns false when it could not (hash collision recorded in status).
    fn create_new_rs(&mut self) -> bool {
        let template = at(&self.d, &["spec", "template"])
            .cloned()
            .unwrap_or_else(|| json!({}));
        let cc = i64_at(&self.d, &["status", "collisionCount"]);
        let hash = template_hash(&template, cc);
        let rs_name = format!("{}-{}", name(&self.d), hash);
        if self.taken.contains(&rs_name) {
            // Hash collision with a ReplicaSet that is not ours or differs: bump the count,
            // the next sync hashes again.
            obj::set(
                &mut self.d,
                &["status", "collisionCount"],
                json!(cc.unwrap_or(0) + 1),
            );
            return false;
        }
        let mut rs_template = template.clone();
        obj::set(
            &mut rs_template,
            &["metadata", "labels", POD_TEMPLATE_HASH],
            json!(hash),
        );
        let mut selector = at(&self.d, &["spec", "selector"])
            .cloned()
            .unwrap_or_else(|| json!({}));
        obj::set(
            &mut selector,
            &["matchLabels", POD_TEMPLATE_HASH],
            json!(hash),
        );
        let labels = at(&rs_template, &["metadata", "labels"])
            .cloned()
            .unwrap_or_else(|| json!({}));
        let mut meta = Map::new();
        meta.insert("name".into(), json!(rs_name));
        if let Some(ns) = namespace(&self.d) {
            meta.insert("namespace".into(), json!(ns));
        }
        meta.insert("labels".into(), labels);
        meta.insert(
            "ownerReferences".into(),
            json!([obj::owner_ref("apps/v1", "Deployment", &self.d)]),
        );
        let mut rs = json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": Value::Object(meta),
            "spec": {
                "replicas": 0,
                "minReadySeconds": i64_at(&self.d, &["spec", "minReadySeconds"]).unwrap_or(0),
                "selector": selector,
                "template": rs_template,
            },
        });
        let replicas = if is_rolling(&self.d) {
            let olds: i64 = self
                .old_indices()
                .iter()
                .map(|i| spec_replicas(&self.rss[*i]))
                .sum();
            new_rs_new_replicas(&self.d, olds, 0)
        } else {
            self.replicas()
        };
        obj::set(&mut rs, &["spec", "replicas"], json!(replicas));
        let new_revision = self.max_old_revision() + 1;
        self.set_new_rs_annotations(&mut rs, new_revision, false);
        self.writes.push(Write::Create(rs.clone()));
        self.rss.push(rs);
        self.new_idx = Some(self.rss.len() - 1);
        if replicas > 0 {
            self.event(
                "Normal",
                "ScalingReplicaSet",
                format!("Scaled up replica set {rs_name} to {replicas}"),
            );
        }
        self.set_d_annotation(REVISION, &new_revision.to_string());
        if progress_deadline(&self.d).is_some() {
            let mut conds = conditions(&self.status());
            let msg = format!("Created new replica set \"{rs_name}\"");
            set_condition(
                &mut conds,
                new_condition("Progressing", "True", "NewReplicaSetCreated", msg, self.now),
            );
            self.set_conditions(conds);
        }
        true
    }

    fn is_scaling_event(&self) -> bool {
        let want = self.replicas();
        self.rss
            .iter()
            .filter(|rs| spec_replicas(rs) > 0)
            .any(|rs| {
                annotation(rs, DESIRED_REPLICAS)
                    .and_then(|s| s.parse::<i64>().ok())
                    .is_some_and(|desired| desired != want)
            })
    }

    /// `scaleReplicaSet`: PUT when size or replica annotations differ; true when resized.
    fn scale_rs(&mut self, idx: usize, new_scale: i64, op: &str) -> bool {
        let rs = &self.rss[idx];
        let old = spec_replicas(rs);
        let desired = self.replicas();
        let max = desired + max_surge(&self.d);
        let size_needs = old != new_scale;
        let ann_needs = annotation(rs, DESIRED_REPLICAS) != Some(desired.to_string().as_str())
            || annotation(rs, MAX_REPLICAS) != Some(max.to_string().as_str());
        if !size_needs && !ann_needs {
            return false;
        }
        let mut copy = rs.clone();
        obj::set(&mut copy, &["spec", "replicas"], json!(new_scale));
        set_replicas_annotations(&mut copy, desired, max);
        let rs_name = name(&copy).to_string();
        self.put_rs(idx, copy);
        if size_needs {
            self.event(
                "Normal",
                "ScalingReplicaSet",
                format!("Scaled {op} replica set {rs_name} to {new_scale} from {old}"),
            );
        }
        size_needs
    }

    /// `scaleReplicaSetAndRecordEvent`.
    fn scale_rs_and_record(&mut self, idx: usize, new_scale: i64) -> bool {
        let old = spec_replicas(&self.rss[idx]);
        if old == new_scale {
            return false;
        }
        let op = if old < new_scale { "up" } else { "down" };
        self.scale_rs(idx, new_scale, op)
    }

    /// The paused / scaling-event path (`sync()`).
    fn sync_scale(&mut self) {
        self.sync_revision();
        self.scale();
        let paused = at(&self.d, &["spec", "paused"]).and_then(Value::as_bool) == Some(true);
        if paused && annotation(&self.d, ROLLBACK_TO).is_none() {
            self.cleanup();
        }
        self.sync_deployment_status();
    }

    fn scale(&mut self) {
        let want = self.replicas();
        let active: Vec<usize> = (0..self.rss.len())
            .filter(|i| spec_replicas(&self.rss[*i]) > 0)
            .collect();
        // FindActiveOrLatest.
        let active_or_latest = match active.len() {
            0 => self.new_idx.or_else(|| self.old_indices().last().copied()),
            1 => Some(active[0]),
            _ => None,
        };
        if let Some(idx) = active_or_latest {
            if spec_replicas(&self.rss[idx]) != want {
                self.scale_rs_and_record(idx, want);
            }
            return;
        }
        if let Some(n) = self.new_idx {
            let rs = &self.rss[n];
            let saturated = spec_replicas(rs) == want
                && annotation(rs, DESIRED_REPLICAS).and_then(|s| s.parse::<i64>().ok())
                    == Some(want)
                && status_i(rs, "availableReplicas") == want;
            if saturated {
                for i in self.old_indices() {
                    if spec_replicas(&self.rss[i]) > 0 {
                        self.scale_rs_and_record(i, 0);
                    }
                }
                return;
            }
        }
        if !is_rolling(&self.d) {
            return;
        }
        let mut order = active;
        let total: i64 = order.iter().map(|i| spec_replicas(&self.rss[*i])).sum();
        let allowed = if want > 0 {
            want + max_surge(&self.d)
        } else {
            0
        };
        let to_add = allowed - total;
        let created = |i: usize, rss: &[Value]| {
            (
                creation(&rss[i]).unwrap_or(Timestamp::MAX),
                name(&rss[i]).to_string(),
            )
        };
        let op = if to_add > 0 {
            order.sort_by(|a, b| {
                spec_replicas(&self.rss[*b])
                    .cmp(&spec_replicas(&self.rss[*a]))
                    .then_with(|| created(*b, &self.rss).cmp(&created(*a, &self.rss)))
            });
            "up"
        } else if to_add < 0 {
            order.sort_by(|a, b| {
                spec_replicas(&self.rss[*b])
                    .cmp(&spec_replicas(&self.rss[*a]))
                    .then_with(|| created(*a, &self.rss).cmp(&created(*b, &self.rss)))
            });
            "down"
        } else {
            ""
        };
        let mut added = 0;
        let mut sizes = Vec::new();
        for &i in &order {
            let rs = &self.rss[i];
            let spec = spec_replicas(rs);
            if to_add != 0 {
                let p = self.proportion(rs, to_add, added);
                sizes.push(spec + p);
                added += p;
            } else {
                sizes.push(spec);
            }
        }
        for (pos, &i) in order.iter().enumerate() {
            if pos == 0 && to_add != 0 {
                sizes[0] = (sizes[0] + to_add - added).max(0);
            }
            self.scale_rs(i, sizes[pos], op);
        }
    }

    /// `GetProportion`.
    fn proportion(&self, rs: &Value, to_add: i64, added: i64) -> i64 {
        let spec = spec_replicas(rs);
        if spec == 0 || to_add == 0 || to_add == added {
            return 0;
        }
        let want = self.replicas();
        let fraction = if want == 0 {
            -spec
        } else {
            let max_now = want + max_surge(&self.d);
            let before = annotation(rs, MAX_REPLICAS)
                .and_then(|s| s.parse::<i64>().ok())
                .filter(|v| *v != 0)
                .unwrap_or_else(|| status_i(&self.d, "replicas"));
            if before == 0 {
                0
            } else {
                // Go's math.Round: half away from zero.
                let exact = (spec * max_now) as f64 / before as f64;
                exact.round() as i64 - spec
            }
        };
        let allowed = to_add - added;
        if to_add > 0 {
            fraction.min(allowed)
        } else {
            fraction.max(allowed)
        }
    }

    fn rollout_rolling(&mut self) {
        if self.new_idx.is_none() && !self.create_new_rs() {
            return;
        }
        let Some(n) = self.new_idx else {
            return;
        };
        if self.reconcile_new_rs(n) || self.reconcile_old_rss(n) {
            self.sync_rollout_status();
            return;
        }
        if complete(&self.d, &self.status()) {
            self.cleanup();
        }
        self.sync_rollout_status();
    }

    fn reconcile_new_rs(&mut self, n: usize) -> bool {
        let want = self.replicas();
        let cur = spec_replicas(&self.rss[n]);
        if cur == want {
            return false;
        }
        if cur > want {
            return self.scale_rs_and_record(n, want);
        }
        let olds: i64 = self
            .old_indices()
            .iter()
            .map(|i| spec_replicas(&self.rss[*i]))
            .sum();
        let target = new_rs_new_replicas(&self.d, olds, cur);
        self.scale_rs_and_record(n, target)
    }

    fn reconcile_old_rss(&mut self, n: usize) -> bool {
        let old_active: Vec<usize> = self
            .old_indices()
            .into_iter()
            .filter(|i| spec_replicas(&self.rss[*i]) > 0)
            .collect();
        let old_pods: i64 = old_active
            .iter()
            .map(|i| spec_replicas(&self.rss[*i]))
            .sum();
        if old_pods == 0 {
            return false;
        }
        let all_pods: i64 = self.rss.iter().map(spec_replicas).sum();
        let min_available = self.replicas() - max_unavailable(&self.d);
        let new_rs = &self.rss[n];
        let new_unavailable = spec_replicas(new_rs) - status_i(new_rs, "availableReplicas");
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        // cleanupUnhealthyReplicas (old_active is oldest first already).
        let mut cleaned = 0;
        for &i in &old_active {
            if cleaned >= max_scaled_down {
                break;
            }
            let rs = &self.rss[i];
            let spec = spec_replicas(rs);
            let avail = status_i(rs, "availableReplicas");
            if spec == 0 || spec == avail {
                continue;
            }
            let count = (max_scaled_down - cleaned).min(spec - avail);
            if count <= 0 {
                continue;
            }
            self.scale_rs_and_record(i, spec - count);
            cleaned += count;
        }
        // scaleDownOldReplicaSetsForRollingUpdate.
        let mut scaled_down = 0;
        let available: i64 = self
            .rss
            .iter()
            .map(|rs| status_i(rs, "availableReplicas"))
            .sum();
        if available > min_available {
            let budget = available - min_available;
            for &i in &old_active {
                if scaled_down >= budget {
                    break;
                }
                let spec = spec_replicas(&self.rss[i]);
                if spec == 0 {
                    continue;
                }
                let count = spec.min(budget - scaled_down);
                self.scale_rs_and_record(i, spec - count);
                scaled_down += count;
            }
        }
        cleaned + scaled_down > 0
    }

    fn rollout_recreate(&mut self, pods: &[Value]) {
        let mut scaled_down = false;
        for i in self.old_indices() {
            if spec_replicas(&self.rss[i]) > 0 {
                scaled_down |= self.scale_rs_and_record(i, 0);
            }
        }
        if scaled_down || self.old_pods_running(pods) {
            self.sync_rollout_status();
            return;
        }
        if self.new_idx.is_none() && !self.create_new_rs() {
            return;
        }
        if let Some(n) = self.new_idx {
            let want = self.replicas();
            self.scale_rs_and_record(n, want);
        }
        if complete(&self.d, &self.status()) {
            self.cleanup();
        }
        self.sync_rollout_status();
    }

    fn old_pods_running(&self, pods: &[Value]) -> bool {
        let olds = self.old_indices();
        if olds
            .iter()
            .map(|i| status_i(&self.rss[*i], "replicas"))
            .sum::<i64>()
            > 0
        {
            return true;
        }
        let old_uids: Vec<&str> = olds.iter().map(|i| uid(&self.rss[*i])).collect();
        let selector = at(&self.d, &["spec", "selector"]);
        pods.iter().any(|p| {
            obj::selector_matches(selector, at(p, &["metadata", "labels"]))
                && controller_uid(p).is_some_and(|u| !u.is_empty() && old_uids.contains(&u))
                && !matches!(obj::pod_phase(p), "Succeeded" | "Failed")
        })
    }

    /// `cleanupDeployment`: delete the oldest fully scaled-down old ReplicaSets beyond
    /// `revisionHistoryLimit`.
    fn cleanup(&mut self) {
        let Some(limit) = i64_at(&self.d, &["spec", "revisionHistoryLimit"]) else {
            return;
        };
        if limit == i64::from(i32::MAX) {
            return;
        }
        let mut candidates: Vec<usize> = self
            .old_indices()
            .into_iter()
            .filter(|i| !is_deleting(&self.rss[*i]) && !uid(&self.rss[*i]).is_empty())
            .collect();
        let excess = candidates.len() as i64 - limit;
        if excess <= 0 {
            return;
        }
        candidates.sort_by(|a, b| {
            let (ra, rb) = (
                revision(&self.rss[*a]).unwrap_or(0),
                revision(&self.rss[*b]).unwrap_or(0),
            );
            ra.cmp(&rb)
                .then_with(|| by_creation(&self.rss[*a], &self.rss[*b]))
        });
        for &i in candidates.iter().take(excess as usize) {
            let rs = &self.rss[i];
            let clean = status_i(rs, "replicas") == 0
                && spec_replicas(rs) == 0
                && obj::generation(rs) <= status_i(rs, "observedGeneration");
            if !clean {
                continue;
            }
            self.writes.push(Write::Delete {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                namespace: namespace(rs).map(str::to_string),
                name: name(rs).to_string(),
                uid: uid(rs).to_string(),
            });
        }
    }

    /// `calculateStatus`: counts from ReplicaSet status plus the Available condition.
    fn calculate_status(&self) -> Value {
        let sum = |f: &str| self.rss.iter().map(|rs| status_i(rs, f)).sum::<i64>();
        let available = sum("availableReplicas");
        let total_spec: i64 = self.rss.iter().map(spec_replicas).sum();
        let updated = self
            .new_idx
            .map(|n| status_i(&self.rss[n], "replicas"))
            .unwrap_or(0);
        let mut st = Map::new();
        let mut put = |k: &str, v: i64| {
            if v != 0 {
                st.insert(k.to_string(), json!(v));
            }
        };
        put("observedGeneration", obj::generation(&self.d));
        put("replicas", sum("replicas"));
        put("updatedReplicas", updated);
        put("readyReplicas", sum("readyReplicas"));
        put("availableReplicas", available);
        put("unavailableReplicas", (total_spec - available).max(0));
        let mut conds = conditions(&self.status());
        let c = if available >= self.replicas() - max_unavailable(&self.d) {
            new_condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
                self.now,
            )
        } else {
            new_condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
                self.now,
            )
        };
        set_condition(&mut conds, c);
        st.insert("conditions".into(), Value::Array(conds));
        if let Some(cc) = at(&self.d, &["status", "collisionCount"]) {
            st.insert("collisionCount".into(), cc.clone());
        }
        Value::Object(st)
    }

    fn sync_deployment_status(&mut self) {
        let st = self.calculate_status();
        obj::set(&mut self.d, &["status"], st);
    }

    /// `syncRolloutStatus`.
    fn sync_rollout_status(&mut self) {
        let mut st = self.calculate_status();
        let mut conds = conditions(&st);
        let old = self.status();
        let deadline = progress_deadline(&self.d);
        if deadline.is_none() {
            remove_condition(&mut conds, "Progressing");
        }
        let f = |s: &Value, k: &str| s.get(k).and_then(Value::as_i64).unwrap_or(0);
        let cur = cond(&conditions(&old), "Progressing").cloned();
        let cur_reason = cur.as_ref().map(|c| cond_field(c, "reason").to_string());
        let is_complete = f(&st, "replicas") == f(&st, "updatedReplicas")
            && cur_reason.as_deref() == Some("NewReplicaSetAvailable");
        let new_name = self.new_idx.map(|n| name(&self.rss[n]).to_string());
        let subject = |suffix: &str| match &new_name {
            Some(n) => format!("ReplicaSet \"{n}\" {suffix}"),
            None => format!("Deployment \"{}\" {suffix}", name(&self.d)),
        };
        if let (Some(pds), false) = (deadline, is_complete) {
            let progressing = f(&st, "updatedReplicas") > f(&old, "updatedReplicas")
                || f(&st, "replicas") - f(&st, "updatedReplicas")
                    < f(&old, "replicas") - f(&old, "updatedReplicas")
                || f(&st, "readyReplicas") > f(&old, "readyReplicas")
                || f(&st, "availableReplicas") > f(&old, "availableReplicas");
            if complete(&self.d, &st) {
                let c = new_condition(
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    subject("has successfully progressed."),
                    self.now,
                );
                set_condition(&mut conds, c);
            } else if progressing {
                let mut c = new_condition(
                    "Progressing",
                    "True",
                    "ReplicaSetUpdated",
                    subject("is progressing."),
                    self.now,
                );
                if let Some(cur) = &cur {
                    if cond_field(cur, "status") == "True"
                        && let Some(ltt) = cur.get("lastTransitionTime").cloned()
                    {
                        obj::set(&mut c, &["lastTransitionTime"], ltt);
                    }
                    remove_condition(&mut conds, "Progressing");
                }
                set_condition(&mut conds, c);
            } else if self.timed_out(&conds, pds) {
                let c = new_condition(
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    subject("has timed out progressing."),
                    self.now,
                );
                set_condition(&mut conds, c);
            }
        }
        match self.replica_failure() {
            Some(c) => set_condition(&mut conds, c),
            None => remove_condition(&mut conds, "ReplicaFailure"),
        }
        if conds.is_empty() {
            obj::remove(&mut st, &["conditions"]);
        } else {
            obj::set(&mut st, &["conditions"], Value::Array(conds));
        }
        obj::set(&mut self.d, &["status"], st);
    }

    fn timed_out(&self, conds: &[Value], pds: i64) -> bool {
        let Some(c) = cond(conds, "Progressing") else {
            return false;
        };
        match cond_field(c, "reason") {
            "NewReplicaSetAvailable" => false,
            "ProgressDeadlineExceeded" => true,
            _ => parse_time(cond_field(c, "lastUpdateTime"))
                .and_then(|lut| lut.checked_add(SignedDuration::from_secs(pds)).ok())
                .is_some_and(|deadline| deadline < self.now),
        }
    }

    /// The new ReplicaSet's ReplicaFailure condition, else any old one's.
    fn replica_failure(&self) -> Option<Value> {
        let from = |rs: &Value| {
            conditions(rs.get("status").unwrap_or(&Value::Null))
                .into_iter()
                .find(|c| cond_field(c, "type") == "ReplicaFailure")
                .map(|c| {
                    let ltt = c.get("lastTransitionTime").cloned().unwrap_or(Value::Null);
                    json!({
                        "type": "ReplicaFailure",
                        "status": c.get("status").cloned().unwrap_or(Value::Null),
                        "lastUpdateTime": ltt,
                        "lastTransitionTime": ltt,
                        "reason": c.get("reason").cloned().unwrap_or(Value::Null),
                        "message": c.get("message").cloned().unwrap_or(Value::Null),
                    })
                })
        };
        self.new_idx
            .and_then(|n| from(&self.rss[n]))
            .or_else(|| self.old_indices().iter().find_map(|i| from(&self.rss[*i])))
    }
}

/// Sets the desired/max replica annotations; returns whether they changed.
fn set_replicas_annotations(rs: &mut Value, desired: i64, max: i64) -> bool {
    let mut changed = false;
    for (k, v) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let v = v.to_string();
        if annotation(rs, k) != Some(v.as_str()) {
            obj::set(rs, &["metadata", "annotations", k], json!(v));
            changed = true;
        }
    }
    changed
}

/// `NewRSNewReplicas` for RollingUpdate: `olds` = Σ spec of the old ReplicaSets.
fn new_rs_new_replicas(d: &Value, olds: i64, new_spec: i64) -> i64 {
    let want = spec_replicas(d);
    let current = olds + new_spec;
    let max_total = want + max_surge(d);
    if current >= max_total {
        return new_spec;
    }
    new_spec + (max_total - current).min(want - new_spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::deployment as fixture;

    fn now() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn template_hash_shape_and_sensitivity() {
        let d = fixture("web", 3, "nginx:1.24");
        let t = &d["spec"]["template"];
        let h = template_hash(t, None);
        assert!((1..=10).contains(&h.len()), "{h}");
        assert!(h.bytes().all(|b| HASH_ALPHABET.contains(&b)));
        assert_eq!(h, template_hash(t, None), "deterministic");
        // Key order and empty/null fields do not matter (normalized form).
        let mut reordered = json!({"spec": t["spec"].clone(), "metadata": t["metadata"].clone()});
        reordered["metadata"]["annotations"] = json!({});
        reordered["metadata"]["creationTimestamp"] = Value::Null;
        assert_eq!(h, template_hash(&reordered, None));
        let mut other = t.clone();
        other["spec"]["containers"][0]["image"] = json!("nginx:1.25");
        assert_ne!(h, template_hash(&other, None));
        assert_ne!(h, template_hash(t, Some(1)));
        assert_ne!(template_hash(t, Some(1)), template_hash(t, Some(2)));
    }

    #[test]
    fn fenceposts_for_default_percentages() {
        for (replicas, surge, unavailable) in
            [(1, 1, 0), (2, 1, 0), (3, 1, 0), (4, 1, 1), (10, 3, 2)]
        {
            let d = fixture("web", replicas, "x");
            assert_eq!(
                (max_surge(&d), max_unavailable(&d)),
                (surge, unavailable),
                "{replicas}"
            );
        }
        let mut d = fixture("web", 0, "x");
        assert_eq!(max_unavailable(&d), 0);
        d["spec"]["replicas"] = json!(5);
        d["spec"]["strategy"]["rollingUpdate"] = json!({"maxSurge": "0%", "maxUnavailable": 0});
        assert_eq!(
            (max_surge(&d), max_unavailable(&d)),
            (0, 1),
            "both zero → unavailable 1"
        );
        d["spec"]["strategy"] = json!({"type": "Recreate"});
        assert_eq!((max_surge(&d), max_unavailable(&d)), (0, 0));
    }

    #[test]
    fn new_rs_new_replicas_math() {
        let d = fixture("web", 10, "x");
        assert_eq!(new_rs_new_replicas(&d, 10, 0), 3);
        assert_eq!(new_rs_new_replicas(&d, 8, 3), 5);
        assert_eq!(new_rs_new_replicas(&d, 13, 0), 0);
        assert_eq!(new_rs_new_replicas(&d, 0, 0), 10);
    }

    #[test]
    fn set_condition_keeps_times_for_same_status_and_reason() {
        let t0 = now();
        let t1 = t0.checked_add(SignedDuration::from_secs(5)).unwrap();
        let mut conds = vec![new_condition("Available", "True", "A", "m".into(), t0)];
        set_condition(
            &mut conds,
            new_condition("Available", "True", "A", "other".into(), t1),
        );
        assert_eq!(conds[0]["lastUpdateTime"], json!("2026-01-01T00:00:00Z"));
        assert_eq!(conds[0]["message"], json!("m"));
        conds.push(new_condition("Progressing", "True", "P", "p".into(), t0));
        set_condition(
            &mut conds,
            new_condition("Available", "True", "B", "b".into(), t1),
        );
        // Same status: transition time kept, moved to the end.
        assert_eq!(conds[1]["type"], json!("Available"));
        assert_eq!(
            conds[1]["lastTransitionTime"],
            json!("2026-01-01T00:00:00Z")
        );
        assert_eq!(conds[1]["lastUpdateTime"], json!("2026-01-01T00:00:05Z"));
    }

    fn stored(mut d: Value) -> Value {
        d["metadata"]["uid"] = json!("d-uid");
        d["metadata"]["generation"] = json!(1);
        d["metadata"]["resourceVersion"] = json!("1");
        d["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        d
    }

    #[test]
    fn first_sync_creates_the_replica_set_and_marks_the_deployment() {
        let d = stored(fixture("web", 2, "nginx:1.24"));
        let r = sync(&d, &[], &[], now());
        let [Write::Create(rs), Write::Event(ev), Write::UpdateStatus(nd)] = r.writes.as_slice()
        else {
            panic!("{:#?}", r.writes);
        };
        let hash = template_hash(&d["spec"]["template"], None);
        assert_eq!(rs["metadata"]["name"], json!(format!("web-{hash}")));
        assert_eq!(
            rs["metadata"]["labels"],
            json!({"app": "web", "pod-template-hash": hash})
        );
        assert_eq!(
            rs["metadata"]["annotations"],
            json!({"kubesync.io/commit": "abc", REVISION: "1", DESIRED_REPLICAS: "2", MAX_REPLICAS: "3"})
        );
        assert_eq!(
            rs["metadata"]["ownerReferences"],
            json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d-uid",
                "controller": true, "blockOwnerDeletion": true}])
        );
        assert_eq!(rs["spec"]["replicas"], json!(2));
        assert_eq!(
            rs["spec"]["selector"]["matchLabels"],
            json!({"app": "web", "pod-template-hash": hash})
        );
        assert_eq!(
            rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"],
            json!(hash)
        );
        assert_eq!(
            ev["message"],
            json!(format!("Scaled up replica set web-{hash} to 2"))
        );
        assert_eq!(ev["reason"], json!("ScalingReplicaSet"));
        assert_eq!(nd["metadata"]["annotations"][REVISION], json!("1"));
        assert_eq!(nd["metadata"]["resourceVersion"], json!("1"));
        assert_eq!(nd["status"]["observedGeneration"], json!(1));
        assert_eq!(nd["status"]["unavailableReplicas"], json!(2));
        let conds = nd["status"]["conditions"].as_array().unwrap();
        assert_eq!(conds[0]["reason"], json!("NewReplicaSetCreated"));
        assert_eq!(
            conds[0]["message"],
            json!(format!("Created new replica set \"web-{hash}\""))
        );
        assert_eq!(conds[1]["reason"], json!("MinimumReplicasUnavailable"));
        assert_eq!(r.requeue_at, Some("2026-01-01T00:10:01Z".parse().unwrap()));
    }

    #[test]
    fn hash_collision_bumps_collision_count() {
        let d = stored(fixture("web", 1, "nginx:1.24"));
        let hash = template_hash(&d["spec"]["template"], None);
        let foreign = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": format!("web-{hash}"), "namespace": "default", "uid": "x",
                "labels": {"other": "1"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"other": "1"}}, "template": {}}});
        let r = sync(&d, &[foreign], &[], now());
        let [Write::UpdateStatus(nd)] = r.writes.as_slice() else {
            panic!("{:#?}", r.writes);
        };
        assert_eq!(nd["status"]["collisionCount"], json!(1));
        let mut d2 = d.clone();
        d2["status"] = nd["status"].clone();
        assert_ne!(template_hash(&d2["spec"]["template"], Some(1)), hash);
    }

    #[test]
    fn revision_history_is_appended_and_capped() {
        let d = stored(fixture("web", 1, "x"));
        let cx = Cx {
            orig: &d,
            d: d.clone(),
            now: now(),
            rss: Vec::new(),
            new_idx: None,
            writes: Vec::new(),
            taken: Vec::new(),
            rollout_path: false,
        };
        let mut rs = json!({"metadata": {"annotations": {REVISION: "3", REVISION_HISTORY: "1"}}});
        assert!(cx.set_new_rs_annotations(&mut rs, 5, true));
        assert_eq!(annotation(&rs, REVISION), Some("5"));
        assert_eq!(annotation(&rs, REVISION_HISTORY), Some("1,3"));
        // Never lowered.
        let mut rs2 = rs.clone();
        cx.set_new_rs_annotations(&mut rs2, 4, true);
        assert_eq!(annotation(&rs2, REVISION), Some("5"));
        // Cap at 2000 chars drops the oldest entries.
        let long: Vec<String> = (0..500).map(|i| format!("{}", 1000 + i)).collect();
        let mut rs3 = json!({"metadata": {"annotations": {REVISION: "9999", REVISION_HISTORY: long.join(",")}}});
        cx.set_new_rs_annotations(&mut rs3, 10000, true);
        let hist = annotation(&rs3, REVISION_HISTORY).unwrap();
        assert!(hist.len() <= MAX_REV_HISTORY_CHARS);
        assert!(hist.ends_with(",9999"));
        assert!(!hist.starts_with("1000,"));
        // Non-integer revisions are never rewritten.
        let mut odd = json!({"metadata": {"annotations": {REVISION: "abc"}}});
        assert!(!cx.set_new_rs_annotations(&mut odd, 3, true));
        assert_eq!(annotation(&odd, REVISION), Some("abc"));
    }

    #[test]
    fn replica_failure_is_copied_from_the_new_replica_set() {
        let mut c = crate::sim::Cluster::new();
        c.create_deployment(fixture("web", 1, "nginx:1.24"));
        c.settle();
        let mut rs = c.owned_rss("web")[0].clone();
        rs["status"]["conditions"] = json!([{"type": "ReplicaFailure", "status": "True",
            "reason": "FailedCreate", "message": "quota", "lastTransitionTime": "2026-01-01T00:00:00Z"}]);
        let d = c.get("Deployment", "web");
        let r = sync(&d, &[rs], &[], c.now);
        let Some(Write::UpdateStatus(nd)) = r.writes.last() else {
            panic!("{:#?}", r.writes);
        };
        let rf = crate::obj::condition(nd, "ReplicaFailure").unwrap();
        assert_eq!(rf["reason"], json!("FailedCreate"));
        assert_eq!(rf["lastUpdateTime"], json!("2026-01-01T00:00:00Z"));
    }
}
