//! TLS termination of client connections: certificates chosen by SNI,
//! handshakes under a deadline, session resumption that works across workers.
//!
//! Where it sits: `proxy::serve_connection` calls [`accept`] on a connection
//! from a TLS listener, inside the worker's deadline table, and then serves
//! requests over the resulting [`TlsStream`] exactly as over plain TCP.
//!
//! The handshake reads the ClientHello first (rustls's `Acceptor`), picks the
//! server block by SNI with the same rules as `Host` (exact name, longest
//! `*.suffix`, the listen address's default server), and only then builds the
//! connection from that block's `ServerConfig`. So every block keeps its own
//! certificate, client-certificate policy, protocols and ciphers.
//!
//! Each worker builds its own `ServerConfig`s ([`WorkerTls`]) from the
//! certificates loaded on the main thread ([`Material`], immutable and shared
//! by `Arc`), so no lock is shared between workers on the handshake path.
//! Session tickets are sealed with keys that every worker derives from one
//! process-wide secret and the current rotation period ([`Tickets`]), so a
//! ticket issued by one worker is accepted by any other: `SO_REUSEPORT` may
//! send a returning client anywhere.
//!
//! [`TlsStream`] drives rustls over a monoio `TcpStream` directly rather than
//! through `monoio-rustls`: the proxy needs the session after the handshake
//! (version, cipher, client certificate), the ClientHello before choosing a
//! config, and to know whether decrypted or undecrypted bytes are already
//! buffered before it sleeps on the socket, none of which that crate exposes.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut, RawBuf};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use monoio::BufResult;
use rustls::pki_types::PrivateKeyDer;
use rustls::server::{
    Acceptor, ClientHello, ResolvesServerCert, ServerSessionMemoryCache, WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;
use rustls::{ProtocolVersion, RootCertStore, ServerConfig, ServerConnection};

use super::tickets::{secret, ticket_scope, Tickets};
use crate::config::{Config, Tls, TlsVersion, VerifyClient};
use crate::route::{listen_addrs, Router};

/// Bytes read from the socket at once: one full TLS record and its header.
const READ_SIZE: usize = 17 * 1024;
/// Encrypted bytes gathered before one write to the socket.
const WRITE_BATCH: usize = 64 * 1024;
/// TLS 1.2 sessions remembered per server block and worker (session IDs).
pub const SESSION_CACHE: usize = 1024;
pub use super::tickets::TICKET_PERIOD_SECS;

/// A certificate and key ready to serve, with the CA that client
/// certificates must chain to. Read on the main thread at load or reload.
///
/// Each worker makes its own `CertifiedKey` from the DER kept here, so no
/// reference count is shared between workers on the handshake path.
#[derive(Debug)]
pub struct Material {
    /// The checked chain and key, leaf first.
    pub key: Arc<CertifiedKey>,
    /// The same key as read, to load a worker's own copy from.
    key_der: PrivateKeyDer<'static>,
    pub client_roots: Option<Arc<RootCertStore>>,
}

/// Which file of a `tls` table an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFile {
    Cert,
    Key,
    ClientCa,
}

