//! The kinds kubesim serves, and what the API server does to an object of each kind
//! before storing it: defaulting, validation, the create/update strategies (generation,
//! status and spec resets), plus how the kinds are described to clients (discovery,
//! OpenAPI v3, `Table` output).
//!
//! Pure: no storage, no HTTP, no clock (time is a parameter).
