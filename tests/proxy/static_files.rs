//! Static locations (`root`, `alias`): real files in a temporary directory,
//! asked for over real sockets with HTTP/1.1 and (through curl) HTTP/2.
//! Conditional requests, ranges and precompressed siblings are checked
//! against independent peers: curl, Python's MIME parser for
//! multipart/byteranges, Python's decoders for the compressed copies.

use std::path::{Path, PathBuf};

use crate::support::peers::{curl, py};
use crate::support::*;

/// A directory tree removed on drop.
pub struct Site(pub PathBuf);

impl Site {
    pub fn new(name: &str) -> Site {
        let p = temp_path(name);
        std::fs::create_dir_all(&p).unwrap();
        Site(p)
    }

    pub fn file(&self, rel: &str, data: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        p
    }

    pub fn dir(&self, rel: &str) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    pub fn path(&self, rel: &str) -> String {
        self.0.join(rel).display().to_string()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const BIG: usize = 200_000;

/// A site with a bit of everything; `big.bin` is larger than what is read
/// into memory whole, so it streams from the file.
pub fn site() -> Site {
    let s = Site::new("site");
    s.file("index.html", "<h1>home</h1>\n");
    s.file("style.css", "body { color: red }\n");
    s.file("app.js", "console.log('app');\n".repeat(200));
    s.file("big.bin", payload(BIG, 7));
    s.file("notes.unknownext", "plain bytes");
    s.file("docs/index.html", "<h1>docs</h1>\n");
    s.file("empty/.keep", "");
    s.file(".secret", "do not serve");
    s.file("sp ace/file name.txt", "spaced");
    s
}

pub fn static_proxy(s: &Site, server_extra: &str, location_extra: &str) -> Proxy {
    Proxy::start(&config(&format!(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
h2c = true
{server_extra}

[[server.location]]
path = "/"
root = {root:?}
{location_extra}
"#,
        root = s.0.display().to_string(),
    )))
}

fn get_with(p: &Proxy, path: &str, headers: &str) -> crate::support::client::Response {
    p.send(format!("GET {path} HTTP/1.1\r\nHost: a\r\n{headers}\r\n"))
}

#[test]
fn files_are_served_with_their_type_length_and_validators() {
    let s = site();
    let p = static_proxy(&s, "", "");
    let r = p.get("/style.css");
    assert_eq!(r.status, 200, "{}", r.head_text());
    assert_eq!(r.text(), "body { color: red }\n");
    assert_eq!(r.header("content-type"), Some("text/css"));
    assert_eq!(r.header("content-length"), Some("20"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    let modified = std::fs::metadata(s.0.join("style.css"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        r.header("last-modified"),
        Some(httpdate::fmt_http_date(modified).as_str())
    );
    let etag = r.header("etag").expect("an ETag");
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 4,
        "{etag}"
    );

    // A file larger than what is read whole streams in full.
    let r = p.get("/big.bin");
    assert_eq!(r.status, 200);
    assert_same_bytes(&r.body, &payload(BIG, 7), "big.bin");
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));

    // Unknown extension: default_type (nginx's default, octet-stream).
    assert_eq!(
        p.get("/notes.unknownext").header("content-type"),
        Some("application/octet-stream")
    );
    // Percent-encoded names are decoded.
    assert_eq!(p.get("/sp%20ace/file%20name.txt").text(), "spaced");
    // HEAD: the same head, no body.
    let mut c = p.client();
    c.send("HEAD /style.css HTTP/1.1\r\nHost: a\r\n\r\n");
    let h = c.response_to_head();
    assert_eq!((h.status, h.header("content-length")), (200, Some("20")));
    assert!(h.body.is_empty());
    // The connection is still good after it.
    assert_eq!(c.get("/index.html").text(), "<h1>home</h1>\n");
}

#[test]
fn files_over_http2() {
    let s = site();
    let p = static_proxy(&s, "", "");
    let out = temp_path("h2-big");
    let r = curl(
        &[
            "--http2-prior-knowledge",
            "-o",
            out.to_str().unwrap(),
            "-w",
            "%{http_version} %{http_code} %{content_type}",
        ],
        &format!("http://{}/big.bin", p.addr()),
    );
    assert_eq!(r.stdout, "2 200 application/octet-stream", "{}", r.stderr);
    assert_same_bytes(&std::fs::read(&out).unwrap(), &payload(BIG, 7), "big.bin over h2");
    let _ = std::fs::remove_file(out);
    let r = curl(
        &["--http2-prior-knowledge", "-w", " %{http_code}"],
        &format!("http://{}/docs/", p.addr()),
    );
    assert_eq!(r.stdout, "<h1>docs</h1>\n 200", "{}", r.stderr);
    let r = curl(
        &["--http2-prior-knowledge", "-w", "%{http_code}", "-o", "/dev/null"],
        &format!("http://{}/nope.html", p.addr()),
    );
    assert_eq!(r.stdout, "404", "{}", r.stderr);
    // HEAD over HTTP/2: the head, no DATA.
    let r = curl(
        &[
            "--http2-prior-knowledge",
            "-I",
            "-w",
            "%{http_code} %{size_download}",
        ],
        &format!("http://{}/big.bin", p.addr()),
    );
    assert!(
        r.stdout.contains(&format!("content-length: {BIG}")),
        "{} {}",
        r.stdout,
        r.stderr
    );
    assert!(r.stdout.ends_with("200 0"), "{}", r.stdout);
}

#[test]
fn directories_get_their_index_or_a_redirect_to_their_slash() {
    let s = site();
    let p = static_proxy(&s, "", "");
    assert_eq!(p.get("/").text(), "<h1>home</h1>\n");
    assert_eq!(p.get("/docs/").text(), "<h1>docs</h1>\n");
    let r = p.get("/docs?x=1");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/docs/?x=1"));
    // A directory without an index and without autoindex: 403, as nginx.
    assert_eq!(p.get("/empty/").status, 403);
    // A file asked for as a directory is not found.
    assert_eq!(p.get("/style.css/").status, 404);
    assert_eq!(p.get("/missing.txt").status, 404);
}

#[test]
fn index_lists_are_tried_in_order_and_autoindex_lists_a_directory() {
    let s = site();
    s.file("list/b.txt", "b");
    s.file("list/<a&b>.txt", "x");
    s.dir("list/sub");
    s.file("list/.hidden", "h");
    s.file("two/home.htm", "htm");
    let p = static_proxy(&s, "", "index = [\"index.html\", \"home.htm\"]\nautoindex = true");
    assert_eq!(p.get("/two/").text(), "htm");
    let r = p.get("/list/");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let body = r.text();
    assert!(body.contains("href=\"b.txt\""), "{body}");
    assert!(body.contains("href=\"sub/\""), "{body}");
    // Names are escaped in the listing: an attribute and the text alike.
    assert!(body.contains("&lt;a&amp;b&gt;.txt"), "{body}");
    assert!(!body.contains("<a&b>"), "{body}");
    assert!(!body.contains(".hidden"), "hidden files are not listed: {body}");
}

#[test]
fn conditional_requests_follow_rfc_9110() {
    let s = site();
    let p = static_proxy(&s, "", "");
    let r = p.get("/style.css");
    let etag = r.header("etag").unwrap().to_string();
    let lm = r.header("last-modified").unwrap().to_string();

    let r = get_with(&p, "/style.css", &format!("If-None-Match: \"x\", {etag}\r\n"));
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    // Weak comparison for If-None-Match.
    let r = get_with(&p, "/style.css", &format!("If-None-Match: W/{etag}\r\n"));
    assert_eq!(r.status, 304);
    let r = get_with(&p, "/style.css", "If-None-Match: *\r\n");
    assert_eq!(r.status, 304);
    let r = get_with(&p, "/style.css", &format!("If-Modified-Since: {lm}\r\n"));
    assert_eq!(r.status, 304);
    // If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
    let r = get_with(
        &p,
        "/style.css",
        &format!("If-None-Match: \"other\"\r\nIf-Modified-Since: {lm}\r\n"),
    );
    assert_eq!(r.status, 200);
    let r = get_with(
        &p,
        "/style.css",
        "If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT\r\n",
    );
    assert_eq!(r.status, 200);

    // If-Match needs a strong match: 412 otherwise.
    let r = get_with(&p, "/style.css", "If-Match: \"nope\"\r\n");
    assert_eq!(r.status, 412);
    let r = get_with(&p, "/style.css", &format!("If-Match: W/{etag}\r\n"));
    assert_eq!(r.status, 412);
    let r = get_with(&p, "/style.css", &format!("If-Match: {etag}\r\n"));
    assert_eq!(r.status, 200);
    let r = get_with(
        &p,
        "/style.css",
        "If-Unmodified-Since: Sat, 01 Jan 2000 00:00:00 GMT\r\n",
    );
    assert_eq!(r.status, 412);
    // curl's own conditional GET sees the 304.
    let r = curl(
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            &format!("If-None-Match: {etag}"),
        ],
        &format!("http://{}/style.css", p.addr()),
    );
    assert_eq!(r.stdout, "304", "{}", r.stderr);
}

#[test]
fn single_and_multiple_ranges() {
    let s = site();
    let p = static_proxy(&s, "", "");
    let data = payload(BIG, 7);
    let r = get_with(&p, "/big.bin", "Range: bytes=100-199\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some(&*format!("bytes 100-199/{BIG}")));
    assert_same_bytes(&r.body, &data[100..200], "bytes 100-199");
    let r = get_with(&p, "/big.bin", "Range: bytes=-10\r\n");
    assert_same_bytes(&r.body, &data[BIG - 10..], "the last 10 bytes");
    let r = get_with(&p, "/big.bin", "Range: bytes=150000-\r\n");
    assert_same_bytes(&r.body, &data[150_000..], "from 150000");
    // Past the end: 416 with the size.
    let r = get_with(&p, "/big.bin", &format!("Range: bytes={BIG}-\r\n"));
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some(&*format!("bytes */{BIG}")));
    // Not bytes, or malformed: the whole file.
    for bad in ["items=1-2", "bytes=5-1", "bytes=abc"] {
        let r = get_with(&p, "/big.bin", &format!("Range: {bad}\r\n"));
        assert_eq!(r.status, 200, "{bad}");
        assert_eq!(r.body.len(), BIG, "{bad}");
    }
    // If-Range with a different validator: the whole file.
    let r = get_with(&p, "/big.bin", "Range: bytes=0-9\r\nIf-Range: \"old\"\r\n");
    assert_eq!(r.status, 200);
    let etag = r.header("etag").unwrap().to_string();
    let r = get_with(
        &p,
        "/big.bin",
        &format!("Range: bytes=0-9\r\nIf-Range: {etag}\r\n"),
    );
    assert_eq!(r.status, 206);

    // Several ranges: multipart/byteranges, parsed by Python's MIME parser.
    let r = get_with(&p, "/big.bin", "Range: bytes=0-9, 1000-1019, -5\r\n");
    assert_eq!(r.status, 206);
    let ctype = r.header("content-type").unwrap().to_string();
    assert!(ctype.starts_with("multipart/byteranges; boundary="), "{ctype}");
    assert_eq!(
        r.header("content-length").unwrap().parse::<usize>().unwrap(),
        r.body.len()
    );
    let body = TempFile::new("byteranges");
    std::fs::write(body.path(), &r.body).unwrap();
    let parsed = py("byteranges.py", &[&ctype, body.path().to_str().unwrap()]);
    assert_eq!(parsed["ok"], true, "{parsed}");
    let parts = parsed["parts"].as_array().unwrap();
    let want = [(0, 10), (1000, 1020), (BIG - 5, BIG)];
    assert_eq!(parts.len(), want.len(), "{parsed}");
    for (part, (a, b)) in parts.iter().zip(want) {
        assert_eq!(
            part["content_range"],
            format!("bytes {a}-{}/{BIG}", b - 1),
            "{parsed}"
        );
        assert_eq!(part["content_type"], "application/octet-stream");
        let hex: String = data[a..b].iter().map(|x| format!("{x:02x}")).collect();
        assert_eq!(part["hex"], hex);
    }
    // curl's range request over HTTP/2.
    let r = curl(
        &["--http2-prior-knowledge", "-r", "10-19", "-w", " %{http_code}"],
        &format!("http://{}/style.css", p.addr()),
    );
    assert_eq!(r.stdout, "or: red }\n 206", "{}", r.stderr);
}

#[test]
fn methods_other_than_get_and_head_are_refused_with_allow() {
    let s = site();
    let p = static_proxy(&s, "", "");
    let r = p.send("POST /style.css HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let r = p.send("DELETE /index.html HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.status, 405);
}

fn compressed(s: &Site, alg: &str, rel: &str, ext: &str) {
    let src = s.0.join(rel);
    let dst = s.0.join(format!("{rel}.{ext}"));
    let r = py(
        "compress_file.py",
        &[alg, src.to_str().unwrap(), dst.to_str().unwrap()],
    );
    assert_eq!(r["ok"], true, "{r}");
}

fn decoded(alg: &str, data: &[u8]) -> Vec<u8> {
    let src = TempFile::new("pre-enc");
    let dst = TempFile::new("pre-dec");
    std::fs::write(src.path(), data).unwrap();
    let r = py(
        "decode.py",
        &[alg, src.path().to_str().unwrap(), dst.path().to_str().unwrap()],
    );
    assert_eq!(r["ok"], true, "{alg}: {r}");
    std::fs::read(dst.path()).unwrap()
}

#[test]
fn precompressed_siblings_are_served_to_clients_that_accept_them() {
    let s = site();
    compressed(&s, "gzip", "app.js", "gz");
    compressed(&s, "br", "app.js", "br");
    let plain = std::fs::read(s.0.join("app.js")).unwrap();
    let p = static_proxy(&s, "", "");
    for (accept, alg) in [
        ("gzip", "gzip"),
        ("br", "br"),
        ("gzip, br", "br"),
        ("br;q=0.5, gzip", "gzip"),
    ] {
        let r = get_with(&p, "/app.js", &format!("Accept-Encoding: {accept}\r\n"));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-encoding"), Some(alg), "{accept}");
        assert_eq!(r.header("content-type"), Some("text/javascript"), "{accept}");
        assert_eq!(r.header("vary"), Some("Accept-Encoding"));
        assert_same_bytes(&decoded(alg, &r.body), &plain, accept);
    }
    // Neither accepted: the plain file, still with Vary.
    let r = get_with(&p, "/app.js", "Accept-Encoding: zstd\r\n");
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert_same_bytes(&r.body, &plain, "identity");
    // A sibling older than the file is stale and not used.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(s.0.join("app.js.br"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let p2 = static_proxy(&s, "", "");
    let r = get_with(&p2, "/app.js", "Accept-Encoding: br\r\n");
    assert_eq!(r.header("content-encoding"), None, "{}", r.head_text());
    // Turned off: never.
    let p3 = static_proxy(&s, "", "precompressed = false");
    let r = get_with(&p3, "/app.js", "Accept-Encoding: gzip\r\n");
    assert_eq!(r.header("content-encoding"), None);
    // The sibling itself is not served under its own name as the file's
    // coding: asking for it directly gives it as bytes.
    let r = p3.get("/app.js.gz");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), None);
}

