//! Imports started in front of a real backend and driven with the same
//! requests as nginx itself on the same config (when nginx is installed):
//! routing by exact, prefix, regex and `^~` locations, and a reverse proxy
//! with header rules, gzip, Basic auth, IP rules, rewrites and redirects,
//! compared on status, body, chosen fields and what the backend got.

use std::process::Command;
use std::time::Duration;

use crate::import::{check_passes, import, nginx_accepts, nginx_binary, Site};
use crate::support::*;

/// The location tree of the routing test: which location takes a path
/// shows in the body (a `return`) or in the target the backend got.
const ROUTES: &str = r#"
events {}
http {
    access_log off;
    upstream app {
        server BACKEND;
    }
    server {
        listen 127.0.0.1:PORT;
        proxy_set_header Host $http_host;
        location / { return 200 "root"; }
        location = /docs/ { return 200 "docs-exact"; }
        location /docs/ { return 200 "docs-prefix"; }
        location ^~ /img/ { proxy_pass http://app/images/; }
        location ~ \.(png|jpe?g)$ { proxy_pass http://app; }
        location ~* ^/docs/.*\.PDF$ { return 200 "pdf"; }
        location /api/ { proxy_pass http://app/v2/; }
        location @named { return 200 "named"; }
    }
}
"#;

/// Path → (status, body) as nginx answers it with the backend echoing the
/// target it got.
const ROUTE_CASES: [(&str, &str); 10] = [
    ("/", "root"),
    ("/docs/", "docs-exact"),
    ("/docs/a", "docs-prefix"),
    ("/docs/guide.pdf", "pdf"),
    ("/docs/a.png", "/docs/a.png"),
    ("/img/a.png", "/images/a.png"),
    ("/x/b.JPG", "root"),
    ("/x/b.jpeg", "/x/b.jpeg"),
    ("/api/users?x=1", "/v2/users?x=1"),
    ("/named", "root"),
];

#[test]
fn import_routes_as_nginx_exact_prefix_regex_and_skip_regex() {
    let backend = Backend::echo_target();
    let port = listen_port();
    let conf = ROUTES
        .replace("BACKEND", &backend.addr.to_string())
        .replace("PORT", &port.to_string());
    let site = Site::new("import-routes", &[("nginx.conf", &conf)]);
    nginx_accepts(&site);
    let out = import(&site, &["--strict"]);
    assert!(out.ok, "{}", out.stderr);
    check_passes(&site, &out.toml);
    let proxy = Proxy::start(&out.toml);
    assert_eq!(proxy.addr().port(), port);
    for (path, want) in ROUTE_CASES {
        let r = proxy.get(path);
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, want),
            "{path} through ringway"
        );
    }
    let api = backend
        .seen()
        .into_iter()
        .find(|s| s.target().starts_with("/v2/"))
        .unwrap();
    assert_eq!(api.header("host"), Some("test.local"));
    drop(proxy);

    // The same requests through nginx itself, when it is installed.
    let nport = listen_port();
    let nconf = conf.replace(&format!("127.0.0.1:{port}"), &format!("127.0.0.1:{nport}"));
    std::fs::write(site.main(), nconf).unwrap();
    let Some(_nginx) = start_nginx(&site, nport) else {
        return;
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], nport));
    for (path, want) in ROUTE_CASES {
        let r = Client::connect(addr).get(path);
        assert_eq!((r.status, r.text().as_str()), (200, want), "{path} through nginx");
    }
}

/// One request of a differential run, and the response fields compared.
struct Case {
    raw: &'static str,
    fields: &'static [&'static str],
}

