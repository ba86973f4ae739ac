//! TLS on a listener: its certificate, its key and, to require client
//! certificates, the CA that must have signed them, all read from PEM
//! files. Replacing the files takes effect for new connections without a
//! restart: the files are looked at again at most once a second, and a
//! set that does not load keeps the last good one, with a warning.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::time::Instant;

/// How often the files are looked at for a change.
const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The PEM files of a listener's TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The listener's certificate chain.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// The CA that signs the certificates clients must present; none when
    /// clients need no certificate.
    pub client_ca: Option<PathBuf>,
}

/// Why a TLS configuration did not load.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file is missing, unreadable or not PEM of the right kind.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// rustls refused the certificates or the key.
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client CA cannot verify certificates.
    #[error("client CA: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// A listener's TLS configuration, reloaded when its files change.
pub(crate) struct TlsReloader {
    files: TlsFiles,
    current: Mutex<Loaded>,
}

struct Loaded {
    config: Arc<ServerConfig>,
    stamps: Vec<Option<SystemTime>>,
    checked_at: Instant,
}

impl TlsReloader {
    /// Loads `files`; fails when they do not make a configuration.
    pub(crate) fn load(files: TlsFiles) -> Result<TlsReloader, TlsError> {
        let config = Arc::new(server_config(&files)?);
        let loaded = Loaded {
            config,
            stamps: stamps(&files),
            checked_at: Instant::now(),
        };
        Ok(TlsReloader {
            files,
            current: Mutex::new(loaded),
        })
    }

    /// The configuration for a new connection: the files' current one.
    pub(crate) fn config(&self) -> Arc<ServerConfig> {
        let mut loaded = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if loaded.checked_at.elapsed() < RELOAD_CHECK_INTERVAL {
            return loaded.config.clone();
        }
        loaded.checked_at = Instant::now();
        let now = stamps(&self.files);
        if now != loaded.stamps {
            match server_config(&self.files) {
                Ok(config) => {
                    tracing::info!(cert = %self.files.cert.display(), "TLS files changed; new connections use them");
                    loaded.config = Arc::new(config);
                    loaded.stamps = now;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "TLS files changed but do not load; keeping the last good ones")
                }
            }
        }
        loaded.config.clone()
    }
}

/// When each file was last modified, as far as the file system says.
fn stamps(files: &TlsFiles) -> Vec<Option<SystemTime>> {
    let paths = [
        Some(&files.cert),
        Some(&files.key),
        files.client_ca.as_ref(),
    ];
    let modified = |path: &PathBuf| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    paths.into_iter().map(|p| p.and_then(modified)).collect()
}

/// A rustls server configuration of `files`, on the ring provider,
/// offering HTTP/2 and HTTP/1.1.
fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = read_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| file_error(&files.key, e))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots.add(cert)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            builder.with_client_cert_verifier(verifier.build()?)
        }
    };
    let mut config = builder.with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The certificates of a PEM file; at least one.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| file_error(path, e))?;
    let certs: Vec<_> = certs
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no certificate in the file"));
    }
    Ok(certs)
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}
