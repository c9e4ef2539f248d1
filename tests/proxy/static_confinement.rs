//! Static locations keep requests inside what they serve: no path, encoded
//! or not, symlink or alias, reaches a file outside the root; and the
//! pages ringway writes itself name neither a file path nor an upstream.

use crate::static_files::{site, static_proxy, Site};
use crate::support::*;

#[test]
fn paths_cannot_leave_the_root() {
    let outside = Site::new("outside");
    let secret = outside.file("secret.txt", "outside the root");
    let s = site();
    std::os::unix::fs::symlink(&secret, s.0.join("abs-link")).unwrap();
    std::os::unix::fs::symlink("../", s.0.join("up-link")).unwrap();
    std::os::unix::fs::symlink("style.css", s.0.join("in-link")).unwrap();
    let p = static_proxy(&s, "", "");
    let name = outside.0.file_name().unwrap().to_str().unwrap().to_string();
    let cases = [
        (format!("/../{name}/secret.txt"), &[400, 404][..]),
        (format!("/%2e%2e/{name}/secret.txt"), &[400, 404]),
        (format!("/docs/%2E%2e%2f..%2f{name}/secret.txt"), &[400, 404]),
        (format!("/..%2f{name}%2fsecret.txt"), &[400, 404]),
        ("/style.css%00.png".to_string(), &[400, 404]),
        ("/abs-link".to_string(), &[403, 404]),
        (format!("/up-link/{name}/secret.txt"), &[403, 404]),
        ("/.secret".to_string(), &[404]),
        ("/docs/../.secret".to_string(), &[400, 404]),
    ];
    for (path, allowed) in &cases {
        let r = p.get(path);
        assert!(allowed.contains(&r.status), "{path}: {} {}", r.status, r.text());
        assert!(!r.text().contains("outside the root"), "{path}");
        assert!(!r.text().contains("do not serve"), "{path}");
    }
    // A name longer than a file system allows: 404, not an error.
    assert_eq!(p.get(&format!("/{}", "a".repeat(300))).status, 404);
    // A symlink within the root is followed by default.
    assert_eq!(p.get("/in-link").text(), "body { color: red }\n");
    // follow_symlinks = false: no symlink at all.
    let strict = static_proxy(&s, "", "follow_symlinks = false");
    assert_eq!(strict.get("/in-link").status, 403);
    assert_eq!(strict.get("/style.css").status, 200);
    // follow_symlinks = true: anywhere (nginx's default), still never `..`.
    let any = static_proxy(&s, "", "follow_symlinks = true");
    assert_eq!(any.get("/abs-link").text(), "outside the root");
    assert_eq!(any.get(&format!("/%2e%2e/{name}/secret.txt")).status, 400);
    // serve_hidden = true serves dot files.
    let hidden = static_proxy(&s, "", "serve_hidden = true");
    assert_eq!(hidden.get("/.secret").text(), "do not serve");
}

#[test]
fn an_alias_prefix_without_its_slash_cannot_be_walked_out_of() {
    // nginx's trap: `location /img { alias /srv/img/; }` maps `/img../x`
    // to `/srv/img/../x`. Here the `..` is refused after the mapping too.
    let parent = Site::new("alias-parent");
    parent.file("img/cat.png", "cat");
    parent.file("secret.txt", "beside the alias");
    let p = Proxy::start(&config(&format!(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
[[server.location]]
path = "/img"
alias = "{alias}/"
"#,
        alias = parent.path("img"),
    )));
    assert_eq!(p.get("/img/cat.png").text(), "cat");
    for path in [
        "/img../secret.txt",
        "/img..%2fsecret.txt",
        "/img%2e%2e/secret.txt",
        "/img/..%2f..%2fsecret.txt",
        "/img/%2e%2e/secret.txt",
    ] {
        let r = p.get(path);
        assert!(
            [400, 403, 404].contains(&r.status),
            "{path}: {} {}",
            r.status,
            r.text()
        );
        assert!(!r.text().contains("beside the alias"), "{path}");
    }
}

#[test]
fn built_in_pages_name_no_file_path_and_no_upstream() {
    let s = site();
    s.dir("listless");
    let dead = closed_port().to_string();
    let p = Proxy::start(&config(&format!(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
[[server.location]]
path = "/api/"
proxy_pass = "http://{dead}"
[[server.location]]
path = "/"
root = {root:?}
"#,
        root = s.0.display().to_string(),
    )));
    let root = s.0.display().to_string();
    let dir_name = s.0.file_name().unwrap().to_str().unwrap().to_string();
    let port = dead.rsplit(':').next().unwrap().to_string();
    let cases = [
        ("/missing.html", 404),
        ("/listless/", 403),
        ("/.secret", 404),
        ("/api/x", 502),
    ];
    for (path, status) in cases {
        let r = p.get(path);
        assert_eq!(r.status, status, "{path}: {}", r.text());
        let all = format!("{}\n{}", r.head_text(), r.text());
        for leak in [root.as_str(), dir_name.as_str(), dead.as_str()] {
            assert!(!all.contains(leak), "{path} shows {leak:?}:\n{all}");
        }
        // The port alone, in the body (a head's Date could hold any digits).
        assert!(!r.text().contains(&port), "{path} shows the port:\n{all}");
    }
}
