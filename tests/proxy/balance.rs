//! Load balancing and failover: the `balance` rules, `backup` servers,
//! passive health (`max_fails` / `fail_timeout`) and trying the next server.
//! Each backend answers with its own letter, so the test sees where every
//! request went.

use std::net::{IpAddr, SocketAddr};

use crate::support::*;

/// One upstream `app` of `servers` (TOML array items) with `extra` keys, and
/// a server block proxying everything to it. One worker unless said otherwise.
fn lb_config(servers: &str, extra: &str, global_extra: &str) -> String {
    format!(
        r#"[global]
drain_timeout = "1s"
{global_extra}

[[upstream]]
name = "app"
servers = [{servers}]
{extra}

[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
[[server.location]]
path = "/"
proxy_pass = "http://app"
"#
    )
}

fn lettered(letter: &'static str) -> Backend {
    Backend::serve(move |_| Reply::ok(letter))
}

/// A backend that accepts and closes at once: the proxy sees the connection
/// closed before any response byte. It counts the connections it was offered.
fn closing() -> Backend {
    Backend::start(|_| {})
}

fn quoted(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

fn letters(p: &Proxy, n: usize) -> String {
    (0..n)
        .map(|_| {
            let r = p.get("/");
            assert_eq!(r.status, 200, "{}", r.text());
            r.text()
        })
        .collect()
}

#[test]
fn round_robin_is_the_default() {
    let a = lettered("a");
    let b = lettered("b");
    let p = Proxy::start(&lb_config(&quoted(&[a.addr, b.addr]), "", ""));
    assert_eq!(letters(&p, 6), "ababab");
}

/// A backend whose `/slow` answer waits for `gate`: a request held in flight.
fn holding(letter: &'static str, gate: &Gate) -> Backend {
    let gate = gate.clone();
    Backend::serve(move |r| {
        if r.target() == "/slow" {
            gate.wait();
        }
        Reply::ok(letter)
    })
}

#[test]
fn least_conn_avoids_the_server_with_a_request_in_flight() {
    let gate = Gate::new();
    let a = holding("a", &gate);
    let b = lettered("b");
    let c = lettered("c");
    let p = Proxy::start(&lb_config(
        &quoted(&[a.addr, b.addr, c.addr]),
        "balance = \"least_conn\"",
        "",
    ));
    // Every server idle: a tie, settled by round robin, so `a` goes first.
    let mut slow = p.client();
    slow.send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
    a.wait_requests(1);
    // `a` has one in flight; b and c share the rest in turn.
    assert_eq!(letters(&p, 6), "bcbcbc");
    gate.open();
    assert_eq!(slow.response().text(), "a");
    // Once it finished, `a` is as idle as the others and back in the rotation.
    let got = letters(&p, 6);
    assert!(got.contains('a'), "{got}");
}

/// GET / as if from `client`, via a trusted proxy's X-Forwarded-For.
fn get_from(p: &Proxy, client: IpAddr) -> String {
    let r = p.send(format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: {client}\r\n\r\n"
    ));
    assert_eq!(r.status, 200);
    r.text()
}

#[test]
fn ip_hash_keeps_a_client_on_one_server_in_every_worker_and_after_a_restart() {
    let a = lettered("a");
    let b = lettered("b");
    let c = lettered("c");
    let toml = lb_config(
        &format!(
            "\"{}\", \"{}\", {{ addr = \"{}\", weight = 2 }}",
            a.addr, b.addr, c.addr
        ),
        "balance = \"ip_hash\"",
        "trusted_proxies = [\"127.0.0.1\"]",
    );
    let clients: Vec<IpAddr> = (1..=40u8).map(|n| IpAddr::from([192, 0, 2, n])).collect();
    let first = Proxy::start(&toml);
    let seen: Vec<String> = clients.iter().map(|&ip| get_from(&first, ip)).collect();
    drop(first);
    // The server is the one the hash names, so it cannot depend on the
    // worker, the process or the order of requests.
    for (ip, got) in clients.iter().zip(&seen) {
        let want = ringway::upstream::balance::ip_hash(*ip, &[1, 1, 2], |_| true, |_| true).unwrap();
        assert_eq!(got.as_str(), ["a", "b", "c"][want], "{ip}");
    }
    assert!(
        ["a", "b", "c"].iter().all(|l| seen.iter().any(|s| s == l)),
        "{seen:?}"
    );
    let again = Proxy::with_workers(&toml, 3);
    for _ in 0..2 {
        for (ip, want) in clients.iter().zip(&seen) {
            assert_eq!(&get_from(&again, *ip), want, "{ip}");
        }
    }
}

#[test]
fn random_two_spreads_and_prefers_the_idle_server() {
    let gate = Gate::new();
    let a = holding("a", &gate);
    let b = lettered("b");
    let p = Proxy::start(&lb_config(
        &quoted(&[a.addr, b.addr]),
        "balance = \"random_two\"",
        "",
    ));
    let idle = letters(&p, 60);
    // With both idle, each draw is a coin toss: both get some.
    assert!(idle.contains('a') && idle.contains('b'), "{idle}");
    // Hold a request on `a` (sent until one lands there).
    let mut slow = None;
    for _ in 0..200 {
        let mut c = p.client();
        c.send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
        if wait_for(std::time::Duration::from_millis(200), || {
            a.seen().iter().any(|s| s.target() == "/slow").then_some(())
        })
        .is_some()
        {
            slow = Some(c);
            break;
        }
        assert_eq!(c.response().text(), "b");
    }
    let mut slow = slow.expect("a /slow request reached a");
    // `a` now wins only when drawn twice (one time in four).
    let busy = letters(&p, 60);
    let on_a = busy.matches('a').count();
    assert!(on_a < 30, "{busy}");
    gate.open();
    assert_eq!(slow.response().text(), "a");
}

#[test]
fn a_backup_gets_requests_only_while_every_primary_is_down() {
    let a = lettered("a");
    let backup = lettered("z");
    let p = Proxy::start(&lb_config(
        &format!("\"{}\", {{ addr = \"{}\", backup = true }}", a.addr, backup.addr),
        "",
        "",
    ));
    assert_eq!(letters(&p, 4), "aaaa");
    backup.assert_untouched("backup while the primary is up");

    let dead = closed_port();
    let p = Proxy::start(&lb_config(
        &format!("\"{dead}\", {{ addr = \"{}\", backup = true }}", backup.addr),
        "",
        "",
    ));
    // The first request finds the primary dead and goes on to the backup.
    assert_eq!(letters(&p, 4), "zzzz");
}

#[test]
fn a_dead_server_is_skipped_after_max_fails_and_no_request_fails() {
    let dead = closing();
    let live = lettered("b");
    let p = Proxy::start(&lb_config(&quoted(&[dead.addr, live.addr]), "", ""));
    // The first request goes to the dead one, fails over to the live one,
    // and marks the dead one down (max_fails = 1): it is not tried again.
    assert_eq!(letters(&p, 10), "bbbbbbbbbb");
    assert_eq!(dead.connections(), 1);
    assert_eq!(live.seen().len(), 10);
}

#[test]
fn a_closed_port_costs_no_failed_request() {
    let live = lettered("b");
    let p = Proxy::start(&lb_config(&quoted(&[closed_port(), live.addr]), "", ""));
    assert_eq!(letters(&p, 6), "bbbbbb");
}

#[test]
fn max_fails_zero_keeps_trying_the_dead_server() {
    let dead = closing();
    let live = lettered("b");
    let p = Proxy::start(&lb_config(
        &format!("{{ addr = \"{}\", max_fails = 0 }}, \"{}\"", dead.addr, live.addr),
        "",
        "",
    ));
    assert_eq!(letters(&p, 6), "bbbbbb");
    // Round robin sends every other request there first.
    assert_eq!(dead.connections(), 3);
}

#[test]
fn max_fails_counts_failures_before_marking_down() {
    let dead = closing();
    let live = lettered("b");
    let p = Proxy::start(&lb_config(
        &format!("{{ addr = \"{}\", max_fails = 2 }}, \"{}\"", dead.addr, live.addr),
        "",
        "",
    ));
    assert_eq!(letters(&p, 8), "bbbbbbbb");
    assert_eq!(dead.connections(), 2);
}

#[test]
fn the_server_is_tried_again_after_fail_timeout() {
    let dead = closing();
    let live = lettered("b");
    let p = Proxy::start(&lb_config(
        &format!(
            "{{ addr = \"{}\", fail_timeout = \"300ms\" }}, \"{}\"",
            dead.addr, live.addr
        ),
        "",
        "",
    ));
    assert_eq!(letters(&p, 4), "bbbb");
    assert_eq!(dead.connections(), 1);
    // Requests keep coming until the dead server is offered one again.
    let again = wait_for(IO_TIMEOUT, || {
        assert_eq!(p.get("/").text(), "b");
        (dead.connections() == 2).then_some(())
    });
    assert!(again.is_some(), "the server was never tried again");
}

#[test]
fn tries_one_does_not_fail_over_but_still_marks_down() {
    let dead = closing();
    let live = lettered("b");
    let p = Proxy::start(&lb_config(&quoted(&[dead.addr, live.addr]), "tries = 1", ""));
    assert_eq!(p.get("/").status, 502);
    assert_eq!(letters(&p, 4), "bbbb");
    assert_eq!(dead.connections(), 1);
}

#[test]
fn when_every_server_is_down_the_client_gets_503() {
    let (x, y) = (closed_port(), closed_port());
    let p = Proxy::start(&lb_config(&quoted(&[x, y]), "", ""));
    let mut c = p.client();
    // Both tried and both marked down: the last failure is what the client sees.
    assert_eq!(c.get("/").status, 502);
    let r = c.get("/");
    assert_eq!((r.status, r.text().as_str()), (503, "503 Service Unavailable\n"));
    // The client did nothing wrong: its connection carries on.
    assert!(!r.says_close());
    assert_eq!(c.get("/").status, 503);
}

#[test]
fn a_non_idempotent_request_that_was_sent_is_not_tried_elsewhere() {
    // Reads the whole request, then closes without answering.
    let swallow = Backend::start(|c| {
        let _ = c.read_request();
    });
    let live = lettered("b");
    let p = Proxy::start(&lb_config(&quoted(&[swallow.addr, live.addr]), "", ""));
    let r = p.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!(r.status, 502);
    assert_eq!(swallow.seen().len(), 1);
    live.assert_untouched("a POST already sent elsewhere");
    // A GET in the same situation is sent on (the server is now down anyway).
    assert_eq!(letters(&p, 2), "bb");
}

#[test]
fn a_streamed_body_is_never_sent_to_a_second_server() {
    let swallow = Backend::start(|c| {
        let _ = c.read_request();
    });
    let live = lettered("b");
    let p = Proxy::start(&lb_config(&quoted(&[swallow.addr, live.addr]), "", ""));
    // PUT is idempotent, but the body streams (chunked): it cannot be replayed.
    let r = p.send("PUT / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    assert_eq!(r.status, 502);
    live.assert_untouched("a streamed body");
}

#[test]
fn passive_health_is_per_worker() {
    // Two workers: each learns on its own, so the dead server gets at most
    // max_fails (1) connections from each.
    let dead = closing();
    let live = lettered("b");
    let p = Proxy::with_workers(&lb_config(&quoted(&[dead.addr, live.addr]), "", ""), 2);
    assert_eq!(letters(&p, 20), "b".repeat(20));
    assert!((1..=2).contains(&dead.connections()), "{}", dead.connections());
}

#[test]
fn hash_request_uri_sends_a_uri_to_one_server_and_survives_losing_one() {
    let a = lettered("a");
    let b = lettered("b");
    let c = lettered("c");
    let toml = lb_config(&quoted(&[a.addr, b.addr, c.addr]), "hash = \"$request_uri\"", "");
    let uris: Vec<String> = (0..30).map(|i| format!("/img/{i}.png?size={}", i % 3)).collect();
    let get = |p: &Proxy, uri: &str| {
        let r = p.send(format!("GET {uri} HTTP/1.1\r\nHost: t\r\n\r\n"));
        assert_eq!(r.status, 200, "{uri}");
        r.text()
    };
    let p = Proxy::with_workers(&toml, 2);
    let first: Vec<String> = uris.iter().map(|u| get(&p, u)).collect();
    assert!(
        ["a", "b", "c"].iter().all(|l| first.iter().any(|s| s == l)),
        "{first:?}"
    );
    // Every time, in either worker.
    for _ in 0..2 {
        for (u, want) in uris.iter().zip(&first) {
            assert_eq!(&get(&p, u), want, "{u}");
        }
    }
    drop(p);
    // Without `b` (a restart with a smaller config), only b's URIs move.
    let p = Proxy::start(&lb_config(
        &quoted(&[a.addr, c.addr]),
        "hash = \"$request_uri\"",
        "",
    ));
    for (u, before) in uris.iter().zip(&first) {
        let now = get(&p, u);
        if before == "b" {
            assert_ne!(now, "b");
        } else {
            assert_eq!(&now, before, "{u} moved though its server stayed");
        }
    }
}

#[test]
fn the_next_server_gets_its_own_host_header() {
    let dead = closing();
    let live = Backend::serve(|r| Reply::ok(r.header("host").unwrap_or("-")));
    let toml = lb_config(&quoted(&[dead.addr, live.addr]), "", "").replace(
        "proxy_pass = \"http://app\"",
        "proxy_pass = \"http://app\"\npreserve_host = false",
    );
    let p = Proxy::start(&toml);
    assert_eq!(p.get("/").text(), live.addr.to_string());
    // The same when the client kept its Host but sent none (HTTP/1.0).
    let dead = closing();
    let p = Proxy::start(&lb_config(&quoted(&[dead.addr, live.addr]), "", ""));
    assert_eq!(p.send("GET / HTTP/1.0\r\n\r\n").text(), live.addr.to_string());
    assert_eq!(dead.connections(), 1);
}

/// Reads a request and never answers.
fn silent() -> Backend {
    Backend::start(|c| {
        if c.read_request().is_some() {
            c.hold();
        }
    })
}

#[test]
fn a_read_timeout_goes_to_the_next_server_unless_tries_timeout_has_passed() {
    let (a, b) = (silent(), silent());
    let p = Proxy::start(&lb_config(
        &quoted(&[a.addr, b.addr]),
        "read_timeout = \"200ms\"",
        "",
    ));
    // GET is idempotent: after the first server's read_timeout, the second.
    assert_eq!(p.get("/").status, 504);
    assert_eq!((a.wait_requests(1).len(), b.wait_requests(1).len()), (1, 1));

    let (a, b) = (silent(), silent());
    let p = Proxy::start(&lb_config(
        &quoted(&[a.addr, b.addr]),
        "read_timeout = \"200ms\"\ntries_timeout = \"100ms\"",
        "",
    ));
    // The first try alone outlasts tries_timeout: no second server.
    assert_eq!(p.get("/").status, 504);
    let seen = wait_for(IO_TIMEOUT, || {
        let n = a.seen().len() + b.seen().len();
        (n > 0).then_some(n)
    });
    assert_eq!(seen, Some(1));
}
