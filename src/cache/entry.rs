//! Stored entries made from upstream heads: which fields a stored head
//! keeps, the freshness facts read from it once (RFC 9111 through
//! `policy.rs`), and the refresh of a stored head by a 304 (§4.3.4). No
//! I/O; the wall-clock times are handed in.

use std::time::{Instant, SystemTime};

use bytes::Bytes;

use super::policy::{self, Rules};
use super::store::Entry;
use crate::http::parse::{parse_response, Parsed};
use crate::http::{encode, RequestHead, ResponseHead};

/// The most fields a stored head may have.
const MAX_FIELDS: usize = 200;

/// A whole stored head, parsed.
fn parse(bytes: Bytes) -> Option<ResponseHead> {
    match parse_response(&bytes, MAX_FIELDS).ok()? {
        Parsed::Complete(mut h, n) if n == bytes.len() => {
            h.buf = bytes;
            Some(h)
        }
        _ => None,
    }
}

/// Fields a stored head never carries: hop-by-hop ones (RFC 9110 §7.6.1),
/// framing (the stored body has a length), Age (recomputed on every hit)
/// and Set-Cookie (one client's cookie is no other's).
pub fn kept_field(name: &[u8], connection: &[&[u8]]) -> bool {
    const DROPPED: [&str; 11] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "age",
        "set-cookie",
        "proxy-authenticate",
    ];
    !DROPPED.iter().any(|d| name.eq_ignore_ascii_case(d.as_bytes()))
        && !connection.iter().any(|c| name.eq_ignore_ascii_case(c))
}

/// A stored entry from an upstream head and its whole body.
pub fn build(
    req: &RequestHead,
    head: &ResponseHead,
    body: Bytes,
    rules: &Rules,
    request_time: u64,
    response_time: u64,
) -> Option<Entry> {
    let names = policy::vary_names(head)?;
    let connection: Vec<&[u8]> = policy::named(head.headers(), "connection")
        .flat_map(policy::split_list)
        .collect();
    let mut out = Vec::with_capacity(head.buf.len() + 64);
    encode::status_line(head.status, head.reason(), &mut out);
    let mut has_date = false;
    for (n, v) in head.headers() {
        if kept_field(n, &connection) {
            has_date |= n.eq_ignore_ascii_case(b"date");
            encode::header(n, v, &mut out);
        }
    }
    if !has_date {
        let date =
            httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(response_time));
        encode::header(b"Date", date.as_bytes(), &mut out);
    }
    encode::content_length(body.len() as u64, &mut out);
    encode::end_head(&mut out);
    let cc = if rules.ignore_cache_control {
        policy::Directives::default()
    } else {
        policy::response_directives(head)
    };
    let values = policy::vary_values(req, &names);
    Some(Entry {
        head: Bytes::from(out),
        body,
        status: head.status,
        stored: Instant::now(),
        initial_age: policy::initial_age(head, request_time, response_time),
        lifetime: policy::lifetime(head, response_time, rules),
        vary: names.into_iter().zip(values).collect(),
        etag: head.header("etag").map(Bytes::copy_from_slice),
        last_modified: head.header("last-modified").map(Bytes::copy_from_slice),
        no_cache: cc.no_cache,
        // §5.2.2.10: s-maxage implies proxy-revalidate for a shared cache.
        must_revalidate: cc.must_revalidate || cc.proxy_revalidate || cc.s_maxage.is_some(),
        stale_if_error: cc.stale_if_error,
        stale_while_revalidate: cc.stale_while_revalidate,
    })
}

