//! Webhook verification and routing: which provider sent a push, whether its signature is
//! good, and which sources it concerns.
//!
//! Pure: works on header values and body bytes; the HTTP handler lives in `server`. Secrets
//! are compared in constant time and never logged or echoed in a response.
use sha2::{Digest, Sha256};

/// A webhook secret; its `Debug` never shows the value.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Trailing newlines (as `kubectl create secret --from-file` leaves them) are not part of
    /// the secret.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        let mut bytes = bytes.into();
        while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            bytes.pop();
        }
        Secret(bytes)
    }

    pub fn read(path: &std::path::Path) -> std::io::Result<Self> {
        std::fs::read(path).map(Secret::new)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A secret file, re-read on every use so a rotated Secret (kubelet updates the mounted
/// file) takes effect without a restart; the last good value is kept if a read fails.
#[derive(Debug)]
pub struct SecretFile {
    path: std::path::PathBuf,
    last: std::sync::Mutex<Secret>,
}

impl SecretFile {
    pub fn load(path: &std::path::Path) -> std::io::Result<SecretFile> {
        Ok(SecretFile {
            path: path.to_owned(),
            last: std::sync::Mutex::new(Secret::read(path)?),
        })
    }

    /// The secret as the file holds it now.
    pub fn current(&self) -> Secret {
        let mut last = match self.last.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        match Secret::read(&self.path) {
            Ok(secret) => {
                *last = secret.clone();
                secret
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot re-read webhook secret; using the last one read");
                last.clone()
            }
        }
    }
}

/// Every webhook secret: the global one and each source's own.
#[derive(Debug, Default)]
pub struct Secrets {
    pub global: Option<SecretFile>,
    pub by_source: std::collections::BTreeMap<String, SecretFile>,
}

impl Secrets {
    /// Read every secret once, so a missing file is a start-up error.
    pub fn load(config: &super::AgentConfig) -> Result<Secrets, super::AgentError> {
        let read = |path: &std::path::PathBuf| {
            SecretFile::load(path).map_err(|source| super::AgentError::Secret {
                path: path.clone(),
                source,
            })
        };
        let global = config.webhook.secret_file.as_ref().map(read).transpose()?;
        let mut by_source = std::collections::BTreeMap::new();
        for s in &config.sources {
            if let Some(path) = &s.webhook_secret_file {
                by_source.insert(s.name.clone(), read(path)?);
            }
        }
        Ok(Secrets { global, by_source })
    }

    /// The secret that guards `/webhook/<source>`: the source's own, else the global one.
    pub fn for_source(&self, source: &str) -> Option<&SecretFile> {
        self.by_source.get(source).or(self.global.as_ref())
    }
}

/// Why a webhook was refused. Every variant maps to 401 except `TooLarge` (413).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no signature header (X-Hub-Signature-256, X-Gitlab-Token or X-Kubesync-Signature)")]
    Unsigned,
    #[error("signature does not match")]
    BadSignature,
    #[error("no webhook secret is configured for this source")]
    NoSecret,
    #[error("body too large")]
    TooLarge,
}

impl Refusal {
    /// Fixed string for metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Unsigned => "unsigned",
            Refusal::BadSignature => "bad_signature",
            Refusal::NoSecret => "no_secret",
            Refusal::TooLarge => "too_large",
        }
    }
}

/// Which provider signed a request, judged from its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    GitHub,
    GitLab,
    Generic,
}

/// The signing headers of a request (lower-case names as HTTP/2 and axum give them).
#[derive(Debug, Default, Clone)]
pub struct Headers<'a> {
    /// `X-Hub-Signature-256: sha256=<hex hmac>`
    pub github_signature: Option<&'a str>,
    /// `X-Gitlab-Token: <secret>`
    pub gitlab_token: Option<&'a str>,
    /// `X-Kubesync-Signature: sha256=<hex hmac>` for any other sender.
    pub generic_signature: Option<&'a str>,
}

