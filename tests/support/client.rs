//! The client: raw bytes out, responses parsed by the strict reader in
//! `wire.rs`, every read under a deadline.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use super::wire::{decode_chunked, head_end, Framing, Head};
use super::IO_TIMEOUT;

/// A response as the client received it.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub head: Head,
    pub body: Vec<u8>,
    /// The body bytes as they came over the wire (chunked coding included).
    pub body_raw: Vec<u8>,
    pub framing: Framing,
}

impl Response {
    pub fn version(&self) -> &str {
        &self.head.line[0]
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.head.all(name)
    }
    pub fn has(&self, name: &str) -> bool {
        self.head.has(name)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn head_text(&self) -> String {
        String::from_utf8_lossy(&self.head.raw).into_owned()
    }
    /// The backend connection number stamped by the test backends.
    pub fn conn(&self) -> usize {
        self.header("x-conn")
            .unwrap_or_else(|| panic!("no X-Conn in response:\n{}", self.head_text()))
            .parse()
            .unwrap()
    }
    /// True if the response announced that the connection closes.
    pub fn says_close(&self) -> bool {
        self.all("connection")
            .iter()
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    }
}

#[derive(Debug)]
pub enum ReadError {
    /// Nothing (more) arrived within the deadline.
    Timeout { got: Vec<u8> },
    /// The connection ended first; `got` is what had arrived of this message.
    Eof { got: Vec<u8> },
    /// The bytes are not a valid response.
    Bad(String),
}

pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect to proxy");
        Client::from_stream(stream)
    }

    /// A client on a connection opened elsewhere.
    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, data: impl AsRef<[u8]>) {
        self.stream.write_all(data.as_ref()).expect("client write");
    }

    /// Writes `data` in pieces of `piece` bytes, pausing between them so that
    /// each piece arrives on its own.
    pub fn send_slowly(&mut self, data: &[u8], piece: usize, pause: Duration) {
        for p in data.chunks(piece.max(1)) {
            self.stream.write_all(p).expect("client write");
            std::thread::sleep(pause);
        }
    }

    /// The bytes read past the last response head (or body) and not yet
    /// consumed, taken out of the buffer.
    pub fn take_buffered(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    pub fn set_read_timeout(&mut self, t: Duration) {
        self.stream.set_read_timeout(Some(t)).unwrap();
    }

    /// One read into the buffer. `Ok(0)` is end of stream; a reset counts as one.
    fn fill(&mut self) -> Result<usize, ReadError> {
        let mut tmp = [0u8; 64 * 1024];
        // A blocking read may end early with EINTR; that is not an answer,
        // so retry.
        let read = loop {
            match self.stream.read(&mut tmp) {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                r => break r,
            }
        };
        match read {
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                Ok(n)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Err(ReadError::Timeout {
                    got: self.buf.clone(),
                })
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                ) =>
            {
                Ok(0)
            }
            Err(e) => Err(ReadError::Bad(format!("read: {e}"))),
        }
    }

    /// Reads only the next response head, leaving any body unread: for
    /// checking how a body is delimited without trusting that it is.
    pub fn head_only(&mut self) -> Result<Head, ReadError> {
        let end = loop {
            if let Some(end) = head_end(&self.buf) {
                break end;
            }
            if self.fill()? == 0 {
                return Err(ReadError::Eof {
                    got: std::mem::take(&mut self.buf),
                });
            }
        };
        let raw: Vec<u8> = self.buf.drain(..end).collect();
        Head::parse(&raw).map_err(ReadError::Bad)
    }

    /// Reads the next response (a `100 Continue` counts as one).
    pub fn try_response_to(&mut self, head_request: bool) -> Result<Response, ReadError> {
        let end = loop {
            if let Some(end) = head_end(&self.buf) {
                break end;
            }
            if self.fill()? == 0 {
                return Err(ReadError::Eof {
                    got: std::mem::take(&mut self.buf),
                });
            }
        };
        let raw: Vec<u8> = self.buf.drain(..end).collect();
        let head = Head::parse(&raw).map_err(ReadError::Bad)?;
        if !head.line[0].starts_with("HTTP/1.") {
            return Err(ReadError::Bad(format!("not a status line: {:?}", head.line)));
        }
        let status: u16 = head.line[1]
            .parse()
            .map_err(|_| ReadError::Bad(format!("bad status {:?}", head.line[1])))?;
        let framing = head
            .response_framing(status, head_request)
            .map_err(ReadError::Bad)?;
        let (body, body_raw) = match framing {
            Framing::None => (Vec::new(), Vec::new()),
            Framing::Length(n) => {
                let n = n as usize;
                while self.buf.len() < n {
                    if self.fill()? == 0 {
                        return Err(ReadError::Eof {
                            got: [raw, std::mem::take(&mut self.buf)].concat(),
                        });
                    }
                }
                let body: Vec<u8> = self.buf.drain(..n).collect();
                (body.clone(), body)
            }
            Framing::Chunked => loop {
                match decode_chunked(&self.buf) {
                    Ok(Some((data, used))) => break (data, self.buf.drain(..used).collect()),
                    Ok(None) => {
                        if self.fill()? == 0 {
                            return Err(ReadError::Eof {
                                got: [raw, std::mem::take(&mut self.buf)].concat(),
                            });
                        }
                    }
                    Err(e) => return Err(ReadError::Bad(e)),
                }
            },
            Framing::Close => {
                while self.fill()? > 0 {}
                let body = std::mem::take(&mut self.buf);
                (body.clone(), body)
            }
        };
        Ok(Response {
            status,
            head,
            body,
            body_raw,
            framing,
        })
    }

    pub fn try_response(&mut self) -> Result<Response, ReadError> {
        self.try_response_to(false)
    }

    /// Reads the next response, or fails the test.
    pub fn response(&mut self) -> Response {
        match self.try_response() {
            Ok(r) => r,
            Err(e) => panic!("no complete response: {}", describe(&e)),
        }
    }

    /// Reads the answer to a HEAD request (no body whatever the head says).
    pub fn response_to_head(&mut self) -> Response {
        match self.try_response_to(true) {
            Ok(r) => r,
            Err(e) => panic!("no complete response: {}", describe(&e)),
        }
    }

    /// Sends a request and reads its response.
    pub fn request(&mut self, raw: impl AsRef<[u8]>) -> Response {
        self.send(raw);
        self.response()
    }

    /// `GET path` with a fixed Host, on this connection.
    pub fn get(&mut self, path: &str) -> Response {
        self.request(format!("GET {path} HTTP/1.1\r\nHost: test.local\r\n\r\n"))
    }

    /// Asserts the server closes the connection with nothing more to say.
    pub fn expect_closed(&mut self) {
        match self.fill() {
            Ok(0) if self.buf.is_empty() => {}
            Ok(_) | Err(ReadError::Eof { .. }) => panic!(
                "expected the connection to close, got bytes: {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
            Err(e) => panic!("expected the connection to close: {}", describe(&e)),
        }
    }

    /// True if nothing arrives and the connection stays open for `t`.
    pub fn stays_open_for(&mut self, t: Duration) -> bool {
        self.set_read_timeout(t);
        let r = self.fill();
        self.set_read_timeout(IO_TIMEOUT);
        matches!(r, Err(ReadError::Timeout { .. })) && self.buf.is_empty()
    }

    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Bytes received and not yet consumed by a response.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }
}

pub fn describe(e: &ReadError) -> String {
    match e {
        ReadError::Timeout { got } => format!(
            "timed out after {} bytes: {:?}",
            got.len(),
            String::from_utf8_lossy(&got[..got.len().min(300)])
        ),
        ReadError::Eof { got } => format!(
            "connection closed after {} bytes: {:?}",
            got.len(),
            String::from_utf8_lossy(&got[..got.len().min(300)])
        ),
        ReadError::Bad(s) => s.clone(),
    }
}
