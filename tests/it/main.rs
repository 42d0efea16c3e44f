//! Integration tests: one binary, a module per area.
mod manifest;
mod preview;
mod source;
mod support;
mod sync;
mod diff;
mod history;
mod rollouts;
mod agent;
