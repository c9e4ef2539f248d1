//! The chunked transfer coding (RFC 9112 §7.1), decoded incrementally.
//!
//! The decoder is fed whatever bytes have arrived and hands back the data
//! inside them as ranges of the input, so the caller copies nothing it does not
//! have to. It is strict where leniency has enabled smuggling: the size must be
//! hex digits (at most 16), every line must end in CRLF, and extension and
//! trailer lines are bounded. Extensions and trailers are dropped.

use std::ops::Range;

/// The longest chunk-size line extension accepted, in bytes.
const MAX_EXT: usize = 4096;
/// The largest trailer section accepted, in bytes.
const MAX_TRAILERS: usize = 16 * 1024;
/// Hex digits in a chunk size; more could overflow u64.
const MAX_SIZE_DIGITS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    BadSize,
    BadLineEnd,
    ExtensionTooLong,
    TrailersTooLarge,
}

impl ChunkError {
    pub fn as_str(self) -> &'static str {
        match self {
            ChunkError::BadSize => "invalid chunk size",
            ChunkError::BadLineEnd => "chunk line not ended by CRLF",
            ChunkError::ExtensionTooLong => "chunk extension too long",
            ChunkError::TrailersTooLarge => "chunked trailers too large",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    SizeStart,
    Size,
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    TrailerLf,
    FinalLf,
    Done,
}

/// What one call to [`Decoder::decode`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the input used up, data included.
    pub consumed: usize,
    /// Body data found, as a range of the input.
    pub data: Option<Range<usize>>,
}

#[derive(Debug, Clone)]
pub struct Decoder {
    state: State,
    remaining: u64,
    digits: usize,
    line: usize,
    trailers: usize,
    /// The trailer section as received (`Name: value` lines with their
    /// CRLF), when the caller wants it (`keeping_trailers`).
    kept: Option<Vec<u8>>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            state: State::SizeStart,
            remaining: 0,
            digits: 0,
            line: 0,
            trailers: 0,
            kept: None,
        }
    }
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder that keeps the trailer section (at most `MAX_TRAILERS`
    /// bytes, as any) for [`Self::take_trailers`].
    pub fn keeping_trailers() -> Self {
        Decoder {
            kept: Some(Vec::new()),
            ..Self::default()
        }
    }

    /// The trailer fields received, as `Name: value\r\n` lines; empty when
    /// there were none or they were not kept.
    pub fn take_trailers(&mut self) -> Vec<u8> {
        self.kept.take().unwrap_or_default()
    }

    /// True once the last chunk and the trailer section have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes framing bytes from `input` until it reaches data (returned as a
    /// range), the end of the input, or the end of the body.
    pub fn decode(&mut self, input: &[u8]) -> Result<Progress, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Data => {
                    let take = (input.len() - i).min(self.remaining.min(usize::MAX as u64) as usize);
                    self.remaining -= take as u64;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                    return Ok(Progress {
                        consumed: i + take,
                        data: Some(i..i + take),
                    });
                }
                State::SizeStart | State::Size => match (b as char).to_digit(16) {
                    Some(d) => {
                        self.digits += 1;
                        if self.digits > MAX_SIZE_DIGITS {
                            return Err(ChunkError::BadSize);
                        }
                        self.remaining = (self.remaining << 4) | u64::from(d);
                        self.state = State::Size;
                    }
                    None if self.state == State::SizeStart => return Err(ChunkError::BadSize),
                    // chunk-ext may follow after optional whitespace (BWS).
                    None if b == b';' || b == b' ' || b == b'\t' => {
                        self.line = 0;
                        self.state = State::Ext;
                    }
                    None if b == b'\r' => self.state = State::SizeLf,
                    // A bare LF is a line end some parsers accept and others
                    // do not: exactly the disagreement smuggling feeds on.
                    None if b == b'\n' => return Err(ChunkError::BadLineEnd),
                    None => return Err(ChunkError::BadSize),
                },
                State::Ext => {
                    if b == b'\r' {
                        self.state = State::SizeLf;
                    } else if b == b'\n' || (b < 0x20 && b != b'\t') || b == 0x7f {
                        return Err(ChunkError::BadLineEnd);
                    } else {
                        self.line += 1;
                        if self.line > MAX_EXT {
                            return Err(ChunkError::ExtensionTooLong);
                        }
                    }
                }
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    self.digits = 0;
                    self.state = if self.remaining == 0 {
                        State::TrailerStart
                    } else {
                        State::Data
                    };
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    self.state = State::SizeStart;
                }
                State::TrailerStart | State::TrailerLine => {
                    self.trailers += 1;
                    if self.trailers > MAX_TRAILERS {
                        return Err(ChunkError::TrailersTooLarge);
                    }
                    if let Some(k) = self.kept.as_mut() {
                        // The final empty line is not a field: not kept.
                        if !(b == b'\r' && self.state == State::TrailerStart) {
                            k.push(b);
                        }
                    }
                    if b == b'\r' {
                        self.state = if self.state == State::TrailerStart {
                            State::FinalLf
                        } else {
                            State::TrailerLf
                        };
                    } else if b == b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    } else {
                        self.state = State::TrailerLine;
                    }
                }
                State::TrailerLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    if let Some(k) = self.kept.as_mut() {
                        k.push(b);
                    }
                    self.state = State::TrailerStart;
                }
                State::FinalLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    self.state = State::Done;
                    return Ok(Progress {
                        consumed: i + 1,
                        data: None,
                    });
                }
                State::Done => break,
            }
            i += 1;
        }
        Ok(Progress {
            consumed: i,
            data: None,
        })
    }
}