/// Reads and checks a block's certificate chain, key and client CA. Each
/// error names the file: unreadable, not PEM, not a certificate, expired or
/// not yet valid, a key that is unusable or does not match the certificate.
pub fn load_material(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Material, (TlsFile, String)> {
    let certs = super::read_certs(cert).map_err(|e| (TlsFile::Cert, e))?;
    check_leaf(cert, &certs[0]).map_err(|e| (TlsFile::Cert, e))?;
    let key_der = super::read_key(key).map_err(|e| (TlsFile::Key, e))?;
    let certified = CertifiedKey::from_der(certs, key_der.clone_key(), &super::provider()).map_err(|e| {
        let msg = match e {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => format!(
                "{}: private key does not match the certificate in {}",
                key.display(),
                cert.display()
            ),
            e => format!("{}: unusable private key: {e}", key.display()),
        };
        (TlsFile::Key, msg)
    })?;
    let client_roots = match client_ca {
        None => None,
        Some(p) => Some(Arc::new(
            super::read_roots(p).map_err(|e| (TlsFile::ClientCa, e))?,
        )),
    };
    Ok(Material {
        key: Arc::new(certified),
        key_der,
        client_roots,
    })
}

/// The leaf must parse as X.509 and be valid now.
fn check_leaf(path: &Path, der: &[u8]) -> Result<(), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("{}: certificate does not parse: {e}", path.display()))?;
    let now = unix_now() as i64;
    let v = cert.validity();
    if v.not_after.timestamp() < now {
        return Err(format!(
            "{}: certificate expired on {}",
            path.display(),
            v.not_after
        ));
    }
    if v.not_before.timestamp() > now {
        return Err(format!(
            "{}: certificate is not valid before {}",
            path.display(),
            v.not_before
        ));
    }
    Ok(())
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A server block's TLS as the handshake sees it.
#[derive(Clone)]
enum Block {
    Serve(Arc<ServerConfig>),
    /// `reject_handshake = true`: refuse with an `unrecognized_name` alert.
    Reject,
}

/// A server block's identity across reloads: its names and listen
/// addresses, hashed. Session tickets are bound to it (with the
/// certificate), so a reload that moves blocks around still resumes the
/// sessions of a block that stayed, and never those of another.
pub fn block_key(s: &crate::config::Server) -> u64 {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: the same in every worker and every reload.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.server_names.hash(&mut h);
    s.listen.hash(&mut h);
    h.finish()
}

/// The rustls config of a block. `h2`: offer HTTP/2 in ALPN, before
/// HTTP/1.1 (RFC 9113 §3.2).
pub fn server_config(tls: &Tls, material: &Material, block: u64, h2: bool) -> Result<ServerConfig, String> {
    let mut provider = (*super::provider()).clone();
    if let Some(names) = &tls.ciphers {
        provider
            .cipher_suites
            .retain(|s| s.suite().as_str().is_some_and(|n| names.iter().any(|w| w == n)));
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = tls
        .protocols
        .iter()
        .map(|v| match v {
            TlsVersion::V1_2 => &rustls::version::TLS12,
            TlsVersion::V1_3 => &rustls::version::TLS13,
        })
        .collect();
    let provider = Arc::new(provider);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("no usable cipher suite for the chosen protocols ({e})"))?;
    let builder = match (&material.client_roots, tls.verify_client) {
        (Some(roots), VerifyClient::On | VerifyClient::Optional) => {
            // A copy per worker, like the certificate.
            let roots = Arc::new(RootCertStore::clone(roots));
            let v = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            let v = if tls.verify_client == VerifyClient::Optional {
                v.allow_unauthenticated()
            } else {
                v
            };
            builder.with_client_cert_verifier(v.build().map_err(|e| format!("client_ca: {e}"))?)
        }
        _ => builder.with_no_client_auth(),
    };
    // This worker's own copy: the key was checked when it was loaded.
    let own = CertifiedKey::from_der(material.key.cert.clone(), material.key_der.clone_key(), &provider)
        .map_err(|e| format!("certificate: {e}"))?;
    let mut cfg = builder.with_cert_resolver(Arc::new(Fixed(Arc::new(own))));
    cfg.alpn_protocols = if h2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    // The server's order (strongest first) rather than the client's, as
    // nginx's ssl_prefer_server_ciphers on; scanners flag a server without one.
    cfg.ignore_client_order = true;
    cfg.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
    cfg.ticketer = Arc::new(Tickets::new(*secret(), ticket_scope(block, &material.key)));
    // The session cache and tickets are per block and certificate: a
    // session made for one block never resumes on another, and none made
    // under a certificate outlives its replacement by a reload.
    Ok(cfg)
}

