//! `compress`: proxied bodies compressed by negotiation, over HTTP/1.1 and
//! HTTP/2. Every compressed body is decoded by an independent decoder
//! (Python's zlib, brotli and zstandard, `tests/peers/decode.py`) and
//! compared with what the backend sent; every skip rule is shown leaving the
//! response as the backend sent it.

use std::io::Read;

use std::time::Duration;

use crate::support::peers::{curl, py};
use crate::support::wire::Framing;
use crate::support::*;

/// A text that compresses, different at every line.
fn text(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(
            format!("{{\"id\": {i}, \"name\": \"item-{}\"}},\n", i * 7919 % 1000).as_bytes(),
        );
        i += 1;
    }
    out.truncate(len);
    out
}

const BIG: usize = 20_000;

/// Routes by path what the skip rules and the codings are tried on.
fn backend() -> Backend {
    Backend::serve(|seen| {
        let t = text(BIG);
        let path = seen.target().split('?').next().unwrap_or("").to_string();
        match path.as_str() {
            "/json" => Reply::ok(&t)
                .header("Content-Type", "application/json")
                .header("ETag", "\"v1\""),
            "/chunked" => Reply::ok(&t)
                .header("Content-Type", "text/html; charset=utf-8")
                .chunked(3000),
            "/close" => Reply::ok(&t).header("Content-Type", "text/plain").until_close(),
            "/small" => Reply::ok(&t[..500]).header("Content-Type", "text/plain"),
            "/png" => Reply::ok(&t).header("Content-Type", "image/png"),
            "/untyped" => Reply::ok(&t),
            "/grpc" => Reply::ok(&t).header("Content-Type", "application/grpc+proto"),
            "/encoded" => Reply::ok(&t)
                .header("Content-Type", "text/plain")
                .header("Content-Encoding", "gzip"),
            "/no-transform" => Reply::ok(&t)
                .header("Content-Type", "text/plain")
                .header("Cache-Control", "public, No-Transform"),
            "/204" => Reply::new(204).header("Content-Type", "text/plain"),
            "/304" => Reply::new(304)
                .header("Content-Type", "text/plain")
                .header("ETag", "\"v1\""),
            "/206" => Reply::new(206)
                .body(&t[..5000])
                .header("Content-Type", "text/plain")
                .header("Content-Range", &format!("bytes 0-4999/{BIG}")),
            "/vary" => Reply::ok(&t)
                .header("Content-Type", "text/plain")
                .header("Vary", "Origin")
                .header("Vary", "Cookie"),
            "/vary-ae" => Reply::ok(&t)
                .header("Content-Type", "text/plain")
                .header("Vary", "accept-encoding, Origin"),
            "/vary-star" => Reply::ok(&t)
                .header("Content-Type", "text/plain")
                .header("Vary", "*"),
            "/weak" => Reply::ok(&t)
                .header("Content-Type", "text/plain")
                .header("ETag", "W/\"w1\""),
            "/svg" => Reply::ok(&t).header("Content-Type", "Image/SVG+XML"),
            _ => Reply::new(404),
        }
    })
}

fn proxy(b: &Backend, server_extra: &str, location_extra: &str) -> Proxy {
    Proxy::start(&proxy_all(b.addr, server_extra, location_extra))
}

/// The issue's example with `min_length = "1k"`.
const ON: &str = r#"compress = { algorithms = ["zstd", "br", "gzip"], types = ["text/*", "application/json", "application/javascript", "image/svg+xml"], min_length = "1k", level = { gzip = 5, br = 4, zstd = 3 } }"#;

fn request(p: &Proxy, method: &str, path: &str, accept: Option<&str>) -> crate::support::client::Response {
    let ae = accept
        .map(|a| format!("Accept-Encoding: {a}\r\n"))
        .unwrap_or_default();
    let mut c = p.client();
    c.send(format!(
        "{method} {path} HTTP/1.1\r\nHost: test.local\r\n{ae}\r\n"
    ));
    if method == "HEAD" {
        c.response_to_head()
    } else {
        c.response()
    }
}

