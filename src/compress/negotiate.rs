//! `Accept-Encoding` (RFC 9110 §12.5.3): which of the configured codings a
//! client takes, by q-value, with the server's order breaking ties.
//!
//! Lenient where clients are sloppy, strict where a guess could send a
//! client bytes it cannot read:
//! - coding names and the `q` parameter are case-insensitive, whitespace
//!   around `,`, `;` and `=` is ignored, empty list items are skipped, other
//!   parameters are ignored;
//! - a malformed q-value (`q=abc`, `q=2`, `q=0.5x`, `q=` ) counts as `q=0`,
//!   as nginx reads it: the coding is refused, never guessed at;
//! - `*` gives its q to every coding not named; `identity` is acceptable
//!   unless refused, and wins only when named with a higher q than every
//!   coding offered; `x-gzip` is `gzip` (§8.4.1.3).
//!
//! No `Accept-Encoding` field: no coding (RFC 9110 allows any, but clients
//! that send nothing are mostly tools that would not decode it).

use super::Algorithm;
use crate::http::{eq_ignore_case, list_items};

/// A q-value in thousandths: 0 (refused) to 1000.
type Q = u16;

/// The weight `item` (`gzip;q=0.5`) gives, with its coding name.
fn item(item: &[u8]) -> (&[u8], Q) {
    let mut parts = item.split(|&b| b == b';');
    let name = parts.next().unwrap_or_default().trim_ascii();
    let mut q = 1000;
    for p in parts {
        let p = p.trim_ascii();
        let Some(eq) = p.iter().position(|&b| b == b'=') else {
            continue;
        };
        if eq_ignore_case(p[..eq].trim_ascii(), b"q") {
            q = qvalue(p[eq + 1..].trim_ascii()).unwrap_or(0);
        }
    }
    (name, q)
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`.
fn qvalue(v: &[u8]) -> Option<Q> {
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(dot) => (&v[..dot], &v[dot + 1..]),
        None => (v, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: Q = 0;
    for i in 0..3 {
        thousandths = thousandths * 10 + frac.get(i).map_or(0, |d| Q::from(d - b'0'));
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The coding to send: the configured one (`offered`, in the server's
/// order of preference) with the highest q-value above 0, the first of
/// equals; `None` when the client takes none or prefers `identity`.
/// `fields` are the values of every `Accept-Encoding` field of the request.
pub fn choose<'v>(offered: &[Algorithm], fields: impl Iterator<Item = &'v [u8]>) -> Option<Algorithm> {
    let mut any_field = false;
    let mut star: Option<Q> = None;
    let mut identity: Option<Q> = None;
    // Weights named explicitly, by position in `offered`.
    let mut named: [Option<Q>; Algorithm::COUNT] = [None; Algorithm::COUNT];
    for value in fields {
        any_field = true;
        for it in list_items(value) {
            let (name, q) = item(it);
            if name == b"*" {
                star = Some(star.map_or(q, |s| s.max(q)));
            } else if eq_ignore_case(name, b"identity") {
                identity = Some(identity.map_or(q, |s| s.max(q)));
            } else if let Some(alg) = Algorithm::from_coding(name) {
                let slot = &mut named[alg as usize];
                // A coding named twice: the higher weight (a client that
                // says both has said it takes it).
                *slot = Some(slot.map_or(q, |s| s.max(q)));
            }
        }
    }
    if !any_field {
        return None;
    }
    let mut best: Option<(Algorithm, Q)> = None;
    for &alg in offered {
        let q = named[alg as usize].or(star).unwrap_or(0);
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((alg, q));
        }
    }
    let (alg, q) = best?;
    // Identity named with a higher weight than any coding: send it as is.
    match identity {
        Some(iq) if iq > q => None,
        _ => Some(alg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Algorithm::*;

    fn pick(offered: &[Algorithm], ae: &[&str]) -> Option<Algorithm> {
        choose(offered, ae.iter().map(|s| s.as_bytes()))
    }

    const ALL: [Algorithm; 3] = [Zstd, Br, Gzip];

    #[test]
    fn qvalues_follow_the_grammar() {
        assert_eq!(qvalue(b"1"), Some(1000));
        assert_eq!(qvalue(b"1.000"), Some(1000));
        assert_eq!(qvalue(b"1."), Some(1000));
        assert_eq!(qvalue(b"0"), Some(0));
        assert_eq!(qvalue(b"0.5"), Some(500));
        assert_eq!(qvalue(b"0.05"), Some(50));
        assert_eq!(qvalue(b"0.001"), Some(1));
        for bad in ["1.001", "2", "0.0001", "-1", "abc", "", ".5", "0.5x", "1e0"] {
            assert_eq!(qvalue(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn server_order_breaks_ties_and_q_decides() {
        assert_eq!(pick(&ALL, &["gzip, deflate, br, zstd"]), Some(Zstd));
        assert_eq!(pick(&[Gzip, Br, Zstd], &["gzip, deflate, br, zstd"]), Some(Gzip));
        assert_eq!(pick(&ALL, &["gzip;q=1, br;q=0.9, zstd;q=0.8"]), Some(Gzip));
        assert_eq!(pick(&ALL, &["gzip"]), Some(Gzip));
        assert_eq!(pick(&[Br], &["gzip"]), None);
        // Several fields are one list.
        assert_eq!(pick(&ALL, &["gzip;q=0.5", "br;q=0.7"]), Some(Br));
    }

    #[test]
    fn refusals_and_wildcards() {
        assert_eq!(pick(&ALL, &["zstd;q=0, br;q=0, gzip"]), Some(Gzip));
        assert_eq!(pick(&ALL, &["gzip;q=0"]), None);
        assert_eq!(pick(&ALL, &["*"]), Some(Zstd));
        assert_eq!(pick(&ALL, &["*;q=0.5, zstd;q=0"]), Some(Br));
        assert_eq!(pick(&ALL, &["*;q=0"]), None);
        assert_eq!(pick(&ALL, &["*;q=0, gzip"]), Some(Gzip));
        // identity;q=0 refuses the unencoded form, not the codings.
        assert_eq!(pick(&ALL, &["identity;q=0, gzip"]), Some(Gzip));
        // identity preferred over every coding offered.
        assert_eq!(pick(&ALL, &["identity, gzip;q=0.5"]), None);
        assert_eq!(pick(&ALL, &["identity;q=0.5, gzip;q=0.5"]), Some(Gzip));
        assert_eq!(pick(&ALL, &["identity"]), None);
        assert_eq!(pick(&ALL, &[""]), None);
        assert_eq!(pick(&ALL, &[]), None);
    }

    #[test]
    fn sloppy_spelling_is_read_leniently() {
        assert_eq!(pick(&ALL, &["GZIP"]), Some(Gzip));
        assert_eq!(pick(&ALL, &["x-gzip"]), Some(Gzip));
        assert_eq!(pick(&ALL, &[" br ; Q = 0.8 ,, gzip ;q=0.3 "]), Some(Br));
        assert_eq!(pick(&ALL, &["br;level=5;q=0.4, gzip;q=0.3"]), Some(Br));
        // A bogus weight refuses its coding, whatever `*` says.
        assert_eq!(pick(&ALL, &["zstd;q=abc, br;q=2, gzip"]), Some(Gzip));
        assert_eq!(pick(&ALL, &["zstd;q=, *"]), Some(Br));
        assert_eq!(pick(&ALL, &["deflate, compress"]), None);
    }
}
