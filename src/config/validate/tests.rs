//! Unit tests of the config checks: error texts, positions, defaults.

use super::*;
use crate::vars::{Part, Var};

#[test]
fn sizes_follow_nginx_suffixes() {
    assert_eq!(parse_size("8k"), Some(8192));
    assert_eq!(parse_size("1M"), Some(1 << 20));
    assert_eq!(parse_size("2g"), Some(2 << 30));
    assert_eq!(parse_size("123"), Some(123));
    assert_eq!(parse_size("k"), None);
    assert_eq!(parse_size("1.5m"), None);
    assert_eq!(parse_size(""), None);
}

#[test]
fn misspelt_keys_get_a_suggestion() {
    let e = validate(
        "[[server]]\nlisten = [\"127.0.0.1:1\"]\nlisen = 1\n",
        Path::new("t.toml"),
    )
    .unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].key, "server[0].lisen");
    assert!(e.0[0].message.ends_with("did you mean `listen`?"), "{}", e.0[0]);
    assert_eq!((e.0[0].line, e.0[0].col), (3, 1));
    let e = validate("[server]\nlisten = 1\n", Path::new("t.toml")).unwrap_err();
    assert!(e.0[0].message.contains("[[server]]"), "{}", e.0[0]);
}

#[test]
fn an_upstream_with_errors_is_not_also_unknown_where_it_is_named() {
    // "app" is defined but its read_timeout is wrong: one error, at the
    // upstream, not a second "unknown upstream" at each location naming it.
    let text = "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\nread_timeout = \"60\"\n\
                [[upstream]]\nname = \"canary\"\nservers = [\"127.0.0.1:2\"]\n\
                [[server]]\nlisten = [\"127.0.0.1:3\"]\n\
                [[server.location]]\npath = \"/\"\nproxy_pass = \"http://app/\"\n\
                [[server.location]]\npath = \"/s/\"\nproxy_pass = \"http://canary\"\n\
                split = [{ upstream = \"app\", weight = 5 }]\n\
                [[server.location]]\npath = \"/t/\"\nproxy_pass = \"http://nosuch/\"\n";
    let e = validate(text, Path::new("t.toml")).unwrap_err();
    let keys: Vec<&str> = e.0.iter().map(|e| e.key.as_str()).collect();
    // A name that is not defined at all is still unknown.
    assert_eq!(
        keys,
        ["upstream[0].read_timeout", "server[0].location[2].proxy_pass"],
        "{e}"
    );
    assert!(e.0[1].message.contains(r#"unknown upstream "nosuch""#), "{e}");
}

#[test]
fn all_semantic_errors_are_collected() {
    let text = "[global]\nworkers = \"many\"\n[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\n\
                read_timeout = \"60\"\n[[server]]\nlisten = [\"nowhere\"]\n[[server.location]]\n\
                path = \"/\"\nproxy_pass = \"http://api/\"\n";
    let e = validate(text, Path::new("t.toml")).unwrap_err();
    let keys: Vec<&str> = e.0.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "global.workers",
            "upstream[0].read_timeout",
            "server[0].listen[0]",
            "server[0].location[0].proxy_pass"
        ]
    );
    assert!(e.0[3]
        .message
        .contains(r#"unknown upstream "api" (defined: "app")"#));
    assert_eq!(
        e.to_string().lines().next().unwrap(),
        "t.toml:2:11: global.workers: must be \"auto\" or a number from 1 to 1024"
    );
}

#[test]
fn every_unknown_key_is_reported_with_the_other_errors() {
    let text = "bogus = 1\n[global]\nworkers = 0\nwrokers = 2\n[[server]]\nlisten = [1]\n\
                [[server.location]]\npath = \"/\"\nreturn = { status = 200, bdy = \"x\" }\nzzz = 1\n";
    let e = validate(text, Path::new("t.toml")).unwrap_err();
    let got: Vec<(usize, &str)> = e.0.iter().map(|e| (e.line, e.key.as_str())).collect();
    assert_eq!(
        got,
        [
            (1, "bogus"),
            (3, "global.workers"),
            (4, "global.wrokers"),
            (9, "server[0].location[0].return.bdy"),
            (10, "server[0].location[0].zzz")
        ],
        "{e}"
    );
    assert!(e.0[2].message.contains("did you mean `workers`?"));
    assert!(e.0[3].message.contains("did you mean `body`?"));
    assert!(
        e.0[4].message.contains("known here: path, exact, regex, name, skip_regex, rewrite, request_headers, response_headers, proxy_pass"),
        "{}",
        e.0[4]
    );
}

const LISTEN: &str = "[[server]]\nlisten = [\"127.0.0.1:0\"]\n";

#[test]
fn balancing_keys_and_their_errors() {
    let ok = validate(
        "[[upstream]]\nname = \"app\"\nbalance = \"least_conn\"\ntries = 3\ntries_timeout = \"2s\"\n\
         servers = [\"127.0.0.1:1\", { addr = \"127.0.0.1:2\", backup = true, max_fails = 0, fail_timeout = \"30s\" }]\n\
         [[server]]\nlisten = [\"127.0.0.1:0\"]\n",
        Path::new("t.toml"),
    )
    .unwrap();
    let up = &ok.upstreams[0];
    assert_eq!(
        (up.balance.clone(), up.tries, up.tries_timeout),
        (Balance::LeastConn, 3, Duration::from_secs(2))
    );
    assert_eq!((up.servers[0].backup, up.servers[0].max_fails), (false, 1));
    assert_eq!(up.servers[0].fail_timeout, Duration::from_secs(10));
    assert_eq!((up.servers[1].backup, up.servers[1].max_fails), (true, 0));
    assert_eq!(up.servers[1].fail_timeout, Duration::from_secs(30));
    // Defaults: round robin; a second try only when there is a second server.
    let d = validate(
        &format!(
            "[[upstream]]\nname = \"one\"\nservers = [\"127.0.0.1:1\"]\n\
         [[upstream]]\nname = \"two\"\nservers = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n{LISTEN}"
        ),
        Path::new("t.toml"),
    )
    .unwrap();
    assert_eq!(
        (d.upstreams[0].balance.clone(), d.upstreams[0].tries),
        (Balance::RoundRobin, 1)
    );
    assert_eq!(
        (d.upstreams[1].tries, d.upstreams[1].tries_timeout),
        (2, Duration::ZERO)
    );

    let text = format!(
        "[[upstream]]\nname = \"app\"\nbalance = \"fastest\"\ntries = 0\n\
         servers = [{{ addr = \"127.0.0.1:1\", max_fails = -1, fail_timeout = \"soon\", backup = true }}]\n{LISTEN}"
    );
    let e = validate(&text, Path::new("t.toml")).unwrap_err();
    let got: Vec<(usize, &str)> = e.0.iter().map(|e| (e.line, e.key.as_str())).collect();
    assert_eq!(
        got,
        [
            (3, "upstream[0].balance"),
            (4, "upstream[0].tries"),
            (5, "upstream[0].servers"),
            (5, "upstream[0].servers[0].max_fails"),
            (5, "upstream[0].servers[0].fail_timeout"),
        ],
        "{e}"
    );
    assert!(e.0[0]
        .message
        .contains("one of: round_robin, least_conn, ip_hash, random_two"));
    assert!(e.0[2].message.contains("every server is a backup"));
    let h = |extra: &str| {
        validate(
            &format!("[[upstream]]\nname = \"app\"\n{extra}\nservers = [\"127.0.0.1:1\"]\n{LISTEN}"),
            Path::new("t.toml"),
        )
    };
    let up = &h("hash = \"$request_uri\"").unwrap().upstreams[0];
    let Balance::Hash(k) = &up.balance else {
        panic!("{:?}", up.balance)
    };
    assert_eq!(k.parts, [Part::Var(Var::RequestUri)]);
    let e = h("hash = \"$reqest_uri\"").unwrap_err();
    assert!(
        e.to_string().contains(
            "t.toml:3:8: upstream[0].hash: unknown variable `$reqest_uri`; did you mean `$request_uri`?"
        ),
        "{e}"
    );
    let e = h("balance = \"ip_hash\"\nhash = \"$request_uri\"").unwrap_err();
    assert!(e.to_string().contains("remove `balance`"), "{e}");

    let e = validate(
        &format!(
            "[[upstream]]\nname = \"app\"\nservers = [{{ addr = \"127.0.0.1:1\", bakup = true }}]\n{LISTEN}"
        ),
        Path::new("t.toml"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("bakup"), "{e}");
}

#[test]
fn next_upstream_and_its_errors() {
    let up = |extra: &str| {
        validate(
            &format!("[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\n{extra}\n{LISTEN}"),
            Path::new("t.toml"),
        )
    };
    let n = |extra: &str| up(extra).unwrap().upstreams[0].next_upstream;
    let d = n("");
    assert_eq!(d, NextUpstream::DEFAULT);
    assert!(
        d.has(NextUpstream::ERROR) && d.has(NextUpstream::TIMEOUT) && d.has(NextUpstream::INVALID_HEADER)
    );
    assert!(!d.on_status(502) && !d.on_status(503));
    let s = n("next_upstream = [\"error\", \"http_503\", \"http_404\"]");
    assert!(s.has(NextUpstream::ERROR) && !s.has(NextUpstream::TIMEOUT));
    assert!(s.on_status(503) && s.on_status(404) && !s.on_status(502) && !s.on_status(200));
    assert!(s.status_is_failure(503) && !s.status_is_failure(404));
    assert_eq!(n("next_upstream = [\"off\"]"), NextUpstream::OFF);
    let e = up("next_upstream = [\"eror\", \"teapot\", \"off\", \"non_idempotent\"]").unwrap_err();
    let keys: Vec<&str> = e.0.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "upstream[0].next_upstream[0]",
            "upstream[0].next_upstream[1]",
            "upstream[0].next_upstream[2]",
            "upstream[0].next_upstream[3]"
        ],
        "{e}"
    );
    assert!(e.0[0].message.ends_with("did you mean \"error\"?"), "{e}");
    assert!(e.0[1].message.contains("(one of: error, timeout"), "{e}");
    assert!(e.0[2].message.contains("goes alone"), "{e}");
    assert!(e.0[3].message.contains("not supported"), "{e}");
    let e = up("next_upstream = []").unwrap_err();
    assert!(e.to_string().contains("write [\"off\"]"), "{e}");
}

#[test]
fn ewma_and_its_decay() {
    let up = |extra: &str| {
        validate(
            &format!("[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\n{extra}\n{LISTEN}"),
            Path::new("t.toml"),
        )
    };
    let d = up("balance = \"ewma\"").unwrap();
    assert_eq!(d.upstreams[0].balance, Balance::Ewma(Duration::from_secs(10)));
    let d = up("balance = \"ewma\"\newma_decay = \"2s\"").unwrap();
    assert_eq!(d.upstreams[0].balance, Balance::Ewma(Duration::from_secs(2)));
    let e = up("ewma_decay = \"2s\"").unwrap_err();
    assert!(
        e.to_string()
            .contains("upstream[0].ewma_decay: only applies with balance = \"ewma\""),
        "{e}"
    );
    let e = up("balance = \"ewma\"\newma_decay = \"0s\"").unwrap_err();
    assert!(e.to_string().contains("must be above 0"), "{e}");
}

#[test]
fn sticky_and_its_errors() {
    let up = |sticky: &str| {
        validate(
            &format!(
                "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\nsticky = {sticky}\n{LISTEN}"
            ),
            Path::new("t.toml"),
        )
    };
    let d = up("{}").unwrap();
    let st = d.upstreams[0].sticky.as_ref().unwrap();
    assert_eq!(
        (st.cookie.as_str(), st.path.as_str(), st.max_age),
        ("rw_srv", "/", None)
    );
    assert!(!st.httponly && !st.secure && st.samesite.is_none() && st.domain.is_none());
    let d = up(
        "{ cookie = \"srv\", path = \"/app\", domain = \"example.com\", max_age = \"1h\", httponly = true, \
         secure = true, samesite = \"none\" }",
    )
    .unwrap();
    let st = d.upstreams[0].sticky.as_ref().unwrap();
    assert_eq!(st.max_age, Some(Duration::from_secs(3600)));
    assert_eq!(
        (st.samesite, st.domain.as_deref()),
        (Some("None"), Some("example.com"))
    );
    let e =
        up("{ cookie = \"a b\", path = \"app\", domain = \"x;y\", max_age = \"0s\", samesite = \"none\" }")
            .unwrap_err();
    let keys: Vec<&str> = e.0.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "upstream[0].sticky.cookie",
            "upstream[0].sticky.path",
            "upstream[0].sticky.domain",
            "upstream[0].sticky.max_age",
            "upstream[0].sticky.samesite"
        ],
        "{e}"
    );
    assert!(e.0[4].message.contains("needs secure = true"), "{e}");
    let e = up("{ max_age = \"soon\", samesite = \"loose\" }").unwrap_err();
    assert!(e.0[0].message.contains("bad duration"), "{e}");
    assert!(e.0[1].message.contains("one of: \"Strict\""), "{e}");
    let e = up("{ cokie = \"x\" }").unwrap_err();
    assert!(
        e.to_string()
            .contains("upstream[0].sticky.cokie: unknown key `cokie`; did you mean `cookie`?"),
        "{e}"
    );
}

