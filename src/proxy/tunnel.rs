//! Protocol upgrades: the `tunnel` content phase. A request that offers an
//! `Upgrade` its location allows (`upgrade`, default `["websocket"]`) goes
//! upstream with `Upgrade` and `Connection: upgrade`; when the upstream
//! answers `101 Switching Protocols` for one of the offered protocols, the
//! client gets the switch and both connections become one byte tunnel.
//! Any other answer goes to the client as an ordinary response.
//!
//! WebSocket over HTTP/2 (RFC 8441): an extended CONNECT stream with
//! `:protocol websocket` is rebuilt by [`extended_connect`] as the HTTP/1.1
//! handshake a backend expects (GET, `Upgrade: websocket`, a
//! `Sec-WebSocket-Key` ringway makes), goes through the same phases, and on
//! a `101` whose `Sec-WebSocket-Accept` matches that key the stream gets
//! `200` and carries the tunnel in DATA frames ([`over_stream`]).
//!
//! Invariants: one read buffer per direction (the connection's own, at
//! least 16 KiB); half-close is passed on (end of stream from one side is a
//! shutdown, or END_STREAM, toward the other; the other direction flows
//! until it ends too); no byte either way for the upstream's
//! `read_timeout` ends the tunnel; the upstream connection is never pooled
//! afterwards (it is dropped here).

use std::cell::{Cell, RefCell, UnsafeCell};
use std::future::Future;
use std::io;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use http::{HeaderMap, HeaderValue};
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::BufResult;
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};

use super::phases::Exchange;
use super::rewrite::{self, FieldSink};
use super::session::ClientSession;
use crate::config::{Action, Location, Upstream};
use crate::ctx::WorkerCtx;
use crate::deadline::Deadlines;
use crate::error::{Error, ErrorKind, Result};
use crate::h2io::body::{RecvBody, Send, SendBody};
use crate::http::{eq_ignore_case, list_items, RequestHead, RequestMeta, ResponseHead, Version};
use crate::io::IoFail;
use crate::upstream::UpConn;

/// A direction's read buffer is at least this large.
const TUNNEL_BUF: usize = 16 * 1024;

/// RFC 6455 §1.3: what a key is hashed with for `Sec-WebSocket-Accept`.
const WS_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// What a tunnel carried, for the access log.
pub struct Moved {
    /// The status the client got: 101 (HTTP/1.1) or 200 (RFC 8441).
    pub status: u16,
    /// Bytes sent to the client after the switch.
    pub to_client: u64,
}

/// What a session needs to switch protocols.
pub struct Switch<'a> {
    pub conn: UpConn,
    /// The upstream's 101.
    pub response: &'a ResponseHead,
    /// No byte in either direction for this long ends the tunnel (the
    /// upstream's `read_timeout`, as nginx's `proxy_read_timeout`).
    pub idle: Duration,
    /// Each write toward the client, and toward the upstream, at most.
    pub client_send_timeout: Duration,
    pub upstream_send_timeout: Duration,
}