fn get(p: &Proxy, path: &str, accept: Option<&str>) -> crate::support::client::Response {
    request(p, "GET", path, accept)
}

/// Decodes `data` with the independent decoder; the stream must be whole.
fn decode(alg: &str, data: &[u8]) -> Vec<u8> {
    decode_with(alg, data, false)
}

fn decode_with(alg: &str, data: &[u8], partial: bool) -> Vec<u8> {
    let src = TempFile::new(&format!("compressed-{alg}"));
    let dst = TempFile::new(&format!("decoded-{alg}"));
    std::fs::write(src.path(), data).unwrap();
    let mut args = vec![];
    if partial {
        args.push("--partial");
    }
    args.extend([alg, src.path().to_str().unwrap(), dst.path().to_str().unwrap()]);
    let r = py("decode.py", &args);
    assert_eq!(r["ok"], true, "{alg} decoder: {r}");
    std::fs::read(dst.path()).unwrap()
}

#[test]
fn each_algorithm_over_http1_for_each_upstream_framing() {
    let b = backend();
    let p = proxy(&b, ON, "");
    for alg in ["gzip", "br", "zstd"] {
        for path in ["/json", "/chunked", "/close"] {
            let r = get(&p, path, Some(alg));
            let what = format!("{alg} {path}");
            assert_eq!(r.status, 200, "{what}");
            assert_eq!(r.header("content-encoding"), Some(alg), "{what}");
            assert!(!r.has("content-length"), "{what}: {}", r.head_text());
            assert_eq!(r.framing, Framing::Chunked, "{what}");
            assert_eq!(r.all("vary"), vec!["Accept-Encoding"], "{what}");
            assert!(r.body.len() < BIG / 3, "{what}: {} bytes", r.body.len());
            assert_same_bytes(&decode(alg, &r.body), &text(BIG), &what);
        }
    }
}

