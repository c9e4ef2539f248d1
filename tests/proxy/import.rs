//! `ringway import-nginx`: the real binary run on nginx configs written
//! here (with includes and globs), its output parsed and checked with
//! `ringway --check`, chosen translations asserted on the parsed values,
//! warnings and parse errors checked for their file:line. Imports started
//! and driven side by side with nginx are in import_diff.rs.
//!
//! Each nginx config is first checked by nginx itself (`nginx -t`) when it
//! is on PATH, so the inputs are known to be valid nginx; under CI (`CI`
//! set) a missing nginx fails the test instead of skipping that check.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::cli::{ringway, run_bounded, text};
use crate::support::*;

/// A directory of nginx config files, removed on drop.
pub(crate) struct Site(pub(crate) PathBuf);

impl Site {
    pub(crate) fn new(name: &str, files: &[(&str, &str)]) -> Site {
        let dir = temp_path(name);
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        for (path, body) in files {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body.replace("DIR", &dir.display().to_string())).unwrap();
        }
        Site(dir)
    }

    pub(crate) fn main(&self) -> PathBuf {
        self.0.join("nginx.conf")
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `nginx -t` on the site, when nginx is installed (required under CI).
pub(crate) fn nginx_accepts(site: &Site) {
    let Some(nginx) = nginx_binary() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "nginx is not installed, and CI needs it to check the test configs"
        );
        return;
    };
    let dir = site.0.display().to_string();
    let out = run_bounded(
        {
            let mut c = Command::new(nginx);
            c.args(["-t", "-q", "-p", &dir, "-c"])
                .arg(site.main())
                .args(["-g", &format!("pid {dir}/nginx.pid; error_log stderr;")]);
            c
        },
        Duration::from_secs(10),
    );
    assert!(
        out.status.success(),
        "nginx -t refused the test config:\n{}",
        text(&out.stderr)
    );
}

pub(crate) fn nginx_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
}

/// What one import printed.
pub(crate) struct Imported {
    pub(crate) ok: bool,
    pub(crate) toml: String,
    pub(crate) stderr: String,
}

impl Imported {
    pub(crate) fn value(&self) -> toml::Value {
        toml::from_str(&self.toml).unwrap_or_else(|e| panic!("output is not TOML: {e}\n{}", self.toml))
    }

    pub(crate) fn warnings(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("warning: "))
            .collect()
    }
}

pub(crate) fn import(site: &Site, flags: &[&str]) -> Imported {
    let mut args = vec!["import-nginx"];
    args.extend_from_slice(flags);
    let main = site.main().display().to_string();
    args.push(&main);
    let out = run_bounded(ringway(&args), Duration::from_secs(10));
    Imported {
        ok: out.status.success(),
        toml: text(&out.stdout),
        stderr: text(&out.stderr),
    }
}

/// `ringway --check` on the output, written beside the nginx files.
pub(crate) fn check_passes(site: &Site, toml: &str) {
    let path = site.0.join("ringway.toml");
    std::fs::write(&path, toml).unwrap();
    let out = run_bounded(
        ringway(&["--check", "-c", &path.display().to_string()]),
        Duration::from_secs(10),
    );
    assert!(
        out.status.success(),
        "ringway --check refused the import:\n{}\n---\n{toml}",
        text(&out.stderr)
    );
}

pub(crate) fn get<'v>(v: &'v toml::Value, path: &str) -> &'v toml::Value {
    let mut cur = v;
    for seg in path.split('.') {
        cur = match seg.parse::<usize>() {
            Ok(i) => cur.get(i),
            Err(_) => cur.get(seg),
        }
        .unwrap_or_else(|| panic!("no {path} (at {seg}) in\n{v}"));
    }
    cur
}

pub(crate) fn strs(v: &toml::Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect()
}

