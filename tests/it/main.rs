//! Integration tests: one binary, a module per area.
mod agent;
mod bad_input;
mod baseline;
mod diff;
#[path = "../../fuzz/targets.rs"]
mod fuzz;
mod history;
mod manifest;
mod preview;
mod reliability;
mod rollouts;
mod secrets;
mod source;
mod support;
mod sync;
