//! Phases response_filter and response_body_filter, for any response,
//! proxied or made here (`local.rs`, cache hits): the head the client gets
//! (framing, `response_headers`, HSTS, compression's edits), then the
//! body, over whichever protocol the client speaks.

use std::time::Duration;

use super::body::BodyError;
use super::phases::{hsts, must_close, Exchange};
use super::rewrite::{self, ClientFraming, Redirect, ResponseRewrite};
use super::session::{ClientSession, UpBody};
use crate::compress;
use crate::config::Location;
use crate::ctx::WorkerCtx;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{BodyKind, ResponseHead, ResponseMeta};
use crate::io::IoFail;

/// What the response phases need besides the head and the body: the
/// location's rules, what ringway adds, how redirects are mapped.
pub(super) struct Reply<'a> {
    pub(super) location: &'a Location,
    /// `response_headers` fields, expanded for this request.
    pub(super) resp_lines: &'a [u8],
    /// Whole lines ringway adds (`sticky`'s Set-Cookie).
    pub(super) extra: &'a [u8],
    /// How an upstream's redirects are mapped (none for a local response).
    pub(super) redirect: Option<Redirect<'a>>,
    /// The upstream answered before the request body was sent: the client
    /// connection cannot carry on.
    pub(super) early: bool,
    /// How long one read of the body may take.
    pub(super) read_timeout: Duration,
    /// Where a miss's head and body are copied for the cache.
    pub(super) tee: Option<&'a crate::cache::Tee>,
}

/// The response phases for any response, proxied or local: the head the
/// client gets (framing, header rules, HSTS, compression's edits), then
/// the body.
pub(super) async fn send_response<S: ClientSession>(
    ctx: &WorkerCtx,
    ds: &mut S,
    ex: &mut Exchange,
    reply: &Reply<'_>,
    head: &ResponseHead,
    meta: &ResponseMeta,
    mut from: UpBody<'_>,
) -> Result<()> {
    let gen = ex.gen.clone();
    let limits = &gen.server(ex.server).limits;
    let location = reply.location;
    // The client connection stays open only if this exchange ends cleanly.
    ex.close = reply.early || must_close(ctx, ds, ex);
    let head_request = ex.head.method() == b"HEAD";
    // A HEAD gets the head its GET would (a local response's framing is a
    // GET's), and no body.
    let body = if head_request { BodyKind::Empty } else { meta.body };
    // Stage: compress (response_body_filter), when the location has it and
    // the response and client allow it.
    let edit = location
        .compress
        .as_deref()
        .and_then(|c| compress::decide(c, &ex.head, head_request, head, body).map(|e| (c, e)));
    let encoding = match edit {
        Some((c, compress::Edit { encoding: Some(alg) })) if body != BodyKind::Empty => Some((c, alg)),
        _ => None,
    };
    // A compressed body's length is not known before it ends.
    let body_kind = match (&encoding, body) {
        (Some(_), BodyKind::Length(_)) => BodyKind::Chunked,
        (_, kind) => kind,
    };
    let framing = rewrite::client_framing(body_kind, ex.head.version);
    ex.close |= framing == ClientFraming::Close;

    // `response_headers` (nginx's `add_header` rule of which statuses).
    let rules = location.response_headers.as_deref();
    let applies = rules.is_some_and(|h| h.applies(head.status));

    // Phase: send the response head (the session may send the first body
    // bytes with it).
    let rw = ResponseRewrite {
        head,
        meta,
        framing,
        head_request,
        close: ex.close,
        client_version: ex.head.version,
        extra: reply.extra,
        hidden: rules.map_or(&[][..], |h| &h.removed),
        replaced: if applies {
            rules.map_or(&[][..], |h| &h.replaced)
        } else {
            &[]
        },
        rules: if applies { reply.resp_lines } else { b"" },
        redirect: reply.redirect.as_ref(),
        hsts: hsts(&gen, ds, ex.server),
        compress: edit.map(|(_, e)| e),
        request_id: ex.request_id.as_bytes(),
    };
    // The cache tee sees the upstream's head, and the body bytes a session
    // sends with the head as well as the rest.
    if let Some(t) = reply.tee {
        t.set_head(head);
        if let BodyKind::Length(n) = body {
            let early = from.head_buf();
            t.pending(&early[..early.len().min(n as usize)]);
        }
    }
    let (body_left, first) = ds
        .send_response_head(ctx, &rw, from.head_buf(), limits.send_timeout)
        .await
        .map_err(|_| Error::new(ErrorKind::ClientGone))?;
    if let Some(t) = reply.tee {
        t.commit(first as usize);
    }
    ex.status = head.status;
    ex.body_bytes = first;
    // The codec's state (a few hundred KiB) is made with the first body
    // bytes (see `compress::Encoder`): made before the head's write and the
    // upstream's first read, it would be held through those waits by every
    // response in flight, which on io_uring is all of them.
    let mut encoder = encoding.map(|(c, alg)| Box::new(compress::Encoder::new(alg, &c.levels)));

    // Phase: forward_response_body.
    match ds
        .forward_response_body(
            ctx,
            from,
            body_left,
            framing,
            encoder.as_deref_mut(),
            reply.read_timeout,
            limits.send_timeout,
            reply.tee,
        )
        .await
    {
        Ok(n) => ex.body_bytes += n,
        Err(BodyError::Write(_)) => return Err(ErrorKind::ClientGone.into()),
        Err(BodyError::Read(Some(IoFail::Timeout))) => return Err(ErrorKind::ReadTimeout.into()),
        Err(_) => return Err(ErrorKind::UpstreamTruncated.into()),
    }

    Ok(())
}
