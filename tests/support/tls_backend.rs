//! A TLS backend: rustls over a std listener, a thread per connection, and
//! the same keep-alive serving as the plain backends (requests recorded as
//! [`Seen`], responses stamped `X-Conn: <number>`). Each connection's
//! handshake is recorded too: the SNI the client sent, the ALPN protocol
//! agreed, whether it presented a certificate, or why the handshake failed.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};

use super::backend::{After, Reply, Seen};
use super::pki::Issued;
use super::wire::{decode_chunked, head_end, Framing, Head};
use super::IO_TIMEOUT;

/// How one connection's handshake went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    pub conn: usize,
    /// The SNI the client sent (`None`: none, as for an IP address).
    pub sni: Option<String>,
    pub alpn: Option<Vec<u8>>,
    /// The client presented a certificate (only asked for with `client_ca`).
    pub client_cert: bool,
    /// The client resumed an earlier session instead of a full handshake.
    pub resumed: bool,
    /// The protocol version agreed, as rustls names it (`TLSv1_3`).
    pub version: Option<String>,
    /// Why the handshake failed; `None` when it succeeded.
    pub error: Option<String>,
}

/// How the backend is set up, beyond its certificate.
#[derive(Default)]
pub struct TlsOptions {
    /// Where to listen; default 127.0.0.1:0.
    pub bind: Option<SocketAddr>,
    /// After each reply, send close_notify and close (without saying
    /// `Connection: close` in the response), as a server whose keep-alive
    /// timeout ran out would.
    pub close_after_reply: bool,
    /// Require a client certificate issued by this CA (PEM).
    pub client_ca: Option<String>,
    /// Close without close_notify, as many servers do after a body that
    /// ends with the connection.
    pub close_without_notify: bool,
    /// Speak TLS 1.2 only (no session tickets after the handshake).
    pub tls12_only: bool,
}

struct Shared {
    stop: AtomicBool,
    conns: AtomicUsize,
    /// Connections this backend has closed after a reply.
    closed: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
    handshakes: Mutex<Vec<Handshake>>,
    open: Mutex<HashMap<usize, TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

pub struct TlsBackend {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl TlsBackend {
    /// Serves `cert` on 127.0.0.1:0, answering each request with `reply`.
    pub fn serve(cert: &Issued, reply: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> TlsBackend {
        TlsBackend::with_options(cert, TlsOptions::default(), reply)
    }

    /// Answers every request 200 with its target as the body.
    pub fn echo_target(cert: &Issued) -> TlsBackend {
        TlsBackend::serve(cert, |r| Reply::ok(r.target()))
    }

    pub fn with_options(
        cert: &Issued,
        opts: TlsOptions,
        reply: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> TlsBackend {
        let config = Arc::new(server_config(cert, opts.client_ca.as_deref(), opts.tls12_only));
        let listener = TcpListener::bind(opts.bind.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap()))
            .expect("TLS backend bind");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            conns: AtomicUsize::new(0),
            closed: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
            handshakes: Mutex::new(Vec::new()),
            open: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
        });
        let reply: Arc<dyn Fn(&Seen) -> Reply + Send + Sync> = Arc::new(reply);
        let close_after_reply = opts.close_after_reply;
        let notify = !opts.close_without_notify;
        let sh = shared.clone();
        let accept = std::thread::Builder::new()
            .name(format!("tls-backend-{}", addr.port()))
            .spawn(move || {
                for stream in listener.incoming() {
                    if sh.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let id = sh.conns.fetch_add(1, Ordering::SeqCst) + 1;
                    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
                    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
                    let _ = stream.set_nodelay(true);
                    if let Ok(c) = stream.try_clone() {
                        sh.open.lock().unwrap().insert(id, c);
                    }
                    let (sh2, config, reply) = (sh.clone(), config.clone(), reply.clone());
                    let t = std::thread::spawn(move || {
                        serve_conn(id, stream, config, &sh2, &*reply, close_after_reply, notify);
                        let clone = sh2.open.lock().unwrap().remove(&id);
                        drop(clone);
                    });
                    sh.threads.lock().unwrap().push(t);
                }
            })
            .unwrap();
        TlsBackend {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.conns.load(Ordering::SeqCst)
    }