/// The protocols of the request's `Upgrade` that its location passes on,
/// as the upstream gets them (`None`: no upgrade is passed on). An
/// `Upgrade` counts only with the `upgrade` connection option, and never
/// in HTTP/1.0 (RFC 9110 §7.8). A protocol the location does not allow is
/// dropped, as nginx drops `Upgrade` unless configured to pass it: the
/// backend then answers an ordinary request.
pub(super) fn offer(head: &RequestHead, meta: &RequestMeta, loc: &Location) -> Option<Vec<u8>> {
    if head.version != Version::Http11 || loc.upgrade.is_empty() {
        return None;
    }
    // The Connection options were found when the head was framed: most
    // requests have none, and cost nothing more here.
    let asked = meta
        .connection_names
        .iter()
        .any(|o| eq_ignore_case(o.of(&head.buf), b"upgrade"));
    if !asked {
        return None;
    }
    let mut out = Vec::new();
    for (_, v) in head.headers().filter(|(n, _)| eq_ignore_case(n, b"upgrade")) {
        for p in list_items(v).filter(|p| loc.allows_upgrade(p)) {
            if !out.is_empty() {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(p);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Phase: access, for an RFC 8441 WebSocket stream: a location that cannot
/// tunnel it (`return`, or `upgrade` without `websocket`) refuses it with
/// 405, as any other CONNECT, rather than answer a 2xx that the client
/// would take for an open tunnel.
pub(super) fn check_location<S: ClientSession>(ds: &S, head: &RequestHead, loc: &Location) -> Result<()> {
    if !ds.upgrades_by_connect() || head.header("upgrade").is_none() {
        return Ok(());
    }
    match loc.action {
        Action::Proxy(_) if loc.allows_upgrade(b"websocket") => Ok(()),
        _ => Err(ErrorKind::MethodNotAllowed.into()),
    }
}

/// Whether a non-101 answer to an upgrade may go to the client as it is.
/// Over HTTP/2 a 2xx to the extended CONNECT would open the tunnel, so an
/// upstream that ignored the upgrade (a 200 page) is a 502 there.
pub(super) fn check_refusal<S: ClientSession>(ds: &S, head: &ResponseHead) -> Result<()> {
    if ds.upgrades_by_connect() && (200..300).contains(&head.status) {
        return Err(ErrorKind::BadResponse("the upstream did not switch to WebSocket").into());
    }
    Ok(())
}

/// Phase: content = tunnel. The upstream answered 101 to an upgrade the
/// client asked for: checks it names an offered protocol (and, for RFC
/// 8441, the accept key), then hands both sides to the session's tunnel.
/// Errors before the switch reach the client as 502.
#[allow(clippy::too_many_arguments)]
pub(super) async fn switch<S: ClientSession>(
    ctx: &WorkerCtx,
    ds: &mut S,
    ex: &mut Exchange,
    conn: UpConn,
    head: &ResponseHead,
    offered: &[u8],
    up_cfg: &Upstream,
    client_send_timeout: Duration,
) -> Result<()> {
    // RFC 9110 §15.2.2: the 101 names the protocol switched to, which must
    // be one the client offered; anything else is not what it asked for.
    let mut named = head
        .headers()
        .filter(|(n, _)| eq_ignore_case(n, b"upgrade"))
        .flat_map(|(_, v)| list_items(v));
    let chosen = match (named.next(), named.next()) {
        (Some(p), None) => p,
        _ => return Err(ErrorKind::BadResponse("101 without one Upgrade protocol").into()),
    };
    if !list_items(offered).any(|o| eq_ignore_case(o, chosen)) {
        return Err(ErrorKind::BadResponse("101 to a protocol that was not asked for").into());
    }
    if ds.upgrades_by_connect() {
        // Ringway made the handshake, so ringway checks it (RFC 6455 §4.1).
        let key = ex.head.header("sec-websocket-key").unwrap_or_default();
        let accept = head.header("sec-websocket-accept").map(<[u8]>::trim_ascii);
        if accept != Some(&accept_for(key)[..]) {
            return Err(ErrorKind::BadResponse("101 with a wrong Sec-WebSocket-Accept").into());
        }
    }
    // Whatever happens next, neither connection carries another request.
    ex.close = true;
    let sw = Switch {
        conn,
        response: head,
        idle: up_cfg.read_timeout,
        client_send_timeout,
        upstream_send_timeout: up_cfg.send_timeout,
    };
    let moved = ds.tunnel(ctx, sw).await?;
    ex.status = moved.status;
    ex.body_bytes = moved.to_client;
    Ok(())
}

/// The 101 as an HTTP/1.1 client gets it: the upstream's fields without
/// hop-by-hop ones, then the switch itself.
pub fn switching_head(head: &ResponseHead, out: &mut Vec<u8>) {
    crate::http::encode::status_line(101, head.reason(), out);
    rewrite::interim_fields(head, None, out);
    if let Some(p) = head.header("upgrade") {
        out.field(b"Upgrade", p);
    }
    out.field(b"Connection", b"upgrade");
    out.extend_from_slice(b"\r\n");
}

/// Whether HTTP/2 connections advertise `SETTINGS_ENABLE_CONNECT_PROTOCOL`
/// (RFC 8441 §3): when some location allows WebSocket. SETTINGS go out
/// before any request names a host, so this is not per server block.
pub fn rfc8441(gen: &crate::generation::Generation) -> bool {
    gen.config.servers.iter().any(|s| {
        s.locations
            .iter()
            .any(|l| matches!(l.action, Action::Proxy(_)) && l.allows_upgrade(b"websocket"))
    })
}

/// RFC 8441 §4: an extended CONNECT with `:protocol websocket` becomes the
/// RFC 6455 handshake for an HTTP/1.1 upstream: GET, `Upgrade: websocket`,
/// `Connection: upgrade`, `Sec-WebSocket-Version` (13 unless the client
/// sent one) and a fresh `Sec-WebSocket-Key` (any the client sent is
/// replaced: the accept check must be against ringway's own key). True when
/// the request was one; it then has no body of its own: DATA frames are
/// the tunnel. Other CONNECTs are left as they are (and refused with 405).
pub fn extended_connect(parts: &mut http::request::Parts) -> bool {
    let websocket = parts.method == http::Method::CONNECT
        && parts
            .extensions
            .get::<h2::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"));
    if !websocket {
        return false;
    }
    parts.method = http::Method::GET;
    let h = &mut parts.headers;
    h.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(http::header::CONNECTION, HeaderValue::from_static("upgrade"));
    if !h.contains_key(http::header::SEC_WEBSOCKET_VERSION) {
        h.insert(
            http::header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
    }
    let key = HeaderValue::from_bytes(&new_key()).expect("base64 is a valid field value");
    h.insert(http::header::SEC_WEBSOCKET_KEY, key);
    true
}

/// A `Sec-WebSocket-Key`: base64 of 16 random bytes (RFC 6455 §4.1).
fn new_key() -> [u8; 24] {
    let mut raw = [0u8; 16];
    // The system's random source failing leaves no safe way to go on.
    SystemRandom::new()
        .fill(&mut raw)
        .expect("the system random source works");
    let mut out = [0u8; 24];
    base64(&raw, &mut out);
    out
}

/// `Sec-WebSocket-Accept` for a key: base64(SHA-1(key + GUID)).
fn accept_for(key: &[u8]) -> [u8; 28] {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key.trim_ascii());
    ctx.update(WS_GUID);
    let mut out = [0u8; 28];
    base64(ctx.finish().as_ref(), &mut out);
    out
}

/// Standard base64 with padding; `out` is exactly 4 * ceil(len / 3) long.
fn base64(data: &[u8], out: &mut [u8]) {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (chunk, o) in data.chunks(3).zip(out.chunks_mut(4)) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, c) in o.iter_mut().enumerate() {
            *c = if i <= chunk.len() {
                ABC[(n >> (18 - 6 * i) & 63) as usize]
            } else {
                b'='
            };
        }
    }
}

/// Runs an HTTP/1.1 tunnel between the client connection and the upstream:
/// `client_early` holds what the client sent after its request head,
/// `conn.rbuf` what the upstream sent after its 101; both go first. Returns
/// the bytes sent to the client; ends when both directions have ended, one
/// fails, or the tunnel is idle too long.
pub async fn splice<C: AsyncReadRent + AsyncWriteRent>(
    ctx: &WorkerCtx,
    client: &mut C,
    client_early: BytesMut,
    sw: Switch<'_>,
) -> u64 {
    let mut conn = sw.conn;
    // One task moves both directions, so each stream is used by a reader
    // and a writer at once: see `Half`.
    let client = UnsafeCell::from_mut(client);
    let upstream = UnsafeCell::from_mut(&mut conn.stream);
    let up_buf = std::mem::take(&mut conn.rbuf);
    run(
        &ctx.deadlines,
        (Half(client), Half(upstream)),
        (Half(upstream), Half(client)),
        (client_early, up_buf),
        (sw.idle, sw.upstream_send_timeout, sw.client_send_timeout),
    )
    .await
}

/// Both directions and the idle watch: (reader, writer) toward the upstream,
/// then toward the client, and their buffers with what is already read.
async fn run<R1, W1, R2, W2>(
    d: &Deadlines,
    (mut from_client, mut to_upstream): (R1, W1),
    (mut from_upstream, mut to_client): (R2, W2),
    (up_buf, down_buf): (BytesMut, BytesMut),
    (idle, upstream_send_timeout, client_send_timeout): (Duration, Duration, Duration),
) -> u64
where
    R1: AsyncReadRent,
    W1: AsyncWriteRent,
    R2: AsyncReadRent,
    W2: AsyncWriteRent,
{
    let last = Cell::new(Instant::now());
    let to_client_bytes = Cell::new(0u64);
    let up = pump(
        d,
        &mut from_client,
        &mut to_upstream,
        up_buf,
        upstream_send_timeout,
        &last,
        None,
    );
    let down = pump(
        d,
        &mut from_upstream,
        &mut to_client,
        down_buf,
        client_send_timeout,
        &last,
        Some(&to_client_bytes),
    );
    monoio::select! {
        r = async { monoio::try_join!(up, down) } => {
            if let Err(e) = r {
                tracing::debug!("tunnel ended: {e}");
            }
        }
        _ = idle_watch(d, &last, idle) => tracing::debug!("tunnel idle for {idle:?}: closed"),
    }
    to_client_bytes.get()
}

/// Moves bytes from `r` to `w` until `r` ends, then shuts `w` down (the
/// half-close goes on); the other direction is not touched. Reads have no
/// deadline of their own: the idle watch ends a tunnel where nothing moves.
async fn pump<R: AsyncReadRent, W: AsyncWriteRent>(
    d: &Deadlines,
    r: &mut R,
    w: &mut W,
    mut buf: BytesMut,
    send_timeout: Duration,
    last: &Cell<Instant>,
    count: Option<&Cell<u64>>,
) -> io::Result<()> {
    loop {
        if !buf.is_empty() {
            let n = buf.len() as u64;
            buf = crate::io::write_all(w, buf, d, send_timeout)
                .await
                .map_err(fail)?;
            buf.clear();
            last.set(Instant::now());
            if let Some(c) = count {
                c.set(c.get() + n);
            }
        }
        if buf.capacity() < TUNNEL_BUF {
            buf.reserve(TUNNEL_BUF);
        }
        // The buffer is empty: the read fills it from its start.
        let (res, b) = r.read(buf).await;
        buf = b;
        if res? == 0 {
            // The peer will send no more; the other side learns the same,
            // and may still answer on the other direction.
            let _ = d.within(w.shutdown(), Instant::now() + send_timeout).await;
            return Ok(());
        }
        last.set(Instant::now());
    }
}

fn fail(e: IoFail) -> io::Error {
    match e {
        IoFail::Io(e) => e,
        IoFail::Timeout => io::ErrorKind::TimedOut.into(),
    }
}

/// Returns once no byte has moved for `idle`, or when the worker's drain
/// time is over (every wait then ends at once).
async fn idle_watch(d: &Deadlines, last: &Cell<Instant>, idle: Duration) {
    loop {
        let due = last.get() + idle;
        let _ = d.within(std::future::pending::<()>(), due).await;
        let now = Instant::now();
        // Deadlines never fire early: waking before `due` means the drain
        // ended every wait.
        if now < due || now >= last.get() + idle {
            return;
        }
    }
}

/// One use of a stream by a tunnel direction: the reader of one and the
/// writer of the other go through the same cell.
///
/// This is monoio's own split (`Splitable::into_split`, an `UnsafeCell`
/// shared by two halves), without taking the stream by value. It is sound
/// for the streams a tunnel has because a read and a write on them touch
/// disjoint state: a TCP socket's operations only use its descriptor; TLS
/// to the client (`tls::server::TlsStream`) reads without writing once
/// `split_safe` is set; monoio-rustls marks its streams `Split` (its reads
/// write only to send an alert on a failing connection). Everything runs on
/// one thread, and neither half outlives the `&mut` it was made from.
struct Half<'a, T>(&'a UnsafeCell<T>);

impl<T: AsyncReadRent> AsyncReadRent for Half<'_, T> {
    fn read<B: IoBufMut>(&mut self, buf: B) -> impl Future<Output = BufResult<usize, B>> {
        // SAFETY: see the type's comment: only the read side of `T` is used
        // through this half, and only on this thread.
        unsafe { &mut *self.0.get() }.read(buf)
    }

    fn readv<B: IoVecBufMut>(&mut self, buf: B) -> impl Future<Output = BufResult<usize, B>> {
        // SAFETY: as `read`.
        unsafe { &mut *self.0.get() }.readv(buf)
    }
}

