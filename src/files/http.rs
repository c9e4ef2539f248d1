//! The HTTP rules of a static file (RFC 9110 §8.8, §13, §14): its
//! validators, the request's preconditions, and `Range`. Pure: the caller
//! gives the fields and the file's size and modification time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The most ranges one request may ask for; more (or ranges that add up
/// to more than the file) get the whole file, which RFC 9110 §14.2 allows:
/// overlapping ranges must not multiply what a small request costs.
pub const MAX_RANGES: usize = 16;

/// A file's strong entity tag, nginx's shape: `"<mtime hex>-<size hex>"`.
pub fn etag(mtime: SystemTime, size: u64) -> String {
    format!("\"{:x}-{:x}\"", secs(mtime), size)
}

/// Whole seconds since the epoch (0 for a time before it).
pub fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// What the preconditions of a request decide (RFC 9110 §13.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    Proceed,
    /// 304: the client's copy is current.
    NotModified,
    /// 412: `If-Match` or `If-Unmodified-Since` failed.
    Failed,
}

/// The request's conditional fields, as sent.
#[derive(Default, Clone, Copy)]
pub struct Conditions<'a> {
    pub if_match: Option<&'a [u8]>,
    pub if_none_match: Option<&'a [u8]>,
    pub if_modified_since: Option<&'a [u8]>,
    pub if_unmodified_since: Option<&'a [u8]>,
}