/// Check a request against `secret`; returns the provider that signed it.
pub fn verify(headers: &Headers<'_>, body: &[u8], secret: &Secret) -> Result<Provider, Refusal> {
    if let Some(sig) = headers.github_signature {
        return check_hmac(sig, body, secret).map(|()| Provider::GitHub);
    }
    if let Some(sig) = headers.generic_signature {
        return check_hmac(sig, body, secret).map(|()| Provider::Generic);
    }
    if let Some(token) = headers.gitlab_token {
        return if constant_time_eq(token.as_bytes(), &secret.0) {
            Ok(Provider::GitLab)
        } else {
            Err(Refusal::BadSignature)
        };
    }
    Err(Refusal::Unsigned)
}

fn check_hmac(header: &str, body: &[u8], secret: &Secret) -> Result<(), Refusal> {
    let hex = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(Refusal::BadSignature)?;
    let given = decode_hex(hex).ok_or(Refusal::BadSignature)?;
    let expected = hmac_sha256(&secret.0, body);
    if constant_time_eq(&given, &expected) {
        Ok(())
    } else {
        Err(Refusal::BadSignature)
    }
}

/// HMAC-SHA256 (RFC 2104) over `sha2`, so no extra crate is needed.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Lower-case hex of bytes (for building signatures in tests and docs).
pub fn encode_hex(bytes: &[u8]) -> String {
    crate::hex(bytes)
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect()
}

/// Equal in time that depends only on the lengths, never on where bytes differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a push payload says about itself: repository URLs and the ref pushed. Unknown
/// payloads give an empty `Push`, which matches every source the secret covers.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Push {
    pub repo_urls: Vec<String>,
    /// `refs/heads/main` (GitHub, GitLab) or whatever the generic sender put in `ref`.
    pub git_ref: Option<String>,
}

impl Push {
    /// Read GitHub (`repository.{clone_url,ssh_url,html_url}`), GitLab
    /// (`project.{git_http_url,git_ssh_url,web_url}`) or generic (`repository`, `ref`) payloads.
    pub fn parse(body: &[u8]) -> Push {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
            return Push::default();
        };
        let mut repo_urls = Vec::new();
        let mut take = |v: Option<&serde_json::Value>| {
            if let Some(s) = v.and_then(|v| v.as_str()) {
                repo_urls.push(s.to_owned());
            }
        };
        if let Some(repo) = value.get("repository") {
            if repo.is_string() {
                take(Some(repo));
            }
            for key in [
                "clone_url",
                "ssh_url",
                "html_url",
                "git_http_url",
                "git_ssh_url",
            ] {
                take(repo.get(key));
            }
        }
        if let Some(project) = value.get("project") {
            for key in ["git_http_url", "git_ssh_url", "web_url"] {
                take(project.get(key));
            }
        }
        let git_ref = value.get("ref").and_then(|r| r.as_str()).map(str::to_owned);
        Push { repo_urls, git_ref }
    }

    /// Does this push concern a source reading `repo` at `git_ref`? Unknown parts match.
    pub fn matches(&self, repo: &str, git_ref: &str) -> bool {
        let repo_ok = self.repo_urls.is_empty()
            || self
                .repo_urls
                .iter()
                .any(|u| normalise_url(u) == normalise_url(repo));
        let ref_ok = match &self.git_ref {
            None => true,
            Some(pushed) => {
                git_ref == "HEAD"
                    || pushed == git_ref
                    || pushed.strip_prefix("refs/heads/") == Some(git_ref)
                    || pushed.strip_prefix("refs/tags/") == Some(git_ref)
            }
        };
        repo_ok && ref_ok
    }
}

