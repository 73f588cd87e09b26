//! HTTPS built in: the rustls configuration (TLS 1.2 and 1.3 only, ALPN `h2` and `http/1.1`)
//! and a certificate store that follows the PEM files on disk, so that a renewed certificate
//! is served from the next handshake on without a restart.
//!
//! The files are watched by polling their metadata (size, modification time, inode) every
//! [`RELOAD_EVERY`]: renewal tools replace them by writing or by renaming a new file into
//! place, and both change the metadata. A pair that does not load (a key written a moment
//! after its certificate, a typo) leaves the current certificate in service and is tried again
//! when the files next change.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

/// How often the certificate files are checked for a change.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// Why a certificate and key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file holds no usable PEM object of the expected kind.
    #[error("{}: {what}", path.display())]
    Pem { path: PathBuf, what: String },
    /// The key does not fit the certificate, or rustls cannot sign with it.
    #[error("{} and {}: {what}", cert.display(), key.display())]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        what: String,
    },
}

/// The certificate chain and key files (`http.tls_cert`, `http.tls_key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The crypto provider for HTTPS. Named explicitly: the workspace also builds rustls with
/// `ring` (for other crates), and then rustls has no process default to fall back on.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads and checks a certificate chain and its key.
pub fn load(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let cert_pem = read(&files.cert)?;
    let key_pem = read(&files.key)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: files.cert.clone(),
            what: format!("not a PEM certificate chain ({e})"),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            path: files.cert.clone(),
            what: "no CERTIFICATE block".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
        path: files.key.clone(),
        what: format!("no usable PRIVATE KEY block ({e})"),
    })?;
    let pair = |what: String| TlsError::Pair {
        cert: files.cert.clone(),
        key: files.key.clone(),
        what,
    };
    let certified =
        CertifiedKey::from_der(chain, key, &provider()).map_err(|e| pair(e.to_string()))?;
    Ok(certified)
}

/// SHA-256 of the leaf certificate, as `AB:CD:...` (what browsers show as its fingerprint).
pub fn fingerprint(key: &CertifiedKey) -> String {
    key.end_entity_cert()
        .map(|c| colon_hex(&Sha256::digest(c.as_ref())))
        .unwrap_or_default()
}

pub(crate) fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// What identifies a version of a file on disk without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    // `metadata` follows symbolic links: a link re-pointed at a renewed file changes the inode.
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        inode,
    })
}

/// The certificate served now, swapped when the files change.
pub struct CertStore {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
    seen: std::sync::Mutex<(Option<Stamp>, Option<Stamp>)>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl CertStore {
    /// Loads the files; an error here stops the start.
    pub fn open(files: TlsFiles) -> Result<Arc<CertStore>, TlsError> {
        let seen = (stamp(&files.cert), stamp(&files.key));
        let key = load(&files)?;
        Ok(Arc::new(CertStore {
            files,
            current: RwLock::new(Arc::new(key)),
            seen: std::sync::Mutex::new(seen),
        }))
    }

    /// The certificate handshakes get now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Loads the files again if they changed since the last look. `Some(Ok(fingerprint))`
    /// when a new certificate is now served, `Some(Err)` when changed files did not load.
    pub fn reload_if_changed(&self) -> Option<Result<String, TlsError>> {
        let now = (stamp(&self.files.cert), stamp(&self.files.key));
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if *seen == now {
                return None;
            }
            *seen = now;
        }
        Some(load(&self.files).map(|key| {
            let print = fingerprint(&key);
            let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
            *current = Arc::new(key);
            print
        }))
    }

    /// Checks the files every [`RELOAD_EVERY`] until the returned task is aborted.
    pub fn watch(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RELOAD_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let store = store.clone();
                // File reads block; they are small and rare, but not on a runtime worker.
                let outcome = tokio::task::spawn_blocking(move || store.reload_if_changed()).await;
                match outcome {
                    Ok(Some(Ok(print))) => {
                        tracing::info!(sha256 = %print, "TLS certificate reloaded")
                    }
                    Ok(Some(Err(e))) => tracing::warn!(
                        "TLS certificate files changed but cannot be used ({e}); \
                         still serving the previous certificate"
                    ),
                    Ok(None) | Err(_) => {}
                }
            }
        })
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The server's TLS configuration: TLS 1.3 and 1.2 (rustls has nothing older), HTTP/2 and
/// HTTP/1.1 offered by ALPN, certificates from `store`.
pub fn server_config(store: Arc<CertStore>) -> Result<Arc<ServerConfig>, TlsError> {
    let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError::Pair {
            cert: store.files.cert.clone(),
            key: store.files.key.clone(),
            what: e.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, host: &str) -> TlsFiles {
        let made = crate::cert::generate(&[host.to_owned()], 30).expect("certificate");
        let files = TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&files.cert, made.cert_pem).unwrap();
        std::fs::write(&files.key, made.key_pem).unwrap();
        files
    }

    #[test]
    fn a_pair_loads_and_a_mismatched_or_broken_one_says_which_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_pair(dir.path(), "a.test");
        let key = load(&files).expect("loads");
        assert_eq!(fingerprint(&key).len(), 32 * 3 - 1);

        let other = tempfile::tempdir().unwrap();
        let other_files = write_pair(other.path(), "b.test");
        let mixed = TlsFiles {
            cert: files.cert.clone(),
            key: other_files.key.clone(),
        };
        assert!(matches!(load(&mixed), Err(TlsError::Pair { .. })));

        std::fs::write(&files.key, "not a key").unwrap();
        let e = load(&files).unwrap_err();
        assert!(e.to_string().contains("key.pem"), "{e}");
        let missing = TlsFiles {
            cert: dir.path().join("nope.pem"),
            key: files.key.clone(),
        };
        assert!(matches!(load(&missing), Err(TlsError::Read { .. })));
    }

    #[test]
    fn the_store_swaps_only_for_a_changed_pair_that_loads() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_pair(dir.path(), "a.test");
        let store = CertStore::open(files.clone()).unwrap();
        let first = fingerprint(&store.current());
        assert!(store.reload_if_changed().is_none(), "unchanged files");

        // A key written before its certificate: refused, the old pair stays in service.
        let next = tempfile::tempdir().unwrap();
        let new_files = write_pair(next.path(), "b.test");
        std::fs::copy(&new_files.key, &files.key).unwrap();
        assert!(matches!(store.reload_if_changed(), Some(Err(_))));
        assert_eq!(fingerprint(&store.current()), first);

        std::fs::copy(&new_files.cert, &files.cert).unwrap();
        let loaded = store.reload_if_changed().expect("changed").expect("loads");
        assert_ne!(loaded, first);
        assert_eq!(fingerprint(&store.current()), loaded);
    }
}
