//! The metrics across config reloads of the built binary (SIGHUP): reloads
//! counted by result, the generation in `/metrics` and `/status`, series of
//! an upstream and a server block the reload adds appearing, those it keeps
//! counting on, those it removes gone; and an `[admin]` change refused.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

use super::metrics::Scrape;
use super::reload::{Dir, Running};
use crate::support::listen_port as free_port;
use crate::support::{wait_for, Backend, Client, Reply};

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `app` on `port`; with `extra`, an upstream of that name on `/extra/`
/// and a block `new.test` on `extra.1` proxied to it.
fn conf(admin: u16, port: u16, app: SocketAddr, extra: Option<(SocketAddr, u16)>) -> String {
    let mut t = format!(
        "[global]\ndrain_timeout = \"2s\"\n\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\n\
         [[upstream]]\nname = \"app\"\nservers = [\"{app}\"]\n\n"
    );
    if let Some((b, _)) = extra {
        t += &format!("[[upstream]]\nname = \"extra\"\nservers = [\"{b}\"]\n\n");
    }
    t += &format!(
        "[[server]]\nlisten = [\"127.0.0.1:{port}\"]\naccess_log = \"off\"\n\
         [[server.location]]\npath = \"/\"\nproxy_pass = \"http://app\"\n"
    );
    if let Some((_, port2)) = extra {
        t += "[[server.location]]\npath = \"/extra/\"\nproxy_pass = \"http://extra\"\n\n";
        t += &format!(
            "[[server]]\nlisten = [\"127.0.0.1:{port2}\"]\nserver_name = [\"new.test\"]\naccess_log = \"off\"\n\
             [[server.location]]\npath = \"/\"\nproxy_pass = \"http://extra\"\n"
        );
    }
    t
}

fn body(port: u16, path: &str) -> String {
    let r = Client::connect(addr(port)).get(path);
    assert_eq!(r.status, 200, "{}", r.head_text());
    r.text()
}

fn status(admin: u16) -> Value {
    let r = Client::connect(addr(admin)).get("/status");
    assert_eq!(r.status, 200, "{}", r.head_text());
    serde_json::from_str(&r.text()).expect("/status is JSON")
}

/// A scrape once `n` client requests are counted: a request is counted in
/// its log phase, just after its response was sent.
fn settled(admin: u16, openmetrics: bool, n: f64) -> Scrape {
    wait_for(Duration::from_secs(10), || {
        let s = Scrape::take(addr(admin), openmetrics);
        (s.sum("ringway_http_requests_total", &[]) == n).then_some(s)
    })
    .unwrap_or_else(|| panic!("the scrape never showed {n} requests"))
}

fn has_label(s: &Scrape, key: &str, value: &str) -> bool {
    s.samples
        .iter()
        .any(|(_, l, _)| l.get(key).map(String::as_str) == Some(value))
}

