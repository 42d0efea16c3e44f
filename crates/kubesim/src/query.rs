//! Query-string parsing tolerant of kube-rs (`?&a=b`, bare `?`) and kubectl.
//!
//! Owns: percent-decoding and the typed view of the parameters kubesim reads.
//! Must not: validate parameter semantics beyond their syntax.

use std::collections::HashMap;

/// Decodes `%XX` and `+`; invalid escapes are kept literally.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parsed query parameters (last value wins; `dryRun` may repeat).
#[derive(Debug, Clone, Default)]
pub struct Query {
    params: HashMap<String, String>,
    dry_run_all: bool,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        let mut q = Query::default();
        for part in raw.unwrap_or("").split('&') {
            if part.is_empty() {
                continue;
            }
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let (k, v) = (percent_decode(k), percent_decode(v));
            if k == "dryRun" && v == "All" {
                q.dry_run_all = true;
            }
            q.params.insert(k, v);
        }
        q
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.params
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }

    pub fn dry_run(&self) -> bool {
        self.dry_run_all
    }

    pub fn watch(&self) -> bool {
        self.flag("watch")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_rs_style() {
        let q = Query::parse(Some(
            "&watch=true&fieldSelector=metadata.name%3Dweb&labelSelector=app+in+%28a%2Cb%29&dryRun=All",
        ));
        assert!(q.watch());
        assert_eq!(q.get("fieldSelector"), Some("metadata.name=web"));
        assert_eq!(q.get("labelSelector"), Some("app in (a,b)"));
        assert!(q.dry_run());
        let empty = Query::parse(Some(""));
        assert!(!empty.watch());
        assert_eq!(percent_decode("a%zz%4"), "a%zz%4");
    }
}
