//! `auth = { jwt = ... }`: tokens made by PyJWT on pyca cryptography
//! (tests/peers/make_jwt.py) for RS256, ES256, EdDSA and HS256 pass, with
//! their claims sent upstream and the client's copies of those fields
//! dropped; every bad token (expired, not yet valid, wrong issuer or
//! audience, an algorithm not listed, `none`, HS256 signed with the RSA
//! public key, a bad signature, an unknown kid) is a 401 whose challenge
//! says why, and nothing reaches the backend; a request with no token gets
//! the bare challenge (RFC 6750 §3.1); a token from a cookie; HTTP/2; the
//! config refusals.

use serde_json::Value;

use crate::support::peers::{curl, py};
use crate::support::*;

struct Setup {
    _dir: Dir,
    tokens: Value,
    backend: Backend,
    proxy: Proxy,
}

struct Dir(std::path::PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn setup() -> Setup {
    let dir = temp_path("jwt");
    std::fs::create_dir_all(&dir).unwrap();
    let tokens = py("make_jwt.py", &[dir.to_str().unwrap()]);
    let backend = Backend::echo_target();
    let d = dir.display();
    let cfg = config(&format!(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
h2c = true

[[server.location]]
path = "/api/"
proxy_pass = "http://{b}"
auth = {{ jwt = {{ jwks_file = "{d}/jwks.json", secret_file = "{d}/secret", algorithms = ["RS256", "ES256", "EdDSA", "HS256"], issuer = "https://issuer.test", audience = "ringway-api", leeway = "30s", claims_to_headers = {{ sub = "X-User", scope = "X-Scope", role = "X-Role" }}, cookie = "session", realm = "api" }} }}

[[server.location]]
path = "/rs/"
proxy_pass = "http://{b}"
auth = {{ jwt = {{ jwks_file = "{d}/jwks.json", algorithms = ["RS256"], claims_to_headers = {{ sub = "X-User" }} }} }}
"#,
        b = backend.addr
    ));
    let proxy = Proxy::start(&cfg);
    Setup {
        _dir: Dir(dir),
        tokens,
        backend,
        proxy,
    }
}

impl Setup {
    fn token(&self, name: &str) -> &str {
        self.tokens[name]
            .as_str()
            .unwrap_or_else(|| panic!("no token {name}"))
    }

    fn get(&self, path: &str, fields: &str) -> Response {
        self.proxy
            .send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n{fields}\r\n"))
    }

    fn bearer(&self, path: &str, name: &str) -> Response {
        self.get(path, &format!("Authorization: Bearer {}\r\n", self.token(name)))
    }
}

fn refused_because(why: &str) -> String {
    format!("Bearer realm=\"api\", error=\"invalid_token\", error_description=\"{why}\"")
}

#[test]
fn jwt_refusals_each_say_why_and_reach_nothing() {
    let s = setup();
    // No token: the bare challenge, no error (RFC 6750 §3.1).
    for fields in [
        "",
        "Authorization: Basic YTpi\r\n",
        "Cookie: other=1\r\n",
        "Authorization: Bearer \r\n",
    ] {
        let r = s.get("/api/x", fields);
        assert_eq!(r.status, 401, "{fields:?}");
        assert_eq!(
            r.header("WWW-Authenticate"),
            Some("Bearer realm=\"api\""),
            "{fields:?}"
        );
    }
    for (name, why) in [
        ("expired", "the token expired"),
        ("nbf_future", "the token is not valid yet"),
        ("wrong_iss", "wrong issuer"),
        ("wrong_aud", "wrong audience"),
        ("no_exp", "the token has no exp"),
        ("rs384", "the token's algorithm is not accepted"),
        ("none", "malformed token header, or an algorithm no one may use"),
        // HS256 is listed, so the secret checks it: the public key is no key.
        ("confusion", "bad signature"),
        ("bad_signature", "bad signature"),
        ("unknown_kid", "unknown key id"),
        ("wrong_key_for_kid", "bad signature"),
        (
            "garbage",
            "malformed token header, or an algorithm no one may use",
        ),
    ] {
        let r = s.bearer("/api/x", name);
        assert_eq!(r.status, 401, "{name}: {}", r.head_text());
        assert_eq!(
            r.header("WWW-Authenticate"),
            Some(refused_because(why).as_str()),
            "{name}"
        );
    }
    // Where HS256 is not listed, the confused token is refused for its alg.
    let r = s.bearer("/rs/x", "confusion");
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some("Bearer realm=\"ringway\", error=\"invalid_token\", error_description=\"the token's algorithm is not accepted\"")
    );
    // A good token twice in one request is no token.
    let t = s.token("rs256");
    let r = s.get(
        "/api/x",
        &format!("Authorization: Bearer {t}\r\nAuthorization: Bearer {t}\r\n"),
    );
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some(refused_because("two Authorization fields").as_str())
    );
    s.backend.assert_untouched("requests without a valid token");
}

