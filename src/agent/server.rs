//! The agent's HTTP surface (axum): `/healthz`, `/readyz`, `/metrics`, `/status` and the
//! webhook receiver `POST /webhook` and `POST /webhook/{source}`.
//!
//! Handlers only read shared state and poke triggers; they never sync or talk to the cluster.
//! Webhook bodies are size-limited and verified before anything else reads them; secrets
//! and signatures never appear in responses or logs.
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use std::sync::Arc;

use super::Shared;
use super::election::Role;
use super::status::Report;
use super::webhook::{self, Headers, Push, Refusal};

/// The routes, over the agent's shared state.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/webhook", post(webhook_any))
        .route("/webhook/{source}", post(webhook_source))
        .with_state(shared)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    match shared.not_ready() {
        None => (StatusCode::OK, "ok\n").into_response(),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(header::CONTENT_TYPE, super::metrics::CONTENT_TYPE)],
        shared.metrics.render(),
    )
        .into_response()
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    let not_ready = shared.not_ready();
    let report = Report {
        identity: shared.config.identity.clone(),
        role: *shared.role.borrow(),
        ready: not_ready.is_none(),
        not_ready,
        sources: shared.board.all(),
    };
    axum::Json(report).into_response()
}

fn refuse(shared: &Shared, refusal: Refusal) -> Response {
    shared.metrics.webhook(refusal.kind());
    tracing::warn!(reason = refusal.kind(), "webhook refused");
    let code = match refusal {
        Refusal::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::UNAUTHORIZED,
    };
    (code, axum::Json(json!({ "error": refusal.to_string() }))).into_response()
}

async fn read_body(
    shared: &Shared,
    headers: &HeaderMap,
    body: Body,
) -> Result<axum::body::Bytes, Response> {
    let limit = shared.config.webhook.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(refuse(shared, Refusal::TooLarge));
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| refuse(shared, Refusal::TooLarge))
}

fn signing_headers(headers: &HeaderMap) -> Headers<'_> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    Headers {
        github_signature: get("x-hub-signature-256"),
        gitlab_token: get("x-gitlab-token"),
        generic_signature: get("x-kubesync-signature"),
    }
}

fn is_ping(headers: &HeaderMap) -> bool {
    headers
        .get("x-github-event")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|e| e == "ping")
}

/// Verify and trigger `candidates` (those the push matches). Standbys refuse with 503 so the
/// sender sees the push was not acted on (the leader still polls).
fn accept(
    shared: &Shared,
    headers: &HeaderMap,
    body: &[u8],
    secret: Option<&webhook::SecretFile>,
    candidates: Vec<String>,
) -> Response {
    let Some(secret) = secret.map(webhook::SecretFile::current) else {
        return refuse(shared, Refusal::NoSecret);
    };
    let provider = match webhook::verify(&signing_headers(headers), body, &secret) {
        Ok(p) => p,
        Err(r) => return refuse(shared, r),
    };
    if is_ping(headers) {
        shared.metrics.webhook("accepted");
        return (StatusCode::OK, axum::Json(json!({ "triggered": [] }))).into_response();
    }
    if *shared.role.borrow() != Role::Leader {
        shared.metrics.webhook("standby");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(
                json!({ "error": "this replica is a standby; the leader polls on its interval" }),
            ),
        )
            .into_response();
    }
    let push = Push::parse(body);
    let triggered: Vec<String> = candidates
        .into_iter()
        .filter(|name| {
            shared
                .config
                .source(name)
                .is_some_and(|s| push.matches(&s.repo, &s.git_ref))
        })
        .collect();
    for name in &triggered {
        if let Some(t) = shared.trigger(name) {
            t.poke();
        }
    }
    shared.metrics.webhook("accepted");
    tracing::info!(provider = ?provider, sources = ?triggered, "webhook accepted");
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({ "triggered": triggered })),
    )
        .into_response()
}

async fn webhook_any(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match read_body(&shared, &headers, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    // The global secret covers the sources that have no secret of their own.
    let candidates = shared
        .config
        .sources
        .iter()
        .filter(|s| !shared.secrets.by_source.contains_key(&s.name))
        .map(|s| s.name.clone())
        .collect();
    accept(
        &shared,
        &headers,
        &body,
        shared.secrets.global.as_ref(),
        candidates,
    )
}

async fn webhook_source(
    State(shared): State<Arc<Shared>>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match read_body(&shared, &headers, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if shared.config.source(&source).is_none() {
        shared.metrics.webhook("unknown_source");
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "error": "no such source" })),
        )
            .into_response();
    }
    let secret = shared.secrets.for_source(&source);
    accept(&shared, &headers, &body, secret, vec![source])
}