    /// Connections closed by the backend after a reply (`close_after_reply`).
    pub fn closed(&self) -> usize {
        self.shared.closed.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Every handshake so far, in the order they ended.
    pub fn handshakes(&self) -> Vec<Handshake> {
        self.shared.handshakes.lock().unwrap().clone()
    }

    /// Waits (up to the I/O timeout) until `n` handshakes have ended.
    pub fn wait_handshakes(&self, n: usize) -> Vec<Handshake> {
        super::wait_for(IO_TIMEOUT, || {
            let h = self.handshakes();
            (h.len() >= n).then_some(h)
        })
        .unwrap_or_else(|| panic!("{} handshakes ended, expected {n}", self.handshakes().len()))
    }
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for (_, s) in self.shared.open.lock().unwrap().drain() {
            let _ = s.shutdown(Shutdown::Both);
        }
        let threads: Vec<_> = self.shared.threads.lock().unwrap().drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

fn server_config(cert: &Issued, client_ca: Option<&str>, tls12_only: bool) -> ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("test certificate");
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).expect("test key");
    let versions: &[&rustls::SupportedProtocolVersion] = if tls12_only {
        &[&rustls::version::TLS12]
    } else {
        rustls::DEFAULT_VERSIONS
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                roots.add(c.unwrap()).unwrap();
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).expect("test server config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

type Tls = StreamOwned<ServerConnection, TcpStream>;

fn serve_conn(
    id: usize,
    tcp: TcpStream,
    config: Arc<ServerConfig>,
    shared: &Shared,
    reply: &dyn Fn(&Seen) -> Reply,
    close_after_reply: bool,
    notify: bool,
) {
    let mut tls = StreamOwned::new(ServerConnection::new(config).unwrap(), tcp);
    let mut error = None;
    while tls.conn.is_handshaking() {
        if let Err(e) = tls.conn.complete_io(&mut tls.sock) {
            error = Some(e.to_string());
            break;
        }
    }
    let ok = error.is_none();
    shared.handshakes.lock().unwrap().push(Handshake {
        conn: id,
        sni: tls.conn.server_name().map(str::to_string),
        alpn: tls.conn.alpn_protocol().map(<[u8]>::to_vec),
        client_cert: tls.conn.peer_certificates().is_some_and(|c| !c.is_empty()),
        resumed: tls.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
        version: tls.conn.protocol_version().map(|v| format!("{v:?}")),
        error,
    });
    if !ok {
        return;
    }
    let mut buf = Vec::new();
    while let Some(req) = read_request(id, &mut tls, &mut buf) {
        shared.seen.lock().unwrap().push(req.clone());
        let r = reply(&req);
        let bytes = r.encode(id, req.method() == "HEAD");
        if tls.write_all(&bytes).and_then(|_| tls.flush()).is_err() {
            return;
        }
        if close_after_reply || r.after == After::Close {
            if notify {
                tls.conn.send_close_notify();
                let _ = tls.conn.complete_io(&mut tls.sock);
            }
            let _ = tls.sock.shutdown(Shutdown::Write);
            shared.closed.fetch_add(1, Ordering::SeqCst);
            // Until the peer closes too, so the close cannot become a reset.
            let mut sink = [0u8; 4096];
            while matches!(tls.sock.read(&mut sink), Ok(n) if n > 0) {}
            return;
        }
    }
}

/// Reads one request (head and body); `None` when the peer closed or stalled.
fn read_request(id: usize, tls: &mut Tls, buf: &mut Vec<u8>) -> Option<Seen> {
    let end = loop {
        if let Some(end) = head_end(buf) {
            break end;
        }
        fill(tls, buf)?;
    };
    let raw: Vec<u8> = buf.drain(..end).collect();
    let head = Head::parse(&raw).expect("TLS backend received a malformed head");
    let framing = head
        .request_framing()
        .expect("TLS backend received ambiguous framing");
    let (body, body_raw) = match framing {
        Framing::None | Framing::Close => (Vec::new(), Vec::new()),
        Framing::Length(n) => {
            while buf.len() < n as usize {
                fill(tls, buf)?;
            }
            let body: Vec<u8> = buf.drain(..n as usize).collect();
            (body.clone(), body)
        }
        Framing::Chunked => loop {
            match decode_chunked(buf) {
                Ok(Some((data, used))) => break (data, buf.drain(..used).collect()),
                Ok(None) => fill(tls, buf)?,
                Err(e) => panic!("TLS backend received invalid chunked coding: {e}"),
            }
        },
    };
    Some(Seen {
        conn: id,
        head,
        body,
        body_raw,
        framing,
    })
}

fn fill(tls: &mut Tls, buf: &mut Vec<u8>) -> Option<()> {
    let mut tmp = [0u8; 16 * 1024];
    match tls.read(&mut tmp) {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&tmp[..n]);
            Some(())
        }
    }
}
