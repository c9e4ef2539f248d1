//! A refresh in the background (nginx's proxy_cache_background_update,
//! RFC 5861's stale-while-revalidate): the client that found the entry
//! stale is answered from it at once, and a task on the same worker makes
//! the origin request the client would have made, through the same proxy
//! phases, into a session that has no client: its response body is only
//! copied by the cache tee, then stored (or, for a 304, the entry is
//! refreshed). The task holds the key's lock until it ends, so other
//! requests meanwhile get the stale entry too, and there is one refresh
//! per key across the workers; it is bounded by the upstream's timeouts.

use std::borrow::Cow;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use monoio::buf::{IoBuf, IoVecBuf};
use monoio::io::AsyncWriteRent;
use monoio::BufResult;

use super::body::{BodyError, Copy, Trailers};
use super::cache::{self, Hook};
use super::forward::{self, Plan};
use super::phases::Exchange;
use super::respond::Canned;
use super::rewrite::{ClientFraming, Redirect, ResponseRewrite};
use super::session::{ClientSession, ConnInfo, RequestBody, UpBody, UpSink};
use super::tunnel::{Moved, Switch};
use crate::cache::lock::Guard;
use crate::cache::{Entry, Tee, Zone};
use crate::compress::Encoder;
use crate::config::{Action, ClientLimits};
use crate::ctx::WorkerCtx;
use crate::error::{ErrorKind, Result};
use crate::http::{BodyKind, RequestHead, ResponseHead};
use crate::io::IoFail;
use crate::tls::server::TlsInfo;

/// What the refresh needs of the request that triggered it, owned.
pub(super) struct Refresh {
    pub(super) zone: Arc<Zone>,
    pub(super) key: Vec<u8>,
    pub(super) stale: Arc<Entry>,
    pub(super) guard: Guard,
    server: usize,
    location: usize,
    upstream: usize,
    client: std::net::IpAddr,
    request_id: crate::reqid::RequestId,
    conn: ConnInfo,
    path: Vec<u8>,
    args: Vec<u8>,
    req_lines: Vec<u8>,
    target: Vec<u8>,
    host: Option<Vec<u8>>,
    public_host: Vec<u8>,
}

impl Refresh {
    /// `None` when the plan's location cannot be found again (it always
    /// can: it is the request's, in the request's generation).
    pub(super) fn new<S: ClientSession>(
        ds: &S,
        ex: &Exchange,
        plan: &Plan<'_>,
        zone: Arc<Zone>,
        key: Vec<u8>,
        stale: Arc<Entry>,
        guard: Guard,
    ) -> Option<Refresh> {
        let location = ex
            .gen
            .server(ex.server)
            .locations
            .iter()
            .position(|l| std::ptr::eq(l, plan.location))?;
        let c = ds.conn();
        Some(Refresh {
            zone,
            key,
            stale,
            guard,
            server: ex.server,
            location,
            upstream: plan.up.index,
            client: ex.client,
            request_id: ex.request_id,
            conn: ConnInfo::new(c.peer, c.local_port, c.listener, c.listen),
            path: plan.path.to_vec(),
            args: plan.args.to_vec(),
            req_lines: plan.req_lines.to_vec(),
            target: plan.target.to_vec(),
            host: plan.host.map(<[u8]>::to_vec),
            public_host: plan.public_host.to_vec(),
        })
    }
}

/// Runs a refresh on this worker, detached from the client's request.
pub(super) fn spawn(ctx: &Rc<WorkerCtx>, ex: &Exchange, r: Refresh) {
    let (ctx, gen, head, listener) = (ctx.clone(), ex.gen.clone(), ex.head.clone(), ex.listener);
    let peer = r.conn.peer;
    monoio::spawn(crate::isolate::Isolated::new(
        async move {
            let mut ex = Exchange::new(head, (gen.clone(), listener, true), peer);
            if run(&ctx, &mut ex, r).await.is_err() {
                tracing::debug!("a background cache refresh failed; the stale entry stays");
            }
        },
        peer,
    ));
}