/// The entry a 304 refreshes (RFC 9111 §4.3.4): the stored head with each
/// field the 304 carries replaced by the 304's, the same body, new times.
pub fn refreshed(
    req: &RequestHead,
    e: &Entry,
    not_modified: &ResponseHead,
    rules: &Rules,
    request_time: u64,
    response_time: u64,
) -> Option<Entry> {
    let old = parse(e.head.clone())?;
    let connection: Vec<&[u8]> = policy::named(not_modified.headers(), "connection")
        .flat_map(policy::split_list)
        .collect();
    let new: Vec<(&[u8], &[u8])> = not_modified
        .headers()
        .filter(|(n, _)| kept_field(n, &connection))
        .collect();
    let mut out = Vec::with_capacity(old.buf.len() + not_modified.buf.len());
    encode::status_line(old.status, old.reason(), &mut out);
    for (n, v) in old.headers() {
        if !new.iter().any(|(m, _)| m.eq_ignore_ascii_case(n)) {
            encode::header(n, v, &mut out);
        }
    }
    for (n, v) in &new {
        encode::header(n, v, &mut out);
    }
    encode::end_head(&mut out);
    let merged = parse(Bytes::from(out))?;
    build(req, &merged, e.body.clone(), rules, request_time, response_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(text: &str) -> ResponseHead {
        parse(Bytes::from(text.replace('\n', "\r\n") + "\r\n\r\n")).unwrap()
    }

    fn req() -> RequestHead {
        let raw = "GET / HTTP/1.1\r\nHost: h\r\nAccept-Language: en\r\n\r\n";
        let limits = crate::http::parse::HeadLimits {
            max_request_line: 8192,
            max_header_size: 65536,
            max_headers: 100,
        };
        match crate::http::parse::parse_request(raw.as_bytes(), &limits).unwrap() {
            Parsed::Complete(parts, _) => parts.into_head(Bytes::from(raw)),
            Parsed::Partial => panic!("partial"),
        }
    }

    #[test]
    fn a_stored_head_drops_hop_by_hop_fields_and_gets_its_length() {
        let h = resp(
            "HTTP/1.1 200 OK\nDate: Sun, 06 Nov 1994 08:49:37 GMT\nConnection: close, X-Hop\nX-Hop: 1\n\
Transfer-Encoding: chunked\nAge: 5\nSet-Cookie: a=1\nCache-Control: max-age=60\nVary: Accept-Language\nETag: \"1\"",
        );
        let e = build(
            &req(),
            &h,
            Bytes::from_static(b"hello"),
            &Rules::default(),
            784_111_777,
            784_111_777,
        )
        .unwrap();
        let text = String::from_utf8(e.head.to_vec()).unwrap();
        for gone in ["Connection", "X-Hop", "Transfer-Encoding", "Age", "Set-Cookie"] {
            assert!(!text.contains(gone), "{gone} in {text}");
        }
        assert!(text.ends_with("Content-Length: 5\r\n\r\n"), "{text}");
        assert_eq!((e.lifetime, e.initial_age), (60, 5));
        assert_eq!(
            e.vary,
            vec![("accept-language".into(), Some(b"en".to_vec().into_boxed_slice()))]
        );
        assert_eq!(e.etag.as_deref(), Some(&b"\"1\""[..]));
    }

    #[test]
    fn a_304_replaces_the_fields_it_carries_and_keeps_the_rest() {
        let h = resp("HTTP/1.1 200 OK\nCache-Control: max-age=1\nX-A: old\nX-B: kept\nETag: \"1\"");
        let e = build(&req(), &h, Bytes::from_static(b"body"), &Rules::default(), 0, 10).unwrap();
        let nm = resp("HTTP/1.1 304 Not Modified\nCache-Control: max-age=99\nX-A: new\nContent-Length: 0");
        let f = refreshed(&req(), &e, &nm, &Rules::default(), 20, 20).unwrap();
        let text = String::from_utf8(f.head.to_vec()).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(
            text.contains("X-A: new") && !text.contains("old") && text.contains("X-B: kept"),
            "{text}"
        );
        assert!(text.contains("Content-Length: 4\r\n"), "{text}");
        assert_eq!(f.lifetime, 99);
        assert_eq!(&f.body[..], b"body");
    }
}
