//! `auth = { basic = ... }`: htpasswd entries of every accepted format,
//! each made by an independent implementation (pyca bcrypt, `openssl
//! passwd`, Python's hashlib), over HTTP/1.1 and HTTP/2; every refusal
//! (wrong password, unknown user, no or malformed credentials) a 401 with
//! the challenge and nothing sent upstream; a location's auth replacing its
//! server block's; the file re-read on reload; weak entries refused by
//! `--check` with where they are and how to rehash.

use std::process::Command;

use base64::Engine;

use super::cli::{ringway, run_bounded, text};
use crate::support::peers::{curl, py, run};
use crate::support::*;

const CHALLENGE: &str = "Basic realm=\"staff\", charset=\"UTF-8\"";

fn openssl_passwd(args: &[&str], password: &str) -> String {
    let out = run(Command::new("openssl").arg("passwd").args(args).arg(password));
    assert!(
        out.status.success(),
        "openssl passwd {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout).trim().to_string()
}

/// One user per format, the password of each being `pw-<user>`: (user,
/// htpasswd line).
fn users() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut add = |user: &str, hash: String| out.push((user.to_string(), format!("{user}:{hash}")));
    let made = py("make_hashes.py", &["pw-bc"]);
    let b2b = made["2b"].as_str().unwrap().to_string();
    add("bc", b2b.clone());
    let made_a = py("make_hashes.py", &["pw-bca"]);
    add("bca", made_a["2a"].as_str().unwrap().to_string());
    // PHP's $2y$ is bcrypt under another prefix (htpasswd -B writes it).
    let made_y = py("make_hashes.py", &["pw-bcy"]);
    add("bcy", made_y["2b"].as_str().unwrap().replacen("$2b$", "$2y$", 1));
    let made_s = py("make_hashes.py", &["pw-sha"]);
    add("sha", made_s["sha"].as_str().unwrap().to_string());
    let made_ss = py("make_hashes.py", &["pw-ssha"]);
    add("ssha", made_ss["ssha"].as_str().unwrap().to_string());
    add("apr", openssl_passwd(&["-apr1"], "pw-apr"));
    // A password over 16 bytes crosses apr1's mixing step.
    add(
        "aprlong",
        openssl_passwd(&["-apr1"], "pw-aprlong-a-much-longer-password-0123456789"),
    );
    add(
        "s5",
        openssl_passwd(&["-5", "-salt", "rounds=7000$s5salt"], "pw-s5"),
    );
    add("s6", openssl_passwd(&["-6"], "pw-s6"));
    out
}

fn password(user: &str) -> String {
    if user == "aprlong" {
        "pw-aprlong-a-much-longer-password-0123456789".into()
    } else {
        format!("pw-{user}")
    }
}

fn basic(user: &str, pw: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
}

fn get_auth(p: &Proxy, path: &str, authorization: Option<&str>) -> Response {
    let a = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    p.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n{a}\r\n"))
}

fn basic_config(backend: std::net::SocketAddr, users: &std::path::Path, other: &std::path::Path) -> String {
    config(&format!(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
h2c = true
auth = {{ basic = {{ realm = "staff", users_file = "{u}" }} }}

[[server.location]]
path = "/"
proxy_pass = "http://{b}"

[[server.location]]
path = "/other/"
auth = {{ basic = {{ realm = "other", users_file = "{o}" }} }}
return = {{ status = 200, body = "other" }}
"#,
        u = users.display(),
        o = other.display(),
        b = backend
    ))
}

