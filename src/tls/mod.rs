//! TLS on both sides of the proxy: termination of client connections
//! (`server`) and TLS toward upstream servers (`client`), both on rustls with
//! its ring provider.
//!
//! This module reads certificates and keys from PEM files. That happens when
//! the config is loaded or reloaded, on the main thread, never on a worker
//! while it serves requests. Every error names the file it is about, so
//! `--check` can report it as is.

pub mod client;
pub mod server;
pub mod tickets;

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;

/// The cryptography behind every rustls config ringway builds.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of a PEM file, in order (a leaf, then its chain).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no certificate found (expected PEM \"BEGIN CERTIFICATE\" blocks)",
            path.display()
        ));
    }
    Ok(certs)
}

/// The first private key of a PEM file: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pem::Error::NoItemsFound => format!(
            "{}: no private key found (expected PEM \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\")",
            path.display()
        ),
        e => pem_error(path, e),
    })
}

/// A set of trusted roots from a PEM file of CA certificates.
pub fn read_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots
            .add(cert)
            .map_err(|e| format!("{}: not a usable CA certificate: {e}", path.display()))?;
    }
    Ok(roots)
}

/// The largest PEM file read (a system CA bundle is about 200 KiB).
const MAX_PEM_FILE: u64 = 16 << 20;

/// Refuses what is not a regular file of a sane size (`/dev/zero`, a
/// directory, a FIFO), which would otherwise make loading hang or fail
/// obscurely. A path that cannot be examined is left for the reader's error.
pub fn check_pem_file(path: &Path) -> Result<(), String> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    if !meta.is_file() {
        return Err(format!("{}: not a regular file", path.display()));
    }
    if meta.len() > MAX_PEM_FILE {
        return Err(format!(
            "{}: {} bytes is too large for a PEM file (at most {MAX_PEM_FILE})",
            path.display(),
            meta.len()
        ));
    }
    Ok(())
}

fn pem_error(path: &Path, e: pem::Error) -> String {
    match e {
        pem::Error::Io(e) => format!("cannot read {}: {e}", path.display()),
        e => format!("{}: not valid PEM: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, text: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("ringway-tls-unit-{}-{name}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn reads_a_certificate_a_key_and_roots() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert_file = temp("cert.pem", &cert.pem());
        let key_file = temp("key.pem", &key.serialize_pem());
        assert_eq!(read_certs(&cert_file).unwrap().len(), 1);
        assert!(matches!(read_key(&key_file).unwrap(), PrivateKeyDer::Pkcs8(_)));
        assert_eq!(read_roots(&cert_file).unwrap().len(), 1);
        for f in [cert_file, key_file] {
            let _ = std::fs::remove_file(f);
        }
    }

    #[test]
    fn errors_name_the_file_and_say_what_is_wrong() {
        let missing = Path::new("/nonexistent/ringway/cert.pem");
        let e = read_certs(missing).unwrap_err();
        assert!(e.starts_with("cannot read /nonexistent/ringway/cert.pem:"), "{e}");

        let key = rcgen::KeyPair::generate().unwrap();
        let key_only = temp("key-only.pem", &key.serialize_pem());
        let e = read_certs(&key_only).unwrap_err();
        assert!(e.contains("key-only.pem: no certificate found"), "{e}");

        let cert = rcgen::CertificateParams::new(vec!["a.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert_only = temp("cert-only.pem", &cert.pem());
        let e = read_key(&cert_only).unwrap_err();
        assert!(e.contains("cert-only.pem: no private key found"), "{e}");

        let garbage = temp(
            "garbage.pem",
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        );
        let e = read_certs(&garbage).unwrap_err();
        assert!(e.contains("garbage.pem: not valid PEM"), "{e}");
        for f in [key_only, cert_only, garbage] {
            let _ = std::fs::remove_file(f);
        }
    }
}
