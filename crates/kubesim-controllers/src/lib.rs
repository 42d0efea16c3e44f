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
