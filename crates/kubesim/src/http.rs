//! The HTTP face of kubesim: routing of the Kubernetes REST layout, discovery, OpenAPI,
//! health, CRUD/list/watch handlers, Table responses, faults and request counting.
//!
//! Owns: turning requests into calls of `write`, `store` reads and `watch`, and their
//! results into responses with the exact status codes and bodies clients expect.
//! Must not: implement object semantics (that is `write` + the registry).

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::App;
use crate::faults::Verb;
use crate::query::Query;
use crate::selector::{FieldSelector, LabelSelector};
use crate::sem::{self, Resource};
use crate::status::ApiError;
use crate::watch;
use crate::write::{self, DeleteOpts, Deleted, PatchType, Propagation, WriteOpts};

/// Largest request body accepted.
const BODY_LIMIT: usize = 16 * 1024 * 1024;

pub fn router(app: Arc<App>) -> Router {
    Router::new().fallback(handle).with_state(app)
}

/// A resource URL, parsed.
#[derive(Debug)]
pub(crate) struct Target {
    pub res: &'static Resource,
    pub ns: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
}

enum Route {
    Version,
    Health,
    Api,
    Apis,
    ApiGroup(String),
    ResourceList(String, String),
    OpenApiRoot,
    OpenApiGv(String),
    Object(Target),
    NotFound,
}

fn route(path: &str) -> Route {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "readyz" | "livez", ..] => Route::Health,
        ["api"] => Route::Api,
        ["apis"] => Route::Apis,
        ["apis", g] => Route::ApiGroup((*g).to_owned()),
        ["api", v] => Route::ResourceList(String::new(), (*v).to_owned()),
        ["apis", g, v] => Route::ResourceList((*g).to_owned(), (*v).to_owned()),
        ["openapi", "v3"] => Route::OpenApiRoot,
        ["openapi", "v3", rest @ ..] => Route::OpenApiGv(rest.join("/")),
        ["api", v, rest @ ..] => object_route("", v, rest),
        ["apis", g, v, rest @ ..] => object_route(g, v, rest),
        _ => Route::NotFound,
    }
}

fn object_route(group: &str, version: &str, rest: &[&str]) -> Route {
    let owned = |s: Option<&&str>| s.map(|s| (*s).to_owned());
    if rest.first() == Some(&"namespaces")
        && rest.len() >= 3
        && let Some(res) = sem::by_plural(group, version, rest[2])
    {
        if !res.namespaced || rest.len() > 5 {
            return Route::NotFound;
        }
        return Route::Object(Target {
            res,
            ns: owned(rest.get(1)),
            name: owned(rest.get(3)),
            sub: owned(rest.get(4)),
        });
    }
    let Some(res) = rest.first().and_then(|p| sem::by_plural(group, version, p)) else {
        return Route::NotFound;
    };
    if rest.len() > 3 || (res.namespaced && rest.len() > 1) {
        return Route::NotFound;
    }
    Route::Object(Target {
        res,
        ns: None,
        name: owned(rest.get(1)),
        sub: owned(rest.get(2)),
    })
}

fn json_response(code: StatusCode, v: &Value) -> Response {
    json_bytes_response(code, serde_json::to_vec(v).unwrap_or_default())
}

