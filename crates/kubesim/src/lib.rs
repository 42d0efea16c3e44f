//! kubesim: an in-process Kubernetes API server and control plane.
//!
//! It speaks the real REST protocol over HTTP so that unmodified `kube` clients and the
//! real `kubectl` work against it. `../../shared/k8s-semantics.md` is its specification.
