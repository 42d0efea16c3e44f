//! When libgit2 reads the CA bundle. libgit2 initialises OpenSSL on the first git2 call and
//! loads the whole system CA bundle right then (tens of milliseconds of PEM parsing with
//! OpenSSL 3), even when the repository is a local path that never needs TLS. kubesync
//! initialises git2 once at process start with the bundle hidden, and hands libgit2 the
//! real locations only before the first remote operation.
//!
//! Owns: that start-up step ([`init_process`]) and [`ensure_roots`]. Must not: touch any
//! other environment variable, or run while any other thread could read the environment
//! other than through `std::env` (whose reads are serialised with `set_var`): no DNS
//! lookups, no TLS set-up, no C library reading variables. `cli::main` runs it on its own
//! thread while the main thread only parses the command line and builds the (idle) async
//! runtime, and joins it before any command runs.

use std::sync::OnceLock;

const CERT_FILE: &str = "SSL_CERT_FILE";

/// Initialises git2 without loading the CA bundle. Call at process start, before any work
/// runs (see the module notes for what may run beside it); later calls do nothing.
pub fn init_process() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let original = std::env::var_os(CERT_FILE);
        // SAFETY: called at process start while no other thread reads the environment
        // other than through `std::env`, which serialises with this write (module notes).
        unsafe { std::env::set_var(CERT_FILE, "/dev/null") };
        // Any git2 option call runs the one-time global init. Objects are not re-hashed on
        // every read (git itself does not either; `git fsck` is for that): a SHA-1 per
        // manifest file was a measurable share of reading a large commit.
        git2::opts::strict_hash_verification(false);
        // git2's init points SSL_CERT_FILE at the probed bundle when it was unset; put back
        // what the user had (the Kubernetes client's TLS reads it too).
        // SAFETY: as above.
        unsafe {
            match original {
                Some(value) => std::env::set_var(CERT_FILE, value),
                None => std::env::remove_var(CERT_FILE),
            }
        }
    });
}

/// Gives libgit2 the system CA locations (once per process) before a remote operation.
/// Errors are logged, not returned: the TLS handshake that follows reports a missing root
/// far more clearly than this could.
pub fn ensure_roots() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let probe = openssl_probe::probe();
        if let Some(file) = probe.cert_file {
            // SAFETY: libgit2 serialises option calls internally; no TLS connection is
            // being set up by this process yet (this runs before the first one).
            if let Err(e) = unsafe { git2::opts::set_ssl_cert_file(&file) } {
                tracing::warn!(file = %file.display(), error = %e, "cannot hand the CA bundle to libgit2");
            }
        }
        if let Some(dir) = probe.cert_dir {
            // SAFETY: as above.
            if let Err(e) = unsafe { git2::opts::set_ssl_cert_dir(&dir) } {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot hand the CA directory to libgit2");
            }
        }
    });
}
