//! `[log_format.NAME]`: an access log line written from a template with
//! nginx's variables, such as
//! `'$remote_addr - [$time_local] "$request" $status $request_time'`.
//!
//! The request's variables are the variable engine's (`crate::vars`: `$host`,
//! `$http_<name>`, `$request_id`, ...); those that only exist once a
//! response went out (`$status`, `$request_time`, `$upstream_addr`, ...)
//! are this module's. Each value is escaped as the format's `escape` says,
//! so no header value can end a line or break a JSON document.

use std::io::Write as _;
use std::time::Duration;

use super::{json, Dates};
use crate::vars::{self, Mode, Request, Scope, Template};

/// The variables only a finished request has, as written after `$`.
pub const NAMES: [&str; 18] = [
    "status",
    "body_bytes_sent",
    "bytes_sent",
    "request",
    "request_time",
    "request_length",
    "time_local",
    "time_iso8601",
    "msec",
    "upstream_addr",
    "upstream_status",
    "upstream_response_time",
    "upstream_header_time",
    "ssl_protocol",
    "ssl_cipher",
    "server_protocol",
    "remote_user",
    "pid",
];

/// How a value is escaped in the line (nginx's `escape=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// `"`, `\` and bytes outside printable ASCII as `\xHH` (nginx's default).
    Default,
    /// As in a JSON string, invalid UTF-8 as `\u00HH` of each byte: a line
    /// whose literal parts are a JSON object stays one, whatever a client sent.
    Json,
    /// As is, except CR and LF (`\x0D`, `\x0A`), so that one request is
    /// always one line.
    None,
}

/// A variable of the finished request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    Status,
    BodyBytes,
    /// The body bytes; a response head's length is not counted (ringway
    /// writes it with the first body bytes).
    BytesSent,
    Request,
    RequestTime,
    RequestLength,
    TimeLocal,
    TimeIso,
    Msec,
    UpstreamAddr,
    UpstreamStatus,
    UpstreamResponseTime,
    UpstreamHeaderTime,
    SslProtocol,
    SslCipher,
    ServerProtocol,
    RemoteUser,
    Pid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(Vec<u8>),
    Done(Done),
    /// A request variable: a template of that one variable.
    Req(Template),
}

/// A parsed `[log_format.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTemplate {
    pub name: String,
    parts: Vec<Part>,
    escape: Escape,
}

/// What a finished request adds to its variables.
pub struct Finished<'a> {
    pub status: u16,
    pub body_bytes: u64,
    /// The request line as logged (`GET / HTTP/1.1`).
    pub request_line: &'a [u8],
    pub request_time: Duration,
    /// The request head's length plus the body bytes read.
    pub request_length: u64,
    /// `$upstream_addr` and `$upstream_status`: every server tried, in order.
    pub tries: Option<(&'a str, &'a str)>,
    pub upstream_response_time: Option<Duration>,
    pub upstream_header_time: Option<Duration>,
    pub tls: Option<(&'a str, &'a str)>,
    /// `HTTP/1.1`, `HTTP/2.0`.
    pub protocol: &'a str,
    /// The user name of a basic `Authorization` field, if any.
    pub remote_user: Option<&'a [u8]>,
}