#[test]
fn split_and_its_errors() {
    let loc = |keys: &str| {
        validate(
            &format!(
                "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\n\
                 [[upstream]]\nname = \"canary\"\nservers = [\"127.0.0.1:2\"]\n{LISTEN}\
                 [[server.location]]\npath = \"/\"\n{keys}\n"
            ),
            Path::new("t.toml"),
        )
    };
    let c = loc(
        "proxy_pass = \"http://app\"\nsplit = [{ upstream = \"canary\", weight = 0.07 }, \
         { upstream = \"app\", when = { header = \"X-Canary\", value = \"1\" } }]\nsplit_by = \"$cookie_uid\"",
    )
    .unwrap();
    let Action::Proxy(pass) = &c.servers[0].locations[0].action else {
        panic!()
    };
    assert_eq!(
        pass.split[0],
        Split {
            upstream: 1,
            share: 7,
            when: None
        }
    );
    assert_eq!(
        pass.split[1].when,
        Some(When {
            what: WhenField::Header("x-canary".into()),
            value: Some("1".into())
        })
    );
    assert_eq!(
        pass.split_by.as_ref().unwrap().parts,
        [Part::Var(Var::Cookie("uid".into()))]
    );

    let e = loc(
        "proxy_pass = \"http://app\"\nsplit = [{ upstream = \"canery\", weight = 5 }, \
         { upstream = \"nope\", weight = 101 }, { upstream = \"canary\", weight = 0.001 }, \
         { upstream = \"canary\" }, { upstream = \"canary\", weight = 1, when = { header = \"a b\" } }, \
         { upstream = \"canary\", weight = 1, when = { value = \"1\" } }]\nsplit_by = \"$cookei_uid\"",
    )
    .unwrap_err();
    let keys: Vec<&str> = e.0.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "server[0].location[0].split[0].upstream",
            "server[0].location[0].split[1].upstream",
            "server[0].location[0].split[1].weight",
            "server[0].location[0].split[2].weight",
            "server[0].location[0].split[3].weight",
            "server[0].location[0].split[4].when",
            "server[0].location[0].split[5].when",
            "server[0].location[0].split_by",
        ],
        "{e}"
    );
    let msg = |i: usize| e.0[i].message.as_str();
    assert!(
        msg(0).ends_with("unknown upstream \"canery\"; did you mean \"canary\"?"),
        "{e}"
    );
    assert!(msg(1).contains("(defined: \"app\", \"canary\")"), "{e}");
    assert!(msg(2).contains("from 0 to 100"), "{e}");
    assert!(msg(4).contains("needs a weight above 0"), "{e}");
    assert!(msg(6).contains("give one of header"), "{e}");
    assert!(msg(7).contains("did you mean `$cookie_uid`?"), "{e}");

    let e = loc("proxy_pass = \"http://app\"\nsplit = [{ upstream = \"canary\", weight = 60 }, { upstream = \"canary\", weight = 40.5 }]").unwrap_err();
    assert!(
        e.to_string()
            .contains("server[0].location[0].split: weights add up to 100.5%, over 100%"),
        "{e}"
    );
    let e = loc("proxy_pass = \"http://app\"\nsplit = []").unwrap_err();
    assert!(e.to_string().contains("is empty"), "{e}");
    let e = loc("proxy_pass = \"http://app\"\nsplit_by = \"$uri\"").unwrap_err();
    assert!(e.to_string().contains("split_by: only applies with split"), "{e}");
    let e = loc("return = { status = 200 }\nsplit = [{ upstream = \"canary\", weight = 5 }]").unwrap_err();
    assert!(
        e.to_string().contains("split: only applies with proxy_pass"),
        "{e}"
    );
    let e = loc("proxy_pass = \"http://app\"\nsplit = [{ upstream = \"canary\", wieght = 5 }]").unwrap_err();
    assert!(
        e.to_string()
            .contains("unknown key `wieght`; did you mean `weight`?"),
        "{e}"
    );
    let e = loc(
        "proxy_pass = \"http://app\"\nsplit = [{ upstream = \"canary\", weight = 5, when = { heder = \"x\" } }]",
    )
    .unwrap_err();
    assert!(e.to_string().contains("did you mean `header`?"), "{e}");
}

