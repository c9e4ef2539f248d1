//! The downstream side: one task per client connection, serving requests in
//! order until either side closes (HTTP/1.1 keep-alive and pipelining).
//!
//! Each request goes through the phases in `phases.rs`:
//! read_request_head → route → connect_upstream → send_request →
//! forward_request_body → read_response_head → forward_response_body → finish.

pub mod body;
pub mod phases;
pub mod respond;
pub mod rewrite;

use std::net::SocketAddr;
use std::rc::Rc;

use bytes::BytesMut;
use monoio::net::TcpStream;

use crate::ctx::WorkerCtx;

/// A client's read buffer starts this large and grows only for larger heads.
const HEAD_BUF: usize = 4096;

/// One client connection and the buffers it reuses from request to request.
pub struct Downstream {
    pub stream: TcpStream,
    /// Bytes read and not yet consumed: a head in progress, body bytes, or
    /// pipelined requests.
    pub rbuf: BytesMut,
    /// Heads written to the client.
    pub wbuf: Vec<u8>,
    /// Re-framed body bytes (chunked) in either direction.
    pub body_out: Vec<u8>,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// Which of the worker's listeners accepted it.
    pub listener: usize,
    /// Requests served so far on this connection.
    pub served: u64,
}

pub async fn serve_connection(ctx: Rc<WorkerCtx>, listener: usize, stream: TcpStream, peer: SocketAddr) {
    let _guard = ctx.track_connection();
    // Responses are written whole; Nagle would hold back their last segment.
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(peer);
    let mut ds = Downstream {
        stream,
        rbuf: BytesMut::with_capacity(HEAD_BUF),
        wbuf: Vec::with_capacity(1024),
        body_out: Vec::new(),
        peer,
        local,
        listener,
        served: 0,
    };
    while let phases::Next::KeepAlive = phases::exchange(&ctx, &mut ds).await {
        ds.served += 1;
        // An idle connection keeps only a small buffer, not one sized for
        // the largest body it has carried.
        if ds.rbuf.is_empty() && ds.rbuf.capacity() > 4 * HEAD_BUF {
            ds.rbuf = BytesMut::with_capacity(HEAD_BUF);
        }
        if ds.body_out.capacity() > 4 * HEAD_BUF {
            ds.body_out = Vec::new();
        }
    }
}