impl<T: AsyncWriteRent> AsyncWriteRent for Half<'_, T> {
    fn write<B: IoBuf>(&mut self, buf: B) -> impl Future<Output = BufResult<usize, B>> {
        // SAFETY: only the write side of `T` is used through this half.
        unsafe { &mut *self.0.get() }.write(buf)
    }

    fn writev<B: IoVecBuf>(&mut self, buf: B) -> impl Future<Output = BufResult<usize, B>> {
        // SAFETY: as `write`.
        unsafe { &mut *self.0.get() }.writev(buf)
    }

    fn flush(&mut self) -> impl Future<Output = io::Result<()>> {
        // SAFETY: as `write`.
        unsafe { &mut *self.0.get() }.flush()
    }

    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> {
        // SAFETY: as `write`; a shutdown only ends the sending side.
        unsafe { &mut *self.0.get() }.shutdown()
    }
}

/// RFC 8441: answers the stream `200` with the 101's fields (subprotocol,
/// extensions; the accept key is HTTP/1.1's business) and carries the
/// tunnel in DATA frames: request DATA is released to the client's window
/// as it is written upstream; response bytes are sent as the window grants
/// capacity. END_STREAM either way is the half-close.
pub async fn over_stream(
    ctx: &WorkerCtx,
    sw: Switch<'_>,
    mut respond: SendResponse<Bytes>,
    recv: &mut RecvBody,
) -> Result<Moved> {
    let mut fields = super::h2::H2Fields(HeaderMap::new());
    rewrite::interim_fields(sw.response, None, &mut fields);
    fields.0.remove(http::header::SEC_WEBSOCKET_ACCEPT);
    let mut resp = http::Response::new(());
    *resp.status_mut() = http::StatusCode::OK;
    *resp.headers_mut() = fields.0;
    let send = respond
        .send_response(resp, false)
        .map_err(|e| Error::io(ErrorKind::ClientGone, io::Error::other(e)))?;
    let send = RefCell::new(Send::Body(send));
    let (idle, up_t, client_t) = (sw.idle, sw.upstream_send_timeout, sw.client_send_timeout);
    let mut conn = sw.conn;
    let upstream = UnsafeCell::from_mut(&mut conn.stream);
    let down_buf = std::mem::take(&mut conn.rbuf);
    let to_client = run(
        &ctx.deadlines,
        (recv, Half(upstream)),
        (
            Half(upstream),
            SendBody {
                send: &send,
                deadlines: &ctx.deadlines,
                t: client_t,
            },
        ),
        (BytesMut::new(), down_buf),
        (idle, up_t, client_t),
    )
    .await;
    Ok(Moved {
        status: 200,
        to_client,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_is_rfc_6455s_example() {
        // RFC 6455 §1.3.
        assert_eq!(
            &accept_for(b"dGhlIHNhbXBsZSBub25jZQ=="),
            b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn base64_pads() {
        let enc = |d: &[u8]| {
            let mut out = vec![0u8; d.len().div_ceil(3) * 4];
            base64(d, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(enc(b"f"), "Zg==");
        assert_eq!(enc(b"fo"), "Zm8=");
        assert_eq!(enc(b"foo"), "Zm9v");
        assert_eq!(enc(b"foob"), "Zm9vYg==");
        assert_eq!(new_key().len(), 24);
        assert!(new_key().ends_with(b"=="));
    }
}