/// `https://github.com/Org/Repo.git`, `git@github.com:org/repo` and
/// `ssh://git@github.com/org/repo/` all become `github.com/org/repo`.
pub fn normalise_url(url: &str) -> String {
    let mut s = url.trim().to_ascii_lowercase();
    if let Some(i) = s.find("://") {
        s = s[i + 3..].to_owned();
    } else if let Some(colon) = s.find(':') {
        // scp-like user@host:path
        s.replace_range(colon..colon + 1, "/");
    }
    if let Some(at) = s.find('@')
        && !s[..at].contains('/')
    {
        s = s[at + 1..].to_owned();
    }
    let s = s.trim_end_matches('/');
    s.strip_suffix(".git").unwrap_or(s).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, body: &[u8]) -> String {
        format!(
            "sha256={}",
            encode_hex(&hmac_sha256(secret.as_bytes(), body))
        )
    }

    #[test]
    fn hmac_matches_the_rfc_4231_vector() {
        // RFC 4231 test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            encode_hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // A key longer than the block is hashed first (test case 6).
        let mac = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            encode_hex(&mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn github_signature_good_and_bad() {
        let secret = Secret::new("s3cret\n");
        let body = br#"{"ref":"refs/heads/main"}"#;
        let good = sign("s3cret", body);
        let h = Headers {
            github_signature: Some(&good),
            ..Headers::default()
        };
        assert_eq!(verify(&h, body, &secret), Ok(Provider::GitHub));
        assert_eq!(verify(&h, b"tampered", &secret), Err(Refusal::BadSignature));
        let wrong = sign("other", body);
        let h = Headers {
            github_signature: Some(&wrong),
            ..Headers::default()
        };
        assert_eq!(verify(&h, body, &secret), Err(Refusal::BadSignature));
        for junk in ["sha1=abcd", "sha256=zz", "sha256=abc", ""] {
            let h = Headers {
                github_signature: Some(junk),
                ..Headers::default()
            };
            assert_eq!(
                verify(&h, body, &secret),
                Err(Refusal::BadSignature),
                "{junk}"
            );
        }
    }

    #[test]
    fn gitlab_token_and_generic_signature() {
        let secret = Secret::new("tok");
        let h = Headers {
            gitlab_token: Some("tok"),
            ..Headers::default()
        };
        assert_eq!(verify(&h, b"{}", &secret), Ok(Provider::GitLab));
        let h = Headers {
            gitlab_token: Some("tok2"),
            ..Headers::default()
        };
        assert_eq!(verify(&h, b"{}", &secret), Err(Refusal::BadSignature));
        let sig = sign("tok", b"x");
        let h = Headers {
            generic_signature: Some(&sig),
            ..Headers::default()
        };
        assert_eq!(verify(&h, b"x", &secret), Ok(Provider::Generic));
        assert_eq!(
            verify(&Headers::default(), b"x", &secret),
            Err(Refusal::Unsigned)
        );
    }

    #[test]
    fn a_rotated_secret_file_is_picked_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "one\n").unwrap();
        let file = SecretFile::load(&path).unwrap();
        let h = |s: &str| format!("sha256={}", encode_hex(&hmac_sha256(s.as_bytes(), b"x")));
        let two = h("two");
        let headers = Headers {
            generic_signature: Some(&two),
            ..Headers::default()
        };
        assert!(verify(&headers, b"x", &file.current()).is_err());
        std::fs::write(&path, "two").unwrap();
        assert!(verify(&headers, b"x", &file.current()).is_ok());
        // A vanished file keeps the last good secret.
        std::fs::remove_file(&path).unwrap();
        assert!(verify(&headers, b"x", &file.current()).is_ok());
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(
            format!("{:?}", Secret::new("hunter2")),
            "Secret(<redacted>)"
        );
    }

    #[test]
    fn push_payloads_route_to_matching_sources() {
        let github = br#"{"ref":"refs/heads/main","repository":{"clone_url":"https://github.com/Org/Repo.git","ssh_url":"git@github.com:Org/Repo.git"}}"#;
        let p = Push::parse(github);
        assert!(p.matches("git@github.com:org/repo", "main"));
        assert!(p.matches("https://github.com/org/repo/", "HEAD"));
        assert!(!p.matches("https://github.com/org/other", "main"));
        assert!(!p.matches("https://github.com/org/repo", "release"));
        let gitlab =
            br#"{"ref":"refs/heads/dev","project":{"git_http_url":"https://gitlab.com/g/p.git"}}"#;
        assert!(Push::parse(gitlab).matches("https://gitlab.com/g/p", "dev"));
        assert!(Push::parse(b"not json").matches("anything", "main"));
    }

    #[test]
    fn urls_normalise() {
        assert_eq!(
            normalise_url("ssh://git@github.com/org/repo.git"),
            "github.com/org/repo"
        );
        assert_eq!(
            normalise_url("git@github.com:org/repo"),
            "github.com/org/repo"
        );
        assert_eq!(
            normalise_url("HTTPS://GitHub.com/Org/Repo/"),
            "github.com/org/repo"
        );
    }
}
