//! API errors rendered as Kubernetes `Status` objects.
//!
//! Owns: the error type of the write/read paths (`ApiError`) and its exact wire shape
//! (code, reason, message, details), per k8s-semantics §5.7.
//! Must not: decide *when* an error happens.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A failed API request, ready to be serialized as a `Status`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Box<Value>>,
    /// `Retry-After` seconds (429 from faults).
    pub retry_after: Option<u32>,
}

/// `deployments.apps` / `pods`: how messages name a resource.
pub fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}

fn details(group: &str, resource: &str, name: &str) -> Value {
    let mut d = json!({"name": name, "kind": resource});
    if !group.is_empty() {
        d["group"] = json!(group);
    }
    d
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    pub fn not_found(group: &str, resource: &str, name: &str) -> ApiError {
        ApiError {
            details: Some(Box::new(details(group, resource, name))),
            ..ApiError::new(
                404,
                "NotFound",
                format!("{} \"{name}\" not found", qualified(group, resource)),
            )
        }
    }

    pub fn no_route() -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub fn already_exists(group: &str, resource: &str, name: &str) -> ApiError {
        ApiError {
            details: Some(Box::new(details(group, resource, name))),
            ..ApiError::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", qualified(group, resource)),
            )
        }
    }

    pub fn conflict(group: &str, resource: &str, name: &str) -> ApiError {
        ApiError {
            details: Some(Box::new(details(group, resource, name))),
            ..ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                    qualified(group, resource)
                ),
            )
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn expired(message: impl Into<String>) -> ApiError {
        ApiError::new(410, "Expired", message)
    }

    pub fn method_not_allowed(verb: &str, group: &str, resource: &str) -> ApiError {
        ApiError {
            details: Some(Box::new(json!({"group": group, "kind": resource}))),
            ..ApiError::new(
                405,
                "MethodNotAllowed",
                format!(
                    "{verb} is not supported on resources of kind \"{}\"",
                    qualified(group, resource)
                ),
            )
        }
    }

    /// 422 from a ready-made Status body (the registry's `Invalid::status()`).
    pub fn from_status(status: &Value) -> ApiError {
        let code = status.get("code").and_then(Value::as_u64).unwrap_or(422) as u16;
        let reason = match status.get("reason").and_then(Value::as_str) {
            Some("Invalid") => "Invalid",
            Some("Conflict") => "Conflict",
            Some("BadRequest") => "BadRequest",
            Some("Forbidden") => "Forbidden",
            Some("NotFound") => "NotFound",
            _ if code == 422 => "Invalid",
            _ => "BadRequest",
        };
        ApiError {
            code,
            reason,
            message: status
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            details: status.get("details").cloned().map(Box::new),
            retry_after: None,
        }
    }

    /// 422 with one cause, named after the object's Kind.
    pub fn invalid(
        kind: &str,
        group: &str,
        name: &str,
        field: &str,
        cause_reason: &str,
        detail: &str,
    ) -> ApiError {
        let gk = if group.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}.{group}")
        };
        let mut d = json!({"name": name, "kind": kind, "causes": [{"reason": cause_reason, "message": detail, "field": field}]});
        if !group.is_empty() {
            d["group"] = json!(group);
        }
        ApiError {
            details: Some(Box::new(d)),
            ..ApiError::new(
                422,
                "Invalid",
                format!("{gk} \"{name}\" is invalid: {field}: {detail}"),
            )
        }
    }

    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason,
        });
        if let Some(d) = &self.details {
            s["details"] = (**d).clone();
        }
        s["code"] = json!(self.code);
        s
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.to_status()).unwrap_or_default();
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (code, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_shape() {
        let s = ApiError::not_found("apps", "deployments", "web").to_status();
        assert_eq!(
            s,
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                "message":"deployments.apps \"web\" not found","reason":"NotFound",
                "details":{"name":"web","group":"apps","kind":"deployments"},"code":404})
        );
        assert_eq!(
            ApiError::not_found("", "pods", "x").message,
            "pods \"x\" not found"
        );
    }
}