/// A load-balanced API and a static site, split over included files: the
/// glob's files are read in sorted order, a snippet is found from the main
/// file's directory (as nginx finds it), and nothing warns.
const LB_MAIN: &str = r#"
worker_processes 2;
events { worker_connections 1024; }
http {
    gzip on;
    gzip_types application/json;
    gzip_min_length 256;
    limit_req_zone $binary_remote_addr zone=per_ip:10m rate=10r/s;
    upstream api {
        least_conn;
        server 127.0.0.1:9001 weight=3 max_fails=2 fail_timeout=5s;
        server 127.0.0.1:9002;
        server 127.0.0.1:9003 backup;
        keepalive 16;
    }
    include conf.d/*.conf;
}
"#;

const LB_B: &str = r#"
server {
    listen 127.0.0.1:18081;
    server_name static.example;
    root DIR/www;
    location / { try_files $uri $uri/ /index.html; }
    location ^~ /assets/ { expires 30d; }
}
"#;

const LB_A: &str = r#"
server {
    listen 127.0.0.1:18080;
    server_name api.example;
    include snippets/headers.conf;
    location /v1/ {
        proxy_pass http://api/;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_read_timeout 20s;
        proxy_next_upstream error timeout http_502;
        limit_req zone=per_ip burst=20 nodelay;
        client_max_body_size 10m;
    }
    location = /health { return 200 "ok\n"; }
    location ~* \.php$ { return 403; }
}
"#;

const LB_SNIPPET: &str = "add_header X-Frame-Options DENY;\nproxy_hide_header X-Powered-By;\n";

#[test]
fn import_lb_and_static_site_passes_check_with_nginx_values() {
    let site = Site::new(
        "import-lb",
        &[
            ("nginx.conf", LB_MAIN),
            ("conf.d/b-static.conf", LB_B),
            ("conf.d/a-api.conf", LB_A),
            ("conf.d/.hidden.conf", "this is not read;"),
            ("snippets/headers.conf", LB_SNIPPET),
            ("www/index.html", "<h1>home</h1>"),
        ],
    );
    nginx_accepts(&site);
    let prefix = site.0.display().to_string();
    let out = import(&site, &["--prefix", &prefix]);
    assert!(out.ok, "{}", out.stderr);
    assert!(out.warnings().is_empty(), "unexpected warnings:\n{}", out.stderr);
    check_passes(&site, &out.toml);
    let v = out.value();
    assert_eq!(get(&v, "global.workers").as_integer(), Some(2));
    assert_eq!(get(&v, "global.max_connections").as_integer(), Some(1024));

    // conf.d/a-api.conf sorts before b-static.conf.
    assert_eq!(strs(get(&v, "server.0.server_name")), ["api.example"]);
    assert_eq!(strs(get(&v, "server.1.server_name")), ["static.example"]);
    assert!(out.toml.contains(&format!(
        "# from {}:2",
        site.0.join("conf.d/a-api.conf").display()
    )));

    let up = get(&v, "upstream.0");
    assert_eq!(get(up, "name").as_str(), Some("api"));
    assert_eq!(get(up, "balance").as_str(), Some("least_conn"));
    assert_eq!(get(up, "keepalive").as_integer(), Some(16));
    assert_eq!(get(up, "servers.0.weight").as_integer(), Some(3));
    assert_eq!(get(up, "servers.0.max_fails").as_integer(), Some(2));
    assert_eq!(get(up, "servers.0.fail_timeout").as_str(), Some("5s"));
    assert_eq!(get(up, "servers.1").as_str(), Some("127.0.0.1:9002"));
    assert_eq!(get(up, "servers.2.backup").as_bool(), Some(true));
    // nginx's defaults, written out: every server may be tried, 60s connect.
    assert_eq!(get(up, "tries").as_integer(), Some(3));
    assert_eq!(get(up, "connect_timeout").as_str(), Some("60s"));
    assert_eq!(get(up, "read_timeout").as_str(), Some("20s"));
    assert_eq!(strs(get(up, "next_upstream")), ["error", "timeout", "http_502"]);

    let api = get(&v, "server.0");
    assert_eq!(get(api, "client_max_body_size").as_str(), Some("1m"));
    assert_eq!(
        get(api, "response_headers.add.X-Frame-Options").as_str(),
        Some("DENY")
    );
    assert_eq!(strs(get(api, "response_headers.remove")), ["X-Powered-By"]);
    assert_eq!(
        strs(get(api, "compress.types")),
        ["text/html", "application/json"]
    );
    assert_eq!(get(api, "compress.min_length").as_str(), Some("256"));
    assert_eq!(get(api, "compress.level.gzip").as_integer(), Some(1));
    let v1 = get(api, "location.0");
    assert_eq!(get(v1, "path").as_str(), Some("/v1/"));
    assert_eq!(get(v1, "proxy_pass").as_str(), Some("http://api/"));
    assert_eq!(get(v1, "preserve_host").as_bool(), Some(true));
    assert_eq!(get(v1, "client_max_body_size").as_str(), Some("10m"));
    assert_eq!(strs(get(v1, "limits")), ["per_ip"]);
    assert!(
        v1.get("request_headers").is_none(),
        "ringway's own X-Forwarded-For is nginx's recipe"
    );
    assert_eq!(get(api, "location.1.exact").as_str(), Some("/health"));
    assert_eq!(get(api, "location.1.return.body").as_str(), Some("ok\n"));
    assert_eq!(get(api, "location.2.regex").as_str(), Some("(?i)\\.php$"));
    // No location "/": nginx serves the rest from html under its prefix,
    // and logs to logs/access.log there.
    let html = site.0.join("html").display().to_string();
    assert_eq!(get(api, "location.3.path").as_str(), Some("/"));
    assert_eq!(get(api, "location.3.root").as_str(), Some(html.as_str()));
    let log = site.0.join("logs/access.log").display().to_string();
    assert_eq!(get(api, "access_log").as_str(), Some(log.as_str()));
    let limit = get(&v, "limit.0");
    assert_eq!(get(limit, "key").as_str(), Some("$remote_addr"));
    assert_eq!(get(limit, "rate").as_str(), Some("10r/s"));
    assert_eq!(get(limit, "burst").as_integer(), Some(20));
    assert_eq!(get(limit, "nodelay").as_bool(), Some(true));
    assert_eq!(get(limit, "status").as_integer(), Some(503));

    let st = get(&v, "server.1");
    let root = site.0.join("www").display().to_string();
    assert_eq!(get(st, "location.0.root").as_str(), Some(root.as_str()));
    assert_eq!(
        strs(get(st, "location.0.try_files")),
        ["$uri", "$uri/", "/index.html"]
    );
    assert_eq!(get(st, "location.1.skip_regex").as_bool(), Some(true));
    assert_eq!(get(st, "location.1.root").as_str(), Some(root.as_str()));
    assert_eq!(get(st, "location.1.expires").as_str(), Some("2592000s"));
}

/// A TLS site with its HTTP→HTTPS redirect, WebSocket proxying and Basic
/// auth: the redirect is a server rewrite, TLSv1 warns at its line.
const TLS_SITE: &str = r#"
events {}
http {
    server {
        listen 127.0.0.1:18080;
        server_name www.example.com;
        return 301 https://$host$request_uri;
    }
    server {
        listen 127.0.0.1:18443 ssl;
        server_name www.example.com;
        ssl_certificate certs/site.crt;
        ssl_certificate_key certs/site.key;
        ssl_protocols TLSv1 TLSv1.2 TLSv1.3;
        location /ws/ {
            proxy_pass http://127.0.0.1:9010;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
        }
        location /admin/ {
            auth_basic "staff";
            auth_basic_user_file htpasswd;
            deny 10.0.0.5;
            allow 10.0.0.0/8;
            deny all;
            proxy_pass http://127.0.0.1:9011/;
        }
        location / { return 301 https://$server_name/; }
    }
}
"#;

#[test]
fn import_tls_site_redirect_websocket_auth_and_tlsv1_warning() {
    let site = Site::new("import-tls", &[("nginx.conf", TLS_SITE)]);
    let out = import(&site, &[]);
    assert!(out.ok, "{}", out.stderr);
    let main = site.main().display().to_string();
    assert_eq!(
        out.warnings(),
        [format!("warning: {main}:14: ssl_protocols: TLSv1 is refused by ringway on purpose (TLS 1.2 and 1.3 only)")]
    );
    let v = out.value();
    // Not redirect_https, which keeps the case of Host: nginx's $host is lower-case.
    let redirect = get(&v, "server.0.rewrite.0");
    assert_eq!(get(redirect, "from").as_str(), Some("^"));
    assert_eq!(get(redirect, "to").as_str(), Some("https://$host$request_uri?"));
    assert_eq!(get(redirect, "flag").as_str(), Some("permanent"));
    // $server_name is the block's first name, a constant.
    assert_eq!(
        get(&v, "server.1.location.2.return.location").as_str(),
        Some("https://www.example.com/")
    );
    let tls = get(&v, "server.1");
    let cert = site.0.join("certs/site.crt").display().to_string();
    assert_eq!(get(tls, "tls.cert").as_str(), Some(cert.as_str()));
    assert_eq!(strs(get(tls, "tls.protocols")), ["TLSv1.2", "TLSv1.3"]);
    assert_eq!(get(tls, "http2").as_bool(), Some(false));
    // Upgrade and Connection are ringway's own WebSocket handling.
    let ws = get(tls, "location.0");
    assert!(ws.get("request_headers").is_none(), "{ws}");
    assert_eq!(get(ws, "preserve_host").as_bool(), Some(false));
    let admin = get(tls, "location.1");
    assert_eq!(get(admin, "auth.basic.realm").as_str(), Some("staff"));
    let users = site.0.join("htpasswd").display().to_string();
    assert_eq!(get(admin, "auth.basic.users_file").as_str(), Some(users.as_str()));
    let access = get(admin, "access").as_array().unwrap();
    assert_eq!(access.len(), 3);
    assert_eq!(get(&access[0], "deny").as_str(), Some("10.0.0.5"));
    assert_eq!(get(&access[1], "allow").as_str(), Some("10.0.0.0/8"));
    assert_eq!(get(&access[2], "deny").as_str(), Some("all"));
}

/// Each untranslatable thing is a warning naming its file:line, in an
/// included file too; `--strict` makes them an error and writes nothing.
const WARNS_MAIN: &str = "events {}\nhttp {\n    include sites/*.conf;\n}\n";
const WARNS_SITE: &str = r#"server {
    listen 127.0.0.1:18080;
    server_tokens off;
    location / {
        if ($http_x_block) {
            return 403;
        }
        set $x 1;
        return 200 "$document_root";
    }
    location /lua {
        content_by_lua_block { ngx.say("hi") }
    }
    location ~ ^/(?!x) { return 403; }
    location = /drop { return 444; }
}
"#;

#[test]
fn import_warnings_name_file_and_line_and_strict_fails() {
    let site = Site::new(
        "import-warn",
        &[("nginx.conf", WARNS_MAIN), ("sites/one.conf", WARNS_SITE)],
    );
    if nginx_binary().is_some() {
        // The Lua block needs a module Debian's nginx-light lacks: only the
        // rest is checked by nginx.
        let plain = Site::new(
            "import-warn-nginx",
            &[
                ("nginx.conf", WARNS_MAIN),
                (
                    "sites/one.conf",
                    &WARNS_SITE.replace("content_by_lua_block { ngx.say(\"hi\") }", ""),
                ),
            ],
        );
        nginx_accepts(&plain);
    }
    let out = import(&site, &[]);
    assert!(out.ok, "{}", out.stderr);
    let f = site.0.join("sites/one.conf").display().to_string();
    let w = out.warnings();
    for (line, what) in [
        (3, "server_tokens: unknown or unsupported directive"),
        (5, "if: `if` has no ringway equivalent"),
        (8, "set: ringway has no user variables"),
        (9, "return: $document_root has no ringway equivalent"),
        (12, "content_by_lua_block: a Lua directive"),
        // Without its Lua content, the location would serve files.
        (11, "location: no root: nginx serves files from html"),
        (14, "location: the regex does not compile in ringway's syntax"),
        (15, "return: status 444 has no ringway form"),
    ] {
        let want = format!("warning: {f}:{line}: {what}");
        assert!(
            w.iter().any(|l| l.starts_with(&want)),
            "no {want:?} in\n{}",
            out.stderr
        );
    }
    assert_eq!(w.len(), 8, "{}", out.stderr);

    let strict = import(&site, &["--strict"]);
    assert!(!strict.ok);
    assert!(strict.toml.is_empty(), "--strict wrote output:\n{}", strict.toml);
    assert!(
        strict.stderr.contains("8 warnings and --strict"),
        "{}",
        strict.stderr
    );
}

#[test]
fn import_parse_errors_name_file_and_line() {
    for (body, want) in [
        ("server {\n  listen 80;\n", "inc.conf:1: unexpected end of file"),
        (
            "server {\n  listen 80\n}\n",
            "inc.conf:3: unexpected \"}\": \"listen\" (line 2) has no \";\"",
        ),
        (
            "server {\n  return 200 \"open;\n}\n",
            "inc.conf:2: unterminated double quote",
        ),
        ("}\n", "inc.conf:1: unexpected \"}\""),
    ] {
        let site = Site::new(
            "import-bad",
            &[
                ("nginx.conf", "events {}\nhttp { include inc.conf; }\n"),
                ("inc.conf", body),
            ],
        );
        let out = import(&site, &[]);
        assert!(!out.ok, "accepted {body:?}");
        assert!(out.toml.is_empty());
        let want = format!("{}", site.0.join(want).display());
        assert!(
            out.stderr.contains(&want),
            "{body:?}: want {want:?}, got {}",
            out.stderr
        );
    }
    // An include that names a missing file names the include's line.
    let site = Site::new(
        "import-missing",
        &[("nginx.conf", "events {}\nhttp {\n include nope.conf;\n}\n")],
    );
    let out = import(&site, &[]);
    assert!(!out.ok);
    let want = format!("{}:3: ", site.main().display());
    assert!(out.stderr.contains(&want), "{}", out.stderr);
    // A file that includes itself stops at the depth bound.
    let site = Site::new("import-loop", &[("nginx.conf", "include nginx.conf;\n")]);
    let out = import(&site, &[]);
    assert!(
        !out.ok && out.stderr.contains("includes nested deeper than 16"),
        "{}",
        out.stderr
    );
}

#[test]
fn import_strict_nginx_removes_ringway_forwarding_fields() {
    let conf = "events {}\nhttp { server { listen 127.0.0.1:18080; location / { proxy_pass http://127.0.0.1:9000; proxy_set_header X-Real-IP $remote_addr; } } }\n";
    let site = Site::new("import-strict-nginx", &[("nginx.conf", conf)]);
    nginx_accepts(&site);
    let plain = import(&site, &[]);
    assert!(plain.value().get("server").unwrap()[0]
        .get("request_headers")
        .is_none());
    let out = import(&site, &["--strict-nginx"]);
    assert!(out.ok && out.warnings().is_empty(), "{}", out.stderr);
    check_passes(&site, &out.toml);
    let v = out.value();
    // The location's own table (nginx's X-Real-IP recipe is ringway's field, kept).
    let loc = get(&v, "server.0.location.0");
    assert_eq!(
        strs(get(loc, "request_headers.remove")),
        [
            "X-Forwarded-Proto",
            "X-Forwarded-Host",
            "X-Forwarded-Port",
            "X-Request-ID"
        ]
    );
    assert_eq!(
        strs(get(&v, "server.0.request_headers.remove")),
        [
            "X-Real-IP",
            "X-Forwarded-Proto",
            "X-Forwarded-Host",
            "X-Forwarded-Port",
            "X-Request-ID"
        ]
    );
    assert!(out.toml.contains("# --strict-nginx:"), "{}", out.toml);
}

/// Debian's packaged nginx.conf and default site, as installed (paths made
/// relative to the test's directory, and no `pid`: `nginx -t` is given its
/// own): imported without a warning, and the output passes --check.
const DEBIAN_MAIN: &str = r#"user www-data;
worker_processes auto;
include modules-enabled/*.conf;

events {
	worker_connections 768;
	# multi_accept on;
}

http {
	sendfile on;
	tcp_nopush on;
	types_hash_max_size 2048;
	# server_tokens off;

	include mime.types;
	default_type application/octet-stream;

	ssl_protocols TLSv1.2 TLSv1.3;
	ssl_prefer_server_ciphers on;

	access_log DIR/logs/access.log;
	error_log DIR/logs/error.log;

	gzip on;

	include conf.d/*.conf;
	include sites-enabled/*;
}
"#;

const DEBIAN_DEFAULT: &str = r#"server {
	listen 127.0.0.1:18080 default_server;

	root DIR/www/html;

	# Add index.php to the list if you are using PHP
	index index.html index.htm index.nginx-debian.html;

	server_name _;

	location / {
		# First attempt to serve request as file, then
		# as directory, then fall back to displaying a 404.
		try_files $uri $uri/ =404;
	}

	# pass PHP scripts to FastCGI server
	#
	#location ~ \.php$ {
	#	include snippets/fastcgi-php.conf;
	#}
}
"#;

#[test]
fn import_debian_default_site() {
    let site = Site::new(
        "import-debian",
        &[
            ("nginx.conf", DEBIAN_MAIN),
            (
                "mime.types",
                "types {\n    text/html html htm shtml;\n    text/css css;\n}\n",
            ),
            ("modules-enabled/.keep", ""),
            ("conf.d/.keep", ""),
            ("sites-enabled/default", DEBIAN_DEFAULT),
            ("www/html/index.nginx-debian.html", "<h1>Welcome to nginx!</h1>"),
        ],
    );
    nginx_accepts(&site);
    let out = import(&site, &["--strict"]);
    assert!(out.ok, "{}", out.stderr);
    let mut toml = out.toml.clone();
    // --check as an ordinary user: the account to drop to is the test's own.
    let v = out.value();
    assert_eq!(get(&v, "global.user").as_str(), Some("www-data"));
    toml = toml.replace("user = \"www-data\"\n", "");
    check_passes(&site, &toml);
    let s = get(&v, "server.0");
    assert!(s.get("server_name").is_none(), "server_name _ is no name");
    let loc = get(s, "location.0");
    assert_eq!(
        strs(get(loc, "index")),
        ["index.html", "index.htm", "index.nginx-debian.html"]
    );
    assert_eq!(strs(get(loc, "try_files")), ["$uri", "$uri/", "=404"]);
    assert_eq!(
        get(loc, "default_type").as_str(),
        Some("application/octet-stream")
    );
    assert!(out.toml.contains("# types ("), "mime.types noted:\n{}", out.toml);

    let proxy = Proxy::start(&toml.replace("127.0.0.1:18080", "127.0.0.1:0"));
    let r = proxy.get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "<h1>Welcome to nginx!</h1>"));
    assert_eq!(proxy.get("/missing").status, 404);
}

/// nginx's default server is the `default_server` block; ringway's the
/// first block without `server_name`: written first, and a warning where
/// a nameless block would still take over.
#[test]
fn import_default_server_first_and_warned_when_ringway_would_differ() {
    let conf = "events {}\nhttp {\n    server { listen 127.0.0.1:18080; server_name a.example; return 204; }\n    server { listen 127.0.0.1:18080 default_server; server_name b.example; return 204; }\n}\n";
    let site = Site::new("import-default", &[("nginx.conf", conf)]);
    nginx_accepts(&site);
    let out = import(&site, &["--strict"]);
    assert!(out.ok, "{}", out.stderr);
    let v = out.value();
    assert_eq!(strs(get(&v, "server.0.server_name")), ["b.example"]);
    assert_eq!(strs(get(&v, "server.1.server_name")), ["a.example"]);
    // A server-level return answers every request of its block.
    assert_eq!(get(&v, "server.0.location.0.path").as_str(), Some("/"));
    assert_eq!(
        get(&v, "server.0.location.0.return.status").as_integer(),
        Some(204)
    );
    check_passes(&site, &out.toml);

    let conf = "events {}\nhttp {\n    server { listen 127.0.0.1:18080; return 204; }\n    server { listen 127.0.0.1:18080 default_server; server_name b.example; return 204; }\n}\n";
    let site = Site::new("import-default2", &[("nginx.conf", conf)]);
    nginx_accepts(&site);
    let out = import(&site, &[]);
    let want = format!(
        "warning: {}:4: server: the default server of 127.0.0.1:18080 in nginx",
        site.main().display()
    );
    assert!(
        out.warnings().iter().any(|w| w.starts_with(&want)),
        "{}",
        out.stderr
    );
}

/// nginx's inheritance, name by name: a location's `add_header` replaces
/// the server's, while the server's `proxy_hide_header` still applies
/// there; and the Host rules: nginx's default `$proxy_host`, `$http_host`,
/// and the two that ringway cannot send the same (warned at their line).
const INHERIT: &str = r#"events {}
http {
    upstream app { server 127.0.0.1:9001; server 127.0.0.1:9002; }
    proxy_hide_header X-Powered-By;
    add_header X-Server 1;
    server {
        listen 127.0.0.1:18080;
        proxy_connect_timeout 2s;
        location /a/ {
            add_header X-Location 2 always;
            proxy_pass http://127.0.0.1:9000;
        }
        location /b/ {
            proxy_pass http://app;
        }
        location /c/ {
            proxy_set_header Host $host;
            proxy_pass http://app;
            proxy_next_upstream_tries 1;
        }
        location / { return 204; }
    }
}
"#;

#[test]
fn import_inheritance_name_by_name_and_host_rules() {
    let site = Site::new("import-inherit", &[("nginx.conf", INHERIT)]);
    nginx_accepts(&site);
    let out = import(&site, &[]);
    assert!(out.ok, "{}", out.stderr);
    let main = site.main().display().to_string();
    let mut w = out.warnings();
    w.sort();
    assert_eq!(w.len(), 2, "{}", out.stderr);
    assert!(
        w[0].starts_with(&format!("warning: {main}:14: proxy_pass: nginx sends Host: app")),
        "{}",
        w[0]
    );
    assert!(
        w[1].starts_with(&format!("warning: {main}:17: proxy_set_header: Host $host")),
        "{}",
        w[1]
    );
    check_passes(&site, &out.toml);
    let v = out.value();
    let s = get(&v, "server.0");
    assert_eq!(get(s, "response_headers.add.X-Server").as_str(), Some("1"));
    let a = get(s, "location.0");
    let add = get(a, "response_headers.add").as_table().unwrap();
    assert_eq!(add.keys().collect::<Vec<_>>(), ["X-Location"]);
    assert_eq!(get(a, "response_headers.always").as_bool(), Some(true));
    assert_eq!(strs(get(a, "response_headers.remove")), ["X-Powered-By"]);
    assert_eq!(get(a, "preserve_host").as_bool(), Some(false));
    assert_eq!(get(s, "location.1.preserve_host").as_bool(), Some(false));
    assert_eq!(get(s, "location.2.preserve_host").as_bool(), Some(true));
    // One nginx upstream used with two retry settings: two ringway
    // upstreams, each with the server's connect timeout.
    let ups = get(&v, "upstream").as_array().unwrap();
    let named: Vec<_> = ups.iter().map(|u| get(u, "name").as_str().unwrap()).collect();
    assert_eq!(named, ["127_0_0_1_9000", "app", "app-2"]);
    assert_eq!(get(&ups[1], "tries").as_integer(), Some(2));
    assert_eq!(get(&ups[2], "tries").as_integer(), Some(1));
    assert_eq!(get(s, "location.2.proxy_pass").as_str(), Some("http://app-2"));
    for u in ups {
        assert_eq!(get(u, "connect_timeout").as_str(), Some("2s"));
    }
}
