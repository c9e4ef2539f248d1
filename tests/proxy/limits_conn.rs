//! `[[limit]]` with `connections` (nginx's `limit_conn`): requests in
//! flight per key, HTTP/1.1 and HTTP/2 streams alike, held until their
//! response ends and given back whatever way it ends (a response, an
//! upstream error, a client that goes away).

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::limits::{counted, h2_get, limited};
use crate::support::*;

/// A gate the backend's `/slow` requests wait at until the test opens it.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        let end = Instant::now() + Duration::from_secs(20);
        while !*open && Instant::now() < end {
            open = self.cv.wait_timeout(open, Duration::from_millis(100)).unwrap().0;
        }
    }
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

/// `/slow` waits at the gate, anything else is answered at once.
fn gated_backend(gate: Arc<Gate>) -> Backend {
    Backend::start(move |c| {
        while let Some(req) = c.read_request() {
            if req.target().starts_with("/slow") {
                gate.wait();
            }
            if !c.reply(&req, &Reply::ok("done")) {
                return;
            }
        }
    })
}

fn conn_limited(backend: &Backend, places: usize) -> Proxy {
    Proxy::start(&limited(
        &format!(
            r#"[[limit]]
name = "in_flight"
key = "$remote_addr"
connections = {places}"#
        ),
        "",
        &format!(
            r#"[[server.location]]
path = "/"
limits = ["in_flight"]
proxy_pass = "http://{up}"
[[server.location]]
path = "/dead/"
limits = ["in_flight"]
proxy_pass = "http://{dead}""#,
            up = backend.addr,
            dead = closed_port(),
        ),
    ))
}

/// Asks `/fast` until it passes, for at most 10 s: a place given back by a
/// response that ended is free once ringway has seen it end. The status
/// last seen, and how many 503s came before it.
fn passes_again(p: &Proxy) -> (u16, u64) {
    let end = Instant::now() + Duration::from_secs(10);
    let mut refused = 0;
    loop {
        let s = p.get("/fast").status;
        if s == 200 || Instant::now() > end {
            return (s, refused);
        }
        refused += u64::from(s == 503);
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn requests_in_flight_hold_places_until_their_responses_end() {
    let gate = Arc::new(Gate::default());
    let b = gated_backend(gate.clone());
    let p = conn_limited(&b, 2);
    // Two requests waiting upstream, on two connections.
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let mut c = p.client();
            c.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
            c
        })
        .collect();
    b.wait_requests(2);
    // A third, over HTTP/1.1 and as an HTTP/2 stream: no place.
    let r = p.get("/fast");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), None);
    assert_eq!(h2_get(&p, "/fast", &[]).0, 503);
    // The two finish; their places come back.
    gate.open();
    for mut c in slow {
        let r = c.response();
        assert_eq!((r.status, r.text().as_str()), (200, "done"));
    }
    let (status, late) = passes_again(&p);
    assert_eq!(status, 200);
    assert_eq!(h2_get(&p, "/fast", &[]).0, 200);
    // The metric counts what the clients were refused.
    assert_eq!(counted(&p, "in_flight", "refused"), 2 + late);
    assert!(counted(&p, "in_flight", "passed") >= 4);
}

#[test]
fn a_place_comes_back_after_an_upstream_error_and_a_client_that_left() {
    let gate = Arc::new(Gate::default());
    let b = gated_backend(gate.clone());
    let p = conn_limited(&b, 1);
    // Upstream errors, one after the other: each gives its place back.
    for _ in 0..5 {
        assert_eq!(p.get("/dead/x").status, 502);
    }
    assert_eq!(p.get("/fast").status, 200);

    // A client that goes away while its request waits upstream.
    let mut c = p.client();
    c.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
    // Seen so far: the one `/fast`, then this one.
    b.wait_requests(2);
    assert_eq!(p.get("/fast").status, 503, "the place is held meanwhile");
    drop(c);
    gate.open();
    assert_eq!(passes_again(&p).0, 200);

    // An HTTP/2 stream the client cancels (curl gives up after 1 s).
    let gate2 = Arc::new(Gate::default());
    let b2 = gated_backend(gate2.clone());
    let p2 = conn_limited(&b2, 1);
    let out = crate::support::peers::curl(
        &["--http2-prior-knowledge", "--max-time", "1"],
        &format!("http://{}/slow", p2.addr()),
    );
    assert_ne!(out.status, Some(0), "curl was to give up: {}", out.stdout);
    gate2.open();
    assert_eq!(passes_again(&p2).0, 200);
}