#[test]
fn jwt_good_tokens_pass_with_their_claims_upstream() {
    let s = setup();
    for (name, user) in [
        ("rs256", "alice"),
        ("es256", "erin"),
        ("eddsa", "eddie"),
        ("hs256", "hank"),
        ("rs256_kid2", "robin"),
        // Expired 5 s ago, within the 30 s leeway.
        ("within_leeway", "alice"),
    ] {
        for round in 0..3 {
            // The second round comes from the verified-token cache, the
            // third with the fields this worker kept for it.
            let r = s.get(
                &format!("/api/{name}"),
                &format!(
                    "Authorization: Bearer {}\r\nX-User: root\r\nX-Scope: everything\r\nx-role: god\r\n",
                    s.token(name)
                ),
            );
            assert_eq!(r.status, 200, "{name} round {round}: {}", r.head_text());
            let seen = s.backend.seen().pop().unwrap();
            assert_eq!(seen.all("X-User"), [user], "{name}: {}", seen.head_text());
            assert_eq!(seen.all("X-Scope"), ["read write"], "{name}");
            assert_eq!(seen.all("X-Role"), ["admin ops"], "{name}");
        }
    }
    // From the cookie, among others.
    let r = s.get(
        "/api/cookie",
        &format!("Cookie: theme=dark; session={}; x=1\r\n", s.token("es256")),
    );
    assert_eq!(r.status, 200, "{}", r.head_text());
    assert_eq!(s.backend.seen().pop().unwrap().all("X-User"), ["erin"]);
    // A bad token in the cookie is refused like one in the header.
    let r = s.get(
        "/api/cookie",
        &format!("Cookie: session={}\r\n", s.token("expired")),
    );
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some(refused_because("the token expired").as_str())
    );

    // HTTP/2.
    let url = format!("http://{}/api/h2", s.proxy.addr());
    let auth = format!("Authorization: Bearer {}", s.token("eddsa"));
    let out = curl(
        &["--http2-prior-knowledge", "-i", "-H", &auth, "-H", "X-User: root"],
        &url,
    );
    assert!(
        out.stdout.starts_with("HTTP/2 200"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(s.backend.seen().pop().unwrap().all("X-User"), ["eddie"]);
    let auth = format!("Authorization: Bearer {}", s.token("wrong_aud"));
    let out = curl(&["--http2-prior-knowledge", "-i", "-H", &auth], &url);
    assert!(
        out.stdout.starts_with("HTTP/2 401"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout.contains("error_description=\"wrong audience\""),
        "{}",
        out.stdout
    );
}

#[test]
fn jwt_config_refusals() {
    let short = TempFile::with_text("short-secret", "tooshort\n");
    let jwks = TempFile::with_text(
        "oct.jwks",
        r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "kid": "s"}]}"#,
    );
    let cfg = format!(
        r#"[[server]]
listen = ["127.0.0.1:1"]

[[server.location]]
path = "/a/"
auth = {{ jwt = {{ algorithms = ["none", "RS257"] }} }}
return = {{ status = 200 }}

[[server.location]]
path = "/b/"
auth = {{ jwt = {{ algorithms = ["HS256"], secret_file = "{short}" }} }}
return = {{ status = 200 }}

[[server.location]]
path = "/c/"
auth = {{ jwt = {{ algorithms = ["RS256"], jwks_file = "{jwks}" }} }}
return = {{ status = 200 }}

[[server.location]]
path = "/d/"
auth = {{ jwt = {{ algorithms = ["HS256"] }} }}
return = {{ status = 200 }}

[[server.location]]
path = "/e/"
auth = {{ jwt = {{ algorithms = ["ES256"], jwks_file = "{jwks}", leway = "3s" }} }}
return = {{ status = 200 }}
"#,
        short = short.path().display(),
        jwks = jwks.path().display()
    );
    let e = ringway::config::Config::parse(&cfg, std::path::Path::new("j.toml"))
        .unwrap_err()
        .to_string();
    let at = |needle: &str| {
        let (l, c) = super::cli::position(&cfg, needle);
        format!("j.toml:{l}:{c}: ")
    };
    for want in [
        format!("{}server[0].location[0].auth.jwt.algorithms[0]: `none` means unsigned tokens", at("\"none\"")),
        format!("{}server[0].location[0].auth.jwt.algorithms[1]: unknown algorithm \"RS257\"", at("\"RS257\"")),
        format!("{}server[0].location[1].auth.jwt.secret_file: the secret is 8 bytes; an HMAC secret needs at least 32", at(&format!("\"{}\"", short.path().display()))),
        format!("{}server[0].location[2].auth.jwt.jwks_file: keys[0] is a secret (kty \"oct\"): HMAC secrets go in `secret_file`", at(&format!("\"{}\" }} }}\nreturn = {{ status = 200 }}\n\n[[server.location]]\npath = \"/d/\"", jwks.path().display()))),
        format!("{}server[0].location[3].auth.jwt.secret_file: HMAC algorithms check tokens only with `secret_file`", at("[\"HS256\"] }")),
        format!("{}server[0].location[4].auth.jwt.leway: unknown key `leway`; did you mean `leeway`?", at("leway")),
    ] {
        assert!(e.lines().any(|l| l.starts_with(&want)), "no line starts with {want:?}:\n{e}");
    }
}
