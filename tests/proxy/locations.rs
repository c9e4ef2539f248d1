//! Locations chosen as nginx chooses them (`exact`, prefix `path` with or
//! without `skip_regex`, `regex` in config order, `name` never by path), and
//! a regex's captures in `return` and `proxy_pass`, over HTTP/1.1 and HTTP/2.

use crate::support::peers::curl;
use crate::support::*;

/// Each location answers with its own name and what it captured.
const ORDER: &str = r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
h2c = true
[[server.location]]
path = "/"
return = { status = 200, body = "root" }
[[server.location]]
path = "/img/"
skip_regex = true
return = { status = 200, body = "img-prefix" }
[[server.location]]
path = "/docs/"
return = { status = 200, body = "docs-prefix" }
[[server.location]]
regex = "\\.(png|jpe?g)$"
return = { status = 200, body = "image:$1" }
[[server.location]]
regex = "(?i)^/docs/(?P<page>.+)\\.pdf$"
return = { status = 200, body = "pdf:$page" }
[[server.location]]
regex = "^/docs/"
return = { status = 200, body = "docs-regex" }
[[server.location]]
exact = "/docs/"
return = { status = 200, body = "docs-exact" }
[[server.location]]
name = "fallback"
return = { status = 200, body = "named" }
[[server.location]]
path = "/docs/a.png/"
return = { status = 200, body = "long-prefix" }
"#;

/// Path → the location nginx picks for the same locations (checked by hand
/// against nginx 1.22 with `=`, `^~`, `~`, `~*` and `@fallback`).
const CASES: [(&str, &str); 12] = [
    ("/docs/", "docs-exact"),
    ("/img/a.png", "img-prefix"),
    ("/docs/a.png", "image:png"),
    ("/docs/a.png/b.jpeg", "image:jpeg"),
    ("/docs/guide.PDF", "pdf:guide"),
    ("/docs/guide.pdf", "pdf:guide"),
    ("/docs/x.txt", "docs-regex"),
    ("/docs/a.png/x", "docs-regex"),
    ("/docs", "root"),
    ("/x.PNG", "root"),
    ("/fallback", "root"),
    ("/other.jpg", "image:jpg"),
];

