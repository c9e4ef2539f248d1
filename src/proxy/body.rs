//! Streaming a body from one socket to another with bounded memory.
//!
//! Bytes already read past a head sit in the source's read buffer and go
//! first. Content-Length bodies are forwarded as slices of the read buffer
//! (split off and written, no copy). Chunked and close-delimited bodies are
//! decoded and framed again for the other side, so chunk extensions and odd
//! framing never cross the proxy; trailer fields do, checked one by one
//! (`Trailers`). Memory per transfer is one read buffer plus one output
//! buffer.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};

use crate::compress::Encoder;
use crate::deadline::Deadlines;
use crate::http::chunked::{self, ChunkError, Decoder};
use crate::http::encode;
use crate::http::BodyKind;
use crate::io::{self, IoFail};

/// Read size for body transfers.
pub const BODY_READ: usize = 64 * 1024;

#[derive(Debug)]
pub enum BodyError {
    /// The source failed, stalled or ended early (`None`: end of stream).
    Read(Option<IoFail>),
    Write(IoFail),
    Framing(ChunkError),
    /// More than the allowed size.
    TooLarge,
}

/// What becomes of trailer fields at the end of a chunked output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trailers {
    /// The output ends with an empty last chunk.
    Drop,
    /// A chunked source's trailer fields go on in the output's last chunk,
    /// less those a trailer may not carry (`encode::allowed_in_trailers`).
    Pass,
    /// The output's last chunk is left to the caller, which has trailers
    /// of its own to write (an HTTP/2 peer's): see `last_chunk`.
    Caller,
}

/// The last chunk of a chunked body, carrying those of `fields` that a
/// trailer may carry.
pub fn last_chunk<'f>(fields: impl Iterator<Item = (&'f [u8], &'f [u8])>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"0\r\n");
    for (name, value) in fields {
        if encode::allowed_in_trailers(name) {
            encode::header(name, value, out);
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// The fields of a trailer section as the chunked decoder kept it
/// (`Name: value` lines); a line that is not a valid field is skipped.
fn trailer_lines(raw: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    raw.split(|&b| b == b'\n').filter_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&b| b == b':')?;
        let name = &line[..colon];
        let value = line[colon + 1..].trim_ascii();
        let token = !name.is_empty() && name.iter().all(|&b| encode::is_token(b));
        let clean = value.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f));
        (token && clean).then_some((name, value))
    })
}

pub struct Copy<'a> {
    pub deadlines: &'a Deadlines,
    pub kind: BodyKind,
    /// Frame the output as chunked (else: raw bytes, for a Content-Length or
    /// close-delimited output).
    pub chunked_out: bool,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub limit: Option<u64>,
    /// The trailer fields of a chunked output (ignored otherwise).
    pub trailers: Trailers,
    /// The cache tee: the decoded payload is copied into it as it goes
    /// (before any compression), see `crate::cache::tee`.
    pub tee: Option<&'a crate::cache::Tee>,
}

