//! The protocol seam on the client side. A request is served by the phases
//! in `phases.rs` and `forward.rs` whichever protocol carried it: they talk
//! to the client only through [`ClientSession`], which an HTTP/1.1
//! connection's current request (`h1::Downstream`) and an HTTP/2 stream
//! (`h2::stream::StreamSession`) implement.
//!
//! The phases are generic over the session, not written over an enum or a
//! trait object: each protocol gets its own monomorphised copy, so the
//! HTTP/1.1 path compiles to what it was before HTTP/2 existed (no extra
//! branch or indirection per call), and nothing is boxed per request.
//!
//! What the phases hand a session is protocol-neutral: a [`Canned`] reply,
//! a [`ResponseRewrite`] (the policy of which fields the client gets, written
//! once in `rewrite.rs` over a `FieldSink`), upstream body bytes to forward.
//! Framing, `Connection`, `100 Continue`, HEADERS and DATA frames are the
//! session's business.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;

use monoio::io::AsyncReadRent;

use super::body::{BodyError, Copy};
use super::respond::Canned;
use super::rewrite::{AddrText, ClientFraming, Redirect, ResponseRewrite};
use super::tunnel::{Moved, Switch};
use crate::compress::Encoder;
use crate::config::ClientLimits;
use crate::ctx::WorkerCtx;
use crate::error::Result;
use crate::h2io::body::{RecvBody, SendBody};
use crate::http::{BodyKind, RequestHead, ResponseHead};
use crate::io::IoFail;
use crate::tls::server::TlsInfo;
use crate::upstream::UpConn;

/// What the phases know of the client connection, whatever its protocol.
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The peer's address and the port it connected to, as text for the
    /// forwarding headers (formatted once per connection).
    pub peer_text: AddrText,
    pub port_text: AddrText,
    /// The port it connected to (`$server_port`).
    pub local_port: u16,
    /// Which listener accepted it: its index in the generation of the
    /// connection's latest request.
    pub listener: usize,
    /// That listener's address as configured: how a later generation
    /// finds it (indexes change from one config to the next).
    pub listen: SocketAddr,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, local_port: u16, listener: usize, listen: SocketAddr) -> ConnInfo {
        ConnInfo {
            listen,
            peer,
            peer_text: AddrText::ip(peer.ip()),
            port_text: AddrText::port(local_port),
            local_port,
            listener,
        }
    }
}

/// Where a request body goes: an HTTP/1.1 upstream connection, or the
/// stream of an exchange with an HTTP/2 upstream.
pub enum UpSink<'a> {
    H1(&'a mut UpConn),
    H2(&'a mut SendBody<'a>),
}

/// Where a response body comes from; an HTTP/2 upstream's may end with
/// trailers.
pub enum UpBody<'a> {
    H1(&'a mut UpConn),
    H2(&'a mut RecvBody),
    /// A response made here (`local.rs`).
    Local(&'a mut super::local::Source),
}

impl UpSink<'_> {
    /// Runs `copy` from `src` (with `buf`, bytes read ahead) into this sink.
    /// HTTP/2 frames a body itself: only the bytes go on, never chunked.
    pub async fn copy_from<R: AsyncReadRent>(
        self,
        mut copy: Copy<'_>,
        src: &mut R,
        buf: &mut BytesMut,
        out: &mut Vec<u8>,
    ) -> std::result::Result<u64, BodyError> {
        match self {
            UpSink::H1(conn) => copy.run(src, buf, &mut conn.stream, out).await,
            UpSink::H2(send) => {
                copy.chunked_out = false;
                copy.run(src, buf, send, out).await
            }
        }
    }
}

impl UpBody<'_> {
    /// Body bytes already read past the head (HTTP/1.1), which a session
    /// may send along with the response head.
    pub fn head_buf(&mut self) -> &mut BytesMut {
        match self {
            UpBody::H1(conn) => &mut conn.rbuf,
            UpBody::H2(recv) => &mut recv.early,
            UpBody::Local(src) => &mut src.early,
        }
    }
}

/// What the phases know of a request body before forwarding it.
pub struct RequestBody {
    pub kind: BodyKind,
    /// The client waits for `100 Continue` before sending it.
    pub expect_continue: bool,
    /// `client_max_body_size` of the location or block.
    pub max: Option<u64>,
}

/// One request's client side. Methods that write return `IoFail` when the
/// client is gone or too slow: the phases then stop.
#[allow(async_fn_in_trait)] // used with static dispatch only, on one thread
pub trait ClientSession {
    fn conn(&self) -> &ConnInfo;

