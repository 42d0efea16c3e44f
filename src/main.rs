//! Thin binary: parse the CLI, set up tracing, run the command, map the result to an exit code.
//!
//! Also owns the choice of memory allocator. The one-shot commands (`sync`, `diff`,
//! `preview`, …) build and drop many small JSON and YAML nodes, where mimalloc halves the
//! CPU time of a no-op sync against glibc malloc (docs/benchmarks.md). The long-running
//! agent (`kubesync run`) keeps glibc malloc, whose arenas it limits and trims after each
//! sync (`agent::memory`): its resident size stays flat there, while mimalloc's crept up
//! with every sync (docs/operations.md). The choice is made once, first thing in `main`;
//! every block is freed by the allocator that owns it, whichever was chosen.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::OsStr;
use std::sync::atomic::{AtomicBool, Ordering};

/// mimalloc for new blocks unless [`USE_SYSTEM`] is set; frees go to the owner.
struct Allocator;

/// Set once, before any thread exists, for the agent.
static USE_SYSTEM: AtomicBool = AtomicBool::new(false);

/// Whether `ptr` came from mimalloc (blocks allocated before the choice was made can be
/// freed after it).
fn from_mimalloc(ptr: *mut u8) -> bool {
    // SAFETY: a read-only query of mimalloc's page map; valid for any address.
    unsafe { libmimalloc_sys::mi_is_in_heap_region(ptr.cast()) }
}

// SAFETY: every block is allocated by exactly one of two sound allocators and freed or
// resized by the same one (`from_mimalloc` tells them apart).
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if USE_SYSTEM.load(Ordering::Relaxed) {
            // SAFETY: forwarded contract.
            unsafe { System.alloc(layout) }
        } else {
            // SAFETY: forwarded contract.
            unsafe { mimalloc::MiMalloc.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if USE_SYSTEM.load(Ordering::Relaxed) {
            // SAFETY: forwarded contract.
            unsafe { System.alloc_zeroed(layout) }
        } else {
            // SAFETY: forwarded contract.
            unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if from_mimalloc(ptr) {
            // SAFETY: `ptr` is a mimalloc block of `layout`.
            unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
        } else {
            // SAFETY: `ptr` is a System block of `layout`.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if from_mimalloc(ptr) {
            // SAFETY: `ptr` is a mimalloc block of `layout`.
            unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
        } else {
            // SAFETY: `ptr` is a System block of `layout`.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }
}

#[global_allocator]
static GLOBAL: Allocator = Allocator;

fn main() -> std::process::ExitCode {
    if std::env::args_os().nth(1).as_deref() == Some(OsStr::new("run")) {
        USE_SYSTEM.store(true, Ordering::Relaxed);
    }
    kubesync::cli::main()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_freed_by_their_owner_whichever_allocator_is_chosen() {
        let layout = Layout::from_size_align(64, 8).unwrap();
        // SAFETY: allocations of a valid non-zero layout, freed once each.
        unsafe {
            let mi = mimalloc::MiMalloc.alloc(layout);
            let sys = System.alloc(layout);
            assert!(from_mimalloc(mi));
            assert!(!from_mimalloc(sys));
            let grown = Allocator.realloc(sys, layout, 4096);
            assert!(!from_mimalloc(grown), "a System block stays with System");
            Allocator.dealloc(grown, Layout::from_size_align(4096, 8).unwrap());
            Allocator.dealloc(mi, layout);
        }
    }
}
