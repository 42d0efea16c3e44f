//! kubesim integration tests (one binary): the REST API over a real socket, watches,
//! persistence across restarts, and the real `kubectl` against kubesim.

mod api;
mod kubectl;
mod persistence;
mod support;
mod watch;
