//! A stored entry sent to a client: through the response phases of a
//! proxied response (the local-response seam), with `Age` and the status
//! field, after the client's own conditionals and ranges are weighed
//! against it (a 304, a 206, a 416).

use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;

use super::cache::status_line;
use super::forward::{self, Plan};
use super::local::{self, LocalBody, Part, Source};
use super::phases::Exchange;
use super::reply::{self, Reply};
use super::session::{ClientSession, UpBody};
use crate::cache::policy;
use crate::cache::{Cache, Entry, Status};
use crate::ctx::WorkerCtx;
use crate::error::{ErrorKind, Result};
use crate::http::{encode, ResponseHead};

/// Sends a stored entry through the response phases, with its `Age` and
/// the status field.
pub(super) async fn send_entry<S: ClientSession>(
    ctx: &Rc<WorkerCtx>,
    ds: &mut S,
    ex: &mut Exchange,
    plan: &Plan<'_>,
    cache: &Cache,
    e: &Entry,
    status: Status,
) -> Result<()> {
    if let Some(z) = ex.gen.metrics.caches.get(cache.zone) {
        z.count(ctx.id, status);
    }
    let (etag, lm) = (e.etag.as_deref(), e.last_modified.as_deref());
    // The client's own conditionals and ranges, against the stored
    // response (RFC 9110 §13.2.2, §14): a 304 or 412, a 206 of its bytes.
    let (head, meta, body) = match policy::precondition(&ex.head, etag, lm) {
        Some(412) => return Err(ErrorKind::Answer(412).into()),
        Some(s) => {
            let (h, m) = reshaped(e, s, &[], None).ok_or(ErrorKind::Internal)?;
            (h, m, LocalBody::Empty)
        }
        None => match ex.head.header("range").filter(|_| e.status == 200) {
            Some(r)
                if ex
                    .head
                    .header("if-range")
                    .is_none_or(|v| policy::if_range_holds(v, etag, lm)) =>
            {
                ranged(e, r, ex.request_id.as_bytes()).ok_or(ErrorKind::Internal)?
            }
            _ => {
                let (h, m) = local::parse_head(e.head.clone()).ok_or(ErrorKind::Internal)?;
                (h, m, LocalBody::Bytes(e.body.clone()))
            }
        },
    };
    let mut extra = Vec::with_capacity(48);
    encode::header(
        b"Age",
        itoa::Buffer::new().format(e.age(Instant::now())).as_bytes(),
        &mut extra,
    );
    status_line(cache, status, &mut extra);
    let local_port = ds.conn().port_text;
    let reply = Reply {
        location: plan.location,
        resp_lines: plan.resp_lines,
        extra: &extra,
        redirect: Some(forward::redirect_for(plan, ds.tls().is_some(), &local_port)),
        early: false,
        read_timeout: ex.gen.server(ex.server).limits.send_timeout,
        tee: None,
    };
    let mut source = Source::new(body);
    reply::send_response(ctx, ds, ex, &reply, &head, &meta, UpBody::Local(&mut source)).await
}

/// The stored head with another status, without the fields in `drop`
/// (and its Content-Length), with `add`, and with `length` if given.
fn reshaped(
    e: &Entry,
    status: u16,
    add: &[(&[u8], &[u8])],
    length: Option<u64>,
) -> Option<(ResponseHead, crate::http::ResponseMeta)> {
    let (old, _) = local::parse_head(e.head.clone())?;
    let mut out = Vec::with_capacity(old.buf.len() + 64);
    encode::status_line(status, b"", &mut out);
    for (n, v) in old.headers() {
        let replaced = add.iter().any(|(a, _)| a.eq_ignore_ascii_case(n));
        if !replaced && !n.eq_ignore_ascii_case(b"content-length") {
            encode::header(n, v, &mut out);
        }
    }
    for (n, v) in add {
        encode::header(n, v, &mut out);
    }
    if let Some(n) = length {
        encode::content_length(n, &mut out);
    }
    encode::end_head(&mut out);
    local::parse_head(Bytes::from(out))
}

/// A `Range` request answered from a stored 200: one range as a 206 with
/// Content-Range, several as `multipart/byteranges`, none that overlaps
/// as 416; a field that is no valid range set gets the whole response.
fn ranged(
    e: &Entry,
    field: &[u8],
    boundary: &[u8],
) -> Option<(ResponseHead, crate::http::ResponseMeta, LocalBody)> {
    use crate::files::http::{content_range, multipart, ranges, Ranges};
    let size = e.body.len() as u64;
    let slice = |a: u64, b: u64| e.body.slice(a as usize..b as usize);
    match ranges(field, size) {
        Ranges::Whole => {
            let (h, m) = local::parse_head(e.head.clone())?;
            Some((h, m, LocalBody::Bytes(e.body.clone())))
        }
        Ranges::Unsatisfiable => {
            let cr = format!("bytes */{size}");
            let (h, m) = reshaped(e, 416, &[(b"Content-Range", cr.as_bytes())], Some(0))?;
            Some((h, m, LocalBody::Empty))
        }
        Ranges::Some(v) if v.len() == 1 => {
            let (a, b) = v[0];
            let cr = content_range(a, b, size);
            let (h, m) = reshaped(e, 206, &[(b"Content-Range", cr.as_bytes())], Some(b - a))?;
            Some((h, m, LocalBody::Bytes(slice(a, b))))
        }
        Ranges::Some(v) => {
            let (stored, _) = local::parse_head(e.head.clone())?;
            let ctype = stored
                .header("content-type")
                .unwrap_or(b"application/octet-stream");
            let boundary = String::from_utf8_lossy(boundary).into_owned();
            let (heads, tail) = multipart(&boundary, ctype, &v, size);
            let mut parts = Vec::with_capacity(v.len() * 2 + 1);
            let mut total = tail.len() as u64;
            for (h, (a, b)) in heads.into_iter().zip(v) {
                total += h.len() as u64 + (b - a);
                parts.push(Part::Bytes(Bytes::from(h)));
                parts.push(Part::Bytes(slice(a, b)));
            }
            parts.push(Part::Bytes(Bytes::from(tail)));
            let ct = format!("multipart/byteranges; boundary={boundary}");
            let (h, m) = reshaped(e, 206, &[(b"Content-Type", ct.as_bytes())], Some(total))?;
            Some((h, m, LocalBody::Parts(parts)))
        }
    }
}
