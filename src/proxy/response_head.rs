//! Phase read_response_head for an HTTP/1.1 upstream: interim responses
//! passed on as they come, then the final head, under the read timeout.

use super::forward::{InterimTo, MAX_INTERIM, MAX_RESPONSE_HEAD, MAX_RESPONSE_HEADERS};
use super::session::ClientSession;
use crate::ctx::WorkerCtx;
use crate::error::{Error, ErrorKind, Result};
use crate::http::framing::response_meta;
use crate::http::parse::{parse_response, Parsed};
use crate::http::ResponseHead;
use crate::io::{self, IoFail};
use crate::upstream::UpConn;
use std::time::Duration;

/// Phase: read_response_head. A `101` ends the head phase when the client
/// asked for an upgrade (`upgrade`), and is a bad response otherwise.
/// Interim 1xx responses are passed on to the client as they arrive
/// (`interim`: where they go, `None` for an
/// HTTP/1.0 client, which must not get them), except 100
/// Continue: ringway answers a client's `Expect: 100-continue` itself and
/// does not forward Expect, so an upstream's 100 is not the client's.
/// `sent` is set once one went to the client: if the exchange then fails,
/// the client gets an error response and the request is not sent again.
pub(super) async fn read_response_head<S: ClientSession>(
    ctx: &WorkerCtx,
    conn: &mut UpConn,
    read_timeout: Duration,
    head_request: bool,
    upgrade: bool,
    mut interim: Option<InterimTo<'_, '_, S>>,
    sent: &mut bool,
) -> Result<(ResponseHead, crate::http::ResponseMeta)> {
    let mut interims = 0;
    // The bytes of this response's heads so far, interim ones included:
    // each 1xx is small enough alone, but together with the rest they are
    // bounded like one head, or an upstream could send the client a stream
    // of large hints.
    let mut head_bytes = 0;
    let too_large = |interims: usize| {
        Error::new(ErrorKind::BadResponse(if interims == 0 {
            "response head too large"
        } else {
            "interim (1xx) and final response heads too large"
        }))
    };
    loop {
        if !conn.rbuf.is_empty() {
            match parse_response(&conn.rbuf, MAX_RESPONSE_HEADERS) {
                Ok(Parsed::Complete(mut head, len)) => {
                    head_bytes += len;
                    if head_bytes > MAX_RESPONSE_HEAD {
                        return Err(too_large(interims));
                    }
                    head.buf = conn.rbuf.split_to(len).freeze();
                    if head.status == 101 && upgrade {
                        let meta = response_meta(&head, true)
                            .map_err(|_| Error::new(ErrorKind::BadResponse("invalid 101 head")))?;
                        return Ok((head, meta));
                    }
                    if head.status == 101 {
                        return Err(
                            ErrorKind::BadResponse("101 Switching Protocols was not asked for").into(),
                        );
                    }
                    if (100..200).contains(&head.status) {
                        interims += 1;
                        if interims > MAX_INTERIM {
                            return Err(ErrorKind::BadResponse("too many interim (1xx) responses").into());
                        }
                        if let (Some(to), false) = (interim.as_mut(), head.status == 100) {
                            // Set before the write: part of it may reach
                            // the client even if the write fails.
                            *sent = true;
                            to.client
                                .send_interim(ctx, &head, to.redirect, to.send_timeout)
                                .await
                                .map_err(|_| Error::new(ErrorKind::ClientGone))?;
                        }
                        continue;
                    }
                    let meta = response_meta(&head, head_request).map_err(|e| match e {
                        crate::http::HttpError::Malformed(why) => Error::new(ErrorKind::BadResponse(why)),
                        _ => Error::new(ErrorKind::BadResponse("invalid response head")),
                    })?;
                    return Ok((head, meta));
                }
                // What is buffered is the start of one head: the ones
                // before it were split off.
                Ok(Parsed::Partial) if head_bytes + conn.rbuf.len() > MAX_RESPONSE_HEAD => {
                    return Err(too_large(interims));
                }
                Ok(Parsed::Partial) => {}
                Err(crate::http::HttpError::HeadersTooLarge) => {
                    return Err(ErrorKind::BadResponse("too many response header fields").into());
                }
                Err(_) => return Err(ErrorKind::BadResponse("invalid response head").into()),
            }
        }
        let had_bytes = !conn.rbuf.is_empty();
        match io::read_buf(
            &mut conn.stream,
            &mut conn.rbuf,
            super::HEAD_BUF,
            &ctx.deadlines,
            read_timeout,
        )
        .await
        {
            Ok(0) if had_bytes => return Err(ErrorKind::BadResponse("response head cut short").into()),
            Ok(0) => return Err(ErrorKind::UpstreamClosed.into()),
            Ok(_) => {}
            Err(IoFail::Timeout) => return Err(ErrorKind::ReadTimeout.into()),
            Err(IoFail::Io(e)) if had_bytes => {
                return Err(Error::io(ErrorKind::BadResponse("response head cut short"), e))
            }
            Err(IoFail::Io(e)) => return Err(Error::io(ErrorKind::UpstreamClosed, e)),
        }
    }
}