impl Copy<'_> {
    /// Forwards the body; returns the payload bytes moved.
    pub async fn run<R: AsyncReadRent, W: AsyncWriteRent>(
        &self,
        src: &mut R,
        src_buf: &mut BytesMut,
        dst: &mut W,
        out: &mut Vec<u8>,
    ) -> Result<u64, BodyError> {
        match self.kind {
            BodyKind::Empty => Ok(0),
            BodyKind::Length(n) => self.length(src, src_buf, dst, n).await,
            BodyKind::Chunked | BodyKind::UntilClose => self.reframe(src, src_buf, dst, out, None).await,
        }
    }

    /// `run`, and for a chunked source also its trailer fields, as
    /// `Name: value\r\n` lines (empty when none), for a destination that
    /// can carry them (HTTP/2).
    pub async fn run_keeping_trailers<R: AsyncReadRent, W: AsyncWriteRent>(
        &self,
        src: &mut R,
        src_buf: &mut BytesMut,
        dst: &mut W,
        out: &mut Vec<u8>,
    ) -> Result<(u64, Vec<u8>), BodyError> {
        if self.kind != BodyKind::Chunked {
            return Ok((self.run(src, src_buf, dst, out).await?, Vec::new()));
        }
        let mut trailers = Vec::new();
        let n = self.reframe(src, src_buf, dst, out, Some(&mut trailers)).await?;
        Ok((n, trailers))
    }

    async fn fill<R: AsyncReadRent>(&self, src: &mut R, buf: &mut BytesMut) -> Result<usize, BodyError> {
        match io::read_buf(src, buf, BODY_READ, self.deadlines, self.read_timeout).await {
            Ok(n) => Ok(n),
            Err(e) => Err(BodyError::Read(Some(e))),
        }
    }

    async fn length<R: AsyncReadRent, W: AsyncWriteRent>(
        &self,
        src: &mut R,
        buf: &mut BytesMut,
        dst: &mut W,
        total: u64,
    ) -> Result<u64, BodyError> {
        let mut left = total;
        while left > 0 {
            if buf.is_empty() && self.fill(src, buf).await? == 0 {
                return Err(BodyError::Read(None));
            }
            let take = (buf.len() as u64).min(left) as usize;
            // The slice shares the read buffer's memory; once written and
            // dropped, the next read reuses the same allocation.
            let piece = buf.split_to(take);
            if let Some(t) = self.tee {
                t.push(&piece);
            }
            io::write_all(dst, piece, self.deadlines, self.write_timeout)
                .await
                .map_err(BodyError::Write)?;
            left -= take as u64;
        }
        Ok(total)
    }

    async fn reframe<R: AsyncReadRent, W: AsyncWriteRent>(
        &self,
        src: &mut R,
        buf: &mut BytesMut,
        dst: &mut W,
        out: &mut Vec<u8>,
        trailers: Option<&mut Vec<u8>>,
    ) -> Result<u64, BodyError> {
        let keep = trailers.is_some() || (self.chunked_out && self.trailers == Trailers::Pass);
        let mut decoder = (self.kind == BodyKind::Chunked).then(|| {
            if keep {
                Decoder::keeping_trailers()
            } else {
                Decoder::new()
            }
        });
        let mut trailers = trailers;
        let mut moved = 0u64;
        loop {
            let mut finished = false;
            if buf.is_empty() {
                let n = self.fill(src, buf).await?;
                if n == 0 {
                    if decoder.is_some() {
                        // A chunked body must end with its last chunk.
                        return Err(BodyError::Read(None));
                    }
                    finished = true;
                }
            }
            out.clear();
            match decoder.as_mut() {
                Some(d) => {
                    let mut off = 0;
                    while off < buf.len() && !d.is_done() {
                        let p = d.decode(&buf[off..]).map_err(BodyError::Framing)?;
                        if let Some(r) = p.data {
                            if let Some(t) = self.tee {
                                t.push(&buf[off + r.start..off + r.end]);
                            }
                            self.emit(&buf[off + r.start..off + r.end], out);
                            moved += r.len() as u64;
                        }
                        off += p.consumed;
                    }
                    buf.advance(off);
                    finished = d.is_done();
                }
                None => {
                    moved += buf.len() as u64;
                    if let Some(t) = self.tee {
                        t.push(buf);
                    }
                    self.emit(buf, out);
                    buf.clear();
                }
            }
            if self.limit.is_some_and(|l| moved > l) {
                return Err(BodyError::TooLarge);
            }
            if finished && self.chunked_out {
                self.end_chunked(decoder.as_mut(), out);
            }
            if !out.is_empty() {
                io::flush_vec(dst, out, self.deadlines, self.write_timeout)
                    .await
                    .map_err(BodyError::Write)?;
            }
            if finished {
                if let (Some(t), Some(d)) = (trailers.as_mut(), decoder.as_mut()) {
                    **t = d.take_trailers();
                }
                return Ok(moved);
            }
        }
    }

    /// `run` through a compressor (the response body stage of
    /// `compress`): whatever the source's framing, its payload is fed to
    /// `enc` and the output sent as it comes, flushed after every read of
    /// the source, so nothing waits for more input (server-sent events
    /// stay live). For a chunked source, `trailers` (when given) gets its
    /// trailer fields as `run_keeping_trailers` would. Returns the bytes
    /// sent, compressed.
    pub async fn run_encoded<R: AsyncReadRent, W: AsyncWriteRent>(
        &self,
        src: &mut R,
        buf: &mut BytesMut,
        dst: &mut W,
        out: &mut Vec<u8>,
        enc: &mut Encoder,
        mut trailers: Option<&mut Vec<u8>>,
    ) -> Result<u64, BodyError> {
        let codec = |e: std::io::Error| BodyError::Write(IoFail::Io(e));
        let keep = trailers.is_some() || (self.chunked_out && self.trailers == Trailers::Pass);
        let mut decoder = (self.kind == BodyKind::Chunked).then(|| {
            if keep {
                Decoder::keeping_trailers()
            } else {
                Decoder::new()
            }
        });
        // What is left of a Content-Length body.
        let mut left = match self.kind {
            BodyKind::Length(n) => Some(n),
            BodyKind::Empty => Some(0),
            _ => None,
        };
        let mut sent = 0u64;
        loop {
            let mut finished = left == Some(0);
            if !finished && buf.is_empty() {
                let n = self.fill(src, buf).await?;
                if n == 0 {
                    if decoder.is_some() || left.is_some() {
                        // Cut short: the client must not get a clean end.
                        return Err(BodyError::Read(None));
                    }
                    finished = true;
                }
            }
            out.clear();
            let mut emit = |b: &[u8]| {
                sent += b.len() as u64;
                self.emit(b, out);
            };
            match (decoder.as_mut(), left.as_mut()) {
                (Some(d), _) => {
                    let mut off = 0;
                    while off < buf.len() && !d.is_done() {
                        let p = d.decode(&buf[off..]).map_err(BodyError::Framing)?;
                        if let Some(r) = p.data {
                            if let Some(t) = self.tee {
                                t.push(&buf[off + r.start..off + r.end]);
                            }
                            enc.write(&buf[off + r.start..off + r.end], &mut emit)
                                .map_err(codec)?;
                        }
                        off += p.consumed;
                    }
                    buf.advance(off);
                    finished = d.is_done();
                }
                (None, Some(left)) => {
                    let take = (buf.len() as u64).min(*left) as usize;
                    if let Some(t) = self.tee {
                        t.push(&buf[..take]);
                    }
                    enc.write(&buf[..take], &mut emit).map_err(codec)?;
                    buf.advance(take);
                    *left -= take as u64;
                    finished = *left == 0;
                }
                (None, None) => {
                    if let Some(t) = self.tee {
                        t.push(buf);
                    }
                    enc.write(buf, &mut emit).map_err(codec)?;
                    buf.clear();
                }
            }
            if finished {
                enc.finish(&mut emit).map_err(codec)?;
            } else {
                enc.flush(&mut emit).map_err(codec)?;
            }
            if finished && self.chunked_out {
                self.end_chunked(decoder.as_mut(), out);
            }
            if !out.is_empty() {
                io::flush_vec(dst, out, self.deadlines, self.write_timeout)
                    .await
                    .map_err(BodyError::Write)?;
            }
            if finished {
                if let (Some(t), Some(d)) = (trailers.as_mut(), decoder.as_mut()) {
                    **t = d.take_trailers();
                }
                return Ok(sent);
            }
        }
    }

    /// The last chunk of a chunked output, as `trailers` says.
    fn end_chunked(&self, decoder: Option<&mut Decoder>, out: &mut Vec<u8>) {
        match (self.trailers, decoder) {
            (Trailers::Caller, _) => {}
            (Trailers::Pass, Some(d)) => last_chunk(trailer_lines(&d.take_trailers()), out),
            _ => out.extend_from_slice(chunked::LAST_CHUNK),
        }
    }

    fn emit(&self, data: &[u8], out: &mut Vec<u8>) {
        if data.is_empty() {
            return;
        }
        if self.chunked_out {
            chunked::write_chunk_header(data.len(), out);
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_sections_keep_valid_allowed_fields_only() {
        let raw = b"X-Sum: 1\r\nBad Name: x\r\n: empty\r\nno colon\r\nX-Ctl: a\x01b\r\n\
Content-Length: 5\r\nHOST: h\r\nX-Tab:\tv w \r\n";
        let mut out = Vec::new();
        last_chunk(trailer_lines(raw), &mut out);
        assert_eq!(out, b"0\r\nX-Sum: 1\r\nX-Tab: v w\r\n\r\n");
    }

    #[test]
    fn no_trailers_make_the_plain_last_chunk() {
        let mut out = Vec::new();
        last_chunk(trailer_lines(b""), &mut out);
        assert_eq!(out, chunked::LAST_CHUNK);
    }
}
