//! `[log_format.NAME]` templates: lines written over HTTP/1.1 and HTTP/2
//! read back with serde_json (for `escape = "json"`) or compared as text,
//! hostile header bytes included; the log-time variables checked against
//! what the test did; every refusal of `--check`.

use std::path::Path;

use serde_json::Value;

use crate::support::peers::curl;
use crate::support::{self, Backend, Client, Proxy, Reply, TempFile, IO_TIMEOUT};

/// A proxy to `backend` logging to `log` with the template `format`.
fn templated(backend: std::net::SocketAddr, log: &Path, format: &str, escape: &str) -> String {
    let server = support::proxy_all(backend, "h2c = true", "").replace(
        "access_log = \"off\"",
        &format!(
            "access_log = {{ path = {:?}, format = \"main\" }}",
            log.display().to_string()
        ),
    );
    format!("[log_format.main]\nformat = {format:?}\nescape = {escape:?}\n\n{server}")
}

/// The file's text once it has `n` lines.
fn text(path: &Path, n: usize) -> String {
    let t = support::wait_for(IO_TIMEOUT, || {
        let t = std::fs::read(path).unwrap_or_default();
        (t.iter().filter(|&&b| b == b'\n').count() >= n).then_some(t)
    })
    .unwrap_or_else(|| panic!("{n} lines in {}", path.display()));
    String::from_utf8(t).expect("the log is UTF-8")
}

const JSON: &str = r#"{"addr":"$remote_addr","user":"$remote_user","req":"$request","status":$status,"bytes":$body_bytes_sent,"rt":$request_time,"up":"$upstream_addr","ups":"$upstream_status","urt":"$upstream_response_time","uht":"$upstream_header_time","proto":"$server_protocol","ua":"$http_user_agent","host":"$host","arg":"$arg_q","id":"$request_id","len":$request_length,"tls":"$ssl_protocol"}"#;

