//! Pure reconcile functions of the Kubernetes control plane, as kubesim runs it.
//!
//! Owns: the Deployment controller (rolling update, recreate, rollback by reusing an old
//! ReplicaSet, revisions, conditions, progress deadline, history cleanup), the ReplicaSet
//! controller, a scheduler + kubelet simulation, the EndpointSlice/Endpoints controller and
//! the garbage collector — each a function from the objects it reads and `now` to the
//! writes it would make (`Reconciled`).
//! Must not: do I/O, read a clock, generate random names or keep state between calls — the
//! driver in the `kubesim` crate owns the store, the clock, name generation and requeues.
//! Objects are `serde_json::Value`s in their stored (defaulted) form.

use serde_json::Value;

/// The Deployment controller.
pub mod deployment;
/// The EndpointSlice/Endpoints controller for one Service.
pub mod endpoints;
/// Background garbage collection of orphaned dependents.
pub mod gc;
/// Scheduler + kubelet simulation and the simulated Node.
pub mod kubelet;
mod obj;
/// The ReplicaSet controller.
pub mod replicaset;
#[cfg(test)]
mod sim;

pub use jiff::Timestamp;

/// A write a controller wants the driver to make through the store (as an API request
/// would: resourceVersion bump, watch event, managedFields entry of
/// `kube-controller-manager` or `kubelet`).
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// POST. The object may carry `metadata.generateName` instead of `metadata.name`:
    /// the driver then generates the name (base + 5 chars of `bcdfghjklmnpqrstvwxz2456789`).
    Create(Value),
    /// PUT of the main resource (spec, metadata). Carries the resourceVersion it was read at.
    Update(Value),
    /// PUT of the `/status` subresource. Carries the resourceVersion it was read at.
    UpdateStatus(Value),
    /// DELETE (background propagation; the driver's GC removes dependents).
    Delete {
        api_version: String,
        kind: String,
        namespace: Option<String>,
        name: String,
        /// Precondition: only delete the object with this uid.
        uid: String,
    },
    /// A core/v1 Event (`involvedObject`, `reason`, `message`, `type`); the driver names,
    /// timestamps and stores it.
    Event(Value),
}

/// What one reconcile call produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reconciled {
    /// Writes in the order to make them. A controller makes one step per call (as the real
    /// controllers do); the driver applies the writes and calls again while writes come out.
    pub writes: Vec<Write>,
    /// Call again at this time even if nothing changes (progress deadline, minReadySeconds,
    /// readiness delays).
    pub requeue_at: Option<Timestamp>,
}
