//! TLS toward upstream servers: the rustls client config made when the
//! config is loaded (trusted roots or no verification, ALPN, a client
//! certificate), each worker's copy of it, and the handshake that turns a
//! connected TCP stream into a TLS one.
//!
//! In the lifecycle this is part of connect_upstream: `upstream::connect`
//! runs the handshake right after the TCP connect, under the same
//! `connect_timeout`, and a failed handshake is a failed connect (502, counts
//! against the server, the next server may be tried). What the certificate
//! is checked against (the roots, the name) is all decided at load; nothing
//! here reads a file.

use std::io;
use std::sync::Arc;

use monoio::net::TcpStream;
use monoio_rustls::{ClientTlsStream, TlsConnector};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::UpstreamTls;

/// Sessions one worker remembers per upstream, to resume instead of doing a
/// full handshake when a pooled connection is gone.
const SESSION_CACHE: usize = 256;

/// What to offer in ALPN: ringway speaks HTTP/1.1 to upstreams, and says so,
/// so a server that would pick h2 for a client without ALPN does not.
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// The client config of one upstream. `roots: None` turns verification off
/// (`tls_verify = false`): any certificate is accepted, though the handshake
/// signatures are still checked, so the server must hold the key of the
/// certificate it sends.
pub fn client_config(
    roots: Option<Arc<RootCertStore>>,
    client_cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<ClientConfig, String> {
    let provider = super::provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match roots {
        Some(roots) => builder.with_root_certificates(roots),
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider))),
    };
    let mut config = match client_cert {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("unusable client certificate or key: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(config)
}

/// The system's trusted roots (rustls-native-certs). Read once per config
/// load, on the main thread, and only when some upstream needs them.
pub fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _unparsable) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        return Err(format!(
            "no system CA certificates found{why}; install the system's CA bundle or set a CA file"
        ));
    }
    Ok(roots)
}

/// The name a server is verified against when none is configured: its host
/// as written (`api.internal:443` → `api.internal`, `[::1]:8443` → `::1`).
/// An IP address stays an address: rustls sends no SNI for it and checks
/// that the certificate names that address.
pub fn default_server_name(authority: &str) -> Result<ServerName<'static>, String> {
    parse_server_name(host_of(authority))
}

/// A configured server name (`tls_server_name`): a DNS name or an IP address.
pub fn parse_server_name(name: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(name)
        .map(|n| n.to_owned())
        .map_err(|_| format!("{name:?} is not a DNS name or IP address usable as a TLS server name"))
}

/// The host of `host:port`, `[v6]:port`, or a bare host.
fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// One worker's TLS side of one upstream.
pub struct Connector {
    tls: TlsConnector,
    /// The same config, for sessions driven by HTTP/2's own I/O.
    config: Arc<ClientConfig>,
    /// By server index.
    names: Vec<ServerName<'static>>,
    /// `tls_server_name = "$host"`.
    name_from_host: bool,
}

impl Connector {
    /// The config made at load, with a session cache of this worker's own:
    /// every worker builds its own `ClientConfig` copy, so resumption state is
    /// per worker (a session learnt on one core is not resumed on another) and
    /// the cache's internal lock is never contended.
    pub fn new(tls: &UpstreamTls) -> Connector {
        let mut config = (*tls.client).clone();
        config.resumption = Resumption::in_memory_sessions(SESSION_CACHE);
        let config = Arc::new(config);
        Connector {
            tls: TlsConnector::from(config.clone()),
            config,
            names: tls.names.clone(),
            name_from_host: tls.name_from_host,
        }
    }

    /// With `tls_server_name = "$host"`: the name for a request to `host`
    /// (Host, or the authority of an absolute-form target), without its port
    /// and in lower case. `None` when the upstream's names are fixed, or the
    /// request has no host usable as a name; the server's own name is used then.
    pub fn name_for_request(&self, host: Option<&[u8]>) -> Option<ServerName<'static>> {
        if !self.name_from_host {
            return None;
        }
        let host = std::str::from_utf8(host?).ok()?;
        ServerName::try_from(host_of(host).to_ascii_lowercase()).ok()
    }

    /// A client session for server `peer` (as `name`, or its own), whose
    /// handshake the first reads and writes of `h2io::Io` carry out.
    pub fn session(
        &self,
        peer: usize,
        name: Option<ServerName<'static>>,
    ) -> io::Result<rustls::ClientConnection> {
        let name = name.unwrap_or_else(|| self.names[peer].clone());
        rustls::ClientConnection::new(self.config.clone(), name).map_err(io::Error::other)
    }

    /// The handshake with server `peer` over a connected stream, as `name`
    /// (from [`Self::name_for_request`]) or the server's own name. The
    /// error says why, naming the name: an unknown issuer, a name mismatch,
    /// an expired certificate, an alert from the server.
    pub async fn handshake(
        &self,
        peer: usize,
        name: Option<ServerName<'static>>,
        tcp: TcpStream,
    ) -> io::Result<ClientTlsStream<TcpStream>> {
        let name = name.unwrap_or_else(|| self.names[peer].clone());
        let shown = name.to_str().into_owned();
        match self.tls.connect(name, tcp).await {
            Ok(stream) => Ok(stream),
            Err(e) => {
                let e = io::Error::from(e);
                Err(io::Error::new(e.kind(), format!("server name {shown:?}: {e}")))
            }
        }
    }
}

/// `tls_verify = false`: for internal backends with self-signed certificates.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_come_from_the_host_as_written() {
        let name = |a: &str| default_server_name(a).map(|n| n.to_str().into_owned());
        assert_eq!(name("api.internal:443").unwrap(), "api.internal");
        assert_eq!(name("example.com").unwrap(), "example.com");
        assert_eq!(name("127.0.0.1:8443").unwrap(), "127.0.0.1");
        assert_eq!(name("[::1]:8443").unwrap(), "::1");
        assert!(matches!(
            default_server_name("10.0.0.1:443").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            default_server_name("api.internal:443").unwrap(),
            ServerName::DnsName(_)
        ));
        let e = default_server_name("bad name:443").unwrap_err();
        assert!(e.contains("\"bad name\" is not a DNS name"), "{e}");
    }

    #[test]
    fn request_names_for_host_upstreams() {
        let tls = |from_host| UpstreamTls {
            spec: Default::default(),
            names: vec![default_server_name("10.0.0.1:443").unwrap()],
            name_from_host: from_host,
            client: Arc::new(client_config(None, None).unwrap()),
        };
        let c = Connector::new(&tls(true));
        let name = |h: &str| {
            c.name_for_request(Some(h.as_bytes()))
                .map(|n| n.to_str().into_owned())
        };
        assert_eq!(name("Shop.Example:8443").as_deref(), Some("shop.example"));
        assert_eq!(name("shop.example").as_deref(), Some("shop.example"));
        assert_eq!(name("[::1]:8080").as_deref(), Some("::1"));
        assert_eq!(name("bad host"), None);
        assert!(c.name_for_request(None).is_none());
        // Fixed names: the request's host plays no part.
        assert!(Connector::new(&tls(false))
            .name_for_request(Some(b"shop.example"))
            .is_none());
    }

    #[test]
    fn configs_offer_http11_with_and_without_verification() {
        let mut roots = RootCertStore::empty();
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertificateParams::new(vec!["ca.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        roots.add(ca.der().clone()).unwrap();
        let verified = client_config(Some(Arc::new(roots)), None).unwrap();
        assert_eq!(verified.alpn_protocols, vec![b"http/1.1".to_vec()]);
        let unverified = client_config(None, None).unwrap();
        assert_eq!(unverified.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }
}
