//! W3C trace context (`traceparent`, `tracestate`): a valid `traceparent`
//! is continued with a new parent id (this hop's span); when there is none
//! or it is invalid and `[global] trace = true`, a new trace is started.
//!
//! Validation follows the trace-context recommendation: version two
//! lowercase hex digits, never `ff`; version `00` is exactly 55 characters,
//! a later version at least 55, with a `-` after them if longer (its first
//! four fields are read as version 00's); trace id 32 and parent id 16
//! lowercase hex digits, neither all zeros; flags two lowercase hex digits.
//! What goes upstream is always version 00.

use std::cell::Cell;

/// A trace context to send upstream: the 55 characters of `traceparent`.
#[derive(Clone, Copy)]
pub struct Trace {
    header: [u8; 55],
    /// Continued from the request's `traceparent` (its `tracestate` goes
    /// on with it); false for a trace started here.
    pub continued: bool,
}

impl Trace {
    /// `00-<trace id>-<parent id>-<flags>`.
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// The 32 hex digits of the trace id.
    pub fn trace_id(&self) -> &[u8] {
        &self.header[3..35]
    }
}

fn lower_hex(s: &[u8]) -> bool {
    s.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// The trace id and flags of a received `traceparent`, if it is valid.
fn parse(v: &[u8]) -> Option<(&[u8], &[u8])> {
    if v.len() < 55 {
        return None;
    }
    let (version, trace, parent, flags) = (&v[0..2], &v[3..35], &v[36..52], &v[53..55]);
    let dashes = v[2] == b'-' && v[35] == b'-' && v[52] == b'-';
    let length_ok = if version == b"00" {
        v.len() == 55
    } else {
        v.len() == 55 || v[55] == b'-'
    };
    let ok = dashes
        && length_ok
        && lower_hex(version)
        && version != b"ff"
        && lower_hex(trace)
        && trace.iter().any(|&b| b != b'0')
        && lower_hex(parent)
        && parent.iter().any(|&b| b != b'0')
        && lower_hex(flags);
    ok.then_some((trace, flags))
}

/// A worker's source of span and trace ids (splitmix64: fast, not secret;
/// ids only need to be unlikely to collide).
pub struct Spans {
    state: Cell<u64>,
}

impl Spans {
    pub fn new(seed: u64) -> Spans {
        Spans {
            state: Cell::new(seed),
        }
    }

    fn next(&self) -> u64 {
        let s = self.state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        self.state.set(s);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A non-zero value's 16 hex digits into `out`.
    fn hex_into(&self, out: &mut [u8]) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let v = loop {
            let v = self.next();
            if v != 0 {
                break v;
            }
        };
        for (i, d) in out[..16].iter_mut().enumerate() {
            *d = HEX[((v >> (60 - 4 * i)) & 15) as usize];
        }
    }

    /// The context to send upstream for a request that brought
    /// `traceparent` (or none): the received trace continued with a new
    /// parent id, or, with `start`, a new trace (sampled: flags `01`).
    /// `None` (nothing sent) when there is no valid one and `start` is off.
    pub fn trace(&self, received: Option<&[u8]>, start: bool) -> Option<Trace> {
        let mut header = *b"00-00000000000000000000000000000000-0000000000000000-01";
        let continued = match received.map(<[u8]>::trim_ascii).and_then(parse) {
            Some((trace, flags)) => {
                header[3..35].copy_from_slice(trace);
                header[53..55].copy_from_slice(flags);
                true
            }
            None if start => {
                self.hex_into(&mut header[3..19]);
                self.hex_into(&mut header[19..35]);
                false
            }
            None => return None,
        };
        self.hex_into(&mut header[36..52]);
        Some(Trace { header, continued })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn validation() {
        assert!(parse(GOOD).is_some());
        let bad: [&[u8]; 9] = [
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", // upper case
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace id
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero parent id
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // version ff
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", // 00 is 55 long
            b"00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01", // misplaced dash
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g", // not hex
            b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", // later version, no dash
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",    // short
        ];
        for b in bad {
            assert!(parse(b).is_none(), "{}", String::from_utf8_lossy(b));
        }
        // A later version may carry more fields after a dash.
        assert!(parse(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what").is_some());
    }

    #[test]
    fn continued_and_started() {
        let s = Spans::new(7);
        let t = s.trace(Some(GOOD), false).unwrap();
        assert_eq!(t.trace_id(), &GOOD[3..35]);
        assert_ne!(&t.header()[36..52], &GOOD[36..52]);
        assert!(parse(t.header()).is_some());
        assert!(s.trace(Some(b"junk"), false).is_none());
        assert!(s.trace(None, false).is_none());
        let n = s.trace(Some(b"junk"), true).unwrap();
        assert!(parse(n.header()).is_some());
        assert!(n.header().ends_with(b"-01"));
    }
}