impl<'a> Finished<'a> {
    /// What an entry without one says (a request refused before its head
    /// was read): no times, no upstream.
    pub fn of(e: &super::Entry<'a>) -> Finished<'a> {
        Finished {
            status: e.status,
            body_bytes: e.body_bytes,
            request_line: e.request_line,
            request_time: Duration::ZERO,
            request_length: e.request_line.len() as u64,
            tries: e.tries,
            upstream_response_time: None,
            upstream_header_time: None,
            tls: e.tls,
            protocol: "HTTP/1.1",
            remote_user: None,
        }
    }
}

fn done(name: &str) -> Option<Done> {
    Some(match name {
        "status" => Done::Status,
        "body_bytes_sent" => Done::BodyBytes,
        "bytes_sent" => Done::BytesSent,
        "request" => Done::Request,
        "request_time" => Done::RequestTime,
        "request_length" => Done::RequestLength,
        "time_local" => Done::TimeLocal,
        "time_iso8601" => Done::TimeIso,
        "msec" => Done::Msec,
        "upstream_addr" => Done::UpstreamAddr,
        "upstream_status" => Done::UpstreamStatus,
        "upstream_response_time" => Done::UpstreamResponseTime,
        "upstream_header_time" => Done::UpstreamHeaderTime,
        "ssl_protocol" => Done::SslProtocol,
        "ssl_cipher" => Done::SslCipher,
        "server_protocol" => Done::ServerProtocol,
        "remote_user" => Done::RemoteUser,
        "pid" => Done::Pid,
        _ => return None,
    })
}

impl LogTemplate {
    /// Parses `text`: `$name` or `${name}`, `$$` for a dollar sign.
    pub fn parse(name: &str, text: &str, escape: Escape) -> Result<LogTemplate, String> {
        let mut parts = Vec::new();
        let mut lit = Vec::new();
        let mut rest = text;
        while let Some(d) = rest.find('$') {
            lit.extend_from_slice(&rest.as_bytes()[..d]);
            let after = &rest[d + 1..];
            if let Some(next) = after.strip_prefix('$') {
                lit.push(b'$');
                rest = next;
                continue;
            }
            let (var, next) = if let Some(b) = after.strip_prefix('{') {
                let end = b.find('}').ok_or_else(|| format!("unclosed `${{` in {text:?}"))?;
                (&b[..end], &b[end + 1..])
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            if var.is_empty() {
                return Err(format!(
                    "a `$` in {text:?} starts no variable (write `$$` for a dollar sign)"
                ));
            }
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            parts.push(match done(var) {
                Some(v) => Part::Done(v),
                None => Part::Req(request_var(var)?),
            });
            rest = next;
        }
        lit.extend_from_slice(rest.as_bytes());
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(LogTemplate {
            name: name.to_string(),
            parts,
            escape,
        })
    }

    /// Appends one line (with its `\n`) for a finished request.
    /// Without `r`, request variables are written as `-`.
    pub fn write(&self, r: Option<&Request>, f: &Finished, dates: &Dates, out: &mut Vec<u8>) {
        let mut value = Vec::new();
        for part in &self.parts {
            match part {
                Part::Lit(l) => out.extend_from_slice(l),
                Part::Done(d) => {
                    value.clear();
                    finished_value(*d, f, dates, &mut value);
                    self.put(&value, out);
                }
                Part::Req(t) => {
                    value.clear();
                    // An expansion over the engine's bound is cut there.
                    if let Some(r) = r {
                        let _ = t.expand(r, Mode::Raw, &mut value);
                    }
                    if value.is_empty() {
                        value.push(b'-');
                    }
                    self.put(&value, out);
                }
            }
        }
        out.push(b'\n');
    }

    fn put(&self, v: &[u8], out: &mut Vec<u8>) {
        match self.escape {
            Escape::Default => super::escape(v, out),
            Escape::Json => json::escape_into(v, out),
            Escape::None => {
                for &b in v {
                    match b {
                        b'\r' => out.extend_from_slice(b"\\x0D"),
                        b'\n' => out.extend_from_slice(b"\\x0A"),
                        _ => out.push(b),
                    }
                }
            }
        }
    }
}

/// A request variable's one-variable template; an unknown name's error
/// names the nearest variable of either kind.
fn request_var(name: &str) -> Result<Template, String> {
    vars::Template::parse(&format!("${{{name}}}"), Scope::default()).map_err(|e| {
        let near = NAMES
            .iter()
            .map(|k| (strsim::levenshtein(name, k), *k))
            .filter(|(d, _)| *d <= 2)
            .min();
        match near {
            Some((_, k)) => format!("unknown variable `${name}`; did you mean `${k}`?"),
            None => format!("{e}; or one of the log variables: ${}", NAMES.join(", $")),
        }
    })
}

/// Seconds with millisecond resolution, as nginx writes times.
fn seconds(d: Duration, out: &mut Vec<u8>) {
    let ms = d.as_millis();
    let _ = write!(out, "{}.{:03}", ms / 1000, ms % 1000);
}

fn finished_value(d: Done, f: &Finished, dates: &Dates, out: &mut Vec<u8>) {
    let dash = |out: &mut Vec<u8>| out.push(b'-');
    match d {
        Done::Status => {
            let _ = write!(out, "{}", f.status);
        }
        Done::BodyBytes | Done::BytesSent => {
            let _ = write!(out, "{}", f.body_bytes);
        }
        Done::Request => out.extend_from_slice(f.request_line),
        Done::RequestTime => seconds(f.request_time, out),
        Done::RequestLength => {
            let _ = write!(out, "{}", f.request_length);
        }
        Done::TimeLocal => out.extend_from_slice(dates.log_time().as_bytes()),
        Done::TimeIso => out.extend_from_slice(dates.iso_time().as_bytes()),
        Done::Msec => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let _ = write!(out, "{}.{:03}", now.as_secs(), now.subsec_millis());
        }
        Done::UpstreamAddr => match f.tries {
            Some((a, _)) => out.extend_from_slice(a.as_bytes()),
            None => dash(out),
        },
        Done::UpstreamStatus => match f.tries {
            Some((_, s)) => out.extend_from_slice(s.as_bytes()),
            None => dash(out),
        },
        Done::UpstreamResponseTime => match f.upstream_response_time {
            Some(t) => seconds(t, out),
            None => dash(out),
        },
        Done::UpstreamHeaderTime => match f.upstream_header_time {
            Some(t) => seconds(t, out),
            None => dash(out),
        },
        Done::SslProtocol => match f.tls {
            Some((p, _)) => out.extend_from_slice(p.as_bytes()),
            None => dash(out),
        },
        Done::SslCipher => match f.tls {
            Some((_, c)) => out.extend_from_slice(c.as_bytes()),
            None => dash(out),
        },
        Done::ServerProtocol => out.extend_from_slice(f.protocol.as_bytes()),
        Done::RemoteUser => match f.remote_user {
            Some(u) if !u.is_empty() => out.extend_from_slice(u),
            _ => dash(out),
        },
        Done::Pid => {
            let _ = write!(out, "{}", std::process::id());
        }
    }
}

/// The user of a `Basic` `Authorization` value (nginx's `$remote_user`):
/// what comes before the first `:` of the decoded credentials, or `None`
/// when the field is not Basic or does not decode.
pub fn basic_user(authorization: &[u8]) -> Option<Vec<u8>> {
    let (scheme, rest) = authorization.split_at(authorization.iter().position(|&b| b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim_ascii())
        .ok()?;
    let end = raw.iter().position(|&b| b == b':')?;
    Some(raw[..end].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse::{parse_request, Parsed};
    use bytes::Bytes;

    fn line(fmt: &str, escape: Escape, raw: &'static [u8], f: &Finished) -> Vec<u8> {
        let t = LogTemplate::parse("t", fmt, escape).unwrap();
        let l = crate::http::parse::HeadLimits {
            max_request_line: 8192,
            max_header_size: 8192,
            max_headers: 64,
        };
        let Ok(Parsed::Complete(p, n)) = parse_request(raw, &l) else {
            panic!("test request");
        };
        let head = p.into_head(Bytes::from_static(&raw[..n]));
        let r = Request {
            head: &head,
            uri: b"/a",
            args: b"x=1",
            host: b"ex.com",
            https: false,
            client: "10.0.0.1".parse().unwrap(),
            port: 80,
            request_id: b"abc",
            trace_id: b"",
            captures: None,
        };
        let mut out = Vec::new();
        t.write(Some(&r), f, &Dates::default(), &mut out);
        out
    }

    fn finished() -> Finished<'static> {
        Finished {
            status: 404,
            body_bytes: 12,
            request_line: b"GET /a?x=1 HTTP/1.1",
            request_time: Duration::from_micros(1_234_567),
            request_length: 40,
            tries: Some(("127.0.0.1:1, 127.0.0.1:2", "502, 404")),
            upstream_response_time: Some(Duration::from_millis(5)),
            upstream_header_time: None,
            tls: None,
            protocol: "HTTP/1.1",
            remote_user: None,
        }
    }

    #[test]
    fn both_kinds_of_variable_expand() {
        let raw = b"GET /a?x=1 HTTP/1.1\r\nHost: ex.com\r\nUser-Agent: t\"q\r\n\r\n";
        let out = line(
            "$remote_addr \"$request\" $status $body_bytes_sent $request_time $upstream_addr \
             $upstream_status $upstream_response_time $upstream_header_time $ssl_protocol \
             $http_user_agent $arg_x $request_id $$ ${status}x",
            Escape::Default,
            raw,
            &finished(),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "10.0.0.1 \"GET /a?x=1 HTTP/1.1\" 404 12 1.234 127.0.0.1:1, 127.0.0.1:2 502, 404 \
             0.005 - - t\\x22q 1 abc $ 404x\n"
        );
    }

    #[test]
    fn json_escaping_keeps_the_line_one_document() {
        let raw = b"GET / HTTP/1.1\r\nUser-Agent: a\"b\\c\xff\r\n\r\n";
        let out = line(
            r#"{"ua":"$http_user_agent","s":$status}"#,
            Escape::Json,
            raw,
            &finished(),
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["ua"], "a\"b\\c\u{ff}");
        assert_eq!(v["s"], 404);
    }

    #[test]
    fn unknown_variables_are_load_errors_that_suggest() {
        let e = LogTemplate::parse("t", "$stauts", Escape::Default).unwrap_err();
        assert!(e.contains("did you mean `$status`"), "{e}");
        let e = LogTemplate::parse("t", "$hots", Escape::Default).unwrap_err();
        assert!(e.contains("$host"), "{e}");
        assert!(LogTemplate::parse("t", "a $", Escape::Default).is_err());
        assert!(LogTemplate::parse("t", "${status", Escape::Default).is_err());
        // Captures have no regex in scope here.
        assert!(LogTemplate::parse("t", "$1", Escape::Default).is_err());
    }

    #[test]
    fn basic_user_is_the_name_before_the_colon() {
        assert_eq!(
            basic_user(b"Basic YWxpY2U6c2VjcmV0").as_deref(),
            Some(&b"alice"[..])
        );
        assert_eq!(basic_user(b"Bearer xyz"), None);
        assert_eq!(basic_user(b"Basic !!!"), None);
        assert_eq!(basic_user(b"Basic"), None);
    }
}
