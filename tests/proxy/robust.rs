//! The process staying up: a worker that dies outside any connection is
//! restarted, and one that keeps dying stops the process with an error.

use std::time::Duration;

use crate::support::*;

/// A config whose only location answers directly, so no backend is needed.
fn answering() -> String {
    config(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"

[[server.location]]
path = "/"
return = { status = 200, body = "up\n" }
"#,
    )
}

/// Waits until the handle has counted `n` restarts.
fn restarts_reach(p: &Proxy, n: usize) -> bool {
    wait_for(Duration::from_secs(10), || {
        (p.handle().restarts() >= n).then_some(())
    })
    .is_some()
}

#[test]
fn a_worker_that_dies_is_restarted_and_serves_again() {
    let p = Proxy::start(&answering());
    assert_eq!(p.get("/").text(), "up\n");
    assert_eq!(p.handle().restarts(), 0);

    // A keep-alive connection on the worker that is about to die.
    let mut before = p.client();
    assert_eq!(before.get("/").status, 200);

    p.handle().crash_worker(0);
    assert!(restarts_reach(&p, 1), "the worker was not restarted");
    assert_eq!(p.handle().restarts(), 1);

    // The dead worker's connections went with it; new ones are served by
    // the new worker on the same address.
    before.expect_closed();
    for i in 0..3 {
        let r = p.get(&format!("/after{i}"));
        assert_eq!((r.status, r.text().as_str()), (200, "up\n"));
    }
    // A clean stop afterwards reports no failure.
    let mut p = p;
    p.stop_and_wait().expect("a clean stop");
}

#[test]
fn the_other_workers_are_untouched_by_a_restart() {
    let p = Proxy::with_workers(&answering(), 2);
    // Which worker took a connection is not visible from outside, so keep
    // many open and check that some, not all, survive worker 0's death.
    let mut open: Vec<Client> = (0..32)
        .map(|_| {
            let mut c = p.client();
            assert_eq!(c.get("/").status, 200);
            c
        })
        .collect();
    p.handle().crash_worker(0);
    assert!(restarts_reach(&p, 1), "the worker was not restarted");
    // Every connection either still works (worker 1's) or was closed
    // (worker 0's); none hangs or gets garbage.
    let mut survived = 0;
    for c in open.iter_mut() {
        c.send("GET /again HTTP/1.1\r\nHost: a\r\n\r\n");
        match c.try_response() {
            Ok(r) => {
                assert_eq!(r.status, 200);
                survived += 1;
            }
            Err(ReadError::Eof { got }) => assert!(got.is_empty(), "{got:?}"),
            Err(e) => panic!("{}", crate::support::client::describe(&e)),
        }
    }
    // SO_REUSEPORT spreads 32 connections over both workers; that all 32
    // landed on one worker has a probability of 2^-31.
    assert!(survived > 0, "no connection of worker 1 survived");
    assert!(survived < 32, "no connection was on worker 0");
    assert_eq!(p.get("/").status, 200);
}

#[test]
fn a_worker_that_keeps_dying_stops_the_process_with_an_error() {
    let mut p = Proxy::start(&answering());
    // Five restarts are allowed within a minute; the sixth death is one too many.
    for n in 1..=5 {
        p.handle().crash_worker(0);
        assert!(restarts_reach(&p, n), "restart {n} did not happen");
    }
    p.handle().crash_worker(0);
    assert!(
        wait_for(Duration::from_secs(10), || p.handle().gave_up().then_some(())).is_some(),
        "the supervisor did not give up"
    );
    assert_eq!(p.handle().restarts(), 5);
    let err = p
        .stop_and_wait()
        .expect_err("the supervisor should have given up");
    let msg = err.to_string();
    assert!(msg.contains("worker 0"), "{msg}");
    assert!(msg.contains("crash requested"), "{msg}");
    assert!(msg.contains("giving up"), "{msg}");
}
