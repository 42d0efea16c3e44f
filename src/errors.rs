//! Turning errors into one readable line for people: the CLI's `error:` line and the agent's
//! status both use [`message`].
//!
//! Owns: walking an error's source chain without repeating a cause that a message already
//! includes, and rendering a `kube::Error` as the API server's message plus its code and
//! reason (not kube's `Debug` dump of the `Status`).
//! Must not: decide exit codes or log.

use std::error::Error;

/// The error and its causes, `a: b: c`, skipping every cause whose text is already part of
/// the message (many errors print their source in their own `Display`).
pub fn message(err: &(dyn Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// A `kube::Error` as a person wants to read it: for an API error the server's message with
/// `(CODE Reason)`; otherwise the error and its causes as [`message`] renders them.
pub fn kube_message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => {
            let mut out = if status.message.is_empty() {
                "the API server refused the request".to_owned()
            } else {
                status.message.clone()
            };
            let code = status.code;
            match (code, status.reason.as_str()) {
                (0, "") => {}
                (0, reason) => out.push_str(&format!(" ({reason})")),
                (code, "") => out.push_str(&format!(" (HTTP {code})")),
                (code, reason) => out.push_str(&format!(" (HTTP {code} {reason})")),
            }
            out
        }
        other => message(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner failed")]
    struct Inner(#[source] std::io::Error);

    #[test]
    fn causes_already_in_the_message_are_not_repeated() {
        let err = Outer(Inner(std::io::Error::other("disk on fire")));
        assert_eq!(message(&err), "outer: inner failed: disk on fire");
    }

    #[test]
    fn api_errors_read_as_the_server_message() {
        let status = kube::core::Status::failure("Deployment.apps \"bad\" is invalid", "Invalid")
            .with_code(422);
        let err = kube::Error::Api(Box::new(status));
        let text = kube_message(&err);
        assert_eq!(
            text,
            "Deployment.apps \"bad\" is invalid (HTTP 422 Invalid)"
        );
        assert!(!text.contains("Status {"), "{text}");
    }
}