fn json_bytes_response(code: StatusCode, body: Vec<u8>) -> Response {
    let mut resp = (code, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> &str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn verb_of(method: &Method, route: &Route, q: &Query) -> Option<Verb> {
    let Route::Object(t) = route else {
        return (method == Method::GET).then_some(Verb::Get);
    };
    Some(match *method {
        Method::GET if t.name.is_some() => Verb::Get,
        Method::GET if q.watch() => Verb::Watch,
        Method::GET => Verb::List,
        Method::POST => Verb::Create,
        Method::PUT => Verb::Update,
        Method::PATCH => Verb::Patch,
        Method::DELETE => Verb::Delete,
        _ => return None,
    })
}

async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let q = Query::parse(parts.uri.query());
    let route = route(parts.uri.path());
    let verb = verb_of(&parts.method, &route, &q);
    let mut drop_watch_after = None;
    if let Some(verb) = verb {
        app.counters.record(verb);
        let decision = app.faults.decide(verb);
        if !decision.latency.is_zero() {
            tokio::time::sleep(decision.latency).await;
        }
        drop_watch_after = decision.drop_watch_after;
        if let Some((code, retry_after)) = decision.fail {
            let reason = match code {
                429 => "TooManyRequests",
                503 => "ServiceUnavailable",
                504 => "Timeout",
                409 => "Conflict",
                _ => "InternalError",
            };
            let mut e = ApiError::new(code, reason, format!("kubesim: injected fault ({code})"));
            e.retry_after = retry_after;
            return e.into_response();
        }
    }
    let body = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(e) => {
            return ApiError::bad_request(format!("reading the request body: {e}")).into_response();
        }
    };
    let headers = &parts.headers;
    match serve(
        &app,
        &parts.method,
        route,
        &q,
        headers,
        body,
        drop_watch_after,
    )
    .await
    {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

fn aggregated_accept(accept: &str) -> bool {
    accept.split(',').any(|item| {
        let params: Vec<&str> = item.split(';').map(str::trim).collect();
        params.contains(&"as=APIGroupDiscoveryList") && params.contains(&"v=v2")
    })
}

fn aggregated_response(v: &Value) -> Response {
    let mut resp = json_response(StatusCode::OK, v);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        ),
    );
    resp
}

async fn serve(
    app: &Arc<App>,
    method: &Method,
    route: Route,
    q: &Query,
    headers: &HeaderMap,
    body: Bytes,
    drop_watch_after: Option<std::time::Duration>,
) -> Result<Response, ApiError> {
    let accept = header_str(headers, header::ACCEPT);
    let read_only = |m: &Method| *m == Method::GET || *m == Method::HEAD;
    match route {
        Route::Object(t) => serve_object(app, method, t, q, headers, body, drop_watch_after).await,
        _ if !read_only(method) => Err(ApiError::method_not_allowed(method.as_str(), "", "")),
        Route::Version => Ok(json_response(StatusCode::OK, &sem::version())),
        Route::Health => Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "ok",
        )
            .into_response()),
        Route::Api if aggregated_accept(accept) => {
            Ok(aggregated_response(&sem::aggregated_discovery(true)))
        }
        Route::Api => Ok(json_response(
            StatusCode::OK,
            &sem::api_versions(&app.addr.to_string()),
        )),
        Route::Apis if aggregated_accept(accept) => {
            Ok(aggregated_response(&sem::aggregated_discovery(false)))
        }
        Route::Apis => Ok(json_response(StatusCode::OK, &sem::api_group_list())),
        Route::ApiGroup(g) => {
            let list = sem::api_group_list();
            let found = list.get("groups").and_then(Value::as_array).and_then(|gs| {
                gs.iter()
                    .find(|x| x.get("name").and_then(Value::as_str) == Some(g.as_str()))
                    .cloned()
            });
            match found {
                Some(mut group) => {
                    group["kind"] = json!("APIGroup");
                    group["apiVersion"] = json!("v1");
                    Ok(json_response(StatusCode::OK, &group))
                }
                None => Err(ApiError::no_route()),
            }
        }
        Route::ResourceList(g, v) => match sem::api_resource_list(&g, &v) {
            Some(list) => Ok(json_response(StatusCode::OK, &list)),
            None => Err(ApiError::no_route()),
        },
        Route::OpenApiRoot => Ok(json_response(StatusCode::OK, &sem::openapi_v3_root())),
        Route::OpenApiGv(p) => match sem::openapi_v3_group_version(&p) {
            Some(doc) => Ok(json_response(StatusCode::OK, &doc)),
            None => Err(ApiError::no_route()),
        },
        Route::NotFound => Err(ApiError::no_route()),
    }
}

fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

fn manager_of(q: &Query, headers: &HeaderMap) -> Option<String> {
    if let Some(m) = q.get("fieldManager") {
        return Some(m.to_owned());
    }
    let ua = header_str(headers, header::USER_AGENT);
    let prefix = ua.split('/').next().unwrap_or("").trim();
    Some(if prefix.is_empty() {
        "unknown".to_owned()
    } else {
        prefix.to_owned()
    })
}

/// DeleteOptions from the query and a JSON body. Bodies in other encodings (client-go's
/// protobuf, e.g. from `kubectl drain`) are ignored: the defaults apply.
fn delete_opts(q: &Query, body: &[u8], content_type: &str) -> Result<DeleteOpts, ApiError> {
    let mut opts = DeleteOpts {
        dry_run: q.dry_run(),
        ..DeleteOpts::default()
    };
    let mut policy = q.get("propagationPolicy").map(str::to_owned);
    let mut orphan = q.get("orphanDependents").map(|v| v == "true");
    let json_body = content_type.is_empty() || content_type.contains("json");
    if json_body && !body.iter().all(u8::is_ascii_whitespace) {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("decoding DeleteOptions: {e}")))?;
        if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
            policy = Some(p.to_owned());
        }
        if let Some(o) = v.get("orphanDependents").and_then(Value::as_bool) {
            orphan = Some(o);
        }
        if v.get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x == "All"))
        {
            opts.dry_run = true;
        }
        opts.precondition_uid = v
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_owned);
        opts.precondition_rv = v
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    opts.propagation = match (policy.as_deref(), orphan) {
        (Some("Foreground"), _) => Propagation::Foreground,
        (Some("Orphan"), _) | (None, Some(true)) => Propagation::Orphan,
        (Some("Background") | None, _) => Propagation::Background,
        (Some(other), _) => {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: \"{other}\""
            )));
        }
    };
    Ok(opts)
}

fn parse_selectors(res: &Resource, q: &Query) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(res.plural, q.get("fieldSelector").unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    Ok((labels, fields))
}

/// A JSON (or YAML) request body; protobuf only for the kinds `protobuf` decodes (415
/// otherwise).
fn body_json(body: &[u8], content_type: &str) -> Result<Value, ApiError> {
    if content_type.contains("protobuf") {
        if let Some(obj) = crate::protobuf::decode(body) {
            return Ok(obj);
        }
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml",
        ));
    }
    serde_json::from_slice(body)
        .or_else(|_| serde_yaml::from_slice(body))
        .map_err(|e| {
            ApiError::bad_request(format!("the body of the request could not be decoded: {e}"))
        })
}

