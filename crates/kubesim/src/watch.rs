//! Watch streams: newline-delimited JSON events over a chunked HTTP response.
//!
//! Owns: resourceVersion semantics of a watch (unset/0 → synthetic ADDED; N → replay then
//! live; too old → one in-stream ERROR 410), selector transitions (ADDED/DELETED when an
//! object starts/stops matching), bookmarks, streaming lists (`sendInitialEvents`) and
//! `timeoutSeconds`.
//! Must not: write to the store.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::App;
use crate::http::stream_body;
use crate::query::Query;
use crate::selector::{FieldSelector, LabelSelector};
use crate::sem::{self, Resource};
use crate::status::ApiError;
use crate::store::{Event, EventType};

/// How often an idle watch with bookmarks enabled gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

struct Filter {
    group: &'static str,
    plural: &'static str,
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.ns
            && obj.pointer("/metadata/namespace").and_then(Value::as_str) != Some(ns.as_str())
        {
            return false;
        }
        self.labels.matches(obj) && self.fields.matches(obj)
    }

    /// The event this watcher sees for a store event, if any.
    fn translate(&self, e: &Event) -> Option<&'static str> {
        if e.key.0 != self.group || e.key.1 != self.plural {
            return None;
        }
        let now = self.matches(&e.object);
        let before = e.prev.as_ref().is_some_and(|p| self.matches(p));
        match e.kind {
            EventType::Added => now.then_some("ADDED"),
            EventType::Deleted => (before || now).then_some("DELETED"),
            EventType::Modified => match (before, now) {
                (true, true) => Some("MODIFIED"),
                (false, true) => Some("ADDED"),
                (true, false) => Some("DELETED"),
                (false, false) => None,
            },
        }
    }
}

fn line(kind: &str, obj: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": kind, "object": obj})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

/// A watch line for a store event, reusing its serialized object.
fn event_line(kind: &str, e: &Event) -> Bytes {
    let obj = e.object_json();
    let mut v = Vec::with_capacity(obj.len() + 32);
    v.extend_from_slice(b"{\"type\":\"");
    v.extend_from_slice(kind.as_bytes());
    v.extend_from_slice(b"\",\"object\":");
    v.extend_from_slice(obj);
    v.extend_from_slice(b"}\n");
    Bytes::from(v)
}

/// Events as typed objects, or as one-row `Table`s for `kubectl get -w`.
struct Render {
    app: Arc<App>,
    res: &'static Resource,
    table: bool,
}

impl Render {
    fn object(&self, kind: &str, obj: &Value) -> Bytes {
        if !self.table {
            return line(kind, obj);
        }
        let rv = obj
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let table = sem::table(
            self.res,
            std::slice::from_ref(obj),
            rv,
            self.app.clock.now(),
        );
        line(kind, &table)
    }

    fn event(&self, kind: &str, e: &Event) -> Bytes {
        if self.table {
            self.object(kind, &e.object)
        } else {
            event_line(kind, e)
        }
    }
}

fn bookmark(res: &Resource, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        &json!({"kind": res.kind, "apiVersion": res.api_version(), "metadata": meta}),
    )
}

fn chunked_json(rx: mpsc::Receiver<Bytes>) -> Response {
    let mut resp = (StatusCode::OK, stream_body(rx)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Starts a watch and returns its streaming response.
#[allow(clippy::too_many_arguments)]
pub(crate) fn respond(
    app: Arc<App>,
    res: &'static Resource,
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    q: &Query,
    drop_after: Option<Duration>,
    table: bool,
) -> Result<Response, ApiError> {
    let render = Render {
        app: app.clone(),
        res,
        table,
    };
    let ns = if res.namespaced { ns } else { None };
    let filter = Filter {
        group: res.group,
        plural: res.plural,
        ns,
        labels,
        fields,
    };
    let bookmarks = q.flag("allowWatchBookmarks");
    let send_initial = q.flag("sendInitialEvents");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .into_iter()
        .chain(drop_after)
        .min();
    let requested_rv = match q.get("resourceVersion") {
        None | Some("0") | Some("") => None,
        Some(r) => Some(
            r.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {r}")))?,
        ),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let mut initial: Vec<Bytes> = Vec::new();
    let (live, mut seen_rv) = if send_initial || requested_rv.is_none() {
        let (objs, rv, live) =
            app.store
                .list_and_subscribe(res.group, res.plural, filter.ns.as_deref());
        initial.extend(
            objs.iter()
                .filter(|o| filter.matches(o))
                .map(|o| render.object("ADDED", o)),
        );
        if send_initial {
            initial.push(bookmark(res, rv, true));
        }
        (live, rv)
    } else {
        let rv = requested_rv.unwrap_or(0);
        match app.store.watch_from(res.group, res.plural, rv) {
            Ok((past, live)) => {
                let mut last = rv;
                for e in &past {
                    if let Some(kind) = filter.translate(e) {
                        initial.push(render.event(kind, e));
                    }
                    last = e.rv;
                }
                (live, last)
            }
            Err(too_old) => {
                let status = ApiError::expired(format!(
                    "too old resource version: {} ({})",
                    too_old.requested, too_old.oldest
                ))
                .to_status();
                let _ = tx.try_send(line("ERROR", &status));
                drop(tx);
                return Ok(chunked_json(rx));
            }
        }
    };
    let mut shutdown = app.shutdown.subscribe();
    tokio::spawn(async move {
        for chunk in initial {
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut live = live;
        let mut tick = tokio::time::interval(BOOKMARK_EVERY);
        tick.tick().await;
        loop {
            let until_deadline = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ev = live.recv() => match ev {
                    Ok(e) => {
                        if e.rv <= seen_rv {
                            continue;
                        }
                        seen_rv = e.rv;
                        if let Some(kind) = filter.translate(&e)
                            && tx.send(render.event(kind, &e)).await.is_err() {
                                return;
                            }
                    }
                    // A watcher that fell behind ends; the client re-watches from its last RV.
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick() => {
                    if bookmarks && tx.send(bookmark(res, seen_rv, false)).await.is_err() {
                        return;
                    }
                }
                _ = tx.closed() => return,
                _ = until_deadline => return,
                _ = shutdown.changed() => return,
            }
        }
    });
    Ok(chunked_json(rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventType, obj: Value, prev: Option<Value>) -> Event {
        let key = ("".into(), "pods".into(), "default".into(), "p".into());
        Event::new(1, kind, key, Arc::new(obj), prev.map(Arc::new))
    }

    #[test]
    fn selector_transitions() {
        let f = Filter {
            group: "",
            plural: "pods",
            ns: Some("default".into()),
            labels: LabelSelector::parse("app=web").unwrap(),
            fields: FieldSelector::default(),
        };
        let web = json!({"metadata": {"namespace": "default", "labels": {"app": "web"}}});
        let db = json!({"metadata": {"namespace": "default", "labels": {"app": "db"}}});
        assert_eq!(
            f.translate(&ev(EventType::Modified, db.clone(), Some(web.clone())))
                .unwrap(),
            "DELETED"
        );
        assert_eq!(
            f.translate(&ev(EventType::Modified, web.clone(), Some(db.clone())))
                .unwrap(),
            "ADDED"
        );
        assert!(f.translate(&ev(EventType::Added, db, None)).is_none());
        assert_eq!(
            f.translate(&ev(EventType::Modified, web.clone(), Some(web)))
                .unwrap(),
            "MODIFIED"
        );
    }
}
