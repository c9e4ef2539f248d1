//! Phase content for a static location (`crate::files`): `try_files`, the
//! file or directory the path names, its index or listing, then the
//! response through the local-response seam (`local.rs`) with the HTTP
//! rules of `files::http` and the precompressed siblings.

use std::borrow::Cow;
use std::rc::Rc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;

use super::local::{self, FileRead, LocalBody, Part};
use super::locate::Uri;
use super::phases::Exchange;
use super::session::ClientSession;
use crate::compress::{negotiate, Algorithm};
use crate::config::Location;
use crate::ctx::WorkerCtx;
use crate::error::{Error, ErrorKind, Result};
use crate::files::cache::{Cached, OpenCache};
use crate::files::http::{self, Conditions, Precondition, Ranges};
use crate::files::open::{self, Opened, Rep};
use crate::files::path::{self, Refused, Relative};
use crate::files::{Static, TryLast};
use crate::http::eq_ignore_case;
use crate::vars::{self, Mode};

/// Where a request goes after the content phase of its location.
pub(super) enum Next {
    /// A response was sent.
    Done,
    /// Routed anew with this URI (`try_files`' last entry, an error page).
    Uri(Uri),
    /// To the named location with this index, the URI unchanged.
    Named(usize),
}

/// `try_files` expanded for one request: the entries to look up, then the
/// fallback.
pub(super) struct Tries {
    files: Vec<Vec<u8>>,
    last: Last,
}

enum Last {
    Uri(Vec<u8>),
    Status(u16),
    Named(usize),
}

/// Expands a location's `try_files` with the request's variables.
pub(super) fn tries(st: &Static, vars: &vars::Request) -> Result<Option<Tries>> {
    let Some(t) = &st.try_files else {
        return Ok(None);
    };
    let expand = |t: &vars::Template| -> Result<Vec<u8>> {
        let mut out = Vec::new();
        t.expand(vars, Mode::Raw, &mut out)
            .map_err(|_| ErrorKind::Internal)?;
        Ok(out)
    };
    let files = t.files.iter().map(expand).collect::<Result<Vec<_>>>()?;
    let last = match &t.last {
        TryLast::Uri(u) => Last::Uri(expand(u)?),
        TryLast::Status(s) => Last::Status(*s),
        TryLast::Named(i) => Last::Named(*i),
        TryLast::Unresolved(..) => return Err(ErrorKind::Internal.into()),
    };
    Ok(Some(Tries { files, last }))
}

/// What the content phase of a static location works on.
pub(super) struct Ask<'a> {
    pub location: &'a Location,
    pub st: &'a Static,
    /// The current path (as routed or rewritten) and query, without `?`.
    pub path: &'a [u8],
    pub args: &'a [u8],
    /// An error page is being served: this status, the whole file, as a GET.
    pub error_status: Option<u16>,
    /// The location's expanded `response_headers` fields.
    pub resp_lines: &'a [u8],
}

pub(super) async fn serve<S: ClientSession>(
    ctx: &WorkerCtx,
    ds: &mut S,
    ex: &mut Exchange,
    a: &Ask<'_>,
    tries: Option<Tries>,
) -> Result<Next> {
    let Some(t) = tries else {
        return serve_path(ctx, ds, ex, a, a.path).await.map(|()| Next::Done);
    };
    for entry in &t.files {
        let want_dir = entry.last() == Some(&b'/');
        let Ok(rel) = relative(a, entry) else { continue };
        match lookup(ctx, a.st, &rel.path).await? {
            Found::File(c) if !want_dir => {
                return send_file(ctx, ds, ex, a, &rel, &c).await.map(|()| Next::Done);
            }
            Found::Dir if want_dir => return serve_path(ctx, ds, ex, a, entry).await.map(|()| Next::Done),
            _ => {}
        }
    }
    match t.last {
        Last::Uri(u) => {
            let (path, args) = match u.iter().position(|&b| b == b'?') {
                Some(q) => (u[..q].to_vec(), u[q + 1..].to_vec()),
                None => (u, a.args.to_vec()),
            };
            Ok(Next::Uri(Uri { path, args }))
        }
        Last::Status(s) => Err(ErrorKind::Answer(s).into()),
        Last::Named(i) => Ok(Next::Named(i)),
    }
}