#[test]
fn basic_auth_accepts_every_format_and_refuses_the_rest() {
    let users = users();
    let file = TempFile::with_text(
        "htpasswd",
        &format!(
            "# made by independent tools\n\n{}\n",
            users
                .iter()
                .map(|(_, l)| l.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    );
    let other = TempFile::with_text("htpasswd-other", &format!("{}\n", users[3].1));
    let backend = Backend::echo_target();
    let p = Proxy::start(&basic_config(backend.addr, file.path(), other.path()));

    // Refusals first: nothing reaches the backend.
    let refused = [
        None,
        Some(format!("Basic {}", basic("bc", "wrong"))),
        Some(format!("Basic {}", basic("nobody", "pw-bc"))),
        Some("Basic !!!not-base64".to_string()),
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("no-colon")
        )),
        Some(format!("Bearer {}", basic("bc", "pw-bc"))),
        Some("Basic".to_string()),
        // A right user with another user's password.
        Some(format!("Basic {}", basic("sha", "pw-bc"))),
    ];
    for a in &refused {
        let r = get_auth(&p, "/x", a.as_deref());
        assert_eq!(r.status, 401, "{a:?}: {}", r.head_text());
        assert_eq!(r.header("WWW-Authenticate"), Some(CHALLENGE), "{a:?}");
    }
    // Two Authorization fields are not a credential.
    let good = format!("Basic {}", basic("bc", "pw-bc"));
    let r = p.send(format!(
        "GET /x HTTP/1.1\r\nHost: t\r\nAuthorization: {good}\r\nAuthorization: {good}\r\n\r\n"
    ));
    assert_eq!(r.status, 401);
    backend.assert_untouched("requests without valid credentials");

    for (user, _) in &users {
        let a = format!("Basic {}", basic(user, &password(user)));
        let r = get_auth(&p, &format!("/{user}"), Some(&a));
        assert_eq!(r.status, 200, "{user}: {}", r.head_text());
        assert_eq!(r.text(), format!("/{user}"));
        // Again: from the verified cache, the same answer.
        assert_eq!(get_auth(&p, &format!("/{user}"), Some(&a)).status, 200, "{user}");
        // And a wrong password is still wrong after a right one.
        let wrong = format!("Basic {}", basic(user, &format!("{}x", password(user))));
        assert_eq!(get_auth(&p, "/w", Some(&wrong)).status, 401, "{user}");
    }
    // The scheme's name is case-insensitive (RFC 9110 §11.1).
    assert_eq!(
        get_auth(&p, "/case", Some(&format!("bAsIc {}", basic("sha", "pw-sha")))).status,
        200
    );

    // A location's auth replaces the block's: only its file's users.
    let r = get_auth(&p, "/other/", Some(&good));
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some("Basic realm=\"other\", charset=\"UTF-8\"")
    );
    assert_eq!(
        get_auth(&p, "/other/", Some(&format!("Basic {}", basic("sha", "pw-sha")))).text(),
        "other"
    );

    // HTTP/2, with curl's own Basic encoding.
    let url = format!("http://{}/h2", p.addr());
    let out = curl(&["--http2-prior-knowledge", "-i", "-u", "s6:pw-s6"], &url);
    assert!(
        out.stdout.starts_with("HTTP/2 200"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    let out = curl(&["--http2-prior-knowledge", "-i", "-u", "s6:nope"], &url);
    assert!(
        out.stdout.starts_with("HTTP/2 401"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout
            .to_ascii_lowercase()
            .contains(&format!("www-authenticate: {}", CHALLENGE.to_ascii_lowercase())),
        "{}",
        out.stdout
    );
}

#[test]
fn basic_auth_users_file_is_read_again_on_reload() {
    let apr = openssl_passwd(&["-apr1"], "first");
    let file = TempFile::with_text("htpasswd-reload", &format!("ann:{apr}\n"));
    let other = TempFile::with_text("htpasswd-reload-o", &format!("ann:{apr}\n"));
    let backend = Backend::echo_target();
    let cfg = basic_config(backend.addr, file.path(), other.path());
    let p = Proxy::start(&cfg);
    let first = format!("Basic {}", basic("ann", "first"));
    let second = format!("Basic {}", basic("ann", "second"));
    assert_eq!(get_auth(&p, "/a", Some(&first)).status, 200);
    std::fs::write(
        file.path(),
        format!("ann:{}\n", openssl_passwd(&["-6"], "second")),
    )
    .unwrap();
    let parsed = ringway::config::Config::parse(&cfg, std::path::Path::new("test.toml")).unwrap();
    p.handle().reload(parsed).expect("reload");
    // The old password is gone, the cache with it.
    let done = wait_for(IO_TIMEOUT, || {
        (get_auth(&p, "/b", Some(&first)).status == 401).then_some(())
    });
    assert!(done.is_some(), "the old password still passes after the reload");
    assert_eq!(get_auth(&p, "/c", Some(&second)).status, 200);
}

#[test]
fn basic_auth_check_refuses_weak_entries_with_where_and_how() {
    let dir = temp_path("basic-check");
    std::fs::create_dir_all(&dir).unwrap();
    let apr = openssl_passwd(&["-apr1"], "ok");
    std::fs::write(
        dir.join("users"),
        format!("ok:{apr}\nplain:hunter2\ndes:abJnggxhB/yWI\nmd5:$1$abc$0123456789012345678901\n"),
    )
    .unwrap();
    let cfg = r#"[[server]]
listen = ["127.0.0.1:1"]

[[server.location]]
path = "/"
auth = { basic = { realm = "staff", users_file = "users" } }
return = { status = 200 }

[[server.location]]
path = "/big/"
auth = { basic = { realm = "bad\"realm", users_file = "missing" } }
return = { status = 200 }

[[server.location]]
path = "/two/"
auth = { basic = { realm = "r", users_file = "users", reaml = "x" } }
return = { status = 200 }

[[server.location]]
path = "/huge/"
auth = { basic = { realm = "r", users_file = "huge" } }
return = { status = 200 }
"#;
    std::fs::write(dir.join("ringway.toml"), cfg).unwrap();
    // Sparse: 17 MiB that take no room.
    std::fs::File::create(dir.join("huge"))
        .unwrap()
        .set_len(17 << 20)
        .unwrap();
    let conf = dir.join("ringway.toml").display().to_string();
    let users = dir.join("users").display().to_string();
    let out = run_bounded(
        ringway(&["--check", "--config", &conf]),
        std::time::Duration::from_secs(10),
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    let (l, c) = super::cli::position(cfg, "reaml");
    let (rl, rc) = super::cli::position(cfg, "\"bad\\\"realm\"");
    let (ml, mc) = super::cli::position(cfg, "\"missing\"");
    let (hl, hc) = super::cli::position(cfg, "\"huge\"");
    for want in [
        format!("{users}:2:1: server[0].location[0].auth.basic.users_file: user \"plain\": a plaintext or DES-crypt entry"),
        format!("{users}:3:1: server[0].location[0].auth.basic.users_file: user \"des\": a plaintext or DES-crypt entry"),
        format!("{users}:4:1: server[0].location[0].auth.basic.users_file: user \"md5\": the hash format \"$1$\" is not one ringway reads"),
        format!("{conf}:{rl}:{rc}: server[0].location[1].auth.basic.realm: a realm is printable ASCII"),
        format!("{conf}:{ml}:{mc}: server[0].location[1].auth.basic.users_file: cannot read "),
        format!("{conf}:{l}:{c}: server[0].location[2].auth.basic.reaml: unknown key `reaml`; did you mean `realm`?"),
        format!("{conf}:{hl}:{hc}: server[0].location[3].auth.basic.users_file: {}/huge is 17825792 bytes, over the 16 MiB read at most", dir.display()),
    ] {
        assert!(
            stderr.lines().any(|line| line.starts_with(&want)),
            "no line starts with {want:?}:\n{stderr}"
        );
    }
    assert!(stderr.contains("rehash it with `htpasswd -B`"), "{stderr}");
}

#[test]
fn a_location_turns_its_blocks_auth_off() {
    let file = TempFile::with_text(
        "htpasswd-off",
        &format!("ann:{}\n", openssl_passwd(&["-apr1"], "pw")),
    );
    let cfg = config(&format!(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
auth = {{ basic = {{ realm = "staff", users_file = "{f}" }} }}

[[server.location]]
path = "/"
return = {{ status = 200, body = "private" }}

[[server.location]]
path = "/health"
auth = {{ off = true }}
return = {{ status = 200, body = "up" }}
"#,
        f = file.path().display()
    ));
    let p = Proxy::start(&cfg);
    assert_eq!(p.get("/x").status, 401);
    assert_eq!(p.get("/health").text(), "up");
    let a = format!("Basic {}", basic("ann", "pw"));
    assert_eq!(get_auth(&p, "/x", Some(&a)).text(), "private");

    let bad = format!(
        r#"[[server]]
listen = ["127.0.0.1:1"]
auth = {{ off = true }}

[[server.location]]
path = "/a/"
auth = {{ off = false }}
return = {{ status = 200 }}

[[server.location]]
path = "/b/"
auth = {{ off = true, basic = {{ realm = "r", users_file = "{f}" }} }}
return = {{ status = 200 }}
"#,
        f = file.path().display()
    );
    let e = ringway::config::Config::parse(&bad, std::path::Path::new("o.toml"))
        .unwrap_err()
        .to_string();
    for want in [
        "server[0].auth.off: only a location turns authentication off",
        "server[0].location[0].auth.off: `off = false` does nothing",
        "server[0].location[1].auth.off: `off = true` and a method contradict each other",
    ] {
        assert!(e.lines().any(|l| l.contains(want)), "no line has {want:?}:\n{e}");
    }
}
