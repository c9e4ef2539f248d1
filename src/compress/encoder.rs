//! One response body's compressor: gzip (flate2), brotli or zstd, fed
//! piece by piece as the body arrives. After each piece the output is
//! flushed to a byte boundary the client can decode up to (deflate's sync
//! flush, brotli's and zstd's flush), so a slow upstream's bytes, server-sent
//! events included, reach the client when they arrive and are never held
//! for more input.
//!
//! Memory per response is the codec's state, bounded by its settings (see
//! `Levels` and the windows below), and the output of one piece. Each call
//! compresses at most one upstream read (`body::BODY_READ`), so the work a
//! worker does between two awaits is bounded too.

use std::io::Write;

use super::{Algorithm, Levels};

/// brotli's window: 2^18 bytes (256 KiB) rather than its default 4 MiB,
/// so a response's state stays a few hundred KiB (nginx's gzip keeps
/// about as much per response).
const BROTLI_LGWIN: u32 = 18;
/// zstd's window: 2^18 bytes, for the same reason; well inside the 8 MiB
/// that RFC 9659 lets a decoder of `zstd` content limit itself to.
const ZSTD_WINDOW_LOG: u32 = 18;
/// brotli's internal output buffer.
const BROTLI_BUF: usize = 4096;

enum Codec {
    /// Not made yet: the state is made with the first input, so a response
    /// waiting for its head's write or its upstream holds none.
    Pending(Algorithm, Levels),
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
    /// After `finish`.
    Done,
}

/// A streaming compressor whose output is taken after each call.
pub struct Encoder {
    codec: Codec,
}

impl Encoder {
    /// Allocates nothing yet (see [`Codec::Pending`]); a codec that cannot
    /// be made fails the first call that needs it.
    pub fn new(alg: Algorithm, levels: &Levels) -> Encoder {
        Encoder {
            codec: Codec::Pending(alg, *levels),
        }
    }

    fn made(&mut self) -> std::io::Result<&mut Codec> {
        if let Codec::Pending(alg, levels) = self.codec {
            self.codec = match alg {
                Algorithm::Gzip => Codec::Gzip(flate2::write::GzEncoder::new(
                    Vec::new(),
                    flate2::Compression::new(levels.gzip),
                )),
                Algorithm::Br => Codec::Br(Box::new(brotli::CompressorWriter::new(
                    Vec::new(),
                    BROTLI_BUF,
                    levels.br,
                    BROTLI_LGWIN,
                ))),
                Algorithm::Zstd => {
                    let mut z = zstd::stream::write::Encoder::new(Vec::new(), levels.zstd)?;
                    z.window_log(ZSTD_WINDOW_LOG)?;
                    Codec::Zstd(z)
                }
            };
        }
        Ok(&mut self.codec)
    }

    fn out(&mut self) -> Option<&mut Vec<u8>> {
        match &mut self.codec {
            Codec::Gzip(g) => Some(g.get_mut()),
            Codec::Br(b) => Some(b.get_mut()),
            Codec::Zstd(z) => Some(z.get_mut()),
            Codec::Pending(..) | Codec::Done => None,
        }
    }

    /// Compresses `input`: `emit` gets whatever output is ready (often
    /// nothing until a flush).
    pub fn write(&mut self, input: &[u8], emit: impl FnOnce(&[u8])) -> std::io::Result<()> {
        match self.made()? {
            Codec::Gzip(g) => g.write_all(input)?,
            Codec::Br(b) => b.write_all(input)?,
            Codec::Zstd(z) => z.write_all(input)?,
            Codec::Pending(..) | Codec::Done => return Err(std::io::ErrorKind::BrokenPipe.into()),
        }
        self.drain(emit);
        Ok(())
    }

    /// Flushes to a point the client can decode up to: `emit` gets the
    /// output of everything written so far.
    pub fn flush(&mut self, emit: impl FnOnce(&[u8])) -> std::io::Result<()> {
        match self.made()? {
            Codec::Gzip(g) => g.flush()?,
            Codec::Br(b) => b.flush()?,
            Codec::Zstd(z) => z.flush()?,
            Codec::Pending(..) | Codec::Done => return Err(std::io::ErrorKind::BrokenPipe.into()),
        }
        self.drain(emit);
        Ok(())
    }

    /// Ends the compressed stream: `emit` gets its last bytes.
    pub fn finish(&mut self, emit: impl FnOnce(&[u8])) -> std::io::Result<()> {
        // An empty body still ends in a valid (empty) stream.
        self.made()?;
        let out = match std::mem::replace(&mut self.codec, Codec::Done) {
            Codec::Gzip(g) => g.finish()?,
            Codec::Br(b) => b.into_inner(),
            Codec::Zstd(z) => z.finish()?,
            Codec::Pending(..) | Codec::Done => return Ok(()),
        };
        emit(&out);
        Ok(())
    }

    fn drain(&mut self, emit: impl FnOnce(&[u8])) {
        if let Some(out) = self.out() {
            if !out.is_empty() {
                emit(out);
            }
            out.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn levels() -> Levels {
        Levels {
            gzip: 5,
            br: 4,
            zstd: 3,
        }
    }

    /// Each piece's output can be decoded as soon as it is emitted; the
    /// whole stream decodes to the input. (The independent decoders are the
    /// integration tests'; these only check the wiring.)
    #[test]
    fn pieces_flush_and_the_stream_ends() {
        let text: Vec<u8> = (0..20_000u32)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        for alg in [Algorithm::Gzip, Algorithm::Br, Algorithm::Zstd] {
            let mut e = Encoder::new(alg, &levels());
            let mut out = Vec::new();
            let mut emitted_each = true;
            for piece in text.chunks(7000) {
                let before = out.len();
                e.write(piece, |b| out.extend_from_slice(b)).unwrap();
                e.flush(|b| out.extend_from_slice(b)).unwrap();
                emitted_each &= out.len() > before;
            }
            e.finish(|b| out.extend_from_slice(b)).unwrap();
            assert!(emitted_each, "{alg:?}: a piece was held back");
            assert!(out.len() < text.len() / 3, "{alg:?}: {} bytes", out.len());
            let mut back = Vec::new();
            match alg {
                Algorithm::Gzip => {
                    flate2::read::GzDecoder::new(&out[..])
                        .read_to_end(&mut back)
                        .unwrap();
                }
                Algorithm::Br => {
                    brotli::Decompressor::new(&out[..], 4096)
                        .read_to_end(&mut back)
                        .unwrap();
                }
                Algorithm::Zstd => back = zstd::stream::decode_all(&out[..]).unwrap(),
            }
            assert_eq!(back, text, "{alg:?}");
            // Writing after the end is an error, not a panic.
            assert!(e.write(b"x", |_| {}).is_err());
        }
    }
}
