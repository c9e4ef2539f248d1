//! Compression of response bodies: a stage of the response phases that any
//! content phase hands its response through (`proxy_pass` today; static
//! files can use the same [`decide`], [`Edit`] and [`Encoder`]).
//!
//! - `config.rs`: the `compress = { ... }` table as written, its checks and
//!   the compiled [`Compress`] plan, built once at load;
//! - [`decide`] (here): whether a response may be compressed at all (status,
//!   `Content-Encoding`, `Cache-Control: no-transform`, type, length), and
//!   which coding its client takes (`negotiate.rs`);
//! - [`Edit`] (`headers.rs`): what that changes in the response head
//!   (`Content-Encoding`, `Vary`, a weak `ETag`, no `Content-Length`);
//! - [`Encoder`] (`encoder.rs`): the streaming codec the body copy feeds.
//!
//! A response that is not compressed costs one branch on a `None` plan.

mod config;
mod encoder;
mod headers;
pub mod negotiate;

pub use config::{check, RawCompress, RawCompressSetting, RawSize, Report};
pub use encoder::Encoder;
pub use headers::Edit;
pub use negotiate::choose;

use crate::http::{eq_ignore_case, list_items, BodyKind, RequestHead, ResponseHead};

/// A content coding ringway can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Zstd = 0,
    Br = 1,
    Gzip = 2,
}

impl Algorithm {
    pub const COUNT: usize = 3;
    pub const NAMES: [&'static str; 3] = ["zstd", "br", "gzip"];

    /// The name as written in the config and in `Content-Encoding`.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    pub fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "zstd" => Some(Algorithm::Zstd),
            "br" => Some(Algorithm::Br),
            "gzip" => Some(Algorithm::Gzip),
            _ => None,
        }
    }

    /// A coding named in `Accept-Encoding` (case-insensitive; `x-gzip` is
    /// `gzip`, RFC 9110 §8.4.1.3).
    pub fn from_coding(name: &[u8]) -> Option<Algorithm> {
        [
            (&b"zstd"[..], Algorithm::Zstd),
            (b"br", Algorithm::Br),
            (b"gzip", Algorithm::Gzip),
            (b"x-gzip", Algorithm::Gzip),
        ]
        .into_iter()
        .find(|(n, _)| eq_ignore_case(n, name))
        .map(|(_, a)| a)
    }
}

/// `level = { gzip = 5, br = 4, zstd = 3 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    /// 1 to 9 (nginx's `gzip_comp_level`). Default 5.
    pub gzip: u32,
    /// 0 to 11. Default 4.
    pub br: u32,
    /// 1 to 19. Default 3.
    pub zstd: i32,
}

/// A `types` entry: `text/*`, `application/json`, or `*` (any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypePattern {
    Any,
    /// `text/*`: stored as `text/`.
    Prefix(String),
    Exact(String),
}

impl TypePattern {
    /// `media` is the lower-cased `type/subtype`, without parameters.
    fn matches(&self, media: &[u8]) -> bool {
        match self {
            TypePattern::Any => true,
            TypePattern::Prefix(p) => media.starts_with(p.as_bytes()),
            TypePattern::Exact(t) => media == t.as_bytes(),
        }
    }
}

/// The compiled `compress` of a location (its own, or its server's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compress {
    /// Codings in the server's order of preference among equal q-values.
    pub algorithms: Vec<Algorithm>,
    pub types: Vec<TypePattern>,
    /// Bodies whose length is known and smaller are sent as they are.
    pub min_length: u64,
    pub levels: Levels,
}

/// Statuses whose responses are never compressed: interim ones, those
/// without content (204, 205, 304) and partial content (206, whose ranges
/// are of the unencoded representation).
fn status_skipped(status: u16) -> bool {
    status < 200 || matches!(status, 204 | 205 | 206 | 304)
}

/// The media type of a `Content-Type` value, lower-cased into `buf`.
fn media_type<'b>(value: &[u8], buf: &'b mut [u8; 128]) -> Option<&'b [u8]> {
    let media = value
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if media.is_empty() || media.len() > buf.len() {
        return None;
    }
    let out = &mut buf[..media.len()];
    out.copy_from_slice(media);
    out.make_ascii_lowercase();
    Some(out)
}

/// What compression does to one response: `None` when it does not apply
/// (nothing in the head changes), else the edit, whose `encoding` is `None`
/// when the client takes no coding offered (the response still varies by
/// `Accept-Encoding`, which `Vary` tells caches).
///
/// `body` is the response's framing as the client would get it without
/// compression (`Empty` for a HEAD request); a HEAD response's length is
/// read from its `Content-Length`, so that it gets what its GET would.
pub fn decide(
    plan: &Compress,
    req: &RequestHead,
    head_request: bool,
    resp: &ResponseHead,
    body: BodyKind,
) -> Option<Edit> {
    if status_skipped(resp.status) {
        return None;
    }
    let mut typed = false;
    let mut head_length: Option<u64> = None;
    for (name, value) in resp.headers() {
        if eq_ignore_case(name, b"content-encoding") {
            // Already encoded (or a coding this proxy does not know): as is.
            if !value.trim_ascii().is_empty() {
                return None;
            }
        } else if eq_ignore_case(name, b"cache-control") {
            // RFC 9111 §5.2.2.6: no transformation of the content.
            if list_items(value).any(|d| eq_ignore_case(d, b"no-transform")) {
                return None;
            }
        } else if eq_ignore_case(name, b"content-type") {
            let mut buf = [0u8; 128];
            let media = media_type(value, &mut buf)?;
            // gRPC frames its own messages (and compresses them itself).
            if media.starts_with(b"application/grpc") {
                return None;
            }
            typed = plan.types.iter().any(|t| t.matches(media));
        } else if head_request && eq_ignore_case(name, b"content-length") {
            head_length = std::str::from_utf8(value.trim_ascii())
                .ok()
                .and_then(|s| s.parse().ok());
        }
    }
    if !typed {
        return None;
    }
    let length = match body {
        BodyKind::Length(n) => Some(n),
        BodyKind::Empty if head_request => head_length,
        // Nothing to compress.
        BodyKind::Empty => return None,
        BodyKind::Chunked | BodyKind::UntilClose => None,
    };
    if length.is_some_and(|n| n == 0 || n < plan.min_length) {
        return None;
    }
    let accept = req
        .headers()
        .filter(|(n, _)| eq_ignore_case(n, b"accept-encoding"))
        .map(|(_, v)| v);
    Some(Edit {
        encoding: choose(&plan.algorithms, accept),
    })
}
