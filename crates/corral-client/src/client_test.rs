use std::path::PathBuf;
use std::sync::atomic::AtomicU32;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

use super::*;
use crate::tls::pem_blocks;
use corral_api::ErrorDetail;

#[test]
fn backoff_stays_under_its_ceiling() {
    let policy = RetryPolicy::default();
    for attempt in 1..30 {
        assert!(policy.backoff(attempt) <= policy.cap);
    }
    assert!(policy.backoff(1) <= policy.base);
}

#[test]
fn endpoints_are_normalized_and_required() {
    let client = Client::new(["127.0.0.1:7101", "http://h:2/"]).unwrap();
    assert_eq!(client.endpoints(), ["http://127.0.0.1:7101", "http://h:2"]);
    assert!(Client::new(Vec::<String>::new()).is_err());
    assert!(Client::new([" "]).is_err());
    assert!(Client::new(["http://", "https:///"]).is_err());
}

#[test]
fn bare_endpoints_take_https_when_tls_is_set() {
    let endpoints = ["h:1", "http://h:2", "https://h:3/"];
    let plain =
        Client::with_tls(endpoints, RetryPolicy::default(), &TlsOptions::default()).unwrap();
    assert_eq!(
        plain.endpoints(),
        ["http://h:1", "http://h:2", "https://h:3"]
    );
    let files = TestPki::new("scheme");
    let tls = TlsOptions {
        ca: Some(files.ca.clone()),
        ..TlsOptions::default()
    };
    let secure = Client::with_tls(endpoints, RetryPolicy::default(), &tls).unwrap();
    assert_eq!(
        secure.endpoints(),
        ["https://h:1", "http://h:2", "https://h:3"]
    );
}

#[test]
fn tls_accepts_a_ca_and_a_client_certificate() {
    let files = TestPki::new("accept");
    let tls = TlsOptions {
        ca: Some(files.ca.clone()),
        cert: Some(files.cert.clone()),
        key: Some(files.key.clone()),
    };
    Client::with_tls(["h:1"], RetryPolicy::default(), &tls).unwrap();
    // The client certificate alone, with the built-in roots.
    let tls = TlsOptions { ca: None, ..tls };
    Client::with_tls(["h:1"], RetryPolicy::default(), &tls).unwrap();
}