#[test]
fn locations_are_chosen_in_nginx_order() {
    let p = Proxy::start(&config(ORDER));
    for (path, want) in CASES {
        let r = p.get(path);
        assert_eq!((r.status, r.text().as_str()), (200, want), "GET {path}");
    }
    // A named location is not reachable by a path that spells its name.
    let r = p.send("GET @fallback HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.status, 400);
}

#[test]
fn locations_are_chosen_in_nginx_order_over_http2() {
    let p = Proxy::start(&config(ORDER));
    for (path, want) in CASES {
        let url = format!("http://{}{path}", p.addr());
        let r = curl(&["--http2-prior-knowledge", "-w", " %{http_version}"], &url);
        assert_eq!(r.stdout, format!("{want} 2"), "GET {path}: {}", r.stderr);
    }
}

#[test]
fn a_path_that_matches_nothing_is_404_even_with_a_named_location() {
    let p = Proxy::start(&config(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
[[server.location]]
exact = "/only"
return = { status = 200, body = "only" }
[[server.location]]
name = "spa"
return = { status = 200, body = "named" }
"#,
    ));
    assert_eq!(p.get("/only").text(), "only");
    // `exact` is the whole path: neither a prefix nor with a query's help.
    assert_eq!(p.get("/only/").status, 404);
    assert_eq!(p.get("/onlyx").status, 404);
    assert_eq!(p.get("/only?x=1").text(), "only");
    assert_eq!(p.get("/spa").status, 404);
}

fn regex_proxy(pass: &str) -> Proxy {
    Proxy::start(&config(&format!(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
h2c = true
[[server.location]]
regex = "^/u/(?P<user>[a-z]+)/(.*)$"
proxy_pass = "{pass}"
[[server.location]]
path = "/"
return = {{ status = 200, body = "fallthrough" }}
"#
    )))
}

#[test]
fn captures_build_the_upstream_uri_of_a_regex_location() {
    let b = Backend::echo_target();
    let p = regex_proxy(&format!("http://{}/users/$user/files/$2$is_args$args", b.addr));
    assert_eq!(p.get("/u/ann/a/b.txt?v=2").text(), "/users/ann/files/a/b.txt?v=2");
    assert_eq!(p.get("/u/bob/x").text(), "/users/bob/files/x");
    // Not matched by the regex: no capture is made up.
    assert_eq!(p.get("/u/Bob/x").text(), "fallthrough");
    let url = format!("http://{}/u/eve/h2?q", p.addr());
    let r = curl(&["--http2-prior-knowledge"], &url);
    assert_eq!(r.stdout, "/users/eve/files/h2?q", "{}", r.stderr);
    let targets: Vec<String> = b.seen().iter().map(|s| s.target().to_string()).collect();
    assert_eq!(
        targets,
        [
            "/users/ann/files/a/b.txt?v=2",
            "/users/bob/files/x",
            "/users/eve/files/h2?q"
        ]
    );
}

#[test]
fn a_regex_location_without_a_proxy_pass_path_passes_the_uri_unchanged() {
    let b = Backend::echo_target();
    let p = regex_proxy(&format!("http://{}", b.addr));
    assert_eq!(p.get("/u/ann/a%20b?x=1").text(), "/u/ann/a%20b?x=1");
}

#[test]
fn variables_in_return_body_and_location() {
    let p = Proxy::start(&config(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
server_name = ["site.test"]
access_log = "off"
[[server.location]]
path = "/go/"
return = { status = 301, location = "https://$host:8443$request_uri", body = "moved $uri" }
[[server.location]]
regex = "^/item/(\\d+)$"
return = { status = 200, body = "item $1 for $remote_addr via $scheme on $server_port: $request_method $arg_k $http_x_tenant $cookie_sid" }
[[server.location]]
path = "/dec/"
return = { status = 302, location = "/to$uri" }
"#,
    ));
    let r = p.send("GET /go/a%20b?x=1 HTTP/1.1\r\nHost: Site.TEST:81\r\n\r\n");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("https://site.test:8443/go/a%20b?x=1"));
    assert_eq!(r.text(), "moved /go/a b");
    // Without a Host: the block's name, as nginx's $host.
    let r = p.send("GET /go/x HTTP/1.0\r\n\r\n");
    assert_eq!(r.header("location"), Some("https://site.test:8443/go/x"));
    let r =
        p.send("GET /item/42?k=v&z=1 HTTP/1.1\r\nHost: a\r\nX-Tenant: acme\r\nCookie: a=1; sid=s9\r\n\r\n");
    let port = p.addr().port();
    assert_eq!(
        r.text(),
        format!("item 42 for 127.0.0.1 via http on {port}: GET v acme s9")
    );
    // A decoded CR LF in $uri cannot split the head it is written into.
    let r = p.send("GET /dec/a%0d%0aX-Evil:%201 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("/to/dec/a%0D%0AX-Evil:%201"));
    assert!(!r.has("x-evil"));
}

/// Each mistake of the new keys is refused by `--check` with its position
/// and, where there is one, a suggestion; all of them in one run.
#[test]
fn check_refuses_bad_locations_rewrites_and_variables_with_positions() {
    use crate::cli::{position, ringway, run_bounded, text};
    let cfg = r#"[[server]]
listen = ["127.0.0.1:0"]
rewrite = [{ from = "^/a/(.*)$", to = "/b/$2" }]

[[server.location]]
regex = "^/(unclosed"
return = { status = 200 }

[[server.location]]
path = "/both/"
exact = "/both"
return = { status = 200 }

[[server.location]]
return = { status = 200 }

[[server.location]]
path = "/vars/"
return = { status = 200, body = "hi $hots" }

[[server.location]]
path = "/flag/"
rewrite = [{ from = "^/flag/", to = "/x", flag = "permanant" }]
return = { status = 200 }

[[server.location]]
regex = "^/r/(.*)$"
skip_regex = true
return = { status = 200 }

[[server.location]]
regex = "^/p/(.*)$"
proxy_pass = "http://127.0.0.1:9/static/"

[[server.location]]
name = "@spa"
return = { status = 200 }

[[server.location]]
path = "/url/"
rewrite = [{ from = "^/url/", to = "https://x.test/", flag = "last" }]
return = { status = 200 }

[[server.location]]
path = "/nocap/"
return = { status = 302, location = "/to/$1" }
"#;
    let f = TempFile::with_text("content.toml", cfg);
    let file = f.path().display().to_string();
    let out = run_bounded(
        ringway(&["--check", "--config", &file]),
        std::time::Duration::from_secs(10),
    );
    assert!(!out.status.success(), "a bad config must fail the check");
    let stderr = text(&out.stderr);
    let at = |needle: &str| {
        let (l, c) = position(cfg, needle);
        format!("{file}:{l}:{c}: ")
    };
    let expected = [
        format!("{}server[0].location[0].regex: bad regex:", at("\"^/(unclosed\"")),
        format!(
            "{}server[0].location[1]: give exactly one of path, exact, regex or name (has more than one)",
            at("\"/both\"\n")
        ),
        format!(
            "{}server[0].location[2]: give exactly one of path, exact, regex or name (has none)",
            at("[[server.location]]\nreturn")
        ),
        format!(
            "{}server[0].location[3].return.body: unknown variable `$hots`; did you mean `$host`?",
            at("\"hi $hots\"")
        ),
        format!(
            "{}server[0].location[4].rewrite[0].flag: unknown flag \"permanant\"; did you mean \"permanent\"?",
            at("\"permanant\"")
        ),
        format!(
            "{}server[0].location[5].skip_regex: only applies to a prefix location",
            at("true\nreturn")
        ),
        format!(
            "{}server[0].location[6].proxy_pass: a regex location has no prefix",
            at("\"http://127.0.0.1:9/static/\"")
        ),
        format!("{}server[0].location[7].name: a name of letters", at("\"@spa\"")),
        format!(
            "{}server[0].location[8].rewrite[0].to: a URL always redirects",
            at("\"https://x.test/\"")
        ),
        format!(
            "{}server[0].location[9].return.location: $1: no regex here",
            at("\"/to/$1\"")
        ),
        format!(
            "{}server[0].rewrite[0].to: $2: the regex has 1 capture group",
            at("\"/b/$2\"")
        ),
    ];
    let lines: Vec<&str> = stderr.lines().collect();
    for want in &expected {
        assert!(
            lines.iter().any(|l| l.starts_with(want.as_str())),
            "no line starts with {want:?}; stderr:\n{stderr}"
        );
    }
    assert!(
        stderr.contains(&format!("test failed ({} errors)", expected.len())),
        "{stderr}"
    );
}

/// The shipped example means what its comments say: kinds, rules and the
/// header tables a location inherits or replaces.
#[test]
fn the_locations_example_loads_as_its_comments_say() {
    use ringway::config::{Config, LocationKind, RewriteFlag};
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/locations-and-rewrites.toml");
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let s = &c.servers[0];
    assert_eq!(
        s.rewrites.iter().map(|r| r.flag).collect::<Vec<_>>(),
        [RewriteFlag::Last, RewriteFlag::Permanent]
    );
    let by = |p: &str| s.locations.iter().find(|l| l.path == p).unwrap();
    assert!(matches!(by("/healthz").kind, LocationKind::Exact));
    assert!(matches!(
        by("/static/").kind,
        LocationKind::Prefix { skip_regex: true }
    ));
    assert!(matches!(by("app").kind, LocationKind::Named));
    assert!(matches!(
        by("(?i)\\.(png|jpe?g|webp)$").kind,
        LocationKind::Regex(_)
    ));
    assert_eq!(by("/api/v1/").rewrites[0].flag, RewriteFlag::Break);
    assert!(by("/search").rewrites[0].drop_args);
    // /healthz has its own response table; /static/ inherits the block's.
    let own = by("/healthz").response_headers.as_deref().unwrap();
    assert!(own.always && own.fields.iter().all(|(n, _)| n == "Cache-Control"));
    let inherited = by("/static/").response_headers.as_deref().unwrap();
    assert_eq!(inherited.removed, ["x-powered-by"]);
    assert_eq!(
        by("/static/").request_headers.as_deref().unwrap().hidden,
        ["x-env", "x-request-path", "x-debug"]
    );
}