/// Always the block's own certificate: the block was already chosen by SNI.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// One worker's TLS state: which listeners terminate TLS, and each server
/// block's config. Replaced block by block when certificates are reloaded;
/// connections already open keep the config they were made with.
pub struct WorkerTls {
    listeners: Vec<bool>,
    blocks: RefCell<Vec<Option<Block>>>,
    /// Each block's `block_key`.
    pub keys: Vec<u64>,
}

impl WorkerTls {
    pub fn new(cfg: &Config) -> WorkerTls {
        let listeners = listen_addrs(cfg)
            .into_iter()
            .map(|a| {
                cfg.servers
                    .iter()
                    .any(|s| s.tls.is_some() && s.listen.contains(&a))
            })
            .collect();
        let blocks = cfg
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let tls = s.tls.as_ref()?;
                build_block(tls, tls.material.as_deref(), i, block_key(s), s.http2.tls_alpn)
            })
            .collect();
        WorkerTls {
            listeners,
            blocks: RefCell::new(blocks),
            keys: cfg.servers.iter().map(block_key).collect(),
        }
    }

    /// True when listener `i` terminates TLS.
    pub fn is_tls(&self, listener: usize) -> bool {
        self.listeners.get(listener).copied().unwrap_or(false)
    }

    fn block(&self, i: usize) -> Option<Block> {
        self.blocks.borrow().get(i).cloned().flatten()
    }
}

fn build_block(tls: &Tls, material: Option<&Material>, i: usize, key: u64, h2: bool) -> Option<Block> {
    if tls.reject_handshake {
        return Some(Block::Reject);
    }
    match server_config(tls, material?, key, h2) {
        Ok(c) => Some(Block::Serve(Arc::new(c))),
        Err(e) => {
            // Checked when the config was loaded; only a reload can get here.
            tracing::error!("server[{i}].tls: {e}");
            None
        }
    }
}

/// What a finished handshake tells the request path.
#[derive(Debug, Clone)]
pub struct TlsInfo {
    /// `TLSv1.2` or `TLSv1.3`, as nginx's `$ssl_protocol`.
    pub version: &'static str,
    /// The cipher suite's IANA name as rustls spells it.
    pub cipher: &'static str,
    /// The server block SNI chose during the handshake (its index in the
    /// generation the connection was accepted under).
    pub server: usize,
    /// That block's `block_key`, which a later generation compares.
    pub block: u64,
    /// The verified client certificate's subject (RFC 4514 text), if any.
    pub client_subject: Option<String>,
    /// A session was resumed (ticket or session ID) rather than made.
    pub resumed: bool,
    /// ALPN chose HTTP/2.
    pub h2: bool,
}

/// Why a handshake did not finish.
#[derive(Debug)]
pub enum HandshakeError {
    Io(io::Error),
    Tls(rustls::Error),
    /// The client closed before the handshake finished.
    Closed,
    /// SNI (or its absence) chose a block with `reject_handshake`.
    Rejected(Option<String>),
    /// No block on this address serves TLS (a reload failed from the start).
    NoCertificate,
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::Io(e) => write!(f, "{e}"),
            HandshakeError::Tls(e) => write!(f, "{e}"),
            HandshakeError::Closed => f.write_str("client closed during the handshake"),
            HandshakeError::Rejected(Some(n)) => write!(f, "handshake for {n:?} rejected"),
            HandshakeError::Rejected(None) => f.write_str("handshake without SNI rejected"),
            HandshakeError::NoCertificate => f.write_str("no certificate for this server"),
        }
    }
}

/// A TLS `unrecognized_name` alert (fatal), sent in the clear before any
/// keys exist, as a refusal of a name nobody here serves.
const UNRECOGNIZED_NAME: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 112];

