//! TLS from PEM files, for a node's listeners and for its connections to
//! its peers. A listener has a certificate, its key and, to require client
//! certificates, the CA that must have signed them; a peer connection has
//! the node's certificate and key, presented to the peer, and the CA that
//! must have signed the peer's.
//!
//! Replacing the files takes effect for new connections without a
//! restart: they are looked at again at most once a second, and a set that
//! does not load (a certificate without its new key, a half-written file)
//! keeps the last good one, with a warning. rustls on the ring provider
//! only.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

/// How often the files are looked at for a change.
const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The PEM files of one side of TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// This side's certificate chain.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// The CA that must have signed the other side's certificate: for a
    /// listener, its clients' (none: clients need no certificate); for a
    /// peer connection, the peer's.
    pub ca: Option<PathBuf>,
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
    /// A peer connection needs the CA of its peers' certificates.
    #[error("peer TLS needs the peers' CA")]
    NoPeerCa,
    /// rustls refused the certificates or the key.
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    /// The CA cannot verify certificates.
    #[error("CA: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// Something built from files, built again when they change.
struct Watched<T> {
    files: Vec<PathBuf>,
    build: Box<dyn Fn() -> Result<T, TlsError> + Send + Sync>,
    current: Mutex<Loaded<T>>,
}

struct Loaded<T> {
    value: Arc<T>,
    stamps: Vec<Option<(SystemTime, u64)>>,
    checked_at: Instant,
}

impl<T> Watched<T> {
    fn load(
        files: Vec<PathBuf>,
        build: impl Fn() -> Result<T, TlsError> + Send + Sync + 'static,
    ) -> Result<Watched<T>, TlsError> {
        let loaded = Loaded {
            value: Arc::new(build()?),
            stamps: stamps(&files),
            checked_at: Instant::now(),
        };
        Ok(Watched {
            files,
            build: Box::new(build),
            current: Mutex::new(loaded),
        })
    }

    /// The value of the files as they are now.
    fn current(&self) -> Arc<T> {
        let mut loaded = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if loaded.checked_at.elapsed() < RELOAD_CHECK_INTERVAL {
            return loaded.value.clone();
        }
        loaded.checked_at = Instant::now();
        let now = stamps(&self.files);
        if now != loaded.stamps {
            match (self.build)() {
                Ok(value) => {
                    tracing::info!(files = ?self.files, "TLS files changed; new connections use them");
                    loaded.value = Arc::new(value);
                    loaded.stamps = now;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "TLS files changed but do not load; keeping the last good ones")
                }
            }
        }
        loaded.value.clone()
    }
}

/// When each file was last modified, and its length: a copy that keeps
/// the old time (`cp -p`) still shows by its length, mostly.
fn stamps(files: &[PathBuf]) -> Vec<Option<(SystemTime, u64)>> {
    let stamp = |path: &PathBuf| {
        let metadata = std::fs::metadata(path).ok()?;
        Some((metadata.modified().ok()?, metadata.len()))
    };
    files.iter().map(stamp).collect()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A listener's TLS, reloaded when its files change.
pub struct ServerTls(Watched<ServerConfig>);

impl ServerTls {
    /// Loads `files`; fails when they do not make a configuration.
    pub fn load(files: TlsFiles) -> Result<ServerTls, TlsError> {
        let paths = [Some(&files.cert), Some(&files.key), files.ca.as_ref()];
        let paths = paths.into_iter().flatten().cloned().collect();
        Ok(ServerTls(Watched::load(paths, move || {
            server_config(&files)
        })?))
    }

    /// The configuration for a new connection.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.0.current()
    }
}

/// A server configuration offering HTTP/2 and HTTP/1.1.
fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let provider = provider();
    let certs = read_certs(&files.cert)?;
    let key = read_key(&files.key)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &files.ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider);
            builder.with_client_cert_verifier(verifier.build()?)
        }
    };
    let mut config = builder.with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// A client configuration for peer connections: presents `files.cert`,
/// trusts only `files.ca`, both reloaded when they change; offers `alpn`.
pub fn client_config(files: &TlsFiles, alpn: &[&[u8]]) -> Result<ClientConfig, TlsError> {
    let ca = files.ca.clone().ok_or(TlsError::NoPeerCa)?;
    let verifier = Watched::load(vec![ca.clone()], move || {
        let verifier = WebPkiServerVerifier::builder_with_provider(roots(&ca)?, provider());
        Ok(verifier.build()?)
    })?;
    let (cert, key) = (files.cert.clone(), files.key.clone());
    let identity = Watched::load(vec![cert.clone(), key.clone()], move || {
        Ok(CertifiedKey::from_der(
            read_certs(&cert)?,
            read_key(&key)?,
            &provider(),
        )?)
    })?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ReloadedVerifier(verifier)))
        .with_client_cert_resolver(Arc::new(ReloadedIdentity(identity)));
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The peers' CA, as its file says now.
struct ReloadedVerifier(Watched<Arc<WebPkiServerVerifier>>);

impl std::fmt::Debug for ReloadedVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReloadedVerifier")
    }
}

impl ServerCertVerifier for ReloadedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verifier = self.0.current();
        verifier.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.current().supported_verify_schemes()
    }
}

/// This node's certificate and key, as their files say now.
struct ReloadedIdentity(Watched<CertifiedKey>);

impl std::fmt::Debug for ReloadedIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReloadedIdentity")
    }
}

impl ResolvesClientCert for ReloadedIdentity {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The certificates of a CA file, as roots.
fn roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots.add(cert)?;
    }
    Ok(Arc::new(roots))
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

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_error(path, e))
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}
