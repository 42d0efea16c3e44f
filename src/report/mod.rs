//! Text, JSON and Markdown renderers for what kubesync found or did.
//!
//! Pure: formats values into strings; never computes plans or talks to git or the
//! cluster.
mod preview;

pub use preview::{MARKDOWN_LIMIT, json, markdown, text};