/// Runs a server handshake on `io`: reads the ClientHello, chooses the
/// server block by SNI through `router`, completes the handshake with that
/// block's config. The caller bounds it with a deadline.
pub async fn accept(
    io: TcpStream,
    tls: &WorkerTls,
    router: &Router,
    listener: usize,
) -> Result<TlsStream, HandshakeError> {
    let mut s = TlsStream {
        io,
        conn: None,
        inbuf: Vec::with_capacity(READ_SIZE),
        in_pos: 0,
        out: Vec::new(),
        eof: false,
        info: None,
        reads_only_read: false,
    };
    let mut acceptor = Acceptor::default();
    let accepted = loop {
        if !s.socket_read().await.map_err(HandshakeError::Io)? {
            return Err(HandshakeError::Closed);
        }
        while s.in_pos < s.inbuf.len() {
            let n = acceptor
                .read_tls(&mut &s.inbuf[s.in_pos..])
                .map_err(HandshakeError::Io)?;
            if n == 0 {
                // rustls takes nothing more: a ClientHello it cannot hold.
                return Err(HandshakeError::Io(io::Error::other("ClientHello too large")));
            }
            s.in_pos += n;
        }
        match acceptor.accept() {
            Ok(Some(a)) => break a,
            Ok(None) => {}
            Err((e, mut alert)) => {
                let mut out = Vec::new();
                let _ = alert.write_all(&mut out);
                let _ = s.io.write_all(out).await;
                return Err(HandshakeError::Tls(e));
            }
        }
    };
    let sni = accepted.client_hello().server_name().map(str::to_owned);
    let server = match &sni {
        Some(name) => router.server_for(listener, Some(name.as_bytes())),
        None => router.default_server(listener),
    };
    let config = match tls.block(server) {
        Some(Block::Serve(c)) => c,
        Some(Block::Reject) => {
            let _ = s.io.write_all(UNRECOGNIZED_NAME.to_vec()).await;
            return Err(HandshakeError::Rejected(sni));
        }
        None => {
            let _ = s.io.write_all(UNRECOGNIZED_NAME.to_vec()).await;
            return Err(HandshakeError::NoCertificate);
        }
    };
    let conn = match accepted.into_connection(config) {
        Ok(c) => c,
        Err((e, mut alert)) => {
            let mut out = Vec::new();
            let _ = alert.write_all(&mut out);
            let _ = s.io.write_all(out).await;
            return Err(HandshakeError::Tls(e));
        }
    };
    s.conn = Some(conn);
    s.finish_handshake().await?;
    let conn = s.conn();
    let version = match conn.protocol_version() {
        Some(ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "TLS",
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .and_then(|c| c.suite().as_str())
        .unwrap_or("-");
    let client_subject = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|der| x509_parser::parse_x509_certificate(der).ok())
        .map(|(_, c)| header_safe(&c.subject().to_string()));
    let resumed = conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    let h2 = conn.alpn_protocol() == Some(b"h2");
    s.info = Some(TlsInfo {
        version,
        cipher,
        server,
        block: tls.keys.get(server).copied().unwrap_or(0),
        client_subject,
        resumed,
        h2,
    });
    Ok(s)
}

/// A subject as a header value: printable ASCII only, anything else `\xHH`.
fn header_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

/// A client connection after its handshake: reads decrypt, writes encrypt.
///
/// State stays consistent if a read or write is abandoned at a deadline
/// (its buffer may be lost, and the connection is closed anyway).
pub struct TlsStream {
    io: TcpStream,
    conn: Option<ServerConnection>,
    /// Bytes read from the socket; those before `in_pos` went to rustls.
    inbuf: Vec<u8>,
    in_pos: usize,
    /// Encrypted records on their way to the socket.
    out: Vec<u8>,
    /// The socket reached end of stream.
    eof: bool,
    info: Option<TlsInfo>,
    /// Reads never write (see `split_safe`).
    reads_only_read: bool,
}

impl TlsStream {
    fn conn(&mut self) -> &mut ServerConnection {
        self.conn
            .as_mut()
            .expect("a TlsStream has a connection after accept")
    }

    pub fn info(&self) -> &TlsInfo {
        self.info.as_ref().expect("a TlsStream has its info after accept")
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.io
    }

    /// ALPN chose HTTP/2 for this connection.
    pub fn alpn_h2(&self) -> bool {
        self.info().h2
    }

    /// The socket, the TLS session and the socket bytes rustls has not
    /// taken yet, for a driver that does its own I/O (HTTP/2). Records
    /// queued for sending are written by the new owner first
    /// (`ServerConnection::wants_write`).
    pub fn into_parts(self) -> (TcpStream, ServerConnection, Vec<u8>, TlsInfo) {
        let TlsStream {
            io,
            conn,
            mut inbuf,
            in_pos,
            info,
            ..
        } = self;
        inbuf.drain(..in_pos.min(inbuf.len()));
        (
            io,
            conn.expect("a TlsStream has a connection after accept"),
            inbuf,
            info.expect("a TlsStream has its info after accept"),
        )
    }

    /// True when a read would return without waiting on the socket:
    /// decrypted bytes, unprocessed bytes, or end of stream are at hand.
    pub fn has_buffered(&mut self) -> bool {
        if self.in_pos < self.inbuf.len() || self.eof {
            return true;
        }
        match self.conn().process_new_packets() {
            Ok(st) => st.plaintext_bytes_to_read() > 0 || st.peer_has_closed(),
            Err(_) => true,
        }
    }

    /// From now on a read never writes to the socket, so one read and one
    /// write may be in flight at once (a tunnel's two directions): records
    /// rustls owes the peer go out with the next write instead.
    pub fn split_safe(&mut self) {
        self.reads_only_read = true;
    }

    /// Gives back the socket buffers while the connection is idle.
    pub fn release_buffers(&mut self) {
        if self.in_pos >= self.inbuf.len() {
            self.inbuf = Vec::new();
            self.in_pos = 0;
        }
        if self.out.is_empty() {
            self.out = Vec::new();
        }
    }

    /// Reads from the socket when every byte read so far went to rustls.
    /// False at end of stream.
    async fn socket_read(&mut self) -> io::Result<bool> {
        if self.in_pos < self.inbuf.len() {
            return Ok(true);
        }
        if self.eof {
            return Ok(false);
        }
        let mut buf = std::mem::take(&mut self.inbuf);
        buf.clear();
        buf.reserve(READ_SIZE);
        self.in_pos = 0;
        let (res, buf) = self.io.read(buf).await;
        self.inbuf = buf;
        if res? == 0 {
            self.eof = true;
            return Ok(false);
        }
        Ok(true)
    }

    /// Moves socket bytes into rustls and processes them; reads the socket
    /// first if nothing is pending. A TLS error sends its alert, then fails.
    async fn fill(&mut self) -> io::Result<()> {
        if !self.socket_read().await? {
            // Tell rustls: no close_notify came, the stream just ended.
            let _ = self.conn().read_tls(&mut io::empty());
        } else {
            let (inbuf, pos) = (&self.inbuf, &mut self.in_pos);
            let conn = self.conn.as_mut().expect("connection");
            let n = conn.read_tls(&mut &inbuf[*pos..])?;
            *pos += n;
        }
        if let Err(e) = self.conn().process_new_packets() {
            if !self.reads_only_read {
                let _ = self.flush_tls().await;
            }
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        Ok(())
    }

    /// Writes every record rustls has queued.
    async fn flush_tls(&mut self) -> io::Result<()> {
        while self.conn().wants_write() {
            let mut out = std::mem::take(&mut self.out);
            out.clear();
            while out.len() < WRITE_BATCH && self.conn().wants_write() {
                self.conn().write_tls(&mut out)?;
            }
            let (res, mut out) = self.io.write_all(out).await;
            out.clear();
            self.out = out;
            res?;
        }
        Ok(())
    }

    async fn finish_handshake(&mut self) -> Result<(), HandshakeError> {
        // What came with the ClientHello may already hold further records.
        if let Err(e) = self.conn().process_new_packets() {
            let _ = self.flush_tls().await;
            return Err(HandshakeError::Tls(e));
        }
        loop {
            self.flush_tls().await.map_err(HandshakeError::Io)?;
            if !self.conn().is_handshaking() {
                return Ok(());
            }
            if self.eof && self.in_pos >= self.inbuf.len() {
                return Err(HandshakeError::Closed);
            }
            self.fill().await.map_err(|e| match e.into_inner() {
                Some(inner) => match inner.downcast::<rustls::Error>() {
                    Ok(tls) => HandshakeError::Tls(*tls),
                    Err(other) => HandshakeError::Io(io::Error::other(other)),
                },
                None => HandshakeError::Closed,
            })?;
        }
    }

    async fn read_into<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        loop {
            let state = match self.conn().process_new_packets() {
                Ok(s) => s,
                Err(e) => return (Err(io::Error::new(io::ErrorKind::InvalidData, e)), buf),
            };
            let want = state.plaintext_bytes_to_read().min(buf.bytes_total());
            if want > 0 {
                // SAFETY: `write_ptr` points at `bytes_total` writable bytes
                // owned by `buf`; the first `want` of them are zeroed here so
                // the slice handed to rustls is initialised.
                let slice = unsafe {
                    std::ptr::write_bytes(buf.write_ptr(), 0, want);
                    std::slice::from_raw_parts_mut(buf.write_ptr(), want)
                };
                return match self.conn().reader().read(slice) {
                    Ok(n) => {
                        // SAFETY: rustls wrote `n <= want` bytes at the start.
                        unsafe { buf.set_init(n) };
                        (Ok(n), buf)
                    }
                    Err(e) => (Err(e), buf),
                };
            }
            if state.peer_has_closed() || (self.eof && self.in_pos >= self.inbuf.len()) {
                // close_notify, or the socket ended without one: either way
                // no more bytes. Requests never end by a close, so a missing
                // close_notify cannot truncate one unnoticed.
                return (Ok(0), buf);
            }
            if let Err(e) = self.fill().await {
                return (Err(e), buf);
            }
            // Answers rustls owes the peer (a key update) go out now, or,
            // when a writer runs beside this reader, with its next write.
            if self.reads_only_read {
                continue;
            }
            if let Err(e) = self.flush_tls().await {
                return (Err(e), buf);
            }
        }
    }

    async fn write_from<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: `read_ptr` points at `bytes_init` initialised bytes of `buf`.
        let slice = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        if let Err(e) = self.flush_tls().await {
            return (Err(e), buf);
        }
        let n = match self.conn().writer().write(slice) {
            Ok(n) => n,
            Err(e) => return (Err(e), buf),
        };
        match self.flush_tls().await {
            Ok(()) => (Ok(n), buf),
            Err(e) => (Err(e), buf),
        }
    }
}