#[test]
fn reloads_are_counted_and_series_follow_the_config() {
    let a = Backend::serve(|_| Reply::ok("A"));
    let b = Backend::serve(|_| Reply::ok("B"));
    let (admin, port, port2) = (free_port(), free_port(), free_port());
    let dir = Dir::new("metrics-reload");
    let path = dir.write("ringway.toml", &conf(admin, port, a.addr, None));
    let mut p = Running::start(&path);
    let app = a.addr.to_string();
    let app_2xx = [
        ("upstream", "app"),
        ("server", app.as_str()),
        ("status_class", "2xx"),
    ];
    let block = format!("127.0.0.1:{port}");

    for _ in 0..3 {
        assert_eq!(body(port, "/"), "A");
    }
    let s = settled(admin, false, 3.0);
    assert_eq!(
        s.get("ringway_config_reloads_total", &[("result", "success")]),
        0.0
    );
    assert_eq!(
        s.get("ringway_config_reloads_total", &[("result", "failure")]),
        0.0
    );
    assert_eq!(s.get("ringway_config_generation", &[]), 1.0);
    assert_eq!(s.get("ringway_upstream_requests_total", &app_2xx), 3.0);
    assert!(!has_label(&s, "upstream", "extra"));
    let loaded_1 = status(admin)["config"]["loaded_at"].as_f64().unwrap();

    // Generation 2 adds the upstream `extra` and the block `new.test`.
    dir.write("ringway.toml", &conf(admin, port, a.addr, Some((b.addr, port2))));
    p.reload_to(2);
    let s = settled(admin, true, 3.0);
    assert_eq!(
        s.get("ringway_config_reloads_total", &[("result", "success")]),
        1.0
    );
    assert_eq!(
        s.get("ringway_config_reloads_total", &[("result", "failure")]),
        0.0
    );
    assert_eq!(s.get("ringway_config_generation", &[]), 2.0);
    // Kept, by name: still 3. Added: there, at 0.
    assert_eq!(s.get("ringway_upstream_requests_total", &app_2xx), 3.0);
    let extra = b.addr.to_string();
    let extra_2xx = [
        ("upstream", "extra"),
        ("server", extra.as_str()),
        ("status_class", "2xx"),
    ];
    assert_eq!(s.get("ringway_upstream_requests_total", &extra_2xx), 0.0);
    assert_eq!(
        s.get("ringway_upstream_retries_total", &[("upstream", "extra")]),
        0.0
    );
    let st = status(admin);
    assert_eq!(st["config"]["generation"], 2);
    assert!(st["config"]["loaded_at"].as_f64().unwrap() >= loaded_1, "{st}");
    let names: Vec<&str> = st["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app", "extra"]);

    assert_eq!(body(port, "/"), "A");
    assert_eq!(body(port, "/extra/x"), "B");
    assert_eq!(body(port2, "/"), "B");
    let s = settled(admin, false, 6.0);
    assert_eq!(s.get("ringway_upstream_requests_total", &app_2xx), 4.0);
    assert_eq!(s.get("ringway_upstream_requests_total", &extra_2xx), 2.0);
    let new_2xx = [
        ("server", "new.test"),
        ("protocol", "http1"),
        ("status_class", "2xx"),
    ];
    assert_eq!(s.get("ringway_http_requests_total", &new_2xx), 1.0);
    let old_2xx = [
        ("server", block.as_str()),
        ("protocol", "http1"),
        ("status_class", "2xx"),
    ];
    assert_eq!(s.get("ringway_http_requests_total", &old_2xx), 5.0);
    let listener = format!("127.0.0.1:{port2}");
    assert_eq!(
        s.get(
            "ringway_client_connections_accepted_total",
            &[("listener", &listener)]
        ),
        1.0
    );

    // An [admin] move is refused: counted, logged, nothing else changes,
    // and the listener stays where it was.
    let moved = free_port();
    dir.write("ringway.toml", &conf(moved, port, a.addr, None));
    p.signal(libc::SIGHUP);
    let line = p.wait_line("reload failed:");
    assert!(
        line.contains("[admin] listen cannot change by a reload"),
        "{line}"
    );
    let s = Scrape::take(addr(admin), false);
    assert_eq!(
        s.get("ringway_config_reloads_total", &[("result", "failure")]),
        1.0
    );
    assert_eq!(s.get("ringway_config_generation", &[]), 2.0);
    assert!(has_label(&s, "upstream", "extra"), "the running config stays");
    assert!(
        TcpStream::connect(addr(moved)).is_err(),
        "nothing listens on {moved}"
    );
    assert_eq!(body(port, "/extra/x"), "B");

    // Generation 3 removes them again: their series are gone; app counts on.
    dir.write("ringway.toml", &conf(admin, port, a.addr, None));
    p.reload_to(3);
    assert_eq!(body(port, "/"), "A");
    // The old block's 5, the one in between, this one; new.test's is gone.
    let s = settled(admin, false, 7.0);
    assert_eq!(
        s.get("ringway_config_reloads_total", &[("result", "success")]),
        2.0
    );
    assert_eq!(
        s.get("ringway_config_reloads_total", &[("result", "failure")]),
        1.0
    );
    assert_eq!(s.get("ringway_config_generation", &[]), 3.0);
    assert_eq!(s.get("ringway_upstream_requests_total", &app_2xx), 5.0);
    assert!(!has_label(&s, "upstream", "extra"));
    assert!(!has_label(&s, "server", "new.test"));
    assert!(!has_label(&s, "listener", &listener));
    assert_eq!(status(admin)["config"]["generation"], 3);
}