#[test]
fn a_certificate_needs_its_key_and_a_key_its_certificate() {
    let files = TestPki::new("pair");
    let cert_only = TlsOptions {
        cert: Some(files.cert.clone()),
        ..TlsOptions::default()
    };
    let key_only = TlsOptions {
        key: Some(files.key.clone()),
        ..TlsOptions::default()
    };
    for (tls, missing) in [
        (cert_only, "without its private key"),
        (key_only, "without its client certificate"),
    ] {
        match Client::with_tls(["h:1"], RetryPolicy::default(), &tls) {
            Err(Error::Config(message)) => assert!(message.contains(missing), "{message}"),
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }
}

#[test]
fn unreadable_or_unparsable_files_are_named() {
    let files = TestPki::new("bad");
    let missing = files.dir.join("missing.pem");
    let garbage = files.write("garbage.pem", "not a certificate\n");
    let cases = [
        (
            TlsOptions {
                ca: Some(missing.clone()),
                ..TlsOptions::default()
            },
            &missing,
        ),
        (
            TlsOptions {
                ca: Some(garbage.clone()),
                ..TlsOptions::default()
            },
            &garbage,
        ),
        (
            TlsOptions {
                cert: Some(missing.clone()),
                key: Some(files.key.clone()),
                ..TlsOptions::default()
            },
            &missing,
        ),
        (
            TlsOptions {
                cert: Some(files.cert.clone()),
                key: Some(garbage.clone()),
                ..TlsOptions::default()
            },
            &garbage,
        ),
        // A certificate where the key should be.
        (
            TlsOptions {
                cert: Some(files.cert.clone()),
                key: Some(files.ca.clone()),
                ..TlsOptions::default()
            },
            &files.ca,
        ),
    ];
    for (tls, named) in cases {
        match Client::with_tls(["h:1"], RetryPolicy::default(), &tls) {
            Err(Error::Config(message)) => {
                assert!(message.contains(&named.display().to_string()), "{message}")
            }
            other => panic!("expected a configuration error for {tls:?}, got {other:?}"),
        }
    }
}

#[test]
fn pem_blocks_keeps_only_the_labels_asked_for() {
    let text = "junk\n-----BEGIN EC PARAMETERS-----\nAAA\n-----END EC PARAMETERS-----\n\
                -----BEGIN EC PRIVATE KEY-----\nBBB\n-----END EC PRIVATE KEY-----\n";
    let (kept, count) = pem_blocks(text, |label| label == "EC PRIVATE KEY");
    assert_eq!(count, 1);
    assert_eq!(
        kept,
        "-----BEGIN EC PRIVATE KEY-----\nBBB\n-----END EC PRIVATE KEY-----\n"
    );
}

#[test]
fn query_values_are_encoded() {
    assert_eq!(encode("a/b c&d"), "a/b%20c%26d");
    assert_eq!(encode("é"), "%C3%A9");
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let files = TestPki::new("mismatch");
    let other = TestPki::new("mismatch-other");
    let tls = TlsOptions {
        ca: None,
        cert: Some(files.cert.clone()),
        key: Some(other.key.clone()),
    };
    match Client::with_tls(["h:1"], RetryPolicy::default(), &tls) {
        Err(Error::Config(message)) => {
            assert!(
                message.contains(&other.key.display().to_string()),
                "{message}"
            )
        }
        answer => panic!("expected a configuration error, got {answer:?}"),
    }
}

/// A CA and a client certificate it signed, as PEM files in a directory
/// of their own, removed on drop.
struct TestPki {
    dir: PathBuf,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl TestPki {
    fn new(name: &str) -> TestPki {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "corral-client-tls-{}-{name}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let client_key = KeyPair::generate().unwrap();
        let client = CertificateParams::new(vec!["client".to_string()])
            .unwrap()
            .signed_by(&client_key, &ca, &ca_key)
            .unwrap();
        let mut pki = TestPki {
            ca: PathBuf::new(),
            cert: PathBuf::new(),
            key: PathBuf::new(),
            dir,
        };
        pki.ca = pki.write("ca.pem", &ca.pem());
        pki.cert = pki.write("client.pem", &client.pem());
        pki.key = pki.write("client-key.pem", &client_key.serialize_pem());
        pki
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_token_is_sent_as_a_sensitive_bearer_header() {
    let plain = Client::new(["h:1"]).unwrap();
    assert!(!plain.has_token());
    let with = plain.clone().with_token("corral_s3cret").unwrap();
    assert!(with.has_token() && !plain.has_token());
    let call = Call::new(Method::GET, "/v1/cluster", None::<&()>);
    let request = with
        .request(&call, "http://h:1", Duration::from_secs(1), None)
        .build()
        .unwrap();
    let header = request.headers().get(AUTHORIZATION).unwrap();
    assert_eq!(header.to_str().unwrap(), "Bearer corral_s3cret");
    assert!(header.is_sensitive());
    let request = plain
        .request(&call, "http://h:1", Duration::from_secs(1), None)
        .build()
        .unwrap();
    assert!(request.headers().get(AUTHORIZATION).is_none());
}

#[test]
fn a_token_is_never_printed() {
    let client = Client::new(["h:1"])
        .unwrap()
        .with_token("corral_s3cret")
        .unwrap();
    let debug = format!("{client:?}");
    assert!(!debug.contains("s3cret"), "{debug}");
    for bad in ["", "  ", "corral_s3cret\n", "corral_s3cret\u{7f}"] {
        match Client::new(["h:1"]).unwrap().with_token(bad) {
            Err(Error::Config(message)) => assert!(!message.contains("s3cret"), "{message}"),
            other => panic!("expected a configuration error for {bad:?}, got {other:?}"),
        }
    }
}

#[test]
fn auth_refusals_have_variants_of_their_own() {
    let detail = |kind| ErrorDetail {
        message: "why".into(),
        kind,
    };
    let unauthenticated = Error::from(detail(ErrorKind::Unauthenticated));
    assert!(matches!(&unauthenticated, Error::Unauthenticated(m) if m == "why"));
    assert_eq!(unauthenticated.to_string(), "unauthenticated: why");
    let denied = Error::from(detail(ErrorKind::PermissionDenied));
    assert!(matches!(&denied, Error::PermissionDenied(m) if m == "why"));
    assert!(!unauthenticated.is_transient() && !denied.is_transient());
}
