//! The response cache: a backend that counts what it receives proves how
//! many requests reached the origin. Hits after a miss, with a plausible
//! Age, over HTTP/1.1 and HTTP/2; what RFC 9111 keeps out of a shared cache;
//! Vary; only-if-cached; max_object; invalidation by unsafe methods; HEAD
//! from a GET; bypass; the config's refusals.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::support::peers::curl;
use crate::support::*;

/// A proxy with a cache zone in front of `backend`; `zone` and `cache`
/// are the zone's and the location's extra keys.
pub(super) fn cached(backend: &Backend, zone: &str, cache: &str) -> Proxy {
    Proxy::start(&config(&format!(
        r#"
[[cache]]
name = "main"
memory = "4m"
{zone}

[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
h2c = true

[[server.location]]
path = "/"
proxy_pass = "http://{addr}"
cache = {{ zone = "main", status_header = "X-Cache-Status"{cache} }}
"#,
        addr = backend.addr
    )))
}

/// A backend answering by path; each response says how many requests
/// the backend had seen (`X-N`), so a body from the cache shows its age.
pub(super) fn origin() -> Backend {
    let n = Arc::new(AtomicUsize::new(0));
    Backend::serve(move |seen| {
        let i = n.fetch_add(1, Ordering::SeqCst) + 1;
        let t = seen.target().to_string();
        let r = match t.split('?').next().unwrap_or("") {
            "/fresh" | "/new" => Reply::ok(format!("fresh {i}")).header("Cache-Control", "max-age=60"),
            "/no-store" => Reply::ok(format!("ns {i}")).header("Cache-Control", "no-store, max-age=60"),
            "/private" => Reply::ok(format!("pv {i}")).header("Cache-Control", "private, max-age=60"),
            "/cookie" => Reply::ok(format!("ck {i}"))
                .header("Cache-Control", "max-age=60")
                .header("Set-Cookie", "s=1"),
            "/plain" => Reply::ok(format!("plain {i}")),
            "/vary" => {
                let lang = seen.header("accept-language").unwrap_or("none").to_string();
                Reply::ok(format!("{lang} {i}"))
                    .header("Cache-Control", "max-age=60")
                    .header("Vary", "Accept-Language")
            }
            "/vary-any" => Reply::ok(format!("any {i}"))
                .header("Cache-Control", "max-age=60")
                .header("Vary", "*"),
            "/big" => Reply::ok(payload(300 * 1024, 7)).header("Cache-Control", "max-age=60"),
            "/chunked" => Reply::ok(payload(40 * 1024, 3))
                .header("Cache-Control", "max-age=60")
                .chunked(1000),
            "/tagged" => Reply::ok("0123456789")
                .header("Cache-Control", "max-age=60")
                .header("Content-Type", "text/plain")
                .header("ETag", "\"t1\"")
                .header("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
            "/post" => Reply::new(201).header("Location", "/new").body("made"),
            "/old" => Reply::ok(format!("old {i}")).header("Cache-Control", "max-age=60"),
            "/auth" => Reply::ok(format!("auth {i}")).header("Cache-Control", "max-age=60"),
            "/auth-public" => Reply::ok(format!("authp {i}")).header("Cache-Control", "public, max-age=60"),
            _ => Reply::new(404).body("no"),
        };
        r.header("X-N", &i.to_string())
    })
}

pub(super) fn get_with(p: &Proxy, path: &str, extra: &str) -> Response {
    p.send(format!("GET {path} HTTP/1.1\r\nHost: test.local\r\n{extra}\r\n"))
}

pub(super) fn status(r: &Response) -> &str {
    r.header("x-cache-status").unwrap_or("")
}

/// Origin requests for `path`.
pub(super) fn hits_on(b: &Backend, path: &str) -> usize {
    b.seen().iter().filter(|s| s.target() == path).count()
}

#[test]
fn a_miss_then_hits_with_one_origin_request_and_an_age() {
    let b = origin();
    let p = cached(&b, "", "");
    let first = p.get("/fresh");
    assert_eq!((first.status, status(&first)), (200, "MISS"));
    assert_eq!(first.text(), "fresh 1");
    for _ in 0..3 {
        let r = p.get("/fresh");
        assert_eq!((r.status, status(&r), r.text().as_str()), (200, "HIT", "fresh 1"));
        let age: u64 = r
            .header("age")
            .expect("Age on a hit")
            .parse()
            .expect("an integer");
        assert!(age < 60, "age {age}");
        assert_eq!(r.header("cache-control"), Some("max-age=60"));
        assert_eq!(r.header("content-length"), Some("7"));
    }
    assert_eq!(hits_on(&b, "/fresh"), 1);
    // A chunked response is stored decoded and served with a length.
    let first = p.get("/chunked");
    assert_eq!(first.body, payload(40 * 1024, 3));
    let r = p.get("/chunked");
    assert_eq!(status(&r), "HIT");
    assert_same_bytes(&r.body, &payload(40 * 1024, 3), "chunked, from the cache");
    assert_eq!(r.header("content-length"), Some("40960"));
    assert_eq!(hits_on(&b, "/chunked"), 1);
}

#[test]
fn hits_over_http2_and_head_from_a_get() {
    let b = origin();
    let p = cached(&b, "", "");
    let url = format!("http://{}/fresh", p.addr());
    let h2 = ["--http2-prior-knowledge", "-i", "-H", "Host: test.local"];
    let r = curl(&h2, &url);
    assert!(r.stdout.contains("x-cache-status: MISS"), "{}", r.stdout);
    let r = curl(&h2, &url);
    assert!(r.stdout.starts_with("HTTP/2 200"), "{}", r.stdout);
    assert!(r.stdout.contains("x-cache-status: HIT"), "{}", r.stdout);
    assert!(r.stdout.contains("\r\nage: "), "{}", r.stdout);
    assert!(r.stdout.ends_with("fresh 1"), "{}", r.stdout);
    // HEAD, over HTTP/1.1: the stored GET's head, no body.
    let mut c = p.client();
    c.send(b"HEAD /fresh HTTP/1.1\r\nHost: test.local\r\n\r\n");
    let r = c.response_to_head();
    assert_eq!((r.status, status(&r)), (200, "HIT"));
    assert_eq!(r.header("content-length"), Some("7"));
    assert!(r.body.is_empty());
    assert_eq!(hits_on(&b, "/fresh"), 1);
}

#[test]
fn what_a_shared_cache_must_not_store_goes_to_the_origin_each_time() {
    let b = origin();
    let p = cached(&b, "", "");
    for path in ["/no-store", "/private", "/cookie", "/plain"] {
        for _ in 0..2 {
            let r = p.get(path);
            assert_eq!((r.status, status(&r)), (200, "MISS"), "{path}");
        }
        assert_eq!(hits_on(&b, path), 2, "{path}");
    }
    // Authorization: stored only when the origin says a shared cache may.
    for _ in 0..2 {
        let r = get_with(&p, "/auth", "Authorization: Basic eDp5\r\n");
        assert_eq!(status(&r), "MISS");
        get_with(&p, "/auth-public", "Authorization: Basic eDp5\r\n");
    }
    assert_eq!(hits_on(&b, "/auth"), 2);
    assert_eq!(hits_on(&b, "/auth-public"), 1);
    // A request's no-store: answered, not stored.
    get_with(&p, "/fresh", "Cache-Control: no-store\r\n");
    assert_eq!(status(&p.get("/fresh")), "MISS");
    assert_eq!(status(&p.get("/fresh")), "HIT");
    assert_eq!(hits_on(&b, "/fresh"), 2);
}

#[test]
fn valid_and_ignore_headers_make_responses_storable() {
    let b = origin();
    let p = cached(
        &b,
        "",
        r#", valid = { "200" = "1m" }, ignore_headers = ["Set-Cookie"]"#,
    );
    p.get("/plain");
    let r = p.get("/plain");
    assert_eq!((status(&r), r.text().as_str()), ("HIT", "plain 1"));
    p.get("/cookie");
    let r = p.get("/cookie");
    assert_eq!(status(&r), "HIT");
    assert!(
        r.header("set-cookie").is_none(),
        "one client's cookie is no other's"
    );
    assert_eq!(hits_on(&b, "/plain") + hits_on(&b, "/cookie"), 2);
}

#[test]
fn vary_keeps_two_variants_and_vary_star_is_never_served() {
    let b = origin();
    let p = cached(&b, "", "");
    let en = |p: &Proxy| get_with(p, "/vary", "Accept-Language: en\r\n");
    let fr = |p: &Proxy| get_with(p, "/vary", "Accept-Language: fr\r\n");
    assert_eq!(status(&en(&p)), "MISS");
    assert_eq!(status(&fr(&p)), "MISS");
    let (e, f) = (en(&p), fr(&p));
    assert_eq!((status(&e), e.text().as_str()), ("HIT", "en 1"));
    assert_eq!((status(&f), f.text().as_str()), ("HIT", "fr 2"));
    assert_eq!(hits_on(&b, "/vary"), 2);
    // No Accept-Language is a third variant.
    assert_eq!(status(&p.get("/vary")), "MISS");
    assert_eq!(status(&p.get("/vary")), "HIT");
    for _ in 0..2 {
        assert_eq!(status(&p.get("/vary-any")), "MISS");
    }
    assert_eq!(hits_on(&b, "/vary-any"), 2);
}

#[test]
fn only_if_cached_gets_504_on_a_miss_and_the_entry_on_a_hit() {
    let b = origin();
    let p = cached(&b, "", "");
    let r = get_with(&p, "/fresh", "Cache-Control: only-if-cached\r\n");
    assert_eq!(r.status, 504);
    b.assert_untouched("only-if-cached on a miss");
    p.get("/fresh");
    let r = get_with(&p, "/fresh", "Cache-Control: only-if-cached\r\n");
    assert_eq!((r.status, status(&r)), (200, "HIT"));
    // max-age=0 and no-cache from the client go to the origin.
    for cc in ["max-age=0", "no-cache"] {
        let r = get_with(&p, "/fresh", &format!("Cache-Control: {cc}\r\n"));
        assert_eq!(status(&r), "EXPIRED", "{cc}");
    }
    assert_eq!(hits_on(&b, "/fresh"), 3);
}

#[test]
fn a_response_over_max_object_is_served_whole_and_not_stored() {
    let b = origin();
    let p = cached(&b, r#"max_object = "100k""#, "");
    for _ in 0..2 {
        let r = p.get("/big");
        assert_eq!(status(&r), "MISS");
        assert_same_bytes(&r.body, &payload(300 * 1024, 7), "over max_object");
    }
    assert_eq!(hits_on(&b, "/big"), 2);
}

#[test]
fn a_successful_post_invalidates_its_uri_and_its_location() {
    let b = origin();
    let p = cached(&b, "", "");
    for path in ["/post", "/new"] {
        // /post answers 404 to a GET: not stored without `valid`; /new is.
        p.get(path);
    }
    p.get("/old");
    assert_eq!(status(&p.get("/new")), "HIT");
    assert_eq!(status(&p.get("/old")), "HIT");
    let r = p.send("POST /post HTTP/1.1\r\nHost: test.local\r\nContent-Length: 2\r\n\r\nhi");
    assert_eq!(r.status, 201);
    assert_eq!(status(&p.get("/new")), "MISS", "Location invalidated");
    let r = p.send("DELETE /old HTTP/1.1\r\nHost: test.local\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(status(&p.get("/old")), "MISS", "the target invalidated");
    // An unsafe method that fails invalidates nothing.
    assert_eq!(status(&p.get("/fresh")), "MISS");
    let r = p.send("PUT /fresh-nope HTTP/1.1\r\nHost: test.local\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(r.status, 404);
    assert_eq!(status(&p.get("/fresh")), "HIT");
}

#[test]
fn an_upgrade_request_is_passed_through_and_its_answer_not_stored() {
    let b = origin();
    let p = cached(&b, "", "");
    for _ in 0..2 {
        let r = get_with(&p, "/fresh", "Connection: Upgrade\r\nUpgrade: websocket\r\n");
        assert_eq!((r.status, status(&r)), (200, ""));
    }
    assert_eq!(status(&p.get("/fresh")), "MISS");
    assert_eq!(hits_on(&b, "/fresh"), 3);
}

#[test]
fn bypass_goes_to_the_origin_and_stores_the_answer() {
    let b = origin();
    let p = cached(&b, "", r#", bypass = ["$http_x_no_cache"]"#);
    assert_eq!(p.get("/fresh").text(), "fresh 1");
    let r = get_with(&p, "/fresh", "X-No-Cache: 1\r\n");
    assert_eq!((status(&r), r.text().as_str()), ("BYPASS", "fresh 2"));
    // "0" is no bypass; the bypassing request's answer was stored.
    let r = get_with(&p, "/fresh", "X-No-Cache: 0\r\n");
    assert_eq!((status(&r), r.text().as_str()), ("HIT", "fresh 2"));
    assert_eq!(hits_on(&b, "/fresh"), 2);
}

/// A proxy with a location per `(path, cache keys)` in front of `addr`.
pub(super) fn locations(addr: std::net::SocketAddr, locs: &[(&str, &str)]) -> Proxy {
    let mut toml = String::from(
        r#"
[[cache]]
name = "main"
memory = "4m"

[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
"#,
    );
    for (path, keys) in locs {
        toml.push_str(&format!(
            r#"
[[server.location]]
path = "{path}"
proxy_pass = "http://{addr}"
cache = {{ zone = "main", status_header = "X-Cache-Status"{keys} }}
"#
        ));
    }
    Proxy::start(&config(&toml))
}

#[test]
fn purge_from_an_allowed_address_removes_the_entry_and_others_get_403() {
    let b = origin();
    let p = locations(
        b.addr,
        &[
            ("/fresh", r#", purge_allow = ["127.0.0.0/8"]"#),
            ("/old", r#", purge_allow = ["10.0.0.0/8", "::1"]"#),
        ],
    );
    let purge = |path: &str| p.send(format!("PURGE {path} HTTP/1.1\r\nHost: test.local\r\n\r\n"));
    p.get("/fresh");
    assert_eq!(status(&p.get("/fresh")), "HIT");
    assert_eq!(purge("/fresh").status, 200);
    assert_eq!(purge("/fresh").status, 404, "nothing left to purge");
    assert_eq!(status(&p.get("/fresh")), "MISS");
    // 127.0.0.1 is not in this location's list.
    p.get("/old");
    assert_eq!(purge("/old").status, 403);
    assert_eq!(status(&p.get("/old")), "HIT");
    assert!(
        b.seen().iter().all(|s| s.method() == "GET"),
        "no PURGE reaches the origin"
    );
}

#[test]
fn a_hit_answers_the_clients_conditionals_and_ranges_itself() {
    let b = origin();
    let p = cached(&b, "", "");
    // The miss goes whole, whatever the client asked.
    let r = get_with(&p, "/tagged", "If-None-Match: \"t1\"\r\nRange: bytes=0-1\r\n");
    assert_eq!(
        (r.status, status(&r), r.text().as_str()),
        (200, "MISS", "0123456789")
    );
    assert!(b.seen()[0].header("if-none-match").is_none() && b.seen()[0].header("range").is_none());
    let r = get_with(&p, "/tagged", "If-None-Match: W/\"t1\"\r\n");
    assert_eq!((r.status, status(&r)), (304, "HIT"));
    assert_eq!(r.header("etag"), Some("\"t1\""));
    assert!(r.body.is_empty());
    let r = get_with(
        &p,
        "/tagged",
        "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n",
    );
    assert_eq!(r.status, 304);
    let r = get_with(&p, "/tagged", "If-None-Match: \"other\"\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "0123456789"));
    let r = get_with(&p, "/tagged", "If-Match: \"other\"\r\n");
    assert_eq!(r.status, 412);
    let r = get_with(&p, "/tagged", "Range: bytes=2-4\r\n");
    assert_eq!((r.status, r.text().as_str()), (206, "234"));
    assert_eq!(r.header("content-range"), Some("bytes 2-4/10"));
    let r = get_with(&p, "/tagged", "Range: bytes=0-0,-2\r\n");
    assert_eq!(r.status, 206);
    let ct = r.header("content-type").unwrap().to_string();
    assert!(ct.starts_with("multipart/byteranges; boundary="), "{ct}");
    let text = r.text();
    assert!(
        text.contains("Content-Range: bytes 0-0/10\r\n\r\n0\r\n"),
        "{text}"
    );
    assert!(
        text.contains("Content-Range: bytes 8-9/10\r\n\r\n89\r\n"),
        "{text}"
    );
    let r = get_with(&p, "/tagged", "Range: bytes=50-\r\n");
    assert_eq!((r.status, r.header("content-range")), (416, Some("bytes */10")));
    // An If-Range that no longer holds gets the whole response.
    let r = get_with(&p, "/tagged", "Range: bytes=2-4\r\nIf-Range: \"old\"\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "0123456789"));
    // Over HTTP/2 too.
    let url = format!("http://{}/tagged", p.addr());
    let c = curl(
        &["--http2-prior-knowledge", "-H", "Host: test.local", "-r", "1-2"],
        &url,
    );
    assert_eq!(c.stdout, "12", "{}", c.stderr);
    assert_eq!(hits_on(&b, "/tagged"), 1);
}

#[test]
fn min_uses_stores_from_the_nth_miss_on() {
    let b = origin();
    let p = cached(&b, "", ", min_uses = 3");
    let got: Vec<String> = (0..5).map(|_| status(&p.get("/fresh")).to_string()).collect();
    assert_eq!(got, ["MISS", "MISS", "MISS", "HIT", "HIT"]);
    assert_eq!(hits_on(&b, "/fresh"), 3);
}

#[test]
fn the_admin_listener_purges_a_key() {
    let b = origin();
    let p = Proxy::start(&config(&format!(
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
cache = {{ zone = "main", status_header = "X-Cache-Status" }}

[admin]
listen = "127.0.0.1:{admin}"
"#,
        addr = b.addr,
        admin = listen_port(),
    )));
    p.get("/fresh");
    assert_eq!(status(&p.get("/fresh")), "HIT");
    let delete = |q: &str| {
        let mut c = Client::connect(p.admin_addr());
        c.request(format!("DELETE /cache/{q} HTTP/1.1\r\nHost: admin\r\n\r\n"))
            .status
    };
    // The default key, $scheme$host$request_uri, percent-encoded.
    assert_eq!(delete("main?key=httptest.local%2Ffresh"), 200);
    assert_eq!(delete("main?key=httptest.local%2Ffresh"), 404);
    assert_eq!(delete("nope?key=x"), 404);
    assert_eq!(delete("main"), 400);
    assert_eq!(status(&p.get("/fresh")), "MISS");
}

#[test]
fn cache_config_refusals_have_positions() {
    use ringway::config::Config;
    let cfg = r#"[[cache]]
name = "main"
memory = "lots"

[[cache]]
name = "small"
memory = "1m"
max_object = "2m"

[[cache]]
name = "main"
memory = "1m"

[[cache]]
name = "ok"
memory = "1m"
dsk = "x"

[[server]]
listen = ["127.0.0.1:1"]

[[server.location]]
path = "/a"
proxy_pass = "http://127.0.0.1:2"
cache = { zone = "okk", key = "fixed", valid = { "200 abc" = "1m", "404" = "soon" }, bypass = ["1"], status_header = "X Cache", ignore_headers = ["Set-Cookei"], lokc = true }

[[server.location]]
path = "/b"
return = { status = 200 }
cache = { zone = "ok" }

[[server.location]]
path = "/c"
proxy_pass = "http://127.0.0.1:2"
cache = { zone = "ok", lock_timeout = "2s", purge_allow = ["10.0.0.0/33"], background_update = true }

[[server.location]]
path = "/d"
proxy_pass = "http://127.0.0.1:2"
cache = { zone = "ok", lock = true, lock_timeout = "never", use_stale = ["eror"], min_uses = -7 }
"#;
    let e = Config::parse(cfg, std::path::Path::new("c.toml"))
        .unwrap_err()
        .to_string();
    let at = |needle: &str, nth: usize| {
        let off = cfg
            .match_indices(needle)
            .nth(nth)
            .unwrap_or_else(|| panic!("{needle}"))
            .0;
        let line = cfg[..off].matches('\n').count() + 1;
        let col = off - cfg[..off].rfind('\n').map_or(0, |i| i + 1) + 1;
        format!("c.toml:{line}:{col}: ")
    };
    for (pos, want) in [
        (at("\"lots\"", 0), "cache[0].memory: must be a size"),
        (at("\"2m\"", 0), "cache[1].max_object: is larger than `memory`"),
        (
            at("\"main\"", 1),
            "cache[2].name: cache \"main\" is defined twice",
        ),
        (at("dsk", 0), "cache[3].dsk: unknown key `dsk`"),
        (
            at("\"okk\"", 0),
            "server[0].location[0].cache.zone: unknown cache zone \"okk\"; did you mean \"ok\"?",
        ),
        (
            at("\"fixed\"", 0),
            "server[0].location[0].cache.key: a key without variables",
        ),
        (at("\"1m\", \"404\"", 0), "bad status list \"200 abc\""),
        (at("\"soon\"", 0), "bad time \"soon\""),
        (
            at("\"1\"]", 0),
            "server[0].location[0].cache.bypass[0]: a bypass without variables",
        ),
        (
            at("\"X Cache\"", 0),
            "server[0].location[0].cache.status_header: \"X Cache\" is not a field name",
        ),
        (
            at("\"Set-Cookei\"", 0),
            "\"Set-Cookei\" cannot be ignored; did you mean \"Set-Cookie\"?",
        ),
        (at("lokc", 0), "unknown key `lokc`"),
        (
            at("{ zone = \"ok\" }", 0),
            "server[0].location[1].cache: only applies with proxy_pass",
        ),
        (
            at("\"2s\"", 0),
            "server[0].location[2].cache.lock_timeout: only applies with `lock = true`",
        ),
        (
            at("\"never\"", 0),
            "server[0].location[3].cache.lock_timeout: bad time \"never\"",
        ),
        (
            at("true }", 1),
            "server[0].location[2].cache.background_update: needs \"updating\" in `use_stale`",
        ),
        (
            at("\"eror\"", 0),
            "server[0].location[3].cache.use_stale[0]: unknown condition \"eror\"; did you mean \"error\"?",
        ),
        (
            at("\"10.0.0.0/33\"", 0),
            "server[0].location[2].cache.purge_allow[0]: \"10.0.0.0/33\" is not an address or a CIDR",
        ),
        (
            at("-7 }", 0),
            "server[0].location[3].cache.min_uses: must be a whole number",
        ),
    ] {
        assert!(
            e.lines().any(|l| l.starts_with(&pos) && l.contains(want)),
            "no {pos}{want} in:\n{e}"
        );
    }
}

#[test]
fn the_readmes_cache_example_parses_to_what_it_says() {
    use ringway::config::Config;
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let at = readme.find("### Response cache").expect("the section");
    let start = readme[at..].find("```toml").unwrap() + at + 7;
    let end = readme[start..].find("```").unwrap() + start;
    let text = format!(
        "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:3000\"]\n{}",
        readme[start..end].replacen(
            "[[server.location]]",
            "[[server]]\nlisten = [\"127.0.0.1:1\"]\n\n[[server.location]]",
            1
        )
    );
    let c = Config::parse(&text, std::path::Path::new("README.md")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (
            c.caches[0].name.as_str(),
            c.caches[0].memory,
            c.caches[0].max_object
        ),
        ("main", 512 << 20, 8 << 20)
    );
    let cache = c.servers[0].locations[0].cache.as_deref().expect("a cache plan");
    assert_eq!(cache.zone_name, "main");
    assert!(cache.key_is_default && cache.lock && cache.background_update && !cache.heuristic);
    assert_eq!(cache.lock_timeout, std::time::Duration::from_secs(5));
    let mut valid = cache.valid.clone();
    valid.sort();
    assert_eq!(
        valid,
        vec![(0, 30), (200, 600), (301, 600), (302, 600), (404, 60)]
    );
    assert_eq!(cache.bypass.len(), 2);
    assert_eq!(cache.status_header.as_deref(), Some("X-Cache-Status"));
    let s = cache.use_stale;
    assert!(s.error && s.timeout && s.updating && s.statuses.iter().all(|&x| x) && !s.invalid_header);
    assert_eq!(cache.purge_allow.len(), 2);
    assert_eq!(cache.min_uses, 1);
    assert!(cache.ignore_set_cookie && !cache.ignore_cache_control);
}

#[test]
fn behind_auth_only_what_the_origin_makes_public_is_shared() {
    // API keys carry no Authorization field, yet each answer may be a
    // consumer's own: stored only with the origin's leave (§3.5's rule).
    let keys = TempFile::with_text("keys.txt", "acme:k-1\nglobex:k-2\n");
    let b = origin();
    let p = Proxy::start(&config(&format!(
        r#"
[[cache]]
name = "main"
memory = "4m"

[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"

[[server.location]]
path = "/"
auth = {{ api_key = {{ header = "X-API-Key", keys_file = "{k}" }} }}
proxy_pass = "http://{addr}"
cache = {{ zone = "main", status_header = "X-Cache-Status" }}
"#,
        k = keys.path().display(),
        addr = b.addr
    )));
    let acme = get_with(&p, "/auth", "X-API-Key: k-1\r\n");
    let globex = get_with(&p, "/auth", "X-API-Key: k-2\r\n");
    assert_eq!((acme.text(), globex.text()), ("auth 1".into(), "auth 2".into()));
    assert_eq!(status(&globex), "MISS");
    // `public`: shared among consumers that passed.
    assert_eq!(
        get_with(&p, "/auth-public", "X-API-Key: k-1\r\n").text(),
        "authp 3"
    );
    let hit = get_with(&p, "/auth-public", "X-API-Key: k-2\r\n");
    assert_eq!((hit.text().as_str(), status(&hit)), ("authp 3", "HIT"));
    // And never to a request that did not pass.
    assert_eq!(get_with(&p, "/auth-public", "").status, 401);
    assert_eq!(b.seen().len(), 3);
}
