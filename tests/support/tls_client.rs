//! A TLS client for tests: rustls over a blocking `std::net` socket with
//! deadlines. It accepts any server certificate (the tests compare what was
//! presented with what they expect, byte for byte), can send SNI or none,
//! present a client certificate, and limit protocol versions. Sharing one
//! `ClientConfig` between connections shares its session cache, so a second
//! connection can resume the first one's session.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, HandshakeKind, SignatureScheme};

use super::wire::{decode_chunked, head_end, Framing, Head};
use super::{Response, IO_TIMEOUT};

/// Options for a client config.
#[derive(Default)]
pub struct Opts {
    /// A client certificate and key, as PEM.
    pub client_cert: Option<(String, String)>,
    /// Only TLS 1.2 (else 1.2 and 1.3).
    pub tls12_only: bool,
    /// Only TLS 1.3.
    pub tls13_only: bool,
}

/// A config to connect with; share it to share the session cache.
pub fn config(opts: Opts) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&'static rustls::SupportedProtocolVersion] = if opts.tls12_only {
        &[&rustls::version::TLS12]
    } else if opts.tls13_only {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS12, &rustls::version::TLS13]
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .expect("client protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)));
    let mut cfg = match opts.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<_, _>>()
                .expect("client cert PEM");
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("client key PEM");
            builder.with_client_auth_cert(certs, key).expect("client cert")
        }
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

/// A config with default options.
pub fn default_config() -> Arc<ClientConfig> {
    config(Opts::default())
}

/// Accepts whatever certificate the server shows; signatures are still checked.
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// An open TLS connection whose handshake has finished.
pub struct TlsConn {
    pub conn: ClientConnection,
    pub sock: TcpStream,
    buf: Vec<u8>,
}

/// Connects and completes the handshake; `sni: None` sends no SNI.
/// `Err` carries the reason the handshake failed (an alert, a close).
pub fn connect(addr: SocketAddr, cfg: &Arc<ClientConfig>, sni: Option<&str>) -> Result<TlsConn, String> {
    let (cfg, name) = match sni {
        Some(n) => (
            cfg.clone(),
            ServerName::try_from(n.to_string()).expect("server name"),
        ),
        None => {
            let mut c = (**cfg).clone();
            c.enable_sni = false;
            (Arc::new(c), ServerName::try_from("no-sni.invalid").unwrap())
        }
    };
    let mut conn = ClientConnection::new(cfg, name).map_err(|e| e.to_string())?;
    let mut sock = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect to proxy");
    sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    sock.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    while conn.is_handshaking() {
        match conn.complete_io(&mut sock) {
            Ok((0, 0)) if conn.is_handshaking() => {
                return Err("connection closed during the handshake".into())
            }
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    // TLS 1.3: the server's acceptance of a client certificate shows only
    // when it answers; a refusal arrives as an alert after this point.
    Ok(TlsConn {
        conn,
        sock,
        buf: Vec::new(),
    })
}

impl TlsConn {
    /// The leaf certificate the server presented, DER.
    pub fn peer_cert(&self) -> Vec<u8> {
        self.conn.peer_certificates().expect("server certificate")[0].to_vec()
    }

    pub fn alpn(&self) -> Option<Vec<u8>> {
        self.conn.alpn_protocol().map(<[u8]>::to_vec)
    }

    pub fn resumed(&self) -> bool {
        self.conn.handshake_kind() == Some(HandshakeKind::Resumed)
    }

    pub fn version(&self) -> Option<rustls::ProtocolVersion> {
        self.conn.protocol_version()
    }

    pub fn send(&mut self, data: impl AsRef<[u8]>) {
        let mut s = rustls::Stream::new(&mut self.conn, &mut self.sock);
        s.write_all(data.as_ref()).expect("TLS write");
        s.flush().expect("TLS flush");
    }

    /// Reads to the end of the stream, discarding what comes: true when it
    /// ended with close_notify, false when the socket closed without one.
    pub fn ends_with_close_notify(&mut self) -> Result<bool, String> {
        let mut tmp = [0u8; 4096];
        let mut s = rustls::Stream::new(&mut self.conn, &mut self.sock);
        loop {
            match s.read(&mut tmp) {
                Ok(0) => return Ok(true),
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(false),
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// One read of decrypted bytes; `Ok(0)` at the end of the stream.
    fn fill(&mut self) -> Result<usize, String> {
        let mut tmp = [0u8; 16 * 1024];
        let mut s = rustls::Stream::new(&mut self.conn, &mut self.sock);
        loop {
            match s.read(&mut tmp) {
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Reads one response (Content-Length, chunked or until close).
    pub fn try_response(&mut self) -> Result<Response, String> {
        let end = loop {
            if let Some(end) = head_end(&self.buf) {
                break end;
            }
            if self.fill()? == 0 {
                return Err(format!(
                    "closed before a response head: {:?}",
                    String::from_utf8_lossy(&self.buf)
                ));
            }
        };
        let raw: Vec<u8> = self.buf.drain(..end).collect();
        let head = Head::parse(&raw)?;
        let status: u16 = head.line[1]
            .parse()
            .map_err(|_| format!("bad status {:?}", head.line))?;
        let framing = head.response_framing(status, false)?;
        let body = match framing {
            Framing::None => Vec::new(),
            Framing::Length(n) => {
                while self.buf.len() < n as usize {
                    if self.fill()? == 0 {
                        return Err("body cut short".into());
                    }
                }
                self.buf.drain(..n as usize).collect()
            }
            Framing::Chunked => loop {
                if let Some((data, used)) = decode_chunked(&self.buf)? {
                    self.buf.drain(..used);
                    break data;
                }
                if self.fill()? == 0 {
                    return Err("chunked body cut short".into());
                }
            },
            Framing::Close => {
                while self.fill()? > 0 {}
                std::mem::take(&mut self.buf)
            }
        };
        Ok(Response {
            status,
            head,
            body: body.clone(),
            body_raw: body,
            framing,
        })
    }

    pub fn request(&mut self, raw: impl AsRef<[u8]>) -> Response {
        self.send(raw);
        self.try_response()
            .unwrap_or_else(|e| panic!("no response over TLS: {e}"))
    }

    /// `GET path` with `Host: host`.
    pub fn get(&mut self, host: &str, path: &str) -> Response {
        self.request(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"))
    }
}