/// The path below the location's directory for a URI path.
fn relative(a: &Ask, uri_path: &[u8]) -> std::result::Result<Relative, Refused> {
    let strip = if a.st.alias && uri_path.starts_with(a.location.path.as_bytes()) {
        a.location.path.len()
    } else {
        0
    };
    path::below(uri_path, strip, a.st.serve_hidden)
}

async fn serve_path<S: ClientSession>(
    ctx: &WorkerCtx,
    ds: &mut S,
    ex: &mut Exchange,
    a: &Ask<'_>,
    uri_path: &[u8],
) -> Result<()> {
    let rel = relative(a, uri_path).map_err(|r| match r {
        Refused::BadPath => ErrorKind::BadRequest("path names no file"),
        Refused::Hidden | Refused::NoSuchName => ErrorKind::NoFile,
        Refused::TooLong => ErrorKind::UriTooLong,
    })?;
    match lookup(ctx, a.st, &rel.path).await? {
        // `/file.html/`: a file is not a directory.
        Found::File(_) if rel.dir => Err(ErrorKind::NoFile.into()),
        Found::File(c) => send_file(ctx, ds, ex, a, &rel, &c).await,
        Found::Dir if !rel.dir => {
            // As nginx: a directory asked for without its slash is
            // redirected to it, the query kept.
            let mut to = uri_path.to_vec();
            to.push(b'/');
            if !a.args.is_empty() {
                to.push(b'?');
                to.extend_from_slice(a.args);
            }
            let body = Bytes::from(super::respond::error_body(301));
            let (head, meta) = local::head(
                301,
                &[(b"Content-Type", b"text/plain"), (b"Location", &to)],
                Some(body.len() as u64),
            );
            local::respond(
                ctx,
                ds,
                ex,
                a.location,
                a.resp_lines,
                &head,
                &meta,
                LocalBody::Bytes(body),
            )
            .await
        }
        Found::Dir => {
            for name in &a.st.index {
                let index = rel.join(name);
                if let Found::File(c) = lookup(ctx, a.st, &index.path).await? {
                    return send_file(ctx, ds, ex, a, &index, &c).await;
                }
            }
            if a.st.autoindex {
                return listing(ctx, ds, ex, a, &rel, uri_path).await;
            }
            Err(ErrorKind::Forbidden.into())
        }
        Found::Missing => Err(ErrorKind::NoFile.into()),
        Found::Forbidden => Err(ErrorKind::Forbidden.into()),
        Found::TooLong => Err(ErrorKind::UriTooLong.into()),
    }
}

enum Found {
    File(Rc<Cached>),
    Dir,
    Missing,
    Forbidden,
    TooLong,
}

/// A lookup through the worker's open-file cache, else the helpers.
async fn lookup(ctx: &WorkerCtx, st: &Static, rel: &[u8]) -> Result<Found> {
    let how = st.symlinks as u8 | (u8::from(st.precompressed) << 4);
    let key = OpenCache::key(&st.dir, rel, how);
    let now = Instant::now();
    let cached = match ctx.files.get(&key, now) {
        Some(c) => c,
        None => match open::open(&st.dir, rel, st.symlinks, st.precompressed).await {
            Err(open::Busy) => return Err(ErrorKind::FilesBusy.into()),
            Ok(Err(e)) => return Err(Error::io(ErrorKind::Internal, e)),
            Ok(Ok(Opened::File(main, sibs))) => {
                let c = Rc::new(Cached::File(main, sibs));
                ctx.files.put(key, c.clone(), now);
                c
            }
            Ok(Ok(Opened::Dir(m))) => {
                let c = Rc::new(Cached::Dir(m));
                ctx.files.put(key, c.clone(), now);
                c
            }
            Ok(Ok(Opened::Missing)) => return Ok(Found::Missing),
            Ok(Ok(Opened::Forbidden)) => return Ok(Found::Forbidden),
            Ok(Ok(Opened::TooLong)) => return Ok(Found::TooLong),
        },
    };
    Ok(match &*cached {
        Cached::File(..) => Found::File(cached),
        Cached::Dir(_) => Found::Dir,
    })
}