/// Every way of naming something outside the root is refused, and nothing
/// outside it is read.
#[test]
fn alias_replaces_the_location_prefix_and_root_appends() {
    let s = site();
    let assets = Site::new("assets");
    assets.file("logo.svg", "<svg/>");
    let p = Proxy::start(&config(&format!(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
[[server.location]]
path = "/static/"
alias = {alias:?}
expires = "1h"
cache_control = "public, immutable"
[[server.location]]
path = "/"
root = {root:?}
expires = "epoch"
default_type = "text/plain"
"#,
        alias = assets.0.display().to_string(),
        root = s.0.display().to_string(),
    )));
    let r = p.get("/static/logo.svg");
    assert_eq!(r.text(), "<svg/>");
    assert_eq!(r.header("content-type"), Some("image/svg+xml"));
    assert_eq!(r.header("cache-control"), Some("public, immutable"));
    let expires = httpdate::parse_http_date(r.header("expires").unwrap()).unwrap();
    let ahead = expires
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default()
        .as_secs();
    assert!((3500..=3601).contains(&ahead), "{ahead}");
    let r = p.get("/notes.unknownext");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("expires"), Some("Thu, 01 Jan 1970 00:00:01 GMT"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
}

#[test]
fn try_files_falls_back_to_an_spa_index_a_status_or_a_named_location() {
    let s = Site::new("spa");
    s.file("index.html", "<div id=app></div>");
    s.file("assets/app.js", "js");
    let b = Backend::serve(|seen| Reply::ok(format!("app saw {}", seen.target())));
    let p = Proxy::start(&config(&format!(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
h2c = true
[[server.location]]
path = "/api/"
root = {root:?}
try_files = ["$uri", "@app"]
[[server.location]]
name = "app"
proxy_pass = "http://{backend}"
[[server.location]]
path = "/assets/"
root = {root:?}
try_files = ["$uri", "=404"]
[[server.location]]
path = "/"
root = {root:?}
try_files = ["$uri", "$uri/", "/index.html"]
"#,
        root = s.0.display().to_string(),
        backend = b.addr,
    )));
    assert_eq!(p.get("/assets/app.js").text(), "js");
    assert_eq!(p.get("/assets/nope.js").status, 404);
    // A client-side route: the SPA's index.
    let r = p.get("/users/42?tab=1");
    assert_eq!((r.status, r.text().as_str()), (200, "<div id=app></div>"));
    assert_eq!(p.get("/").text(), "<div id=app></div>");
    // Not on disk: handed to the named location, URI unchanged.
    let r = p.get("/api/v1/items?q=1");
    assert_eq!(r.text(), "app saw /api/v1/items?q=1");
    b.wait_requests(1);
    let r = curl(
        &["--http2-prior-knowledge", "-w", " %{http_code}"],
        &format!("http://{}/settings/profile", p.addr()),
    );
    assert_eq!(r.stdout, "<div id=app></div> 200", "{}", r.stderr);
}

#[test]
fn the_open_file_cache_sees_changes_within_its_validity() {
    let s = site();
    let p = static_proxy(&s, "", "");
    assert_eq!(p.get("/later.txt").status, 404);
    // Lookups that fail are not cached: the new file is seen at once.
    s.file("later.txt", "now here");
    assert_eq!(p.get("/later.txt").text(), "now here");
    // A changed file is seen once the cached lookup expires (1 s).
    s.file("later.txt", "changed!");
    let seen = wait_for(std::time::Duration::from_secs(5), || {
        let r = p.get("/later.txt");
        (r.text() == "changed!").then_some(())
    });
    assert!(seen.is_some(), "the change was never seen");
}

#[test]
fn static_config_mistakes_are_refused_with_positions() {
    use crate::cli::{position, ringway, run_bounded, text};
    let cfg = r#"[[server]]
listen = ["127.0.0.1:0"]

[[server.location]]
path = "/both/"
root = "/srv"
alias = "/srv2"

[[server.location]]
path = "/p/"
proxy_pass = "http://127.0.0.1:9"
root = "/srv"

[[server.location]]
regex = "^/r/"
alias = "/srv"

[[server.location]]
path = "/i/"
root = "/srv"
index = ["a/b.html"]

[[server.location]]
path = "/t/"
root = "/srv"
try_files = ["$uri"]

[[server.location]]
path = "/t2/"
root = "/srv"
try_files = ["$uri", "fallback"]

[[server.location]]
path = "/t3/"
root = "/srv"
try_files = ["$uri", "@nowhere"]

[[server.location]]
path = "/e/"
root = "/srv"
expires = "soon"

[[server.location]]
path = "/k/"
return = { status = 200 }
autoindex = true

[[server.location]]
path = "/d/"
root = "/srv"
default_type = "text"

[[server.location]]
path = "/c/"
root = "/srv"
try_files = ["$uri", "=700"]
"#;
    let f = TempFile::with_text("static.toml", cfg);
    let file = f.path().display().to_string();
    let out = run_bounded(
        ringway(&["--check", "--config", &file]),
        std::time::Duration::from_secs(10),
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    let at = |needle: &str| {
        let (l, c) = position(cfg, needle);
        format!("{file}:{l}:{c}: ")
    };
    let expected = [
        format!(
            "{}server[0].location[0].alias: give root or alias, not both",
            at("\"/srv2\"")
        ),
        format!(
            "{}server[0].location[1]: give exactly one of proxy_pass, return, or root/alias",
            at("[[server.location]]\npath = \"/p/\"")
        ),
        format!(
            "{}server[0].location[2].alias: alias replaces a path prefix",
            at("\"/srv\"\n\n[[server.location]]\npath = \"/i/\"")
        ),
        format!(
            "{}server[0].location[3].index[0]: a file name, without slashes",
            at("\"a/b.html\"")
        ),
        format!(
            "{}server[0].location[4].try_files: needs at least two entries",
            at("[\"$uri\"]")
        ),
        format!(
            "{}server[0].location[5].try_files[1]: the last entry is a URI",
            at("\"fallback\"")
        ),
        format!(
            "{}server[0]: no location has name = \"nowhere\"",
            at("\"@nowhere\"")
        ),
        format!("{}server[0].location[7].expires: a duration", at("\"soon\"")),
        format!(
            "{}server[0].location[8].autoindex: only applies with root or alias",
            at("true\n")
        ),
        format!(
            "{}server[0].location[9].default_type: a media type",
            at("\"text\"")
        ),
        format!(
            "{}server[0].location[10].try_files[1]: \"=code\" takes a status",
            at("\"=700\"")
        ),
    ];
    let lines: Vec<&str> = stderr.lines().collect();
    for want in &expected {
        assert!(
            lines.iter().any(|l| l.starts_with(want.as_str())),
            "no line starts with {want:?}; stderr:\n{stderr}"
        );
    }
}

/// A path relative to the config file's directory.
#[test]
fn a_relative_root_is_relative_to_the_config_file() {
    let s = site();
    let cfg_path = s.0.join("conf").join("ringway.toml");
    std::fs::create_dir_all(cfg_path.parent().unwrap()).unwrap();
    let toml = config(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
[[server.location]]
path = "/"
root = ".."
"#,
    );
    let cfg = ringway::config::Config::parse(&toml, Path::new(&cfg_path)).expect("parses");
    let p = Proxy::from_server(ringway::server::Server::bind(std::sync::Arc::new(cfg), 1).expect("binds"));
    assert_eq!(p.get("/style.css").text(), "body { color: red }\n");
}

/// The shipped example serves what its comments say, from its own files.
#[test]
fn the_static_example_serves_as_its_comments_say() {
    let b = Backend::serve(|seen| Reply::ok(format!("api {}", seen.target())));
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/static.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("127.0.0.1:8080", "127.0.0.1:0")
        .replace("127.0.0.1:3000", &b.addr.to_string());
    let cfg = ringway::config::Config::parse(&text, &path).unwrap_or_else(|e| panic!("{e}"));
    let p = Proxy::from_server(ringway::server::Server::bind(std::sync::Arc::new(cfg), 1).expect("binds"));
    let index = std::fs::read_to_string(path.with_file_name("site/index.html")).unwrap();
    let r = p.get("/");
    assert_eq!(r.text(), index);
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(p.get("/users/42").text(), index, "a client-side route");
    let r = p.get("/assets/app.js");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    let r = p.get("/assets/missing.js");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("Nothing here."), "{}", r.text());
    assert_eq!(p.get("/api/items").text(), "api /api/items");
    drop(b);
    // The upstream gone: the maintenance answer.
    let r = p.get("/api/items");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.text(), "down for maintenance, back soon\n");
}
