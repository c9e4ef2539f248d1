//! One error type for the request path, and the one place that decides what
//! the client sees for it.
//!
//! Each error has a kind and the side whose fault it was: the downstream
//! client (4xx, or a silent close when the client is gone), the upstream (502
//! or 504), or ringway itself (500).

use std::fmt;
use std::io;

use crate::http::HttpError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Downstream,
    Upstream,
    Internal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    // The client's fault.
    BadRequest(&'static str),
    UriTooLong,
    HeadersTooLarge,
    VersionNotSupported,
    ExpectationFailed,
    MethodNotAllowed,
    BodyTooLarge,
    NotFound,
    /// A static location has no such file (or refuses to say it has one).
    NoFile,
    /// A static location refuses the file: permissions, a symlink it does
    /// not follow, a directory without an index.
    Forbidden,
    /// A status the config answers with (`try_files`' `=404`, an upstream
    /// error status that `intercept_errors` replaces by its page).
    Answer(u16),
    /// No complete head within `client_header_timeout`.
    HeaderTimeout,
    /// The body stalled past `client_body_timeout`.
    BodyTimeout,
    /// The client went away or stalled while we wrote to it; nobody to answer.
    ClientGone,
    // The upstream's fault.
    ConnectRefused,
    ConnectTimeout,
    /// The TLS handshake with the upstream failed: an untrusted or expired
    /// certificate, a name mismatch, no protocol in common. Counts as a
    /// failed connect.
    UpstreamTls,
    ReadTimeout,
    SendTimeout,
    /// A response that is not valid HTTP/1.x or frames its body ambiguously.
    BadResponse(&'static str),
    /// The connection closed or reset before a complete response head.
    UpstreamClosed,
    /// The connection failed in the middle of a response body.
    UpstreamTruncated,
    /// Every server of the upstream is marked down (passive health).
    NoLiveUpstream,
    /// The file helper threads' queue is full.
    FilesBusy,
    Internal,
}

/// An error on the request path, with the I/O error behind it if any.
#[derive(Debug)]
pub struct Error {
    pub kind: ErrorKind,
    pub source: Option<io::Error>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ErrorKind) -> Error {
        Error { kind, source: None }
    }

    pub fn io(kind: ErrorKind, source: io::Error) -> Error {
        Error {
            kind,
            source: Some(source),
        }
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Error {
        Error::new(kind)
    }
}

impl From<HttpError> for ErrorKind {
    fn from(e: HttpError) -> ErrorKind {
        match e {
            HttpError::Malformed(why) => ErrorKind::BadRequest(why),
            HttpError::UriTooLong => ErrorKind::UriTooLong,
            HttpError::HeadersTooLarge => ErrorKind::HeadersTooLarge,
            HttpError::Version => ErrorKind::VersionNotSupported,
            HttpError::Expectation => ErrorKind::ExpectationFailed,
        }
    }
}

impl ErrorKind {
    /// A failure that counts against the server in passive health (nginx's
    /// `error`, `timeout` and `invalid_header`): it could not be reached, did
    /// not answer in time, or answered with something that is not HTTP.
    pub fn is_server_failure(self) -> bool {
        use ErrorKind::*;
        matches!(
            self,
            ConnectRefused
                | ConnectTimeout
                | UpstreamTls
                | ReadTimeout
                | SendTimeout
                | BadResponse(_)
                | UpstreamClosed
        )
    }

    pub fn side(self) -> Side {
        use ErrorKind::*;
        match self {
            BadRequest(_) | UriTooLong | HeadersTooLarge | VersionNotSupported | ExpectationFailed
            | MethodNotAllowed | BodyTooLarge | NotFound | NoFile | Forbidden | Answer(_) | HeaderTimeout
            | BodyTimeout | ClientGone => Side::Downstream,
            ConnectRefused | ConnectTimeout | UpstreamTls | ReadTimeout | SendTimeout | BadResponse(_)
            | UpstreamClosed | UpstreamTruncated | NoLiveUpstream => Side::Upstream,
            FilesBusy | Internal => Side::Internal,
        }
    }

    /// The status the client is sent, or `None` when the connection is just
    /// closed (the client is gone, or a response was already under way).
    pub fn status(self) -> Option<u16> {
        use ErrorKind::*;
        Some(match self {
            BadRequest(_) => 400,
            NotFound | NoFile => 404,
            Forbidden => 403,
            Answer(s) => s,
            MethodNotAllowed => 405,
            HeaderTimeout | BodyTimeout => 408,
            BodyTooLarge => 413,
            UriTooLong => 414,
            ExpectationFailed => 417,
            HeadersTooLarge => 431,
            VersionNotSupported => 505,
            ConnectRefused | UpstreamTls | BadResponse(_) | UpstreamClosed => 502,
            ConnectTimeout | ReadTimeout | SendTimeout => 504,
            NoLiveUpstream | FilesBusy => 503,
            Internal => 500,
            ClientGone | UpstreamTruncated => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        use ErrorKind::*;
        match self {
            BadRequest(why) => why,
            UriTooLong => "request line too long",
            HeadersTooLarge => "request header section too large",
            VersionNotSupported => "HTTP version not supported",
            ExpectationFailed => "unsupported expectation",
            MethodNotAllowed => "method not allowed",
            BodyTooLarge => "request body over client_max_body_size",
            NotFound => "no location matches",
            NoFile => "no such file",
            Forbidden => "file access forbidden",
            Answer(_) => "status answered by the config",
            FilesBusy => "file helper queue full",
            HeaderTimeout => "client_header_timeout expired",
            BodyTimeout => "client_body_timeout expired",
            ClientGone => "client closed or stalled",
            ConnectRefused => "upstream connect failed",
            ConnectTimeout => "upstream connect timed out",
            UpstreamTls => "upstream TLS handshake failed",
            ReadTimeout => "upstream read timed out",
            SendTimeout => "upstream send timed out",
            BadResponse(why) => why,
            UpstreamClosed => "upstream closed before responding",
            UpstreamTruncated => "upstream closed mid-response",
            NoLiveUpstream => "every upstream server is down",
            Internal => "internal error",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.as_str())?;
        if let Some(e) = &self.source {
            write!(f, ": {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_by_side() {
        assert_eq!(ErrorKind::ConnectRefused.status(), Some(502));
        assert_eq!(ErrorKind::ReadTimeout.status(), Some(504));
        assert_eq!(ErrorKind::UriTooLong.status(), Some(414));
        assert_eq!(ErrorKind::HeadersTooLarge.status(), Some(431));
        assert_eq!(ErrorKind::ClientGone.status(), None);
        assert_eq!(ErrorKind::NoLiveUpstream.status(), Some(503));
        assert_eq!(ErrorKind::NoLiveUpstream.side(), Side::Upstream);
        assert_eq!(ErrorKind::BadResponse("x").side(), Side::Upstream);
        assert_eq!(ErrorKind::BodyTooLarge.side(), Side::Downstream);
    }
}
