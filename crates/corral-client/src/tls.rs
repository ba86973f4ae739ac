//! [`TlsOptions`]: how a [`Client`](crate::Client) speaks HTTPS to the
//! cluster.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};

use reqwest::{Certificate, ClientBuilder, Identity};

use crate::error::Error;

/// The TLS settings of a [`Client`](crate::Client), as PEM files.
///
/// With any of them set, endpoints given as bare `host:port` are reached
/// over `https://`. With none, the client speaks plain HTTP unless an
/// endpoint says `https://`, and then trusts the built-in web roots.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// The certificate of the CA that signed the servers' certificates (a
    /// bundle may hold several). When given, the client trusts only it,
    /// not the built-in roots.
    pub ca: Option<PathBuf>,
    /// The client's certificate chain, leaf first, for servers that
    /// require client certificates. Needs [`key`](Self::key).
    pub cert: Option<PathBuf>,
    /// The unencrypted private key of [`cert`](Self::cert) (PKCS#8, PKCS#1
    /// or SEC1). Needs [`cert`](Self::cert).
    pub key: Option<PathBuf>,
}

impl TlsOptions {
    /// Whether any option is set: bare endpoints then default to HTTPS.
    pub fn is_set(&self) -> bool {
        self.ca.is_some() || self.cert.is_some() || self.key.is_some()
    }

    /// The HTTP client `builder` makes with these options.
    pub(crate) fn build(&self, builder: ClientBuilder) -> Result<reqwest::Client, Error> {
        self.apply(builder)?
            .build()
            .map_err(|e| match (&self.cert, &self.key) {
                // A key that is not the certificate's is found only here.
                (Some(cert), Some(key)) => {
                    let what = format!(
                        "HTTP client with TLS client certificate {} and key {}",
                        cert.display(),
                        key.display()
                    );
                    config(&what, &e)
                }
                _ => config("HTTP client", &e),
            })
    }

    /// `builder` with these options: the CA as the only root, and the
    /// client's identity.
    fn apply(&self, mut builder: ClientBuilder) -> Result<ClientBuilder, Error> {
        if let Some(ca) = &self.ca {
            builder = builder.tls_built_in_root_certs(false);
            for certificate in ca_certificates(ca)? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Ok(builder.identity(identity(cert, key)?)),
            (None, None) => Ok(builder),
            (Some(cert), None) => Err(Error::Config(format!(
                "TLS client certificate {} given without its private key",
                cert.display()
            ))),
            (None, Some(key)) => Err(Error::Config(format!(
                "TLS private key {} given without its client certificate",
                key.display()
            ))),
        }
    }
}

/// The certificates of the CA file.
fn ca_certificates(path: &Path) -> Result<Vec<Certificate>, Error> {
    let pem = read(path, "CA certificate")?;
    let certificates = Certificate::from_pem_bundle(&pem)
        .map_err(|e| config(&format!("TLS CA certificate {}", path.display()), &e))?;
    if certificates.is_empty() {
        return Err(Error::Config(format!(
            "TLS CA certificate {}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(certificates)
}

/// The client's identity from its certificate chain and key files.
fn identity(cert: &Path, key: &Path) -> Result<Identity, Error> {
    let cert_text = pem_text(cert, "client certificate")?;
    let key_text = pem_text(key, "private key")?;
    let (chain, certificates) = pem_blocks(&cert_text, |label| label == "CERTIFICATE");
    if certificates == 0 {
        return Err(Error::Config(format!(
            "TLS client certificate {}: no PEM certificate in it",
            cert.display()
        )));
    }
    Certificate::from_pem_bundle(chain.as_bytes())
        .map_err(|e| config(&format!("TLS client certificate {}", cert.display()), &e))?;
    // Only the key blocks: files written by openssl may also hold EC
    // parameters, which reqwest refuses.
    let (private_key, keys) = pem_blocks(&key_text, |label| {
        matches!(label, "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY")
    });
    if keys != 1 {
        return Err(Error::Config(format!(
            "TLS private key {}: {keys} unencrypted PEM private keys in it, not 1",
            key.display()
        )));
    }
    // reqwest takes the chain and the key as one PEM buffer.
    Identity::from_pem(format!("{chain}{private_key}").as_bytes()).map_err(|e| {
        let what = format!(
            "TLS client certificate {} and key {}",
            cert.display(),
            key.display()
        );
        config(&what, &e)
    })
}

/// A PEM file's bytes, or an error naming it.
fn read(path: &Path, what: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::Config(format!("TLS {what} {}: {e}", path.display())))
}

/// A PEM file's text, or an error naming it.
fn pem_text(path: &Path, what: &str) -> Result<String, Error> {
    String::from_utf8(read(path, what)?)
        .map_err(|_| Error::Config(format!("TLS {what} {}: not a PEM file", path.display())))
}

/// The PEM blocks of `text` whose label `keep` accepts, BEGIN and END
/// lines included, and how many of them are whole.
pub(crate) fn pem_blocks(text: &str, keep: impl Fn(&str) -> bool) -> (String, usize) {
    let mut kept = String::new();
    let mut count = 0;
    // The label of the block being read, and whether it is kept.
    let mut inside: Option<(&str, bool)> = None;
    for line in text.lines().map(str::trim) {
        if let Some((label, keeping)) = inside {
            if keeping {
                kept.push_str(line);
                kept.push('\n');
            }
            if line
                .strip_prefix("-----END ")
                .and_then(|l| l.strip_suffix("-----"))
                == Some(label)
            {
                count += usize::from(keeping);
                inside = None;
            }
        } else if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            let keeping = keep(label);
            if keeping {
                kept.push_str(line);
                kept.push('\n');
            }
            inside = Some((label, keeping));
        }
    }
    (kept, count)
}

/// An [`Error::Config`] for `what`, with the whole chain of `error`'s
/// causes (reqwest's own message is only "builder error").
fn config(what: &str, error: &dyn StdError) -> Error {
    let mut message = format!("{what}: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    Error::Config(message)
}