/// Evaluates the preconditions in RFC 9110 §13.2.2's order for a GET or
/// HEAD of a file with these validators.
pub fn precondition(c: &Conditions, etag: &str, mtime: SystemTime) -> Precondition {
    let modified = secs(mtime);
    if let Some(v) = c.if_match {
        if !tag_list_matches(v, etag, true) {
            return Precondition::Failed;
        }
    } else if let Some(d) = c.if_unmodified_since.and_then(date) {
        if modified > d {
            return Precondition::Failed;
        }
    }
    if let Some(v) = c.if_none_match {
        if tag_list_matches(v, etag, false) {
            return Precondition::NotModified;
        }
    } else if let Some(d) = c.if_modified_since.and_then(date) {
        if modified <= d {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

/// An HTTP date as seconds since the epoch; `None` when it is not one (an
/// invalid date is ignored, RFC 9110 §13.1.3).
fn date(v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(v).ok()?;
    httpdate::parse_http_date(s.trim()).ok().map(secs)
}

/// Whether `*` or one tag of a comma-separated list matches `ours`, by
/// strong comparison (both strong and equal) or weak (equal once `W/` is
/// set aside).
fn tag_list_matches(list: &[u8], ours: &str, strong: bool) -> bool {
    let list = list.trim_ascii();
    if list == b"*" {
        return true;
    }
    list.split(|&b| b == b',').any(|t| {
        let t = t.trim_ascii();
        let (weak, opaque) = match t.strip_prefix(b"W/") {
            Some(rest) => (true, rest),
            None => (false, t),
        };
        !(strong && weak) && opaque == ours.as_bytes()
    })
}

/// What a `Range` field asks of a file of `size` bytes (RFC 9110 §14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ranges {
    /// No usable range: the whole file, 200.
    Whole,
    /// None of the ranges overlaps the file: 416.
    Unsatisfiable,
    /// Byte ranges `[start, end)`, in the order asked: 206.
    Some(Vec<(u64, u64)>),
}

/// Parses a `Range` field. A field that is not a valid `bytes` range set is
/// ignored (RFC 9110 §14.2), as are more than [`MAX_RANGES`] ranges or
/// ranges adding up to more than the file.
pub fn ranges(field: &[u8], size: u64) -> Ranges {
    let Some(eq) = field.iter().position(|&b| b == b'=') else {
        return Ranges::Whole;
    };
    if !field[..eq].trim_ascii().eq_ignore_ascii_case(b"bytes") {
        return Ranges::Whole;
    }
    let mut out = Vec::new();
    let mut any = false;
    for item in field[eq + 1..].split(|&b| b == b',') {
        let item = item.trim_ascii();
        if item.is_empty() {
            continue;
        }
        any = true;
        let Some(dash) = item.iter().position(|&b| b == b'-') else {
            return Ranges::Whole;
        };
        let (a, b) = (item[..dash].trim_ascii(), item[dash + 1..].trim_ascii());
        let range = match (number(a), number(b)) {
            // `-n`: the last n bytes.
            (None, Some(n)) if a.is_empty() => {
                if n == 0 {
                    None
                } else {
                    Some((size.saturating_sub(n), size))
                }
            }
            (Some(first), None) if b.is_empty() => (first < size).then_some((first, size)),
            (Some(first), Some(last)) if first <= last => {
                (first < size).then(|| (first, last.saturating_add(1).min(size)))
            }
            _ => return Ranges::Whole,
        };
        if let Some(r) = range.filter(|r| r.0 < r.1) {
            out.push(r);
        }
        if out.len() > MAX_RANGES {
            return Ranges::Whole;
        }
    }
    if !any {
        return Ranges::Whole;
    }
    if out.is_empty() {
        return Ranges::Unsatisfiable;
    }
    let total = out.iter().map(|(a, b)| b - a).fold(0u64, u64::saturating_add);
    if total > size {
        return Ranges::Whole;
    }
    Ranges::Some(out)
}

fn number(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Whether an `If-Range` value lets the range through: a strong tag equal
/// to ours, or a date equal to the file's `Last-Modified`.
pub fn if_range_holds(v: &[u8], etag: &str, mtime: SystemTime) -> bool {
    let v = v.trim_ascii();
    if v.starts_with(b"\"") || v.starts_with(b"W/") {
        return v == etag.as_bytes();
    }
    date(v) == Some(secs(mtime))
}

/// `Content-Range` of one part: `bytes a-b/size`.
pub fn content_range(start: u64, end: u64, size: u64) -> String {
    format!("bytes {}-{}/{}", start, end - 1, size)
}

/// The head of each part of a `multipart/byteranges` body and the body's
/// closing line, for ranges of a file of `size` bytes and type `ctype`.
pub fn multipart(boundary: &str, ctype: &[u8], ranges: &[(u64, u64)], size: u64) -> (Vec<Vec<u8>>, Vec<u8>) {
    let heads = ranges
        .iter()
        .map(|&(a, b)| {
            let mut h = Vec::with_capacity(96 + ctype.len());
            h.extend_from_slice(b"\r\n--");
            h.extend_from_slice(boundary.as_bytes());
            h.extend_from_slice(b"\r\nContent-Type: ");
            h.extend_from_slice(ctype);
            h.extend_from_slice(b"\r\nContent-Range: ");
            h.extend_from_slice(content_range(a, b, size).as_bytes());
            h.extend_from_slice(b"\r\n\r\n");
            h
        })
        .collect();
    (heads, format!("\r\n--{boundary}--\r\n").into_bytes())
}

/// `Expires` and `Cache-Control` for `expires` (nginx's): a lifetime from
/// now, or the epoch (`no-cache`).
pub fn expiry(now: SystemTime, e: crate::files::Expires) -> (String, String) {
    match e {
        crate::files::Expires::After(d) => (
            httpdate::fmt_http_date(now + d),
            format!("max-age={}", d.as_secs()),
        ),
        crate::files::Expires::Epoch => (
            httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(1)),
            "no-cache".to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: u64 = 1000;

    fn r(v: &str) -> Ranges {
        ranges(v.as_bytes(), SIZE)
    }

    #[test]
    fn single_suffix_open_and_many_ranges() {
        assert_eq!(r("bytes=0-99"), Ranges::Some(vec![(0, 100)]));
        assert_eq!(r("bytes=-100"), Ranges::Some(vec![(900, 1000)]));
        assert_eq!(r("bytes=-5000"), Ranges::Some(vec![(0, 1000)]));
        assert_eq!(r("bytes=990-"), Ranges::Some(vec![(990, 1000)]));
        assert_eq!(r("bytes=990-5000"), Ranges::Some(vec![(990, 1000)]));
        assert_eq!(r("Bytes= 0-0 , 10-19,"), Ranges::Some(vec![(0, 1), (10, 20)]));
        // One unsatisfiable range among satisfiable ones is left out.
        assert_eq!(r("bytes=0-9,2000-3000"), Ranges::Some(vec![(0, 10)]));
    }

    #[test]
    fn unsatisfiable_and_ignored_ranges() {
        assert_eq!(r("bytes=1000-"), Ranges::Unsatisfiable);
        assert_eq!(r("bytes=1000-2000,5000-"), Ranges::Unsatisfiable);
        assert_eq!(r("bytes=-0"), Ranges::Unsatisfiable);
        for bad in [
            "bytes=5-1",
            "bytes=a-b",
            "items=0-1",
            "bytes",
            "bytes=",
            "bytes=1",
            "bytes=--1",
            "bytes=0-99999999999999999999",
        ] {
            assert_eq!(r(bad), Ranges::Whole, "{bad}");
        }
        let many = format!("bytes={}", vec!["0-0"; MAX_RANGES + 1].join(","));
        assert_eq!(r(&many), Ranges::Whole);
        // Overlaps adding up to more than the file: the whole file.
        assert_eq!(r("bytes=0-999,0-999"), Ranges::Whole);
    }

    #[test]
    fn preconditions_in_rfc_order() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let tag = etag(t, 5);
        assert_eq!(tag, "\"6553f100-5\"");
        let later = httpdate::fmt_http_date(t + Duration::from_secs(10));
        let earlier = httpdate::fmt_http_date(t - Duration::from_secs(10));
        let exact = httpdate::fmt_http_date(t);
        let p = |c: Conditions| precondition(&c, &tag, t);
        assert_eq!(p(Conditions::default()), Precondition::Proceed);
        let inm = |v: &'static str| Conditions {
            if_none_match: Some(v.as_bytes()),
            ..Default::default()
        };
        assert_eq!(p(inm("\"6553f100-5\"")), Precondition::NotModified);
        assert_eq!(p(inm("W/\"6553f100-5\"")), Precondition::NotModified);
        assert_eq!(p(inm("\"x\", \"6553f100-5\"")), Precondition::NotModified);
        assert_eq!(p(inm("*")), Precondition::NotModified);
        assert_eq!(p(inm("\"6553f100-6\"")), Precondition::Proceed);
        let ims = |v: &str| {
            precondition(
                &Conditions {
                    if_modified_since: Some(v.as_bytes()),
                    ..Default::default()
                },
                &tag,
                t,
            )
        };
        assert_eq!(ims(&exact), Precondition::NotModified);
        assert_eq!(ims(&later), Precondition::NotModified);
        assert_eq!(ims(&earlier), Precondition::Proceed);
        assert_eq!(ims("not a date"), Precondition::Proceed);
        // If-None-Match wins over If-Modified-Since.
        let both = Conditions {
            if_none_match: Some(b"\"other\""),
            if_modified_since: Some(later.as_bytes()),
            ..Default::default()
        };
        assert_eq!(p(both), Precondition::Proceed);
        let im = |v: &'static str| Conditions {
            if_match: Some(v.as_bytes()),
            ..Default::default()
        };
        assert_eq!(p(im("\"6553f100-5\"")), Precondition::Proceed);
        assert_eq!(p(im("W/\"6553f100-5\"")), Precondition::Failed);
        assert_eq!(p(im("\"nope\"")), Precondition::Failed);
        let ius = |v: &str| {
            precondition(
                &Conditions {
                    if_unmodified_since: Some(v.as_bytes()),
                    ..Default::default()
                },
                &tag,
                t,
            )
        };
        assert_eq!(ius(&earlier), Precondition::Failed);
        assert_eq!(ius(&exact), Precondition::Proceed);
    }

    #[test]
    fn if_range_by_strong_tag_or_exact_date() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let tag = etag(t, 5);
        assert!(if_range_holds(tag.as_bytes(), &tag, t));
        assert!(!if_range_holds(format!("W/{tag}").as_bytes(), &tag, t));
        assert!(if_range_holds(httpdate::fmt_http_date(t).as_bytes(), &tag, t));
        assert!(!if_range_holds(
            httpdate::fmt_http_date(t + Duration::from_secs(1)).as_bytes(),
            &tag,
            t
        ));
    }

    #[test]
    fn multipart_parts_name_their_ranges() {
        let (heads, tail) = multipart("B", b"text/plain", &[(0, 2), (5, 6)], 10);
        assert_eq!(
            heads[0],
            b"\r\n--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n"
        );
        assert_eq!(
            heads[1],
            b"\r\n--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 5-5/10\r\n\r\n"
        );
        assert_eq!(tail, b"\r\n--B--\r\n");
    }
}
