//! Keeping the agent's resident memory flat across syncs.
//!
//! A sync of a large source peaks at tens of MiB of short-lived heap (live objects listed as
//! JSON, compared, dropped), then frees it all. glibc's malloc keeps such freed memory
//! resident: free chunks inside an arena are only returned to the kernel when they sit at the
//! top of the heap, and every thread that mallocs under contention may get its own arena, so a
//! sync that runs on a different thread each time leaves a fresh ~20 MiB behind in each arena
//! (measured: 48 → 168 MiB RSS over ten syncs of 1,000 objects, while heaptrack shows < 3 MiB
//! live). Two measures, both here and in [`super::syncer`]:
//!
//! - each source's syncs run on one long-lived thread of their own ([`SyncThread`]), so their
//!   allocations reuse the same arena instead of seeding new ones;
//! - after each sync, [`release_free_memory`] asks glibc to give every whole free page of
//!   every arena back to the kernel (`malloc_trim(0)`, which since glibc 2.8 also releases
//!   pages in the middle of heaps, via `MADV_DONTNEED`). It costs a walk of the free lists
//!   (about a millisecond after a 1,000-object sync), once per sync;
//! - `kubesync run` caps glibc at two arenas ([`limit_arenas`]) unless `MALLOC_ARENA_MAX` is
//!   set: the short-lived blocking threads (git lookups) and the runtime's workers otherwise
//!   spread partly-used pages over up to 8 arenas per core, which trimming cannot release
//!   (measured over 30–40 syncs of 1,000 objects: 25 → 37 MiB and a 57 MiB peak without the
//!   cap, flat 25–28 MiB and a 46 MiB peak with it). The agent is not allocation-bound, so
//!   the extra lock contention does not show (same latencies).
//!
//! Must not: change what a sync does, or hold any state other than the thread's job queue.
//! Other allocators (musl in the static image) are left alone: [`release_free_memory`] is a
//! no-op there.
use std::sync::mpsc;

/// Give free heap pages back to the kernel (glibc only; elsewhere a no-op). Returns whether
/// any memory was released.
pub fn release_free_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: malloc_trim takes no pointers and is thread-safe (it locks each arena).
        unsafe { malloc_trim(0) != 0 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Cap the number of glibc malloc arenas at `max` (`mallopt(M_ARENA_MAX)`; glibc only,
/// elsewhere a no-op). Call early, before threads allocate: existing arenas stay. Returns
/// whether the allocator accepted it.
pub fn limit_arenas(max: i32) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        /// `M_ARENA_MAX` from glibc's `<malloc.h>`.
        const M_ARENA_MAX: std::ffi::c_int = -8;
        unsafe extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        // SAFETY: mallopt takes two integers and only adjusts allocator tunables.
        unsafe { mallopt(M_ARENA_MAX, max) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = max;
        false
    }
}

/// A unit of work for a [`SyncThread`].
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// One long-lived OS thread that runs jobs one after the other. It ends when the `SyncThread`
/// (its queue's sender) is dropped. Jobs call [`release_free_memory`] themselves once their
/// big allocations are dropped and before they report back, so "the sync is done" also means
/// "its memory is returned".
#[derive(Debug)]
pub struct SyncThread {
    jobs: mpsc::Sender<Job>,
}

impl SyncThread {
    /// Start a thread named `name`.
    pub fn spawn(name: String) -> std::io::Result<SyncThread> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new().name(name).spawn(move || {
            while let Ok(job) = queue.recv() {
                // A panicking job drops its reply channel (the caller sees the failure);
                // the thread stays up for the next one.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
        })?;
        Ok(SyncThread { jobs })
    }

    /// Queue `job`; gives it back if the thread is gone.
    pub fn submit(&self, job: Job) -> Result<(), Job> {
        self.jobs.send(job).map_err(|mpsc::SendError(job)| job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_in_order_on_one_thread_that_survives_a_panic() {
        let t = SyncThread::spawn("test-sync".into()).unwrap();
        let (tx, rx) = mpsc::channel();
        for i in 0..3 {
            let tx = tx.clone();
            t.submit(Box::new(move || {
                if i == 1 {
                    panic!("job panics");
                }
                let name = std::thread::current().name().map(str::to_owned);
                tx.send((i, name)).unwrap();
            }))
            .map_err(|_| "thread gone")
            .unwrap();
        }
        drop(tx);
        let got: Vec<_> = rx.iter().collect();
        assert_eq!(
            got,
            vec![
                (0, Some("test-sync".to_owned())),
                (2, Some("test-sync".to_owned()))
            ]
        );
    }

    #[test]
    fn arenas_can_be_capped_on_glibc() {
        let accepted = limit_arenas(8);
        assert_eq!(
            accepted,
            cfg!(all(target_os = "linux", target_env = "gnu")),
            "mallopt(M_ARENA_MAX) accepted only where it exists"
        );
    }

    #[test]
    fn releasing_free_memory_is_harmless() {
        let v: Vec<Vec<u8>> = (0..64).map(|_| vec![1u8; 64 * 1024]).collect();
        drop(v);
        let _ = release_free_memory();
    }
}