#[test]
fn request_keys_compile_into_parts() {
    let k = parse_key("$http_X_Tenant:${cookie_session}-$remote_addr$uri/$request_uri").unwrap();
    assert_eq!(
        k.parts,
        [
            Part::Var(Var::Http("x-tenant".into())),
            Part::Lit(":".into()),
            Part::Var(Var::Cookie("session".into())),
            Part::Lit("-".into()),
            Part::Var(Var::RemoteAddr),
            Part::Var(Var::Uri),
            Part::Lit("/".into()),
            Part::Var(Var::RequestUri),
        ]
    );
    let err = |t: &str| parse_key(t).unwrap_err();
    assert!(err("$htp_x_tenant").ends_with("did you mean `$http_x_tenant`?"));
    assert!(err("$cokie_sid").ends_with("did you mean `$cookie_sid`?"));
    assert!(err("$remote_adr").ends_with("did you mean `$remote_addr`?"));
    assert!(err("$zzz").contains("unknown variable `$zzz` (known: $host, $scheme, $request_uri"));
    assert!(err("$http_").contains("unknown variable `$http_`"));
    assert!(err("a$").contains("starts no variable"));
    assert!(err("${uri").contains("unclosed"));
    assert!(err("tenant").contains("has no variable"));
    assert!(err("").contains("has no variable"));
}

#[test]
fn line_col_counts_from_one() {
    let t = "a = 1\nbb = 2\n";
    assert_eq!(line_col(t, 0), (1, 1));
    assert_eq!(line_col(t, 6), (2, 1));
    assert_eq!(line_col(t, 9), (2, 4));
}