/// The precompressed codings, in the order offered when a client takes
/// several equally: brotli and zstd make smaller files than gzip.
const SIBLINGS: [Algorithm; 3] = [Algorithm::Br, Algorithm::Zstd, Algorithm::Gzip];

async fn send_file<S: ClientSession>(
    ctx: &WorkerCtx,
    ds: &mut S,
    ex: &mut Exchange,
    a: &Ask<'_>,
    rel: &Relative,
    c: &Cached,
) -> Result<()> {
    let Cached::File(main, sibs) = c else {
        return Err(ErrorKind::Internal.into());
    };
    let ctype = content_type(&rel.path, &a.st.default_type);
    let offered: Vec<Algorithm> = SIBLINGS
        .into_iter()
        .filter(|&g| sibs[g as usize].is_some())
        .collect();
    let encoding = if offered.is_empty() {
        None
    } else {
        let fields = ex
            .head
            .headers()
            .filter(|(n, _)| eq_ignore_case(n, b"accept-encoding"))
            .map(|(_, v)| v);
        negotiate::choose(&offered, fields)
    };
    let rep: &Rep = match encoding {
        Some(g) => sibs[g as usize].as_ref().unwrap_or(main),
        None => main,
    };
    let size = rep.meta.size;
    let etag: &str = &rep.etag;

    // The status and the byte ranges sent.
    let (status, ranges) = match a.error_status {
        Some(s) => (s, None),
        None => {
            let method = ex.head.method();
            if method != b"GET" && method != b"HEAD" {
                return send_short(ctx, ds, ex, a, 405, &[(b"Allow", b"GET, HEAD")]).await;
            }
            let h = |n: &str| ex.head.header(n);
            let conds = Conditions {
                if_match: h("if-match"),
                if_none_match: h("if-none-match"),
                if_modified_since: h("if-modified-since"),
                if_unmodified_since: h("if-unmodified-since"),
            };
            match http::precondition(&conds, etag, rep.meta.mtime) {
                Precondition::Failed => return send_short(ctx, ds, ex, a, 412, &[]).await,
                Precondition::NotModified => (304, None),
                Precondition::Proceed => match h("range") {
                    Some(r)
                        if h("if-range").is_none_or(|v| http::if_range_holds(v, etag, rep.meta.mtime)) =>
                    {
                        match http::ranges(r, size) {
                            Ranges::Whole => (200, None),
                            Ranges::Some(v) => (206, Some(v)),
                            Ranges::Unsatisfiable => {
                                let cr = format!("bytes */{size}");
                                return send_short(ctx, ds, ex, a, 416, &[(b"Content-Range", cr.as_bytes())])
                                    .await;
                            }
                        }
                    }
                    _ => (200, None),
                },
            }
        }
    };

    // Borrowed where the value already exists; the few made here owned.
    let mut fields: Vec<(&[u8], Cow<[u8]>)> = Vec::with_capacity(10);
    let multipart = ranges.as_ref().is_some_and(|v| v.len() > 1);
    let boundary = if multipart {
        String::from_utf8_lossy(ex.request_id.as_bytes()).into_owned()
    } else {
        String::new()
    };
    match ranges.as_deref() {
        Some([(a0, b0)]) => {
            fields.push((b"Content-Type", Cow::Borrowed(ctype.as_bytes())));
            fields.push((
                b"Content-Range",
                http::content_range(*a0, *b0, size).into_bytes().into(),
            ));
        }
        Some(_) => fields.push((
            b"Content-Type",
            format!("multipart/byteranges; boundary={boundary}")
                .into_bytes()
                .into(),
        )),
        None => fields.push((b"Content-Type", Cow::Borrowed(ctype.as_bytes()))),
    }
    if let Some(g) = encoding {
        fields.push((b"Content-Encoding", Cow::Borrowed(g.name().as_bytes())));
    }
    if !offered.is_empty() {
        fields.push((b"Vary", Cow::Borrowed(b"Accept-Encoding")));
    }
    if a.error_status.is_none() {
        fields.push((b"Last-Modified", Cow::Borrowed(rep.last_modified.as_bytes())));
        fields.push((b"ETag", Cow::Borrowed(etag.as_bytes())));
        fields.push((b"Accept-Ranges", Cow::Borrowed(b"bytes")));
        if let Some(e) = a.st.expires {
            let (expires, cc) = http::expiry(SystemTime::now(), e);
            fields.push((b"Expires", expires.into_bytes().into()));
            if a.st.cache_control.is_none() {
                fields.push((b"Cache-Control", cc.into_bytes().into()));
            }
        }
        if let Some(cc) = &a.st.cache_control {
            fields.push((b"Cache-Control", Cow::Borrowed(cc.as_bytes())));
        }
    }
    let piece = |offset: u64, len: u64| -> Part {
        match &rep.bytes {
            Some(b) => Part::Bytes(b.slice(offset as usize..(offset + len) as usize)),
            None => Part::File {
                file: file_read(ctx, rep),
                offset,
                len,
            },
        }
    };
    let (body, length) = match (status, ranges) {
        (304, _) => (LocalBody::Empty, None),
        (_, None) => (LocalBody::Parts(vec![piece(0, size)]), Some(size)),
        (_, Some(v)) if v.len() == 1 => {
            let (s, e) = v[0];
            (LocalBody::Parts(vec![piece(s, e - s)]), Some(e - s))
        }
        (_, Some(v)) => {
            let (heads, tail) = http::multipart(&boundary, ctype.as_bytes(), &v, size);
            let mut parts = Vec::with_capacity(v.len() * 2 + 1);
            let mut total = tail.len() as u64;
            for (h, (s, e)) in heads.into_iter().zip(v) {
                total += h.len() as u64 + (e - s);
                parts.push(Part::Bytes(Bytes::from(h)));
                parts.push(piece(s, e - s));
            }
            parts.push(Part::Bytes(Bytes::from(tail)));
            (LocalBody::Parts(parts), Some(total))
        }
    };
    let borrowed: Vec<(&[u8], &[u8])> = fields.iter().map(|(n, v)| (*n, v.as_ref())).collect();
    let (head, meta) = local::head(status, &borrowed, length);
    local::respond(ctx, ds, ex, a.location, a.resp_lines, &head, &meta, body).await
}