#[test]
fn each_algorithm_over_http2() {
    let b = backend();
    let p = proxy(&b, &format!("h2c = true\n{ON}"), "");
    for alg in ["gzip", "br", "zstd"] {
        for path in ["/json", "/chunked"] {
            let out = TempFile::new(&format!("h2-body-{alg}"));
            let r = curl(
                &[
                    "--http2-prior-knowledge",
                    "-D",
                    "-",
                    "-o",
                    out.path().to_str().unwrap(),
                    "-H",
                    &format!("Accept-Encoding: {alg}"),
                ],
                &format!("http://{}{path}", p.addr()),
            );
            let what = format!("h2 {alg} {path}");
            assert_eq!(r.status, Some(0), "{what}: {}", r.stderr);
            let head = r.stdout.to_ascii_lowercase();
            assert!(head.starts_with("http/2 200"), "{what}: {head}");
            assert!(
                head.contains(&format!("\ncontent-encoding: {alg}\r\n")),
                "{what}: {head}"
            );
            assert!(head.contains("\nvary: accept-encoding\r\n"), "{what}: {head}");
            assert!(!head.contains("content-length"), "{what}: {head}");
            let body = std::fs::read(out.path()).unwrap();
            assert_same_bytes(&decode(alg, &body), &text(BIG), &what);
        }
    }
    // HEAD over HTTP/2 gets its GET's fields.
    let r = curl(
        &["--http2-prior-knowledge", "-I", "-H", "Accept-Encoding: br"],
        &format!("http://{}/json", p.addr()),
    );
    let head = r.stdout.to_ascii_lowercase();
    assert!(head.contains("\ncontent-encoding: br\r\n"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
}

#[test]
fn accept_encoding_edge_cases() {
    let b = backend();
    let p = proxy(&b, ON, "");
    let cases: [(Option<&str>, Option<&str>); 18] = [
        (None, None),
        (Some(""), None),
        (Some("gzip, deflate, br, zstd"), Some("zstd")),
        (Some("gzip;q=1, br;q=0.9, zstd;q=0.8"), Some("gzip")),
        (Some("zstd;q=0, br;q=0"), None),
        (Some("zstd;q=0, br;q=0, gzip"), Some("gzip")),
        (Some("*"), Some("zstd")),
        (Some("*;q=0.5, zstd;q=0"), Some("br")),
        (Some("*;q=0"), None),
        (Some("identity;q=0, gzip"), Some("gzip")),
        (Some("identity;q=0"), None),
        (Some("identity, gzip;q=0.5"), None),
        (Some("GZIP"), Some("gzip")),
        (Some("x-gzip"), Some("gzip")),
        (Some("  br ;  Q=0.8 ,,gzip;q=0.3"), Some("br")),
        (Some("zstd;q=abc, br;q=2, gzip;q=0.1"), Some("gzip")),
        (Some("zstd;q=, *"), Some("br")),
        (Some("deflate, compress"), None),
    ];
    for (accept, want) in cases {
        let r = get(&p, "/json", accept);
        assert_eq!(r.header("content-encoding"), want, "Accept-Encoding {accept:?}");
        // Whatever the client takes, the response varies by it.
        assert_eq!(r.all("vary"), vec!["Accept-Encoding"], "{accept:?}");
        match want {
            Some(alg) => assert_same_bytes(&decode(alg, &r.body), &text(BIG), alg),
            None => {
                assert_eq!(
                    r.header("content-length"),
                    Some(BIG.to_string().as_str()),
                    "{accept:?}"
                );
                assert_eq!(r.header("etag"), Some("\"v1\""), "{accept:?}");
                assert_same_bytes(&r.body, &text(BIG), "identity");
            }
        }
    }
}

#[test]
fn responses_that_are_never_compressed_pass_as_sent() {
    let b = backend();
    let p = proxy(&b, ON, "");
    let t = text(BIG);
    // (path, body the client gets, whether Vary is added)
    let cases: [(&str, &[u8]); 6] = [
        ("/small", &t[..500]),
        ("/png", &t),
        ("/untyped", &t),
        ("/grpc", &t),
        ("/encoded", &t),
        ("/no-transform", &t),
    ];
    for (path, body) in cases {
        let r = get(&p, path, Some("gzip, br, zstd"));
        assert_eq!(r.status, 200, "{path}");
        let ce = if path == "/encoded" { Some("gzip") } else { None };
        assert_eq!(r.header("content-encoding"), ce, "{path}");
        assert_eq!(
            r.header("content-length"),
            Some(body.len().to_string().as_str()),
            "{path}"
        );
        assert!(!r.has("vary"), "{path}: {}", r.head_text());
        assert_same_bytes(&r.body, body, path);
    }
    for (path, status) in [("/204", 204), ("/304", 304), ("/206", 206)] {
        let r = get(&p, path, Some("gzip"));
        assert_eq!(r.status, status, "{path}");
        assert!(
            !r.has("content-encoding") && !r.has("vary"),
            "{path}: {}",
            r.head_text()
        );
    }
    let r = get(&p, "/206", Some("gzip"));
    assert_same_bytes(&r.body, &t[..5000], "206");
    assert_eq!(r.header("content-length"), Some("5000"));
    // A type listed in other letters is that type; parameters do not matter.
    let r = get(&p, "/svg", Some("gzip"));
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let r = get(&p, "/chunked", Some("gzip"));
    assert_eq!(r.header("content-encoding"), Some("gzip"));
}

#[test]
fn head_gets_the_fields_its_get_would() {
    let b = backend();
    let p = proxy(&b, ON, "");
    let r = request(&p, "HEAD", "/json", Some("gzip"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"), "{}", r.head_text());
    assert!(!r.has("content-length"), "{}", r.head_text());
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert_eq!(r.header("etag"), Some("W/\"v1\""));
    assert!(r.body.is_empty());
    // A HEAD of a small body: its length stays, nothing is encoded.
    let r = request(&p, "HEAD", "/small", Some("gzip"));
    assert_eq!(r.header("content-length"), Some("500"));
    assert!(!r.has("content-encoding") && !r.has("vary"));
    // The connection stays usable after a HEAD answered without a length.
    let mut c = p.client();
    c.send("HEAD /json HTTP/1.1\r\nHost: t\r\nAccept-Encoding: br\r\n\r\n");
    let first = c.response_to_head();
    assert_eq!(first.header("content-encoding"), Some("br"));
    let second = c.request("GET /json HTTP/1.1\r\nHost: t\r\nAccept-Encoding: br\r\n\r\n");
    assert_same_bytes(&decode("br", &second.body), &text(BIG), "GET after HEAD");
}

#[test]
fn vary_is_merged_and_strong_etags_become_weak() {
    let b = backend();
    let p = proxy(&b, ON, "");
    let r = get(&p, "/vary", Some("gzip"));
    assert_eq!(
        r.all("vary"),
        vec!["Origin, Cookie, Accept-Encoding"],
        "{}",
        r.head_text()
    );
    assert_same_bytes(&decode("gzip", &r.body), &text(BIG), "vary");
    let r = get(&p, "/vary-ae", Some("gzip"));
    assert_eq!(r.all("vary"), vec!["accept-encoding, Origin"]);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let r = get(&p, "/vary-star", Some("gzip"));
    assert_eq!(r.all("vary"), vec!["*"]);
    // Without a coding the Vary is merged all the same.
    let r = get(&p, "/vary", None);
    assert_eq!(r.all("vary"), vec!["Origin, Cookie, Accept-Encoding"]);
    assert!(!r.has("content-encoding"));

    let r = get(&p, "/json", Some("zstd"));
    assert_eq!(r.header("etag"), Some("W/\"v1\""));
    let r = get(&p, "/weak", Some("zstd"));
    assert_eq!(r.all("etag"), vec!["W/\"w1\""]);
    let r = get(&p, "/json", Some("identity"));
    assert_eq!(r.header("etag"), Some("\"v1\""));
}

#[test]
fn a_location_replaces_the_servers_setting() {
    let b = backend();
    let cfg = config(&format!(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
{ON}

[[server.location]]
path = "/"
proxy_pass = "http://{a}"

[[server.location]]
path = "/png"
proxy_pass = "http://{a}"
compress = {{ types = ["image/png"], algorithms = ["gzip"], min_length = 0 }}

[[server.location]]
path = "/chunked"
proxy_pass = "http://{a}"
compress = false
"#,
        a = b.addr
    ));
    let p = Proxy::start(&cfg);
    assert_eq!(
        get(&p, "/json", Some("br")).header("content-encoding"),
        Some("br")
    );
    let r = get(&p, "/png", Some("br, gzip;q=0.5"));
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_same_bytes(&decode("gzip", &r.body), &text(BIG), "png");
    let r = get(&p, "/chunked", Some("br"));
    assert!(!r.has("content-encoding") && !r.has("vary"), "{}", r.head_text());

    // Off unless configured.
    let plain = proxy(&b, "", "");
    let r = get(&plain, "/json", Some("gzip"));
    assert!(!r.has("content-encoding") && !r.has("vary"));
    // `compress = true`: the defaults.
    let defaults = proxy(&b, "compress = true", "");
    assert_eq!(
        get(&defaults, "/json", Some("gzip, br")).header("content-encoding"),
        Some("br")
    );
    assert!(!get(&defaults, "/small", Some("gzip")).has("content-encoding"));
}

/// An event stream whose backend waits for the test before its second
/// event: the first must reach the client compressed and decodable on its
/// own, before the backend writes more.
#[test]
fn a_slow_upstreams_first_bytes_reach_the_client_at_once() {
    for alg in ["gzip", "br", "zstd"] {
        let gate = Gate::new();
        let g = gate.clone();
        let b = Backend::start(move |c| {
            let Some(_) = c.read_request() else { return };
            c.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
            );
            // The first event, and no last chunk: the body goes on after the gate.
            c.write(b"13\r\ndata: first event\n\n\r\n");
            if g.wait() {
                c.write(b"12\r\ndata: second one\n\n\r\n0\r\n\r\n");
            }
        });
        let p = proxy(
            &b,
            "compress = { types = [\"text/event-stream\"], min_length = 0 }",
            "",
        );
        let mut c = p.client();
        c.set_read_timeout(IO_TIMEOUT);
        c.send(format!(
            "GET /events HTTP/1.1\r\nHost: t\r\nAccept-Encoding: {alg}\r\n\r\n"
        ));
        let head = c.head_only().expect("a response head");
        assert_eq!(head.header("content-encoding"), Some(alg));
        assert_eq!(head.header("transfer-encoding"), Some("chunked"));
        // Bytes left over after the head are the body's first.
        let mut raw = c.take_buffered();
        let mut first = Vec::new();
        // Each read is bounded by the read timeout: a held-back event fails.
        while !first.ends_with(b"data: first event\n\n") {
            if let Ok(Some((data, _))) = partial_chunks(&raw) {
                first = decode_with(alg, &data, true);
                if first.ends_with(b"data: first event\n\n") {
                    break;
                }
            }
            let mut buf = [0u8; 4096];
            let n = c
                .stream
                .read(&mut buf)
                .unwrap_or_else(|e| panic!("{alg}: the first event did not come: {e}"));
            assert!(n > 0, "{alg}: closed before the first event");
            raw.extend_from_slice(&buf[..n]);
        }
        assert_eq!(first, b"data: first event\n\n", "{alg}");
        gate.open();
        let body = loop {
            if let Ok(Some((body, _))) = crate::support::wire::decode_chunked(&raw) {
                break body;
            }
            let mut buf = [0u8; 4096];
            let n = c.stream.read(&mut buf).expect("the rest of the stream");
            assert!(n > 0, "{alg}: closed before the end of the stream");
            raw.extend_from_slice(&buf[..n]);
        };
        assert_eq!(
            decode(alg, &body),
            b"data: first event\n\ndata: second one\n\n",
            "{alg}"
        );
    }
}

/// The data of the complete chunks at the start of `raw` (a body still
/// coming).
fn partial_chunks(raw: &[u8]) -> Result<Option<(Vec<u8>, usize)>, String> {
    let mut data = Vec::new();
    let mut off = 0;
    while let Some(eol) = raw[off..].windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            std::str::from_utf8(&raw[off..off + eol]).map_err(|e| e.to_string())?,
            16,
        )
        .map_err(|e| e.to_string())?;
        let start = off + eol + 2;
        if raw.len() < start + size + 2 {
            break;
        }
        data.extend_from_slice(&raw[start..start + size]);
        off = start + size + 2;
        if size == 0 {
            break;
        }
    }
    Ok((!data.is_empty()).then_some((data, off)))
}

#[test]
fn config_refusals_have_positions() {
    use ringway::config::Config;
    let cfg = r#"[[server]]
listen = ["127.0.0.1:0"]
compress = { algorithms = ["zstd", "brotli", "gzip", "gzip"], level = { gzip = 10, br = 12, zstd = 0 } }

[[server.location]]
path = "/"
return = { status = 200 }
compress = { types = ["text", "text/html; charset=utf-8", "*/json"], min_length = "1x", algorithms = [] }
"#;
    let e = Config::parse(cfg, std::path::Path::new("c.toml"))
        .unwrap_err()
        .to_string();
    // Each error points at its value: found here by text, not counted by hand.
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
        (at("\"brotli\"", 0), "server[0].compress.algorithms[1]: unknown algorithm \"brotli\"; did you mean \"br\"?"),
        (at("\"gzip\"", 1), "server[0].compress.algorithms[3]: \"gzip\" is listed twice"),
        (at("10, br", 0), "server[0].compress.level.gzip: gzip levels go from 1 to 9, not 10"),
        (at("12, zstd", 0), "server[0].compress.level.br: br levels go from 0 to 11, not 12"),
        (at("0 } }", 0), "server[0].compress.level.zstd: zstd levels go from 1 to 19, not 0"),
        (at("\"text\"", 0), "server[0].location[0].compress.types[0]: \"text\": not a media type"),
        (
            at("\"text/html;", 0),
            "server[0].location[0].compress.types[1]: \"text/html; charset=utf-8\": write the media type without parameters",
        ),
        (at("\"*/json\"", 0), "server[0].location[0].compress.types[2]: \"*/json\": not a media type"),
        (at("\"1x\"", 0), "server[0].location[0].compress.min_length: bad size"),
        (at("[] }", 0), "server[0].location[0].compress.algorithms: needs at least one"),
    ] {
        let want = format!("{pos}{want}");
        assert!(e.lines().any(|l| l.starts_with(&want)), "missing {want:?} in:\n{e}");
    }
    assert_eq!(e.lines().count(), 10, "{e}");
    // A misspelt key inside the table is named, with a suggestion.
    let e = Config::parse(
        "[[server]]\nlisten = [\"127.0.0.1:0\"]\ncompress = { algoritms = [\"gzip\"] }\n",
        std::path::Path::new("k.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("k.toml:3:"), "{e}");
    assert!(
        e.contains("algoritms") && e.contains("did you mean `algorithms`?"),
        "{e}"
    );
    // Neither a bool nor a table.
    let e = Config::parse(
        "[[server]]\nlisten = [\"127.0.0.1:0\"]\ncompress = \"gzip\"\n",
        std::path::Path::new("t.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("t.toml:3:12:"), "{e}");
    assert!(e.contains("true, false or a table"), "{e}");
}

/// The proxy binary's peak resident memory (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// 16 MiB that does not compress (so holding the output would cost as much
/// as holding the input) go through the binary, whose peak memory grows by
/// far less than the body: the body streams.
#[test]
fn a_large_body_streams_in_bounded_memory() {
    const LEN: usize = 16 << 20;
    let body = payload(LEN, 7);
    let b = Backend::serve(move |seen| match seen.target() {
        "/warm" => Reply::ok(text(4096)).header("Content-Type", "text/plain"),
        _ => Reply::ok(&body).header("Content-Type", "text/plain"),
    });
    let port = listen_port();
    let cfg = format!(
        "[global]\ndrain_timeout = \"1s\"\n[[server]]\nlisten = [\"127.0.0.1:{port}\"]\naccess_log = \"off\"\n\
         compress = {{ algorithms = [\"gzip\"], level = {{ gzip = 1 }} }}\n\
         [[server.location]]\npath = \"/\"\nproxy_pass = \"http://{}\"\n",
        b.addr
    );
    let f = TempFile::with_text("compress-large.toml", &cfg);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_ringway"))
        .args(["--config", f.path().to_str().unwrap(), "--workers", "1"])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn ringway");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = Kill(child);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut c = wait_for(IO_TIMEOUT, || std::net::TcpStream::connect(addr).ok())
        .map(crate::support::client::Client::from_stream)
        .expect("the proxy listens");
    // A small request first, so start-up allocations are in the baseline.
    c.send("GET /warm HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n");
    let warm = c.response();
    assert_eq!(warm.header("content-encoding"), Some("gzip"));
    let before = peak_rss_kib(child.0.id());
    c.set_read_timeout(Duration::from_secs(30));
    c.send("GET / HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n");
    let r = c.response();
    let after = peak_rss_kib(child.0.id());
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_same_bytes(&decode("gzip", &r.body), &payload(LEN, 7), "16 MiB");
    let grown = after.saturating_sub(before);
    eprintln!("peak memory: {before} KiB before, {after} KiB after");
    assert!(
        grown < 4 << 10,
        "peak memory grew by {grown} KiB for a {LEN}-byte body"
    );
}

/// An HTTP/1.0 client cannot take chunks: its compressed body ends when the
/// proxy closes the connection.
#[test]
fn an_http10_client_gets_the_compressed_body_until_close() {
    let b = backend();
    let p = proxy(&b, ON, "");
    let mut c = p.client();
    c.send("GET /json HTTP/1.0\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n");
    let r = c.response();
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert!(
        !r.has("content-length") && !r.has("transfer-encoding"),
        "{}",
        r.head_text()
    );
    assert_eq!(r.framing, Framing::Close);
    assert_same_bytes(&decode("gzip", &r.body), &text(BIG), "HTTP/1.0");
}
