//! Credentials and host verification for remote repositories: the token file for https,
//! the private key for ssh, and the `known_hosts` check that refuses an unknown ssh host.
//!
//! Owns only the git2 callbacks; never reads or writes repository data.
use super::{Credentials, SourceError};
use git2::{CertificateCheckStatus, Cred, CredentialType, RemoteCallbacks};
use std::path::{Path, PathBuf};

/// Callbacks for one fetch/clone of `url` with `creds`.
///
/// The token file is read up front so that an unreadable file is an error with a reason,
/// not a generic "authentication failed".
pub(crate) fn callbacks<'a>(
    url: &str,
    creds: &Credentials,
) -> Result<RemoteCallbacks<'a>, SourceError> {
    super::tls::ensure_roots();
    let token = match &creds.token_file {
        Some(path) => Some(read_token(path)?),
        None => None,
    };
    let ssh_key = creds.ssh_key.clone();
    let known_hosts = match &creds.known_hosts {
        Some(path) => Some(path.clone()),
        None => default_known_hosts(),
    };
    let hosts = match &known_hosts {
        Some(path) if path.exists() => {
            let text =
                std::fs::read_to_string(path).map_err(|source| SourceError::Credentials {
                    path: path.clone(),
                    source,
                })?;
            parse_known_hosts(&text)
        }
        _ => Vec::new(),
    };
    let port = ssh_port(url);
    let mut callbacks = RemoteCallbacks::new();
    let mut attempts = 0u32;
    callbacks.credentials(move |_url, username, allowed| {
        // libgit2 calls again after a rejected credential: stop instead of looping forever.
        attempts += 1;
        if attempts > 3 {
            return Err(git2::Error::from_str(
                "authentication failed (credentials rejected)",
            ));
        }
        if allowed.contains(CredentialType::SSH_KEY) {
            if let Some(key) = &ssh_key {
                return Cred::ssh_key(username.unwrap_or("git"), None, key, None);
            }
            return Err(git2::Error::from_str(
                "the remote needs an ssh key: pass --ssh-key",
            ));
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            if let Some(token) = &token {
                return Cred::userpass_plaintext(username.unwrap_or("x-access-token"), token);
            }
            return Err(git2::Error::from_str(
                "the remote needs credentials: pass --token-file",
            ));
        }
        if allowed.contains(CredentialType::USERNAME) {
            return Cred::username(username.unwrap_or("git"));
        }
        Err(git2::Error::from_str(
            "no supported credential type offered by the remote",
        ))
    });
    callbacks.certificate_check(move |cert, host| {
        let Some(hostkey) = cert.as_hostkey() else {
            // TLS: libgit2's own verification against the system trust store applies.
            return Ok(CertificateCheckStatus::CertificatePassthrough);
        };
        let Some(key) = hostkey.hostkey() else {
            return Err(git2::Error::from_str(
                "ssh host key not available for verification",
            ));
        };
        if host_is_known(&hosts, host, port, key) {
            Ok(CertificateCheckStatus::CertificateOk)
        } else {
            Err(git2::Error::from_str(&format!(
                "ssh host {host} is not in known_hosts (or its key differs): refusing to connect"
            )))
        }
    });
    Ok(callbacks)
}

fn read_token(path: &Path) -> Result<String, SourceError> {
    let text = std::fs::read_to_string(path).map_err(|source| SourceError::Credentials {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(text.trim().to_string())
}

fn default_known_hosts() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".ssh").join("known_hosts"))
}

/// The ssh port of a URL (`ssh://host:2222/x`), `None` for the default port or scp-like URLs.
fn ssh_port(url: &str) -> Option<u16> {
    let rest = url.strip_prefix("ssh://")?;
    let authority = rest.split('/').next()?;
    let host_port = authority.rsplit('@').next()?;
    let (_, port) = host_port.rsplit_once(':')?;
    port.parse().ok().filter(|p| *p != 22)
}

/// One usable `known_hosts` line: its host patterns and the decoded key blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KnownHost {
    pub patterns: Vec<String>,
    pub key: Vec<u8>,
}

/// Parses `known_hosts` text. Hashed entries (`|1|…`), markers (`@revoked`, `@cert-authority`)
/// and malformed lines are not usable and are left out; a host that only has such entries
/// is therefore unknown and refused.
pub(crate) fn parse_known_hosts(text: &str) -> Vec<KnownHost> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty()
            || line.starts_with('#')
            || line.starts_with('@')
            || line.starts_with('|')
        {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(hosts), Some(_kind), Some(key)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let Some(key) = crate::base64::decode(key) else {
            continue;
        };
        let patterns = hosts.split(',').map(str::to_string).collect();
        out.push(KnownHost { patterns, key });
    }
    out
}

/// True when some entry lists `host` (as `host` or `[host]:port`) with exactly `key`.
/// A negated pattern (`!host`) on the entry excludes it.
pub(crate) fn host_is_known(
    hosts: &[KnownHost],
    host: &str,
    port: Option<u16>,
    key: &[u8],
) -> bool {
    let wanted = match port {
        Some(port) => format!("[{host}]:{port}"),
        None => host.to_string(),
    };
    hosts.iter().any(|entry| {
        let negated = entry.patterns.iter().any(|p| {
            p.strip_prefix('!')
                .is_some_and(|p| p.eq_ignore_ascii_case(&wanted))
        });
        let listed = entry
            .patterns
            .iter()
            .any(|p| p.eq_ignore_ascii_case(&wanted));
        listed && !negated && entry.key == key
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_matches_host_and_key_exactly() {
        let text = "# comment\n\
                    github.com,140.82.1.1 ssh-ed25519 aGVsbG8=\n\
                    [git.example.com]:2222 ssh-rsa AAECAw==\n\
                    |1|hashed|entry ssh-rsa AAECAw==\n\
                    @revoked bad.example ssh-rsa AAECAw==\n";
        let hosts = parse_known_hosts(text);
        assert_eq!(hosts.len(), 2);
        assert!(host_is_known(&hosts, "github.com", None, b"hello"));
        assert!(host_is_known(&hosts, "140.82.1.1", None, b"hello"));
        assert!(!host_is_known(&hosts, "github.com", None, b"other key"));
        assert!(!host_is_known(&hosts, "gitlab.com", None, b"hello"));
        assert!(host_is_known(
            &hosts,
            "git.example.com",
            Some(2222),
            &[0, 1, 2, 3]
        ));
        assert!(!host_is_known(
            &hosts,
            "git.example.com",
            None,
            &[0, 1, 2, 3]
        ));
        assert!(!host_is_known(&hosts, "bad.example", None, &[0, 1, 2, 3]));
    }

    #[test]
    fn ssh_port_only_for_non_default_ports() {
        assert_eq!(ssh_port("ssh://git@host:2222/repo.git"), Some(2222));
        assert_eq!(ssh_port("ssh://git@host:22/repo.git"), None);
        assert_eq!(ssh_port("ssh://git@host/repo.git"), None);
        assert_eq!(ssh_port("git@host:org/repo.git"), None);
    }
}