async fn run(ctx: &Rc<WorkerCtx>, ex: &mut Exchange, r: Refresh) -> Result<()> {
    let gen = ex.gen.clone();
    ex.server = r.server;
    ex.client = r.client;
    ex.request_id = r.request_id;
    ex.meta = crate::http::framing::request_meta(&ex.head).map_err(|_| ErrorKind::Internal)?;
    ex.req_body_done = true;
    let server = gen.server(r.server);
    let location = &server.locations[r.location];
    let Action::Proxy(pass) = &location.action else {
        return Err(ErrorKind::Internal.into());
    };
    let up = gen.upstreams.get(r.upstream).ok_or(ErrorKind::Internal)?;
    let cache = location.cache.as_deref().ok_or(ErrorKind::Internal)?;
    let mut hook = Hook::new(
        cache,
        Default::default(),
        Some(Tee::new(r.zone.store.max_object())),
        location,
    );
    hook.hide_conditionals();
    let mut req_lines = r.req_lines.clone();
    if hook.ask_conditionally(&r.stale, &mut req_lines) {
        hook.catch_status(304);
    }
    let plan = Plan {
        up,
        location,
        pass,
        path: &r.path,
        args: &r.args,
        server,
        req_lines: &req_lines,
        resp_lines: b"",
        target: &r.target,
        host: r.host.as_deref(),
        public_host: &r.public_host,
        max_body: None,
        dropped: &location.access.strip,
        cache: Some(&hook),
    };
    let mut ds = Detached {
        conn: r.conn,
        buf: Vec::new(),
        out: Vec::new(),
    };
    let request_time = cache::unix_now();
    forward::proxy(ctx, &mut ds, ex, &plan).await?;
    cache::settle(&hook, &ex.head, &r.zone, &r.key, &r.stale, request_time);
    drop(r.guard);
    Ok(())
}

/// A session without a client: what would be sent to one is dropped, the
/// response body is read to its end (through the tee).
struct Detached {
    conn: ConnInfo,
    buf: Vec<u8>,
    out: Vec<u8>,
}

/// Where the body goes: nowhere.
struct Discard;

impl AsyncWriteRent for Discard {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        (Ok(buf.bytes_init()), buf)
    }

    /// Not used: `Copy` writes one buffer at a time.
    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        (Err(std::io::ErrorKind::Unsupported.into()), buf)
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl ClientSession for Detached {
    fn conn(&self) -> &ConnInfo {
        &self.conn
    }

    fn tls(&self) -> Option<&TlsInfo> {
        None
    }

    fn connection_exhausted(&self, _: &ClientLimits) -> bool {
        false
    }

    fn log_line<'a>(&self, head: &'a RequestHead) -> Cow<'a, [u8]> {
        Cow::Borrowed(head.request_line())
    }

    /// Only GET is refreshed: there is no body.
    fn take_whole_body(&mut self, _: BodyKind) -> Option<BytesMut> {
        Some(BytesMut::new())
    }

    fn check_body_start(&self, _: BodyKind) -> Result<()> {
        Ok(())
    }

    fn upstream_buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    fn takes_interim(&self, _: &RequestHead) -> bool {
        false
    }

    async fn send_canned(
        &mut self,
        _: &WorkerCtx,
        _: &Canned<'_>,
        _: Duration,
    ) -> std::result::Result<(), IoFail> {
        Ok(())
    }

    async fn send_interim(
        &mut self,
        _: &WorkerCtx,
        _: &ResponseHead,
        _: &Redirect<'_>,
        _: Duration,
    ) -> std::result::Result<(), IoFail> {
        Ok(())
    }

    async fn send_response_head(
        &mut self,
        _: &WorkerCtx,
        r: &ResponseRewrite<'_>,
        _: &mut BytesMut,
        _: Duration,
    ) -> std::result::Result<(BodyKind, u64), IoFail> {
        Ok((r.meta.body, 0))
    }

    async fn forward_request_body(
        &mut self,
        _: &WorkerCtx,
        _: &RequestBody,
        _: UpSink<'_>,
        _: &ClientLimits,
        _: Duration,
    ) -> std::result::Result<(), BodyError> {
        Ok(())
    }

    /// The body is read to its end, its payload into the tee; whatever
    /// compression the phases chose is skipped (nobody reads the output).
    async fn forward_response_body(
        &mut self,
        ctx: &WorkerCtx,
        from: UpBody<'_>,
        body: BodyKind,
        _: ClientFraming,
        _: Option<&mut Encoder>,
        read_timeout: Duration,
        send_timeout: Duration,
        tee: Option<&Tee>,
    ) -> std::result::Result<u64, BodyError> {
        let copy = Copy {
            deadlines: &ctx.deadlines,
            kind: body,
            chunked_out: false,
            read_timeout,
            write_timeout: send_timeout,
            limit: None,
            trailers: Trailers::Drop,
            tee,
        };
        match from {
            UpBody::H1(conn) => {
                copy.run(&mut conn.stream, &mut conn.rbuf, &mut Discard, &mut self.out)
                    .await
            }
            UpBody::H2(recv) => {
                let mut none = BytesMut::new();
                let n = copy
                    .run(&mut *recv, &mut none, &mut Discard, &mut self.out)
                    .await?;
                // Trailers are read so the stream ends cleanly.
                let _ = recv.trailers(&ctx.deadlines, read_timeout).await;
                Ok(n)
            }
            UpBody::Local(src) => {
                let mut early = std::mem::take(&mut src.early);
                copy.run(src, &mut early, &mut Discard, &mut self.out).await
            }
        }
    }

    async fn tunnel(&mut self, _: &WorkerCtx, _: Switch<'_>) -> Result<Moved> {
        Err(ErrorKind::Internal.into())
    }
}
