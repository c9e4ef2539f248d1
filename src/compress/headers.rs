//! What compression changes in a response head, written over the same
//! `FieldSink` as the rest of the response policy (`proxy/rewrite.rs`), so
//! HTTP/1.1 and HTTP/2 clients get the same fields.
//!
//! - `Vary` gains `Accept-Encoding` whenever the response could be
//!   compressed, whether or not this client's is (a cache must not give a
//!   gzip body to a client that did not ask for one, nor the reverse):
//!   merged into the upstream's `Vary` (one field, no repeat), and left
//!   alone when that is `*` or already names it;
//! - when a coding is applied: `Content-Encoding` names it, `Content-Length`
//!   is dropped (the body is chunked or HTTP/2-framed; a HEAD answer loses
//!   it too, as its GET would), and a strong `ETag` becomes weak, as nginx
//!   does: the bytes differ from the upstream's, and RFC 9110 §8.8.3 ties a
//!   strong tag to the bytes.

use super::Algorithm;
use crate::http::{eq_ignore_case, list_items, ResponseHead};
use crate::proxy::rewrite::FieldSink;

/// The head edit for one response (from [`super::decide`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edit {
    /// The coding applied; `None`: the body goes as it is, with `Vary`.
    pub encoding: Option<Algorithm>,
}

fn vary_fields(head: &ResponseHead) -> impl Iterator<Item = &[u8]> + '_ {
    head.headers()
        .filter(|(n, _)| eq_ignore_case(n, b"vary"))
        .map(|(_, v)| v)
}

/// The upstream's `Vary` already covers `Accept-Encoding` (or everything).
fn vary_covers(head: &ResponseHead) -> bool {
    vary_fields(head)
        .flat_map(list_items)
        .any(|i| i == b"*" || eq_ignore_case(i, b"accept-encoding"))
}

impl Edit {
    /// Writes one upstream field as the client gets it; false when the
    /// field is not this edit's business (the caller writes it as is).
    pub fn field<S: FieldSink>(&self, head: &ResponseHead, name: &[u8], value: &[u8], out: &mut S) -> bool {
        if eq_ignore_case(name, b"vary") {
            if vary_covers(head) {
                return false;
            }
            // Several Vary fields are one list (RFC 9110 §5.3): the first
            // carries them all, with Accept-Encoding; the others go.
            let first = vary_fields(head).next().map(<[u8]>::as_ptr);
            if first == Some(value.as_ptr()) {
                let items = vary_fields(head).filter(|v| !v.trim_ascii().is_empty());
                out.list(b"Vary", Some(items), b"Accept-Encoding");
            }
            return true;
        }
        if self.encoding.is_none() {
            return false;
        }
        if eq_ignore_case(name, b"content-length") || eq_ignore_case(name, b"content-encoding") {
            return true;
        }
        if eq_ignore_case(name, b"etag") && value.trim_ascii_start().starts_with(b"\"") {
            let mut weak = Vec::with_capacity(value.len() + 2);
            weak.extend_from_slice(b"W/");
            weak.extend_from_slice(value.trim_ascii_start());
            out.field(name, &weak);
            return true;
        }
        false
    }

    /// The fields this edit adds after the upstream's.
    pub fn finish<S: FieldSink>(&self, head: &ResponseHead, out: &mut S) {
        if vary_fields(head).next().is_none() {
            out.field(b"Vary", b"Accept-Encoding");
        }
        if let Some(alg) = self.encoding {
            out.field(b"Content-Encoding", alg.name().as_bytes());
        }
    }
}
