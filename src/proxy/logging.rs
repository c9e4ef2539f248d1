//! Phase: logging. A finished request's counters and its access log
//! line, with the variables a `[log_format.NAME]` template reads.

use std::time::Instant;

use super::phases::Exchange;
use super::session::ClientSession;
use crate::ctx::WorkerCtx;
use crate::http::{BodyKind, Version};
use crate::log::Entry;
use crate::vars;

/// Phase: logging: the request's counters, and its access log entry.
pub(super) fn log_request<S: ClientSession>(ctx: &WorkerCtx, ds: &S, ex: &Exchange) {
    let gen = &ex.gen;
    let body_in = match ex.meta.body() {
        BodyKind::Length(n) if ex.req_body_done => n,
        _ => 0,
    };
    gen.metrics.request(
        ctx.id,
        ex.server,
        S::HTTP2,
        ex.status,
        (body_in, ex.body_bytes),
        ex.start.elapsed(),
    );
    if gen.logs.enabled(ex.server) {
        // The servers a request was sent to: nginx's $upstream_addr and
        // $upstream_status ("a, b" and "502, 200"), built only when the line
        // has them: in the combined format, only for several.
        let several = ex.tries.len() > 1;
        let one = ex
            .answered
            .filter(|_| !several && gen.logs.names_upstream(ex.server));
        let tries = if several {
            let mut addrs = String::new();
            let mut statuses = String::new();
            for (k, &(up, peer, status)) in ex.tries.iter().enumerate() {
                let sep = if k == 0 { "" } else { ", " };
                addrs.push_str(sep);
                addrs.push_str(&gen.config.upstreams[up].servers[peer].addr_text);
                statuses.push_str(sep);
                statuses.push_str(&status.to_string());
            }
            Some((addrs, statuses))
        } else {
            one.map(|(up, peer, status)| {
                (
                    gen.config.upstreams[up].servers[peer].addr_text.clone(),
                    status.to_string(),
                )
            })
        };
        let request_line = ds.log_line(&ex.head);
        let tries = tries.as_ref().map(|(a, s)| (a.as_str(), s.as_str()));
        let tls = ds.tls().map(|t| (t.version, t.cipher));
        // A template's variables: the request's (as it was received), and
        // what its answer added.
        let templated = gen.logs.templated(ex.server).then(|| {
            let target = ex.head.target.of(&ex.head.buf);
            let q = target.iter().position(|&b| b == b'?');
            let user = ex.head.header("authorization").and_then(crate::log::basic_user);
            let now = Instant::now();
            let vars = vars::Request {
                head: &ex.head,
                uri: &target[..q.unwrap_or(target.len())],
                args: q.map_or(&b""[..], |q| &target[q + 1..]),
                host: ex.meta.host.map_or(&b""[..], |h| h.of(&ex.head.buf)),
                https: ds.tls().is_some(),
                client: ex.client,
                port: ds.conn().local_port,
                request_id: ex.request_id.as_bytes(),
                trace_id: ex.trace.as_ref().map_or(&b""[..], |t| t.trace_id()),
                captures: None,
            };
            let protocol = match (S::HTTP2, ex.head.version) {
                (true, _) => "HTTP/2.0",
                (false, Version::Http10) => "HTTP/1.0",
                (false, _) => "HTTP/1.1",
            };
            (vars, user, now, protocol)
        });
        let finished = templated
            .as_ref()
            .map(|(_, user, now, protocol)| crate::log::Finished {
                status: ex.status,
                body_bytes: ex.body_bytes,
                request_line: &request_line,
                request_time: now.duration_since(ex.start),
                request_length: ex.head.buf.len() as u64 + body_in,
                tries,
                upstream_response_time: ex.upstream_timing.map(|(t, _)| now.duration_since(t)),
                upstream_header_time: ex.upstream_timing.map(|(_, h)| h),
                tls,
                protocol,
                remote_user: user.as_deref(),
            });
        gen.logs.write(
            ex.server,
            &ctx.dates,
            &Entry {
                client: ex.client,
                request_line: &request_line,
                status: ex.status,
                body_bytes: ex.body_bytes,
                referer: ex.head.header("referer"),
                user_agent: ex.head.header("user-agent"),
                tries,
                tried: ex.tries.len().max(usize::from(ex.answered.is_some())),
                tls,
                request_id: Some(ex.request_id.as_bytes()).filter(|i| !i.is_empty()),
                trace_id: ex.trace.as_ref().map(|t| t.trace_id()),
                template: templated
                    .as_ref()
                    .zip(finished.as_ref())
                    .map(|((v, ..), f)| (Some(v), f)),
            },
        );
    }
}