/// Starts nginx on `conf` (with PORT as its port) in the foreground, or
/// `None` when it is not installed. Killed on drop.
struct Nginx(std::process::Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_nginx(site: &Site, port: u16) -> Option<Nginx> {
    let nginx = nginx_binary()?;
    let dir = site.0.display().to_string();
    let child = Command::new(nginx)
        .args(["-p", &dir, "-c"])
        .arg(site.main())
        .args([
            "-g",
            &format!("daemon off; pid {dir}/nginx.pid; error_log stderr;"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let n = Nginx(child);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    wait_for(Duration::from_secs(5), || std::net::TcpStream::connect(addr).ok())
        .expect("nginx did not start");
    Some(n)
}

/// What a client and the backend saw for one request.
#[derive(Debug, PartialEq)]
struct Outcome {
    status: u16,
    body: String,
    fields: Vec<(String, Option<String>)>,
    backend: Option<(String, String, Option<String>)>,
}

fn run_cases(addr: std::net::SocketAddr, backend: &Backend, cases: &[Case]) -> Vec<Outcome> {
    let mut out = Vec::new();
    for c in cases {
        let before = backend.seen().len();
        let mut client = Client::connect(addr);
        let r = client.request(c.raw);
        let seen = backend.seen();
        let backend_saw = seen.get(before).map(|s| {
            (
                s.method().to_string(),
                s.target().to_string(),
                s.header("host").map(str::to_string),
            )
        });
        // The pages each proxy writes itself for its own 3xx/4xx/5xx
        // answers are its own (nginx's HTML, ringway's text): not compared.
        let own_page = backend_saw.is_none() && r.status >= 300;
        out.push(Outcome {
            status: r.status,
            body: if own_page {
                "(its own page)".into()
            } else if r.header("content-encoding").is_some() {
                "(encoded)".into()
            } else {
                r.text()
            },
            fields: c
                .fields
                .iter()
                .map(|f| {
                    // Each proxy has its own port: named, not compared.
                    let v = r
                        .header(f)
                        .map(|v| v.replace(&format!(":{}", addr.port()), ":PORT"));
                    (f.to_string(), v)
                })
                .collect(),
            backend: backend_saw,
        });
    }
    out
}

/// The same requests through nginx and through its import: status, body
/// (but for the pages a proxy writes itself), chosen response fields, and
/// the method, target and Host the backend got.
fn differential(name: &str, template: &str, extra: &[(&str, &str)], cases: &[Case]) {
    let backend = Backend::serve(|r| {
        Reply::ok(format!("{} {}\n", r.method(), r.target()).repeat(8))
            .header("Content-Type", "text/html")
            .header("X-Powered-By", "backend")
    });
    let (rport, nport) = (listen_port(), listen_port());
    let conf = |port: u16| {
        template
            .replace("BACKEND", &backend.addr.to_string())
            .replace("PORT", &port.to_string())
    };
    let mut files = vec![("nginx.conf", conf(rport))];
    files.extend(extra.iter().map(|(p, b)| (*p, b.to_string())));
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, b)| (*p, b.as_str())).collect();
    let site = Site::new(name, &refs);
    nginx_accepts(&site);
    let out = import(&site, &["--strict"]);
    assert!(out.ok, "{}", out.stderr);
    check_passes(&site, &out.toml);
    let proxy = Proxy::start(&out.toml);
    let through_ringway = run_cases(proxy.addr(), &backend, cases);
    drop(proxy);
    let dir = site.0.display().to_string();
    std::fs::write(site.main(), conf(nport).replace("DIR", &dir)).unwrap();
    let Some(_nginx) = start_nginx(&site, nport) else {
        return;
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], nport));
    let through_nginx = run_cases(addr, &backend, cases);
    for ((c, r), n) in cases.iter().zip(&through_ringway).zip(&through_nginx) {
        assert_eq!(r, n, "{:?}: ringway (left) and nginx (right) differ", c.raw);
    }
}