/// How this worker reads a large file: io_uring reads of a duplicate of
/// its descriptor, or the helper threads' on the epoll driver.
fn file_read(ctx: &WorkerCtx, rep: &Rep) -> FileRead {
    if ctx.uring {
        if let Ok(f) = rep.file.try_clone().and_then(monoio::fs::File::from_std) {
            return FileRead::Uring(Rc::new(f));
        }
    }
    FileRead::Helper(rep.file.clone())
}

/// A short answer of the static phase itself (405, 412, 416) with its fields.
async fn send_short<S: ClientSession>(
    ctx: &WorkerCtx,
    ds: &mut S,
    ex: &mut Exchange,
    a: &Ask<'_>,
    status: u16,
    extra: &[(&[u8], &[u8])],
) -> Result<()> {
    let body = Bytes::from(super::respond::error_body(status));
    let mut fields: Vec<(&[u8], &[u8])> = vec![(b"Content-Type", b"text/plain")];
    fields.extend_from_slice(extra);
    let (head, meta) = local::head(status, &fields, Some(body.len() as u64));
    local::respond(
        ctx,
        ds,
        ex,
        a.location,
        a.resp_lines,
        &head,
        &meta,
        LocalBody::Bytes(body),
    )
    .await
}

/// The media type by the file's extension (the `mime_guess` table), else
/// `default_type`.
fn content_type<'a>(rel: &[u8], default: &'a str) -> std::borrow::Cow<'a, str> {
    let name = rel.rsplit(|&b| b == b'/').next().unwrap_or(rel);
    let ext = match name.iter().rposition(|&b| b == b'.') {
        Some(i) if i > 0 => &name[i + 1..],
        _ => return default.into(),
    };
    match std::str::from_utf8(ext)
        .ok()
        .and_then(|e| mime_guess::from_ext(e).first_raw())
    {
        // Text types carry no charset here, as nginx's defaults.
        Some(t) => t.into(),
        None => default.into(),
    }
}

