//! Test certificates, made fresh for each test with rcgen: a CA that issues
//! server and client certificates, and self-signed ones. No key material is
//! kept in the repository.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

/// A certificate and its key, as PEM text.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: Vec<u8>,
}

impl Issued {
    /// Writes `<stem>.crt` and `<stem>.key` into `dir`; returns both paths.
    pub fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        std::fs::create_dir_all(dir).expect("create cert dir");
        let cert = dir.join(format!("{stem}.crt"));
        let key = dir.join(format!("{stem}.key"));
        std::fs::write(&cert, &self.cert_pem).expect("write cert");
        std::fs::write(&key, &self.key_pem).expect("write key");
        (cert, key)
    }
}

/// A certificate authority for one test.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
    pub pem: String,
}

impl Ca {
    pub fn new(common_name: &str) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("CA cert");
        let pem = cert.pem();
        Ca { cert, key, pem }
    }

    /// A leaf certificate for `names` (DNS names or IP addresses), with the
    /// first name as its common name.
    pub fn issue(&self, names: &[&str]) -> Issued {
        self.issue_with(names, |_| {})
    }

    /// Like `issue`, with the parameters adjusted first (validity dates,
    /// extended key usage, ...).
    pub fn issue_with(&self, names: &[&str], adjust: impl FnOnce(&mut CertificateParams)) -> Issued {
        let key = KeyPair::generate().expect("leaf key");
        let mut params = leaf_params(names);
        adjust(&mut params);
        let cert = params.signed_by(&key, &self.cert, &self.key).expect("sign leaf");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
        }
    }

    /// Writes the CA certificate as `<stem>.crt` into `dir`.
    pub fn write(&self, dir: &Path, stem: &str) -> PathBuf {
        std::fs::create_dir_all(dir).expect("create cert dir");
        let path = dir.join(format!("{stem}.crt"));
        std::fs::write(&path, &self.pem).expect("write CA cert");
        path
    }
}

/// A self-signed certificate for `names`.
pub fn self_signed(names: &[&str]) -> Issued {
    let key = KeyPair::generate().expect("key");
    let cert = leaf_params(names).self_signed(&key).expect("self-signed cert");
    Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_der: cert.der().to_vec(),
    }
}

fn leaf_params(names: &[&str]) -> CertificateParams {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("leaf params");
    if let Some(first) = names.first() {
        params.distinguished_name.push(DnType::CommonName, *first);
    }
    params
}