const PROXY_SITE: &str = r#"events {}
http {
    access_log off;
    gzip on;
    server {
        listen 127.0.0.1:PORT;
        root DIR/www;
        add_header X-Frame-Options DENY;
        proxy_hide_header X-Powered-By;
        location /app/ {
            proxy_pass http://BACKEND/v1/;
            proxy_set_header Host $http_host;
        }
        location /raw { proxy_pass http://BACKEND; }
        location /private/ {
            auth_basic "staff";
            auth_basic_user_file htpasswd;
            proxy_pass http://BACKEND;
            proxy_set_header Host $http_host;
        }
        location /closed/ { deny all; return 200 "open\n"; }
        location /old/ { rewrite ^/old/(.*)$ /app/$1 last; }
        location = /moved { return 301 /app/; }
        location / { return 404; }
    }
}
"#;

#[test]
fn import_differential_proxy_headers_gzip_auth_rules_through_nginx_and_ringway() {
    let hash = bcrypt::hash("secret", 4).unwrap();
    let users = format!("alice:{hash}\n");
    differential(
        "import-diff",
        PROXY_SITE,
        &[("htpasswd", &users)],
        &[
            Case { raw: "GET /app/a?x=1 HTTP/1.1\r\nHost: site.test\r\n\r\n", fields: &["x-frame-options", "x-powered-by"] },
            Case { raw: "GET /raw/b HTTP/1.1\r\nHost: site.test\r\n\r\n", fields: &["x-frame-options"] },
            Case { raw: "GET /app/z HTTP/1.1\r\nHost: site.test\r\nAccept-Encoding: gzip\r\n\r\n", fields: &["content-encoding"] },
            Case { raw: "GET /private/p HTTP/1.1\r\nHost: site.test\r\n\r\n", fields: &[] },
            // alice:secret
            Case { raw: "GET /private/p HTTP/1.1\r\nHost: site.test\r\nAuthorization: Basic YWxpY2U6c2VjcmV0\r\n\r\n", fields: &[] },
            Case { raw: "GET /closed/x HTTP/1.1\r\nHost: site.test\r\n\r\n", fields: &[] },
            Case { raw: "GET /old/c HTTP/1.1\r\nHost: site.test\r\n\r\n", fields: &[] },
            Case { raw: "GET /moved HTTP/1.1\r\nHost: site.test\r\n\r\n", fields: &["location"] },
        ],
    );
}

/// A single-page app with its static assets and caching headers, and a
/// rate-limited API beside it (1r/m: a second request in the same minute
/// is refused whatever the timing).
const SPA_SITE: &str = r#"events {}
http {
    access_log off;
    limit_req_zone $binary_remote_addr zone=api:1m rate=1r/m;
    server {
        listen 127.0.0.1:PORT;
        root DIR/www;
        index index.html;
        location / { try_files $uri $uri/ /index.html; }
        location /assets/ { expires 1h; }
        location /api/ {
            limit_req zone=api;
            proxy_pass http://BACKEND;
            proxy_set_header Host $http_host;
        }
    }
}
"#;

#[test]
fn import_differential_spa_static_and_rate_limit_through_nginx_and_ringway() {
    let index = "<html>app</html>";
    differential(
        "import-diff-spa",
        SPA_SITE,
        &[
            ("www/index.html", index),
            ("www/assets/app.js", "console.log(1)\n"),
        ],
        &[
            Case {
                raw: "GET / HTTP/1.1\r\nHost: spa.test\r\n\r\n",
                fields: &[],
            },
            Case {
                raw: "GET /some/route HTTP/1.1\r\nHost: spa.test\r\n\r\n",
                fields: &[],
            },
            Case {
                raw: "GET /assets/app.js HTTP/1.1\r\nHost: spa.test\r\n\r\n",
                fields: &["cache-control"],
            },
            Case {
                raw: "GET /assets/missing.js HTTP/1.1\r\nHost: spa.test\r\n\r\n",
                fields: &[],
            },
            Case {
                raw: "GET /api/x HTTP/1.1\r\nHost: spa.test\r\n\r\n",
                fields: &[],
            },
            Case {
                raw: "GET /api/y HTTP/1.1\r\nHost: spa.test\r\n\r\n",
                fields: &[],
            },
        ],
    );
}

/// The plain-HTTP half of a TLS site: every request redirected to HTTPS,
/// path and query kept, the port of `Host` dropped.
const REDIRECT_SITE: &str = r#"events {}
http {
    access_log off;
    server {
        listen 127.0.0.1:PORT;
        server_name site.test;
        return 301 https://$host$request_uri;
    }
}
"#;

#[test]
fn import_differential_https_redirect_through_nginx_and_ringway() {
    differential(
        "import-diff-redirect",
        REDIRECT_SITE,
        &[],
        &[
            Case {
                raw: "GET /a/b?c=1 HTTP/1.1\r\nHost: site.test\r\n\r\n",
                fields: &["location"],
            },
            Case {
                raw: "GET / HTTP/1.1\r\nHost: Site.Test:8080\r\n\r\n",
                fields: &["location"],
            },
            Case {
                raw: "POST /form HTTP/1.1\r\nHost: site.test\r\nContent-Length: 0\r\n\r\n",
                fields: &["location"],
            },
        ],
    );
}