/// `autoindex`: an HTML listing of the directory.
async fn listing<S: ClientSession>(
    ctx: &WorkerCtx,
    ds: &mut S,
    ex: &mut Exchange,
    a: &Ask<'_>,
    rel: &Relative,
    uri_path: &[u8],
) -> Result<()> {
    let method = ex.head.method();
    if a.error_status.is_none() && method != b"GET" && method != b"HEAD" {
        return send_short(ctx, ds, ex, a, 405, &[(b"Allow", b"GET, HEAD")]).await;
    }
    let (entries, more) = match open::list(&a.st.dir, &rel.path, a.st.symlinks).await {
        Err(open::Busy) => return Err(ErrorKind::FilesBusy.into()),
        Ok(Err(e)) => return Err(Error::io(ErrorKind::Forbidden, e)),
        Ok(Ok(v)) => v,
    };
    let mut html = Vec::with_capacity(512 + entries.len() * 96);
    let title = escape(uri_path);
    html.extend_from_slice(b"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of ");
    html.extend_from_slice(&title);
    html.extend_from_slice(b"</title></head>\n<body><h1>Index of ");
    html.extend_from_slice(&title);
    html.extend_from_slice(b"</h1><hr><pre><a href=\"../\">../</a>\n");
    for e in entries
        .iter()
        .filter(|e| a.st.serve_hidden || !e.name.starts_with(b"."))
    {
        let mut href = Vec::new();
        path::encode(&e.name, &mut href);
        let mut shown = e.name.clone();
        if e.dir {
            href.push(b'/');
            shown.push(b'/');
        }
        html.extend_from_slice(b"<a href=\"");
        html.extend_from_slice(&escape(&href));
        html.extend_from_slice(b"\">");
        html.extend_from_slice(&escape(&shown));
        html.extend_from_slice(b"</a> ");
        html.extend_from_slice(httpdate::fmt_http_date(e.mtime).as_bytes());
        html.push(b' ');
        if e.dir {
            html.push(b'-');
        } else {
            html.extend_from_slice(itoa::Buffer::new().format(e.size).as_bytes());
        }
        html.push(b'\n');
    }
    if more {
        html.extend_from_slice(
            format!("(only the first {} entries are listed)\n", open::MAX_LISTED).as_bytes(),
        );
    }
    html.extend_from_slice(b"</pre><hr></body></html>\n");
    let status = a.error_status.unwrap_or(200);
    let body = Bytes::from(html);
    let (head, meta) = local::head(
        status,
        &[(b"Content-Type", b"text/html; charset=utf-8")],
        Some(body.len() as u64),
    );
    local::respond(
        ctx,
        ds,
        ex,
        a.location,
        a.resp_lines,
        &head,
        &meta,
        LocalBody::Bytes(body),
    )
    .await
}

/// `s` with HTML's special characters escaped (invalid UTF-8 replaced).
fn escape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for c in String::from_utf8_lossy(s).chars() {
        match c {
            '&' => out.extend_from_slice(b"&amp;"),
            '<' => out.extend_from_slice(b"&lt;"),
            '>' => out.extend_from_slice(b"&gt;"),
            '"' => out.extend_from_slice(b"&quot;"),
            '\'' => out.extend_from_slice(b"&#39;"),
            c => {
                let mut b = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out
}

/// `intercept_errors`: this upstream status is replaced by an error page.
pub(super) fn intercepts(location: &Location, status: u16) -> bool {
    location.intercept_errors
        && status >= 300
        && location
            .error_pages
            .as_ref()
            .is_some_and(|p| p.get(status).is_some())
}