/// Checks the start of a chunked body, as far as it has arrived, without
/// consuming it: a body that is already visibly invalid is refused before
/// anything is sent upstream.
pub fn check_prefix(input: &[u8]) -> Result<(), ChunkError> {
    let mut d = Decoder::new();
    let mut off = 0;
    while off < input.len() && !d.is_done() {
        off += d.decode(&input[off..])?.consumed;
    }
    Ok(())
}

/// Appends a chunk-size line for `len` bytes of data.
pub fn write_chunk_header(len: usize, out: &mut Vec<u8>) {
    use std::io::Write;
    let _ = write!(out, "{len:x}\r\n");
}

/// The last chunk with an empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_are_kept_when_asked_for_whatever_the_splits() {
        let body = b"3\r\nabc\r\n0\r\nGrpc-Status: 0\r\nX-T: a b\r\n\r\n";
        for step in 1..body.len() {
            let mut d = Decoder::keeping_trailers();
            let mut off = 0;
            while off < body.len() && !d.is_done() {
                let end = (off + step).min(body.len());
                off += d.decode(&body[off..end]).unwrap().consumed;
            }
            assert!(d.is_done());
            assert_eq!(
                d.take_trailers(),
                b"Grpc-Status: 0\r\nX-T: a b\r\n",
                "step {step}"
            );
        }
        // Not asked for: nothing kept; no trailers: nothing.
        let mut d = Decoder::new();
        d.decode(body).unwrap();
        assert!(d.take_trailers().is_empty());
        let mut d = Decoder::keeping_trailers();
        d.decode(b"0\r\n\r\n").unwrap();
        assert!(d.is_done() && d.take_trailers().is_empty());
    }

    /// Decodes `input` fed in pieces of at most `step` bytes.
    fn decode_in_steps(input: &[u8], step: usize) -> Result<(Vec<u8>, usize), ChunkError> {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < input.len() && !d.is_done() {
            let end = (pos + step).min(input.len());
            let piece = &input[pos..end];
            let mut off = 0;
            while off < piece.len() && !d.is_done() {
                let p = d.decode(&piece[off..])?;
                if let Some(r) = p.data {
                    out.extend_from_slice(&piece[off + r.start..off + r.end]);
                }
                off += p.consumed;
            }
            pos += off;
        }
        assert!(d.is_done(), "not done");
        Ok((out, pos))
    }

    const BODY: &[u8] = b"5\r\nhello\r\n6;name=val\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";

    #[test]
    fn decodes_whole_and_byte_by_byte() {
        for step in [1, 2, 3, 7, BODY.len()] {
            let (out, used) = decode_in_steps(BODY, step).unwrap();
            assert_eq!(out, b"hello world", "step {step}");
            assert_eq!(&BODY[used..], b"NEXT", "step {step}");
        }
    }

    #[test]
    fn pseudo_random_splits_agree() {
        let mut body = Vec::new();
        for i in 1..40usize {
            write_chunk_header(i * 7, &mut body);
            body.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, i * 7));
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(LAST_CHUNK);
        let want = decode_in_steps(&body, body.len()).unwrap().0;
        let mut seed = 0x2545F4914F6CDD1Du64;
        for _ in 0..50 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let step = 1 + (seed % 97) as usize;
            assert_eq!(decode_in_steps(&body, step).unwrap().0, want);
        }
    }

    #[test]
    fn refuses_bad_framing() {
        let cases: &[(&[u8], ChunkError)] = &[
            (b"x\r\n", ChunkError::BadSize),
            (b"\r\n", ChunkError::BadSize),
            (b"-1\r\n", ChunkError::BadSize),
            (b"5x\r\n", ChunkError::BadSize),
            (b"11111111111111111\r\n", ChunkError::BadSize),
            (b"5\nhello\r\n", ChunkError::BadLineEnd),
            (b"5\r\nhelloXX", ChunkError::BadLineEnd),
            (b"5\r\nhello\n0\r\n\r\n", ChunkError::BadLineEnd),
            (b"0\r\nX: y\n\r\n", ChunkError::BadLineEnd),
            (b"5;a\nb\r\n", ChunkError::BadLineEnd),
        ];
        for (input, want) in cases {
            let mut d = Decoder::new();
            let mut off = 0;
            let err = loop {
                match d.decode(&input[off..]) {
                    Err(e) => break Some(e),
                    Ok(p) if p.consumed == 0 => break None,
                    Ok(p) => off += p.consumed,
                }
            };
            assert_eq!(err, Some(*want), "input {:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn bounds_extensions_and_trailers() {
        let mut long_ext = b"1;".to_vec();
        long_ext.extend(std::iter::repeat_n(b'a', MAX_EXT + 1));
        assert_eq!(
            Decoder::new().decode(&long_ext),
            Err(ChunkError::ExtensionTooLong)
        );
        let mut trailers = b"0\r\n".to_vec();
        for _ in 0..2000 {
            trailers.extend_from_slice(b"X-Trailer: value\r\n");
        }
        let mut d = Decoder::new();
        let mut off = 0;
        let mut res = Ok(());
        while off < trailers.len() {
            match d.decode(&trailers[off..]) {
                Ok(p) => off += p.consumed,
                Err(e) => {
                    res = Err(e);
                    break;
                }
            }
        }
        assert_eq!(res, Err(ChunkError::TrailersTooLarge));
    }

    #[test]
    fn prefix_check() {
        assert_eq!(check_prefix(b"5\r\nhel"), Ok(()));
        assert_eq!(check_prefix(b""), Ok(()));
        assert_eq!(check_prefix(b"zz\r\n"), Err(ChunkError::BadSize));
        assert_eq!(check_prefix(b"5\nhello"), Err(ChunkError::BadLineEnd));
    }

    #[test]
    fn chunk_header_is_hex() {
        let mut v = Vec::new();
        write_chunk_header(255, &mut v);
        assert_eq!(v, b"ff\r\n");
    }
}
