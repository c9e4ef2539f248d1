//! The response cache under concurrency and with stale entries: the
//! lock's one origin fetch for simultaneous misses on two workers,
//! revalidation with a 304, stale entries served when the origin fails
//! (and never one that must revalidate), UPDATING while a refresh runs in
//! the foreground or the background. Backends count what they receive.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::cache::{get_with, hits_on, locations, status};
use super::metrics::Scrape;
use crate::support::*;

/// Concurrent misses on two workers against a slow origin.
fn concurrent_misses(cache: &str, clients: usize, delay_ms: u64) -> (Backend, Vec<Response>, Proxy) {
    let b = Backend::serve(move |seen| {
        Reply::ok(format!("slow {}", seen.target()))
            .header("Cache-Control", "max-age=60")
            .delay(std::time::Duration::from_millis(delay_ms))
    });
    let p = Proxy::with_workers(
        &config(&format!(
            r#"
[[cache]]
name = "main"
memory = "4m"

[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"

[[server.location]]
path = "/"
proxy_pass = "http://{addr}"
cache = {{ zone = "main", status_header = "X-Cache-Status"{cache} }}

[admin]
listen = "127.0.0.1:{admin}"
"#,
            addr = b.addr,
            admin = listen_port(),
        )),
        2,
    );
    let gate = Arc::new(std::sync::Barrier::new(clients));
    let addr = p.addr();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let gate = gate.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                gate.wait();
                c.send(b"GET /slow HTTP/1.1\r\nHost: test.local\r\n\r\n");
                c.response()
            })
        })
        .collect();
    let got = threads.into_iter().map(|t| t.join().unwrap()).collect();
    (b, got, p)
}

#[test]
fn with_lock_concurrent_misses_on_two_workers_make_one_origin_request() {
    let (b, got, p) = concurrent_misses(", lock = true", 200, 300);
    assert!(got.iter().all(|r| r.status == 200 && r.text() == "slow /slow"));
    assert_eq!(hits_on(&b, "/slow"), 1, "one origin fetch for 200 misses");
    let misses = got.iter().filter(|r| status(r) == "MISS").count();
    assert_eq!(misses, 1, "the others were answered from the cache");
    // Counted by zone and status, summed over both workers.
    let m = Scrape::take(p.admin_addr(), false);
    let n = |s: &str| m.get("ringway_cache_requests_total", &[("zone", "main"), ("status", s)]);
    assert_eq!((n("MISS"), n("HIT"), n("STALE")), (1.0, 199.0, 0.0));
    assert!(m.get("ringway_cache_bytes", &[("zone", "main")]) > 0.0);
}

#[test]
fn without_lock_concurrent_misses_all_reach_the_origin() {
    // The contrast: the origin holds every request until all 8 are there
    // (a gate, not a timer), which only happens if none waits for another.
    let gate = Gate::new();
    let held = gate.clone();
    let b = Backend::serve(move |_| {
        held.wait();
        Reply::ok("slow").header("Cache-Control", "max-age=60")
    });
    let p = locations(b.addr, &[("/", "")]);
    let addr = p.addr();
    let clients: Vec<_> = (0..8)
        .map(|_| std::thread::spawn(move || Client::connect(addr).get("/slow")))
        .collect();
    let all = wait_for(std::time::Duration::from_secs(5), || {
        (b.seen().len() == 8).then_some(())
    });
    gate.open();
    let got: Vec<Response> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(all.is_some(), "8 misses at the origin at once");
    assert!(got.iter().all(|r| r.status == 200 && status(r) == "MISS"));
}

