//! The client side of the proxy: one task per client connection. The
//! connection is accepted here (TLS handshake, HTTP/2 by ALPN or by the
//! cleartext preface) and served by its protocol's driver, `h1` or `h2`;
//! each request then goes through the phases in `phases.rs` and
//! `forward.rs`, which see the client only through `session::ClientSession`:
//!
//! read_request_head (h1 / h2) → route → content: return | redirect | proxy
//! (select → connect_upstream → send_request → forward_request_body →
//! read_response_head → forward_response_body → finish; or, after a `101`,
//! tunnel) → log.

pub mod body;
mod cache;
mod cache_refresh;
mod cache_reply;
mod content;
mod files;
pub mod forward;
pub mod forward_h2;
pub mod h1;
pub mod h2;
pub mod local;
pub mod locate;
mod logging;
pub mod phases;
mod reply;
pub mod respond;
mod response_head;
pub mod rewrite;
pub mod session;
pub mod tunnel;

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use monoio::net::TcpStream;

use crate::ctx::WorkerCtx;
use crate::deadline::Woke;
pub use h1::{refuse_busy, ClientStream, HEAD_BUF};
use session::ConnInfo;

/// Serves a connection accepted on listen address `listen` (as configured).
/// `last`: the newest generation that listens there, for a connection
/// accepted as a reload removes the address (served under it, then closed).
pub async fn serve_connection(
    ctx: Rc<WorkerCtx>,
    listen: SocketAddr,
    last: Rc<crate::generation::Generation>,
    stream: TcpStream,
    peer: SocketAddr,
) {
    let _guard = ctx.track_connection();
    // The handshake runs under the newest generation; each request then
    // takes the newest one when it starts.
    let (gen, listener, _) = ctx.gen_for(listen, &last);
    // Responses are written whole; Nagle would hold back their last segment.
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(peer);
    let limits = &gen.server(gen.router.default_server(listener)).limits;
    let stream = if gen.tls.is_tls(listener) {
        // The handshake runs under the address's client_header_timeout, so
        // a client that connects and never speaks TLS costs one deadline
        // entry until it expires. Boxed, so the idle task stays small.
        let handshake = Box::pin(crate::tls::server::accept(
            stream,
            &gen.tls,
            &gen.router,
            listener,
        ));
        match ctx
            .deadlines
            .idle(handshake, Instant::now() + limits.header_timeout)
            .await
        {
            Woke::Ready(Ok(s)) => {
                ctx.metrics.tls_handshake(s.info().version, s.info().resumed);
                ClientStream::Tls(Box::new(s))
            }
            Woke::Ready(Err(e)) => {
                tracing::debug!(peer = %peer, "TLS handshake failed: {e}");
                ctx.metrics.tls_failed();
                return;
            }
            Woke::TimedOut | Woke::Closing => {
                tracing::debug!(peer = %peer, "TLS handshake timed out");
                ctx.metrics.tls_failed();
                return;
            }
        }
    } else {
        ClientStream::Plain(stream)
    };
    let conn = ConnInfo::new(peer, local.port(), listener, listen);
    match stream {
        ClientStream::Tls(t) if t.alpn_h2() => h2::serve(&ctx, gen.clone(), h2::Io::tls(*t), conn).await,
        ClientStream::Plain(mut s) if gen.server(gen.router.default_server(listener)).http2.h2c => {
            // h2c with prior knowledge: the connection preface tells HTTP/2
            // from HTTP/1.1 on the same port (RFC 9113 §3.3).
            match h2::sniff_preface(&ctx, &mut s, limits.header_timeout).await {
                Some((true, seen)) => h2::serve(&ctx, gen.clone(), h2::Io::plain(s, seen), conn).await,
                Some((false, seen)) => h1::serve(&ctx, gen.clone(), ClientStream::Plain(s), conn, seen).await,
                None => {}
            }
        }
        stream => h1::serve(&ctx, gen.clone(), stream, conn, bytes::BytesMut::new()).await,
    }
}
