//! The incremental chunked decoder.
//!
//! The input is a chunked body as it might arrive. It is decoded whole and
//! then again in several split patterns derived from the input (single bytes,
//! and pseudo-random piece sizes): the payload, the error, how many bytes were
//! used and whether the body ended must be the same for every pattern, since
//! a body must not mean different things depending on how TCP cut it.
//! `check_prefix` must never accept a prefix that the decoder refuses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::http::chunked::{check_prefix, ChunkError, Decoder};
use ringway_fuzz::{escaped, XorShift};

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    payload: Vec<u8>,
    /// Input bytes used up (framing and data) when decoding stopped.
    used: usize,
    done: bool,
    error: Option<ChunkError>,
}

/// Feeds `input` in pieces whose sizes come from `sizes`, the way the proxy
/// feeds its read buffer: each piece is offered until the decoder has used it
/// all or is done.
fn decode(input: &[u8], mut sizes: impl FnMut() -> usize) -> Outcome {
    let mut d = Decoder::new();
    let mut out = Outcome {
        payload: Vec::new(),
        used: 0,
        done: false,
        error: None,
    };
    let mut pos = 0;
    while pos < input.len() && !d.is_done() {
        let end = (pos + sizes()).min(input.len());
        let piece = &input[pos..end];
        let mut off = 0;
        while off < piece.len() && !d.is_done() {
            match d.decode(&piece[off..]) {
                Ok(p) => {
                    assert!(p.consumed <= piece.len() - off, "consumed past the input");
                    if let Some(r) = &p.data {
                        assert!(r.start <= r.end && r.end <= p.consumed, "data range {r:?} past consumed");
                        out.payload.extend_from_slice(&piece[off + r.start..off + r.end]);
                    }
                    if p.consumed == 0 {
                        // No progress on a non-empty input is only allowed once done.
                        assert!(d.is_done(), "decoder stalled at {}", pos + off);
                        break;
                    }
                    off += p.consumed;
                }
                Err(e) => {
                    out.error = Some(e);
                    out.used = pos + off;
                    return out;
                }
            }
        }
        pos += off;
    }
    out.used = pos;
    out.done = d.is_done();
    out
}

fuzz_target!(|data: &[u8]| {
    let whole = decode(data, || usize::MAX);
    let bytewise = decode(data, || 1);
    // The position of an error is not compared: a whole-buffer call reports
    // it without saying where it stopped.
    let same = |a: &Outcome, b: &Outcome| {
        a.error == b.error
            && a.done == b.done
            && (a.error.is_some() || (a.payload == b.payload && a.used == b.used))
    };
    assert!(
        same(&whole, &bytewise),
        "whole {whole:?} vs byte by byte {bytewise:?}: {}",
        escaped(data)
    );
    let mut rng = XorShift::from_bytes(data);
    for pattern in 0..4 {
        let max = [2, 7, 64, 4096][pattern];
        let mut split = XorShift::with_seed(rng.next());
        let got = decode(data, || split.step(max));
        assert!(
            same(&whole, &got),
            "whole {whole:?} vs pieces of at most {max} {got:?}: {}",
            escaped(data)
        );
    }
    if whole.error.is_none() {
        // The payload can only be shorter than what carried it.
        assert!(whole.payload.len() <= whole.used);
    }

    // check_prefix sees what has arrived so far: it may accept an incomplete
    // body, but never one the decoder has already refused within it.
    let cut = rng.step(data.len() + 1) - 1;
    for prefix in [data, &data[..cut]] {
        let refused = decode(prefix, || usize::MAX).error;
        let checked = check_prefix(prefix).err();
        assert_eq!(checked, refused, "check_prefix vs decoder on {}", escaped(prefix));
    }
});