#[test]
fn a_lock_timeout_sends_the_waiters_to_the_origin_without_storing() {
    let (b, got, _p) = concurrent_misses(r#", lock = true, lock_timeout = "100ms""#, 4, 1500);
    assert!(got.iter().all(|r| r.status == 200 && r.text() == "slow /slow"));
    assert_eq!(hits_on(&b, "/slow"), 4);
}

/// Past a max-age=1 entry's freshness (a setup, not a verdict).
fn wait_past_freshness() {
    std::thread::sleep(std::time::Duration::from_millis(2100));
}

#[test]
fn a_stale_entry_is_revalidated_and_a_304_refreshes_its_fields() {
    let b = Backend::serve(|seen| match seen.header("if-none-match") {
        Some("\"v1\"") => Reply::new(304)
            .header("ETag", "\"v1\"")
            .header("Cache-Control", "max-age=60")
            .header("X-Refreshed", "yes"),
        _ => Reply::ok("v1 body")
            .header("ETag", "\"v1\"")
            .header("Cache-Control", "max-age=1")
            .header("X-Refreshed", "no"),
    });
    let p = locations(b.addr, &[("/", "")]);
    assert_eq!(status(&p.get("/e")), "MISS");
    wait_past_freshness();
    let r = p.get("/e");
    assert_eq!(
        (r.status, status(&r), r.text().as_str()),
        (200, "REVALIDATED", "v1 body")
    );
    assert_eq!(
        r.header("x-refreshed"),
        Some("yes"),
        "§4.3.4: the 304's fields replace the stored ones"
    );
    assert_eq!(r.header("cache-control"), Some("max-age=60"));
    assert_eq!(r.header("content-length"), Some("7"));
    let seen = b.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].header("if-none-match"), None);
    assert_eq!(seen[1].header("if-none-match"), Some("\"v1\""));
    // Refreshed for 60 s: a hit, with the new fields.
    let r = p.get("/e");
    assert_eq!((status(&r), r.header("x-refreshed")), ("HIT", Some("yes")));
    assert_eq!(b.seen().len(), 2);
    // A client's own If-None-Match is not what the origin sees for a
    // stored answer: it gets the whole response.
    let r = get_with(&p, "/other", "If-None-Match: \"v1\"\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "v1 body"));
}

