//! What a one-shot command does with the large data it is done with: nothing. Freeing a
//! thousand parsed objects node by node costs milliseconds at the end of every `sync` and
//! `diff` (most of the time between the last request and the exit of a no-op sync), and the
//! operating system takes the whole heap back at exit anyway.
//!
//! Owns: the one-shot switch and [`dispose`]. Must not: be switched on in a process that
//! keeps running (the agent, tests): there, [`dispose`] frees as usual.

use std::sync::atomic::{AtomicBool, Ordering};

static ONE_SHOT: AtomicBool = AtomicBool::new(false);

/// Declares the process one-shot: it exits soon after its one command, so [`dispose`] need
/// not free. Called by the CLI for every command except `run`.
pub fn one_shot() {
    ONE_SHOT.store(true, Ordering::Relaxed);
}

/// Releases `value`: frees it, unless the process is one-shot (then exit frees it).
pub fn dispose<T>(value: T) {
    if ONE_SHOT.load(Ordering::Relaxed) {
        std::mem::forget(value);
    } else {
        drop(value);
    }
}