    /// The TLS handshake's outcome when the client connection is TLS.
    fn tls(&self) -> Option<&TlsInfo>;

    /// Connection-level reasons to end after this response (HTTP/1.1:
    /// `keepalive_requests` reached); HTTP/2 ends streams, never the
    /// connection, for a request's sake.
    fn connection_exhausted(&self, limits: &ClientLimits) -> bool;

    /// The access log's request line (HTTP/2 logs `HTTP/2.0`).
    fn log_line<'a>(&self, head: &'a RequestHead) -> std::borrow::Cow<'a, [u8]>;

    /// The whole request body, when it is already at hand: such a request
    /// can be sent again to another server. `None`: it must stream.
    fn take_whole_body(&mut self, body: BodyKind) -> Option<BytesMut>;

    /// Checks what has arrived of a body before an upstream sees the head
    /// (HTTP/1.1 chunked framing; an HTTP/2 body has no framing of its own).
    fn check_body_start(&self, body: BodyKind) -> Result<()>;

    /// A buffer for the upstream request head, reused across requests.
    fn upstream_buf(&mut self) -> &mut Vec<u8>;

    /// Whether interim (1xx) responses can be passed on (not to HTTP/1.0).
    fn takes_interim(&self, head: &RequestHead) -> bool;

    async fn send_canned(
        &mut self,
        ctx: &WorkerCtx,
        reply: &Canned<'_>,
        t: Duration,
    ) -> std::result::Result<(), IoFail>;

    /// Sends an interim (1xx) response, its redirects mapped by `redirect`
    /// as the final response's will be.
    async fn send_interim(
        &mut self,
        ctx: &WorkerCtx,
        head: &ResponseHead,
        redirect: &Redirect<'_>,
        t: Duration,
    ) -> std::result::Result<(), IoFail>;

    /// Sends the response head. `body` is the upstream connection's read
    /// buffer, whose first bytes a session may send along with the head;
    /// returns what remains of the body to forward and how many body bytes
    /// went with the head.
    async fn send_response_head(
        &mut self,
        ctx: &WorkerCtx,
        r: &ResponseRewrite<'_>,
        body: &mut BytesMut,
        t: Duration,
    ) -> std::result::Result<(BodyKind, u64), IoFail>;

    /// Phase: forward_request_body, from the client to `conn` (`100
    /// Continue` first when an HTTP/1.1 client waits for it).
    async fn forward_request_body(
        &mut self,
        ctx: &WorkerCtx,
        body: &RequestBody,
        to: UpSink<'_>,
        limits: &ClientLimits,
        send_timeout: Duration,
    ) -> std::result::Result<(), BodyError>;

    /// The request body as a stream of its own, for an upstream exchange
    /// that must send it while the response comes back (HTTP/2 to an HTTP/2
    /// upstream: gRPC's bidirectional streams). `None` (HTTP/1.1): the body
    /// shares the client's socket with the response, and is sent first.
    fn detach_body(&mut self) -> Option<(RecvBody, BytesMut)> {
        None
    }

    /// Phase: forward_response_body, from `conn` to the client, ending the
    /// response, through `enc` when the body is compressed (`framing` is
    /// then chunked or HTTP/2's own). Returns the body bytes sent.
    #[allow(clippy::too_many_arguments)]
    async fn forward_response_body(
        &mut self,
        ctx: &WorkerCtx,
        from: UpBody<'_>,
        body: BodyKind,
        framing: ClientFraming,
        enc: Option<&mut Encoder>,
        read_timeout: Duration,
        send_timeout: Duration,
        tee: Option<&crate::cache::Tee>,
    ) -> std::result::Result<u64, BodyError>;

    /// The session is an HTTP/2 stream (the metrics' `protocol` label).
    const HTTP2: bool = false;

    /// Whether this session carries upgrades as RFC 8441 extended CONNECT
    /// streams (HTTP/2) rather than as a `101` on its connection.
    fn upgrades_by_connect(&self) -> bool {
        false
    }

    /// Phase: tunnel, after the upstream switched protocols (checked in
    /// `tunnel::switch`): tells the client, then carries bytes both ways
    /// until the tunnel ends. An error means the client was told nothing.
    async fn tunnel(&mut self, ctx: &WorkerCtx, sw: Switch<'_>) -> Result<Moved>;
}