impl AsyncReadRent for TlsStream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        self.read_into(buf).await
    }

    async fn readv<T: IoVecBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        // SAFETY: the raw buffer views the first iovec of `buf`, which the
        // caller keeps alive and unaliased until this call returns.
        let n = match unsafe { RawBuf::new_from_iovec_mut(&mut buf) } {
            Some(raw) => self.read_into(raw).await.0,
            None => Ok(0),
        };
        if let Ok(n) = n {
            // SAFETY: `n` bytes were written into the first iovec.
            unsafe { buf.set_init(n) };
        }
        (n, buf)
    }
}

impl AsyncWriteRent for TlsStream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        self.write_from(buf).await
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: the raw buffer views the first iovec of `buf`, alive until
        // this call returns.
        let n = match unsafe { RawBuf::new_from_iovec(&buf) } {
            Some(raw) => self.write_from(raw).await.0,
            None => Ok(0),
        };
        (n, buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.flush_tls().await
    }

    /// Sends close_notify, then closes the sending side of the socket.
    async fn shutdown(&mut self) -> io::Result<()> {
        self.conn().send_close_notify();
        self.flush_tls().await?;
        self.io.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_made_header_safe() {
        assert_eq!(header_safe("CN=a, O=b"), "CN=a, O=b");
        assert_eq!(header_safe("CN=a\r\nX: y"), "CN=a\\x0D\\x0AX: y");
        assert_eq!(header_safe("CN=é"), "CN=\\xC3\\xA9");
    }
}
