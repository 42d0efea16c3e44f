//! kubesync: keeps a Kubernetes cluster equal to a git repository of manifests, and
//! understands the Deployment rollouts that doing so causes.
//!
//! Data flows `source` → `manifest` → `transform` → `plan` → `apply` → `rollout` → `report`
//! (see `docs/architecture.md`). Each stage has a plain data type at its boundary.

/// The long-running agent: loop, config, health/metrics/webhook server, leader election.
pub mod agent;
/// Writes to the cluster: ordering, server-side apply, prune, inventory.
pub mod apply;
/// Standard base64 (Secret data, known_hosts keys).
pub mod base64;
/// CLI subcommands: parse flags into validated configs and wire the stages together.
pub mod cli;
/// Cluster selection: kubeconfig, in-cluster, or the embedded kubesim cluster.
pub mod cluster;
/// Large data a one-shot command is done with: left to the exit instead of freed.
pub mod dispose;
/// One sync or diff of one source at one commit, as a library call.
pub mod engine;
/// One readable line per error (cause chains without repeats, kube API errors).
pub mod errors;
/// YAML/JSON → objects, validation, identity (group/kind/namespace/name).
pub mod manifest;
/// Pure planning: normalisation, diffs, rollout impact, reverts, prunes.
pub mod plan;
/// Text, JSON and Markdown renderers.
pub mod report;
/// Rollout status watching, history, deadlines.
pub mod rollout;
/// git2 access: open/clone/fetch, resolve refs, read a commit's tree.
pub mod source;
/// Desired-state transforms: ownership labels, commit annotations, config hashes.
pub mod transform;

/// The number of threads worth running CPU work on (at most 8), read once: the standard
/// library reads the cgroup files again on every call.
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8)
    })
}

/// Lower-case hex of `bytes` (digests in labels, keys and signatures).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// Runs `work` on consecutive chunks of `items` (each at least `min_chunk` long, at most
/// [`cores`] of them): the first on the calling thread, the others on scoped threads. The
/// results come back in chunk order; `Err` (with the panic) when any chunk panicked.
pub fn in_chunks<T: Send, R: Send>(
    items: &mut [T],
    min_chunk: usize,
    work: impl Fn(&mut [T]) -> R + Sync,
) -> std::thread::Result<Vec<R>> {
    let size = items.len().div_ceil(cores()).max(min_chunk).max(1);
    let work = &work;
    std::thread::scope(|scope| {
        let mut chunks = items.chunks_mut(size);
        let own = chunks.next();
        let others: Vec<_> = chunks.map(|c| scope.spawn(move || work(c))).collect();
        let mut out = Vec::with_capacity(others.len() + 1);
        if let Some(chunk) = own {
            out.push(std::panic::catch_unwind(std::panic::AssertUnwindSafe(
                || work(chunk),
            ))?);
        }
        for handle in others {
            out.push(handle.join()?);
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_is_lower_case_two_digits_per_byte() {
        assert_eq!(super::hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(super::hex(&[]), "");
    }

    #[test]
    fn in_chunks_keeps_order_and_reports_a_panic() {
        let mut items: Vec<usize> = (0..1000).collect();
        let sums = super::in_chunks(&mut items, 10, |c: &mut [usize]| {
            c.iter_mut().for_each(|x| *x *= 2);
            c.to_vec()
        })
        .unwrap();
        assert_eq!(sums.concat(), (0..1000).map(|x| x * 2).collect::<Vec<_>>());
        assert_eq!(items[999], 1998);
        let panicked = super::in_chunks(&mut items, 10, |c: &mut [usize]| {
            assert!(!c.contains(&0), "first chunk panics");
        });
        assert!(panicked.is_err());
        assert!(
            super::in_chunks(&mut Vec::<u8>::new(), 1, |c: &mut [u8]| c.len())
                .unwrap()
                .is_empty()
        );
    }
}