#[test]
fn a_json_template_stays_json_with_hostile_bytes_over_both_protocols() {
    // A backend that takes heads with any bytes.
    let b = super::logs::raw_backend();
    let log = TempFile::new("access.tpl");
    let p = Proxy::start(&templated(b.addr, log.path(), JSON, "json"));

    // HTTP/1.1, with quotes, a backslash, 0xFF and a tab in the user agent,
    // and Basic credentials (alice:secret).
    let mut req =
        b"GET /a?q=7 HTTP/1.1\r\nHost: Ex.COM\r\nAuthorization: Basic YWxpY2U6c2VjcmV0\r\nUser-Agent: a\"b\\c\xff\td"
            .to_vec();
    req.extend_from_slice(b"\r\n\r\n");
    let r = Client::connect(p.addr()).request(&req);
    assert_eq!(r.status, 200);
    // HTTP/2 (h2c) from curl.
    let url = format!("http://{}/h2?q=x", p.addr());
    let c = curl(&["--http2-prior-knowledge", "-A", "curl-test"], &url);
    assert_eq!(c.stdout, "hello", "{}", c.stderr);
    // A request refused before routing: still one JSON line.
    let r = Client::connect(p.addr()).request(b"GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(r.status, 400);

    let all = text(log.path(), 3);
    let lines: Vec<Value> = all
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect();
    let h1 = lines
        .iter()
        .find(|l| l["req"] == "GET /a?q=7 HTTP/1.1")
        .expect("the HTTP/1.1 line");
    assert_eq!(h1["addr"], "127.0.0.1");
    assert_eq!(h1["user"], "alice");
    assert_eq!(h1["status"], 200);
    assert_eq!(h1["bytes"], 5);
    assert!(h1["rt"].as_f64().is_some_and(|t| t >= 0.0), "{}", h1["rt"]);
    assert_eq!(h1["up"], b.addr.to_string());
    assert_eq!(h1["ups"], "200");
    let urt: f64 = h1["urt"]
        .as_str()
        .unwrap()
        .parse()
        .expect("upstream time in seconds");
    let uht: f64 = h1["uht"]
        .as_str()
        .unwrap()
        .parse()
        .expect("header time in seconds");
    assert!(uht <= urt, "{uht} {urt}");
    assert_eq!(h1["proto"], "HTTP/1.1");
    assert_eq!(h1["ua"], "a\"b\\c\u{ff}\td");
    assert_eq!(h1["host"], "ex.com");
    assert_eq!(h1["arg"], "7");
    assert_eq!(h1["id"].as_str().unwrap().len(), 32);
    assert!(
        h1["len"].as_u64().unwrap() >= req.len() as u64 - 1,
        "{}",
        h1["len"]
    );
    assert_eq!(h1["tls"], "-");

    let h2 = lines
        .iter()
        .find(|l| l["proto"] == "HTTP/2.0")
        .expect("the HTTP/2 line");
    assert_eq!(h2["req"], "GET /h2?q=x HTTP/2.0");
    assert_eq!(h2["ua"], "curl-test");
    assert_eq!(h2["arg"], "x");
    assert_eq!(h2["user"], "-");
    assert_eq!(h2["status"], 200);

    let bad = lines
        .iter()
        .find(|l| l["status"] == 400)
        .expect("the refused line");
    assert_eq!(bad["req"], "GET /\u{1} HTTP/1.1");
    assert_eq!(bad["up"], "-");
    assert_eq!(bad["ua"], "-");
}

#[test]
fn the_default_escape_is_nginx_s_and_literals_stay_as_written() {
    let b = Backend::serve(|_| Reply::new(404).body("nope"));
    let log = TempFile::new("access.tpl");
    let format = "[$status] $request_method $uri|$args|$http_x_tag|$$|${status}s";
    let p = Proxy::start(&templated(b.addr, log.path(), format, "default"));
    let r = Client::connect(p.addr())
        .request(b"GET /p%20q?z=1 HTTP/1.1\r\nHost: h\r\nX-Tag: say \"hi\" \\ \xc3\xa9\r\n\r\n");
    assert_eq!(r.status, 404);
    let line = text(log.path(), 1);
    assert_eq!(
        line,
        "[404] GET /p q|z=1|say \\x22hi\\x22 \\x5C \\xC3\\xA9|$|404s\n"
    );
}

#[test]
fn escape_none_still_keeps_one_line_per_request() {
    let b = Backend::serve(|_| Reply::ok("x"));
    let log = TempFile::new("access.tpl");
    let p = Proxy::start(&templated(b.addr, log.path(), "$uri $status", "none"));
    // `$uri` is decoded: %0d%0a would end the line if written as is.
    let r = Client::connect(p.addr()).get("/a%0d%0ab");
    assert_eq!(r.status, 200);
    assert_eq!(text(log.path(), 1), "/a\\x0D\\x0Ab 200\n");
}

#[test]
fn log_format_refusals() {
    let server = |format: &str| {
        support::proxy_all("127.0.0.1:9".parse().unwrap(), "", "").replace(
            "access_log = \"off\"",
            &format!("access_log = {{ path = \"/tmp/x\", format = {format:?} }}"),
        )
    };
    for (tables, format, says) in [
        (
            "[log_format.main]\nformat = \"$stauts\"\n",
            "main",
            "2:10: log_format.main.format: unknown variable `$stauts`; did you mean `$status`?",
        ),
        (
            "[log_format.main]\nformat = \"$nope_nope\"\n",
            "main",
            "or one of the log variables: $status",
        ),
        (
            "[log_format.main]\nformat = \"$status\"\n",
            "mian",
            "access_log.format: unknown format \"mian\"; did you mean \"main\"?",
        ),
        (
            "",
            "xml",
            "unknown format \"xml\" (known: \"combined\", \"json\"; or define [log_format.xml])",
        ),
        (
            "[log_format.main]\nformat = \"$status\"\nescape = \"html\"\n",
            "main",
            "3:10: log_format.main.escape: unknown escape \"html\"",
        ),
        (
            "[log_format.json]\nformat = \"$status\"\n",
            "json",
            "log_format.json: \"json\" is a built-in format name",
        ),
        (
            "[log_format.main]\nformta = \"$status\"\n",
            "main",
            "unknown field `formta`",
        ),
        (
            "[log_format.main]\nformat = \"a $ b\"\n",
            "main",
            "starts no variable",
        ),
    ] {
        let toml = format!("{tables}\n{}", server(format));
        let e = ringway::config::Config::parse(&toml, Path::new("t.toml"))
            .expect_err(says)
            .to_string();
        assert!(e.contains(says), "{says}\n{e}");
    }
}
