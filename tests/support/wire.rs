//! A deliberately small and strict HTTP/1.1 reader for the test side of the
//! wire, written independently of the proxy's parser so that the two cannot
//! share a mistake.

/// How a message body was delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body by the rules (HEAD, 1xx, 204, 304) or no length given on a request.
    None,
    Length(u64),
    Chunked,
    /// Until the connection closed.
    Close,
}

/// A parsed head: first line and fields in received order.
#[derive(Debug, Clone)]
pub struct Head {
    /// The three parts of the first line, split at the first two spaces.
    pub line: [String; 3],
    pub headers: Vec<(String, String)>,
    /// The exact bytes, blank line included.
    pub raw: Vec<u8>,
}

impl Head {
    /// Parses `buf[..len]`, where `len` ends just after the blank line.
    pub fn parse(raw: &[u8]) -> Result<Head, String> {
        let text = std::str::from_utf8(raw).map_err(|_| "head is not UTF-8".to_string())?;
        let text = text
            .strip_suffix("\r\n\r\n")
            .ok_or_else(|| format!("head does not end in CRLFCRLF: {text:?}"))?;
        let mut lines = text.split("\r\n");
        let first = lines.next().unwrap_or_default();
        let mut parts = first.splitn(3, ' ');
        let line = [
            parts.next().unwrap_or_default().to_string(),
            parts.next().unwrap_or_default().to_string(),
            parts.next().unwrap_or_default().to_string(),
        ];
        let mut headers = Vec::new();
        for l in lines {
            if l.contains('\n') || l.contains('\r') {
                return Err(format!("bare CR or LF in head line {l:?}"));
            }
            let (name, value) = l
                .split_once(':')
                .ok_or_else(|| format!("header line without a colon: {l:?}"))?;
            if name.is_empty() || name.ends_with([' ', '\t']) {
                return Err(format!("bad header name in {l:?}"));
            }
            headers.push((name.to_string(), value.trim_matches([' ', '\t']).to_string()));
        }
        Ok(Head {
            line,
            headers,
            raw: raw.to_vec(),
        })
    }

    /// The first value of a field, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a field, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    /// Body framing of a request with this head.
    pub fn request_framing(&self) -> Result<Framing, String> {
        if let Some(te) = self.header("transfer-encoding") {
            if !te.eq_ignore_ascii_case("chunked") || self.all("transfer-encoding").len() != 1 {
                return Err(format!("unexpected Transfer-Encoding {te:?}"));
            }
            if self.has("content-length") {
                return Err("Content-Length with Transfer-Encoding".into());
            }
            return Ok(Framing::Chunked);
        }
        match self.header("content-length") {
            Some(v) => v
                .parse()
                .map(Framing::Length)
                .map_err(|_| format!("bad Content-Length {v:?}")),
            None => Ok(Framing::None),
        }
    }

    /// Body framing of a response with this head, answering `method`.
    pub fn response_framing(&self, status: u16, head_request: bool) -> Result<Framing, String> {
        if head_request || status < 200 || status == 204 || status == 304 {
            return Ok(Framing::None);
        }
        if let Some(te) = self.header("transfer-encoding") {
            if self.has("content-length") {
                return Err("Content-Length with Transfer-Encoding".into());
            }
            if !te.eq_ignore_ascii_case("chunked") {
                return Err(format!("unexpected Transfer-Encoding {te:?}"));
            }
            return Ok(Framing::Chunked);
        }
        match self.all("content-length").as_slice() {
            [] => Ok(Framing::Close),
            [v] => v
                .parse()
                .map(Framing::Length)
                .map_err(|_| format!("bad Content-Length {v:?}")),
            many => Err(format!("several Content-Length fields: {many:?}")),
        }
    }
}

/// Where a head ends in `buf` (just after the blank line), if it is complete.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// A strict chunked decoder over a complete buffer: returns `Ok(Some((data,
/// used)))` once the last chunk and trailers are in `buf`, `Ok(None)` when
/// more bytes are needed, and an error for anything RFC 9112 §7.1 does not
/// allow. Sizes are hex digits only and every line ends in CRLF.
pub fn decode_chunked(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, String> {
    let mut data = Vec::new();
    let mut pos = 0;
    loop {
        let Some(eol) = find_crlf(&buf[pos..]) else {
            if buf[pos..].contains(&b'\n') {
                return Err("chunk size line ended by bare LF".into());
            }
            return Ok(None);
        };
        let line = &buf[pos..pos + eol];
        let size_part = line.split(|&b| b == b';').next().unwrap_or_default();
        if size_part.is_empty() || !size_part.iter().all(u8::is_ascii_hexdigit) {
            return Err(format!("bad chunk size line {:?}", String::from_utf8_lossy(line)));
        }
        let size = usize::from_str_radix(std::str::from_utf8(size_part).unwrap(), 16)
            .map_err(|e| format!("chunk size: {e}"))?;
        pos += eol + 2;
        if size == 0 {
            // Trailer fields, then the blank line.
            loop {
                let Some(eol) = find_crlf(&buf[pos..]) else {
                    return Ok(None);
                };
                pos += eol + 2;
                if eol == 0 {
                    return Ok(Some((data, pos)));
                }
            }
        }
        if buf.len() < pos + size + 2 {
            return Ok(None);
        }
        data.extend_from_slice(&buf[pos..pos + size]);
        pos += size;
        if &buf[pos..pos + 2] != b"\r\n" {
            return Err("chunk data not followed by CRLF".into());
        }
        pos += 2;
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// Splits a chunked body (as it went over the wire) into its chunk-size
/// lines, so a test can check that extensions did not cross the proxy.
pub fn chunk_size_lines(raw: &[u8]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut pos = 0;
    while let Some(eol) = find_crlf(&raw[pos..]) {
        let line = String::from_utf8_lossy(&raw[pos..pos + eol]).into_owned();
        pos += eol + 2;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or_default(), 16).unwrap_or(0);
        lines.push(line);
        if size == 0 {
            break;
        }
        pos += size + 2;
        if pos > raw.len() {
            break;
        }
    }
    lines
}

/// `data` as chunks of at most `piece` bytes, with the last chunk.
pub fn chunked(data: &[u8], piece: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / piece.max(1) * 8 + 8);
    for c in data.chunks(piece.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}
