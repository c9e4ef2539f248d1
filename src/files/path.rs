//! From a request's path to a path below a static location's directory:
//! pure, no file system. What comes out never climbs out of the directory
//! (no `..` segment survives), never holds a NUL, and names a hidden file
//! only where the location serves them; the opener (open.rs) then makes
//! sure symlinks do not lead out either.

/// Why a path is not looked up at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// A NUL byte, a malformed percent escape, or a `..` that appears
    /// only once decoded (`%2e%2e%2f`): 400.
    BadPath,
    /// A segment starting with a dot (`/.git/config`, `/.env`) while
    /// `serve_hidden` is off: 404, as if it were not there.
    Hidden,
    /// Longer than a path the kernel takes (`PATH_MAX`): 414; a segment
    /// longer than a file name can be (`NAME_MAX`): 404.
    TooLong,
    NoSuchName,
}

/// The longest relative path looked up (`PATH_MAX` less room for the root).
pub const MAX_PATH: usize = 3072;
/// The longest file name (`NAME_MAX`).
pub const MAX_NAME: usize = 255;

/// The path below the location's directory that `uri_path` (a routed,
/// dot-segment-free path starting with `/`) names: with `root`, the whole
/// path; with `alias`, what follows the location's prefix `strip`.
/// Percent escapes are decoded, empty and `.` segments dropped; the result
/// has no leading slash (empty: the directory itself). `dir` says the
/// request ended in a slash.
pub fn below(uri_path: &[u8], strip: usize, serve_hidden: bool) -> Result<Relative, Refused> {
    let rest = uri_path.get(strip.min(uri_path.len())..).unwrap_or_default();
    let decoded = decode(rest).ok_or(Refused::BadPath)?;
    let dir = uri_path.last() == Some(&b'/');
    let mut out = Vec::with_capacity(decoded.len());
    for seg in decoded.split(|&b| b == b'/') {
        match seg {
            b"" | b"." => continue,
            b".." => return Err(Refused::BadPath),
            _ => {}
        }
        if seg.len() > MAX_NAME {
            return Err(Refused::NoSuchName);
        }
        if seg[0] == b'.' && !serve_hidden {
            return Err(Refused::Hidden);
        }
        if !out.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(seg);
    }
    if out.len() > MAX_PATH {
        return Err(Refused::TooLong);
    }
    Ok(Relative { path: out, dir })
}

/// A path below a static location's directory (see [`below`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relative {
    /// Segments joined by `/`, no leading or trailing slash.
    pub path: Vec<u8>,
    /// The request asked for a directory (its path ended in `/`).
    pub dir: bool,
}

impl Relative {
    /// This path with `name` (an index file's) appended.
    pub fn join(&self, name: &str) -> Relative {
        let mut path = self.path.clone();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(name.as_bytes());
        Relative { path, dir: false }
    }
}

/// Percent-decodes `s`; `None` on a malformed escape or a NUL.
fn decode(s: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
    if !s.contains(&b'%') {
        return (!s.contains(&0)).then_some(std::borrow::Cow::Borrowed(s));
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            let v = (hex_val(hex[0])? << 4) | hex_val(hex[1])?;
            out.push(v);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    (!out.contains(&0)).then_some(std::borrow::Cow::Owned(out))
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `s` percent-encoded for use in a URL path (a directory listing's links,
/// a redirect's `Location`): everything but unreserved characters and `/`.
pub fn encode(s: &[u8], out: &mut Vec<u8>) {
    for &b in s {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        }
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(p: &str, strip: usize) -> (String, bool) {
        let r = below(p.as_bytes(), strip, false).unwrap();
        (String::from_utf8(r.path).unwrap(), r.dir)
    }

    #[test]
    fn root_takes_the_whole_path_and_alias_what_follows_the_prefix() {
        assert_eq!(ok("/a/b.html", 0), ("a/b.html".into(), false));
        assert_eq!(ok("/", 0), ("".into(), true));
        assert_eq!(ok("/docs/", 0), ("docs".into(), true));
        assert_eq!(ok("/img/x.png", 5), ("x.png".into(), false));
        assert_eq!(ok("/img/", 5), ("".into(), true));
        assert_eq!(ok("/img", 4), ("".into(), false));
        assert_eq!(ok("//a///b", 0), ("a/b".into(), false));
        assert_eq!(ok("/a%20b/%C3%A9", 0), ("a b/\u{e9}".into(), false));
    }

    #[test]
    fn what_decodes_to_a_climb_or_a_nul_is_refused() {
        for p in [
            "/%2e%2e/etc/passwd",
            "/a/..%2fb",
            "/a/%2E%2E%2F%2E%2E%2Fetc",
            "/x%00.html",
            "/x\0",
            "/%zz",
            "/%4",
        ] {
            assert_eq!(below(p.as_bytes(), 0, false), Err(Refused::BadPath), "{p}");
        }
        // nginx's alias trap: `/img` + alias, asked for `/img../x`.
        assert_eq!(below(b"/img../x", 4, false), Err(Refused::BadPath));
        // `..` inside a name is a name.
        assert_eq!(ok("/a..b", 0), ("a..b".into(), false));
    }

    #[test]
    fn hidden_names_and_overlong_paths() {
        for p in ["/.git/config", "/a/.env", "/%2egit/HEAD"] {
            assert_eq!(below(p.as_bytes(), 0, false), Err(Refused::Hidden), "{p}");
        }
        assert_eq!(below(b"/.well-known/x", 0, true).unwrap().path, b".well-known/x");
        let long = format!("/{}", "a".repeat(MAX_NAME + 1));
        assert_eq!(below(long.as_bytes(), 0, false), Err(Refused::NoSuchName));
        let deep = "/abcdefgh".repeat(MAX_PATH / 9 + 1);
        assert_eq!(below(deep.as_bytes(), 0, false), Err(Refused::TooLong));
    }

    #[test]
    fn encoding_keeps_slashes_and_unreserved() {
        let mut out = Vec::new();
        encode("a b/ü?#%.txt".as_bytes(), &mut out);
        assert_eq!(out, b"a%20b/%C3%BC%3F%23%25.txt");
    }
}