fn success_status(res: &Resource, name: &str, uid: &str) -> Value {
    let mut details = json!({"name": name, "kind": res.plural, "uid": uid});
    if !res.group.is_empty() {
        details["group"] = json!(res.group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

#[allow(clippy::too_many_arguments)]
async fn serve_object(
    app: &Arc<App>,
    method: &Method,
    t: Target,
    q: &Query,
    headers: &HeaderMap,
    body: Bytes,
    drop_watch_after: Option<std::time::Duration>,
) -> Result<Response, ApiError> {
    let res = t.res;
    let ns = t.ns.as_deref();
    let sub = t.sub.as_deref();
    if let Some(s) = sub {
        let ok = res.has_subresource(s)
            || (res.group.is_empty() && res.kind == "Pod" && s == "eviction");
        if !ok {
            return Err(ApiError::no_route());
        }
    }
    let opts = WriteOpts {
        dry_run: q.dry_run(),
        manager: manager_of(q, headers),
        force: q.flag("force"),
    };
    let accept = header_str(headers, header::ACCEPT);
    match (method.clone(), t.name.as_deref()) {
        (Method::GET, Some(name)) => {
            let obj = app
                .store
                .get(&write::key_of(res, ns, name))
                .ok_or_else(|| ApiError::not_found(res.group, res.plural, name))?;
            if sub == Some("scale") {
                return Ok(json_response(
                    StatusCode::OK,
                    &sem::scale_of(res, &obj).ok_or_else(ApiError::no_route)?,
                ));
            }
            if wants_table(accept) && sub.is_none() {
                let rv = obj
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                return Ok(json_response(
                    StatusCode::OK,
                    &sem::table(res, &[(*obj).clone()], &rv, app.clock.now()),
                ));
            }
            Ok(json_response(StatusCode::OK, &obj))
        }
        (Method::GET, None) => {
            let (labels, fields) = parse_selectors(res, q)?;
            if q.watch() {
                return watch::respond(
                    app.clone(),
                    res,
                    t.ns.clone(),
                    labels,
                    fields,
                    q,
                    drop_watch_after,
                    wants_table(accept),
                );
            }
            list(app, res, ns, &labels, &fields, q, accept)
        }
        (Method::POST, None) => {
            let obj = write::create(
                app,
                res,
                ns,
                body_json(&body, header_str(headers, header::CONTENT_TYPE))?,
                &opts,
            )?;
            Ok(json_response(StatusCode::CREATED, &obj))
        }
        (Method::POST, Some(name)) if sub == Some("eviction") => {
            let dopts = DeleteOpts {
                dry_run: opts.dry_run,
                ..DeleteOpts::default()
            };
            write::delete(app, res, ns, name, &dopts)?;
            let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
            Ok(json_response(StatusCode::CREATED, &status))
        }
        (Method::PUT, Some(name)) => {
            let obj = write::update(
                app,
                res,
                ns,
                name,
                sub,
                body_json(&body, header_str(headers, header::CONTENT_TYPE))?,
                &opts,
            )?;
            let obj = if sub == Some("scale") {
                sem::scale_of(res, &obj).unwrap_or(obj)
            } else {
                obj
            };
            Ok(json_response(StatusCode::OK, &obj))
        }
        (Method::PATCH, Some(name)) => {
            let ct = header_str(headers, header::CONTENT_TYPE);
            let ptype = PatchType::from_content_type(ct).ok_or_else(|| {
                ApiError::new(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json".to_string())
            })?;
            let mut opts = opts;
            if ptype == PatchType::Apply {
                opts.manager = q.get("fieldManager").map(str::to_owned);
            }
            let (obj, created) = write::patch(app, res, ns, name, sub, ptype, &body, &opts)?;
            let obj = if sub == Some("scale") {
                sem::scale_of(res, &obj).unwrap_or(obj)
            } else {
                obj
            };
            Ok(json_response(
                if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                &obj,
            ))
        }
        (Method::DELETE, Some(name)) => {
            let dopts = delete_opts(q, &body, header_str(headers, header::CONTENT_TYPE))?;
            match write::delete(app, res, ns, name, &dopts)? {
                Deleted::Pending(obj) => Ok(json_response(StatusCode::OK, &obj)),
                Deleted::Gone(obj) if res.group.is_empty() && res.kind == "Pod" => {
                    Ok(json_response(StatusCode::OK, &obj))
                }
                Deleted::Gone(obj) => {
                    let uid = obj
                        .pointer("/metadata/uid")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    Ok(json_response(
                        StatusCode::OK,
                        &success_status(res, name, uid),
                    ))
                }
            }
        }
        (Method::DELETE, None) => {
            let (labels, fields) = parse_selectors(res, q)?;
            let dopts = delete_opts(q, &body, header_str(headers, header::CONTENT_TYPE))?;
            let (objs, _) = app.store.list(
                res.group,
                res.plural,
                if res.namespaced { ns } else { None },
            );
            let mut items = Vec::new();
            for o in objs
                .iter()
                .filter(|o| labels.matches(o) && fields.matches(o))
            {
                let name = o
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                match write::delete(app, res, ns, name, &dopts) {
                    Ok(Deleted::Gone(v) | Deleted::Pending(v)) => items.push(v),
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            let rv = app.store.resource_version().to_string();
            let list = json!({"kind": res.list_kind(), "apiVersion": res.api_version(), "metadata": {"resourceVersion": rv}, "items": items});
            Ok(json_response(StatusCode::OK, &list))
        }
        (m, _) => Err(ApiError::method_not_allowed(
            &m.as_str().to_ascii_lowercase(),
            res.group,
            res.plural,
        )),
    }
}

fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    format!("{rv}:{ns}:{name}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_continue(token: &str) -> Option<(u64, String, String)> {
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| {
            token
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    let s = String::from_utf8(bytes?).ok()?;
    let mut parts = s.splitn(3, ':');
    let rv = parts.next()?.parse().ok()?;
    Some((rv, parts.next()?.to_owned(), parts.next()?.to_owned()))
}

fn list(
    app: &Arc<App>,
    res: &'static Resource,
    ns: Option<&str>,
    labels: &LabelSelector,
    fields: &FieldSelector,
    q: &Query,
    accept: &str,
) -> Result<Response, ApiError> {
    let (objs, rv) = app.store.list(
        res.group,
        res.plural,
        if res.namespaced { ns } else { None },
    );
    let after = match q.get("continue") {
        Some(tok) => Some(
            decode_continue(tok)
                .ok_or_else(|| ApiError::bad_request("continue key is not valid"))?,
        ),
        None => None,
    };
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let pinned = fields.pinned_name();
    // Borrowed from the store's snapshot: serialised straight from there, never cloned.
    let mut items: Vec<&Value> = Vec::new();
    let mut next = None;
    for o in &objs {
        let meta_ns = o
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        let meta_name = o
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        if let Some((_, ans, aname)) = &after
            && (meta_ns, meta_name) <= (ans.as_str(), aname.as_str())
        {
            continue;
        }
        if pinned.is_some_and(|p| p != meta_name) || !labels.matches(o) || !fields.matches(o) {
            continue;
        }
        if limit.is_some_and(|l| items.len() >= l) {
            next = items.last().map(|l: &&Value| {
                let lns = l
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let lname = l
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                encode_continue(rv, lns, lname)
            });
            break;
        }
        items.push(&**o);
    }
    let rv_s = rv.to_string();
    if wants_table(accept) {
        let owned: Vec<Value> = items.iter().map(|v| (*v).clone()).collect();
        let mut table = sem::table(res, &owned, &rv_s, app.clock.now());
        if let Some(c) = next {
            table["metadata"]["continue"] = json!(c);
        }
        return Ok(json_response(StatusCode::OK, &table));
    }
    let mut meta = json!({"resourceVersion": rv_s});
    if let Some(c) = next {
        meta["continue"] = json!(c);
    }
    #[derive(serde::Serialize)]
    struct List<'a> {
        kind: String,
        #[serde(rename = "apiVersion")]
        api_version: String,
        metadata: Value,
        items: Vec<&'a Value>,
    }
    let list = List {
        kind: res.list_kind(),
        api_version: res.api_version(),
        metadata: meta,
        items,
    };
    Ok(json_bytes_response(
        StatusCode::OK,
        serde_json::to_vec(&list).unwrap_or_default(),
    ))
}

/// A streaming response body from a channel of chunks.
pub(crate) fn stream_body(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Body {
    use futures::StreamExt;
    let stream =
        tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, std::convert::Infallible>);
    Body::from_stream(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let t = encode_continue(42, "default", "web-1");
        assert_eq!(
            decode_continue(&t),
            Some((42, "default".into(), "web-1".into()))
        );
        assert_eq!(decode_continue("zz"), None);
    }

    #[test]
    fn aggregated_accept_detection() {
        assert!(aggregated_accept(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(!aggregated_accept("application/json, */*"));
    }

    #[test]
    fn table_accept_detection() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }
}