#[test]
fn a_stale_entry_is_served_when_the_origin_is_dead_unless_it_must_revalidate() {
    let b = Backend::serve(|seen| {
        let cc = if seen.target().starts_with("/strict/") {
            "max-age=1, must-revalidate"
        } else if seen.target().starts_with("/sie/") {
            "max-age=1, stale-if-error=600"
        } else {
            "max-age=1"
        };
        Reply::ok(format!("kept {}", seen.target())).header("Cache-Control", cc)
    });
    let addr = b.addr;
    let p = locations(
        addr,
        &[
            ("/stale/", r#", use_stale = ["error", "timeout"]"#),
            ("/strict/", r#", use_stale = ["error", "timeout"]"#),
            ("/plain/", ""),
            ("/sie/", ""),
        ],
    );
    for path in ["/stale/x", "/strict/x", "/plain/x", "/sie/x"] {
        assert_eq!(status(&p.get(path)), "MISS", "{path}");
    }
    drop(b);
    wait_past_freshness();
    let r = p.get("/stale/x");
    assert_eq!(
        (r.status, status(&r), r.text().as_str()),
        (200, "STALE", "kept /stale/x")
    );
    let r = p.get("/sie/x");
    assert_eq!(
        (r.status, status(&r)),
        (200, "STALE"),
        "the response's stale-if-error"
    );
    let r = p.get("/strict/x");
    assert_eq!(r.status, 504, "must-revalidate is never served stale");
    assert!(!r.text().contains("kept"));
    let r = p.get("/plain/x");
    assert_eq!(r.status, 502, "no use_stale: the origin's failure");
}

#[test]
fn use_stale_http_503_serves_the_entry_for_an_origin_error_status() {
    let n = Arc::new(AtomicUsize::new(0));
    let b = Backend::serve(move |_| match n.fetch_add(1, Ordering::SeqCst) {
        0 => Reply::ok("good").header("Cache-Control", "max-age=1"),
        _ => Reply::new(503).body("down"),
    });
    let p = locations(b.addr, &[("/s/", r#", use_stale = ["http_503"]"#), ("/n/", "")]);
    p.get("/s/x");
    wait_past_freshness();
    let r = p.get("/s/x");
    assert_eq!((r.status, status(&r), r.text().as_str()), (200, "STALE", "good"));
    // Not listed: the origin's 503 goes to the client.
    let r = p.get("/n/x");
    assert_eq!(r.status, 503);
    assert_eq!(b.seen().len(), 3);
}

#[test]
fn while_one_request_refreshes_a_stale_entry_the_others_get_it_updating() {
    let n = Arc::new(AtomicUsize::new(0));
    // The refresh is held at the origin until the test has seen the other
    // request answered.
    let gate = Gate::new();
    let held = gate.clone();
    let b = Backend::serve(move |_| match n.fetch_add(1, Ordering::SeqCst) {
        0 => Reply::ok("v1").header("Cache-Control", "max-age=1"),
        _ => {
            held.wait();
            Reply::ok("v2").header("Cache-Control", "max-age=60")
        }
    });
    let p = locations(b.addr, &[("/", r#", use_stale = ["updating"]"#)]);
    assert_eq!(p.get("/u").text(), "v1");
    wait_past_freshness();
    let addr = p.addr();
    let refresh = std::thread::spawn(move || {
        let mut c = Client::connect(addr);
        c.get("/u")
    });
    // The refresh has reached the origin (a setup step): now another
    // request finds it under way.
    wait_for(std::time::Duration::from_secs(5), || {
        (b.seen().len() == 2).then_some(())
    })
    .expect("the refresh reached the origin");
    let r = p.get("/u");
    assert_eq!((status(&r), r.text().as_str()), ("UPDATING", "v1"));
    gate.open();
    let r = refresh.join().unwrap();
    assert_eq!((status(&r), r.text().as_str()), ("EXPIRED", "v2"));
    let r = p.get("/u");
    assert_eq!((status(&r), r.text().as_str()), ("HIT", "v2"));
    assert_eq!(b.seen().len(), 2);
}

#[test]
fn stale_while_revalidate_and_background_update_answer_at_once_and_refresh_behind() {
    for (cc, keys, validators) in [
        ("max-age=1, stale-while-revalidate=600", "", false),
        (
            "max-age=1",
            r#", use_stale = ["updating"], background_update = true"#,
            false,
        ),
        ("max-age=1, stale-while-revalidate=600", "", true),
    ] {
        let n = Arc::new(AtomicUsize::new(0));
        let gate = Gate::new();
        let held = gate.clone();
        let b = Backend::serve(move |seen| {
            let i = n.fetch_add(1, Ordering::SeqCst);
            if i == 0 {
                let r = Reply::ok("v1").header("Cache-Control", cc);
                return if validators { r.header("ETag", "\"e1\"") } else { r };
            }
            held.wait();
            match seen.header("if-none-match") {
                Some("\"e1\"") => Reply::new(304)
                    .header("ETag", "\"e1\"")
                    .header("Cache-Control", "max-age=60"),
                _ => Reply::ok("v2").header("Cache-Control", "max-age=60"),
            }
        });
        let p = locations(b.addr, &[("/", keys)]);
        assert_eq!(p.get("/u").text(), "v1");
        wait_past_freshness();
        // Answered stale at once, while the origin holds the refresh.
        for _ in 0..3 {
            let r = p.get("/u");
            assert_eq!((status(&r), r.text().as_str()), ("UPDATING", "v1"), "{cc} {keys}");
        }
        wait_for(std::time::Duration::from_secs(5), || {
            (b.seen().len() == 2).then_some(())
        })
        .expect("one background refresh reached the origin");
        gate.open();
        // Stored once the refresh is done (waited for, not timed).
        let want = if validators { "v1" } else { "v2" };
        let r = wait_for(std::time::Duration::from_secs(5), || {
            let r = p.get("/u");
            (status(&r) == "HIT").then_some(r)
        })
        .expect("the refreshed entry");
        assert_eq!(r.text(), want);
        assert_eq!(b.seen().len(), 2, "one refresh for all");
        if validators {
            assert_eq!(b.seen()[1].header("if-none-match"), Some("\"e1\""));
        }
    }
}
