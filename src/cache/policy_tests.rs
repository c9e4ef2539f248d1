use super::*;
use crate::http::parse::{parse_request, parse_response, HeadLimits, Parsed};
use bytes::Bytes;

fn req(text: &str) -> RequestHead {
    let raw = text.replace('\n', "\r\n") + "\r\n";
    let limits = HeadLimits {
        max_request_line: 8192,
        max_header_size: 65536,
        max_headers: 100,
    };
    match parse_request(raw.as_bytes(), &limits).unwrap() {
        Parsed::Complete(parts, _) => parts.into_head(Bytes::from(raw)),
        Parsed::Partial => panic!("partial"),
    }
}

fn resp(text: &str) -> ResponseHead {
    let raw = text.replace('\n', "\r\n") + "\r\n\r\n";
    match parse_response(raw.as_bytes(), 100).unwrap() {
        Parsed::Complete(mut h, _) => {
            h.buf = Bytes::from(raw);
            h
        }
        Parsed::Partial => panic!("partial"),
    }
}

const GET: &str = "GET /a HTTP/1.1\nHost: h\n";
const DATE: &str = "Date: Sun, 06 Nov 1994 08:49:37 GMT";
/// Date as seconds since the epoch.
const T: u64 = 784_111_777;

fn rules() -> Rules<'static> {
    Rules::default()
}

#[test]
fn directives_parse_with_quotes_case_and_repeats() {
    let d = directives(
        [
            &b"Max-Age=60, no-cache=\"Set-Cookie, X-A\""[..],
            b"private, max-age=5, s-maxage=\"7\"",
        ]
        .into_iter(),
    );
    assert_eq!(d.max_age, Some(60), "first value wins");
    assert_eq!(d.s_maxage, Some(7));
    assert!(d.no_cache && d.private && !d.public);
    let d = directives([&b"max-age=abc, stale-if-error=30, max-stale"[..]].into_iter());
    assert_eq!(d.max_age, Some(0), "a bad max-age means stale");
    assert_eq!(d.stale_if_error, Some(30));
    assert_eq!(d.max_stale, Some(None));
    let d = directives([&b"max-age=99999999999999999999"[..]].into_iter());
    assert_eq!(d.max_age, Some(1 << 31));
}

#[test]
fn what_is_storable() {
    let g = req(GET);
    let cc = Directives::default();
    let ok = |r: &str| storable(&g, &cc, &resp(r), &rules());
    assert_eq!(ok("HTTP/1.1 200 OK\nCache-Control: max-age=60"), Ok(()));
    assert_eq!(ok("HTTP/1.1 200 OK\nCache-Control: public"), Ok(()));
    assert_eq!(
        ok("HTTP/1.1 200 OK\nCache-Control: no-store, max-age=60"),
        Err(NotStored::NoStore)
    );
    assert_eq!(
        ok("HTTP/1.1 200 OK\nCache-Control: private, max-age=60"),
        Err(NotStored::Private)
    );
    assert_eq!(
        ok("HTTP/1.1 200 OK\nCache-Control: max-age=60\nSet-Cookie: a=1"),
        Err(NotStored::SetCookie)
    );
    assert_eq!(
        ok("HTTP/1.1 200 OK\nCache-Control: max-age=60\nVary: *"),
        Err(NotStored::VaryAny)
    );
    assert_eq!(ok("HTTP/1.1 200 OK"), Err(NotStored::NoFreshness));
    assert_eq!(
        ok("HTTP/1.1 206 Partial Content\nCache-Control: max-age=60"),
        Err(NotStored::Status)
    );
    // no-cache with a validator: stored, revalidated on every use.
    assert_eq!(
        ok("HTTP/1.1 200 OK\nCache-Control: no-cache\nETag: \"1\""),
        Ok(())
    );
    // Set-Cookie when ignore_headers says so.
    let r = Rules {
        ignore_set_cookie: true,
        ..rules()
    };
    let s = resp("HTTP/1.1 200 OK\nCache-Control: max-age=60\nSet-Cookie: a=1");
    assert_eq!(storable(&g, &cc, &s, &r), Ok(()));
    // Only GET; a request's no-store.
    let p = req("POST /a HTTP/1.1\nHost: h\nContent-Length: 0\n");
    let fresh = resp("HTTP/1.1 200 OK\nCache-Control: max-age=60");
    assert_eq!(storable(&p, &cc, &fresh, &rules()), Err(NotStored::Method));
    let ns = Directives {
        no_store: true,
        ..Default::default()
    };
    assert_eq!(storable(&g, &ns, &fresh, &rules()), Err(NotStored::NoStore));
}

#[test]
fn authorization_needs_the_origins_leave() {
    let a = req("GET /a HTTP/1.1\nHost: h\nAuthorization: Basic eDp5\n");
    let cc = Directives::default();
    let s = |r: &str| storable(&a, &cc, &resp(r), &rules());
    assert_eq!(
        s("HTTP/1.1 200 OK\nCache-Control: max-age=60"),
        Err(NotStored::Authorization)
    );
    assert_eq!(s("HTTP/1.1 200 OK\nCache-Control: max-age=60, public"), Ok(()));
    assert_eq!(s("HTTP/1.1 200 OK\nCache-Control: s-maxage=60"), Ok(()));
    assert_eq!(
        s("HTTP/1.1 200 OK\nCache-Control: max-age=60, must-revalidate"),
        Ok(())
    );
}

#[test]
fn a_request_ringway_authenticated_counts_as_one_with_authorization() {
    // An API key or a cookie's token: no Authorization field, but the
    // location's auth passed it, so its answer is not shared by default.
    let g = req("GET /a HTTP/1.1\nHost: h\nX-API-Key: k\n");
    let cc = Directives::default();
    let r = Rules {
        credentials: true,
        ..rules()
    };
    let s = |x: &str| storable(&g, &cc, &resp(x), &r);
    assert_eq!(
        s("HTTP/1.1 200 OK\nCache-Control: max-age=60"),
        Err(NotStored::Authorization)
    );
    assert_eq!(s("HTTP/1.1 200 OK\nCache-Control: max-age=60, public"), Ok(()));
    assert_eq!(
        storable(
            &g,
            &cc,
            &resp("HTTP/1.1 200 OK\nCache-Control: max-age=60"),
            &rules()
        ),
        Ok(())
    );
}

#[test]
fn valid_applies_only_without_explicit_freshness() {
    let valid = [(200, 600), (404, 60), (0, 5)];
    let r = Rules {
        valid: &valid,
        ..rules()
    };
    let g = req(GET);
    let cc = Directives::default();
    let plain = resp("HTTP/1.1 200 OK");
    assert_eq!(storable(&g, &cc, &plain, &r), Ok(()));
    assert_eq!(lifetime(&plain, T, &r), 600);
    assert_eq!(lifetime(&resp("HTTP/1.1 404 Not Found"), T, &r), 60);
    assert_eq!(lifetime(&resp("HTTP/1.1 500 Oops"), T, &r), 5, "any");
    assert_eq!(
        lifetime(&resp("HTTP/1.1 200 OK\nCache-Control: max-age=7"), T, &r),
        7
    );
    assert_eq!(
        lifetime(
            &resp("HTTP/1.1 200 OK\nCache-Control: max-age=7, s-maxage=9"),
            T,
            &r
        ),
        9,
        "s-maxage wins in a shared cache"
    );
}

#[test]
fn expires_counts_from_date_and_a_bad_one_is_stale() {
    let r = rules();
    let h = resp(&format!(
        "HTTP/1.1 200 OK\n{DATE}\nExpires: Sun, 06 Nov 1994 08:50:37 GMT"
    ));
    assert_eq!(lifetime(&h, T, &r), 60);
    let bad = resp(&format!("HTTP/1.1 200 OK\n{DATE}\nExpires: 0"));
    assert_eq!(lifetime(&bad, T, &r), 0);
    assert_eq!(
        storable(&req(GET), &Directives::default(), &bad, &r),
        Ok(()),
        "explicit, if already stale"
    );
    // max-age wins over Expires.
    let both = resp(&format!(
        "HTTP/1.1 200 OK\n{DATE}\nExpires: Sun, 06 Nov 1994 08:50:37 GMT\nCache-Control: max-age=5"
    ));
    assert_eq!(lifetime(&both, T, &r), 5);
}

#[test]
fn heuristic_freshness_only_when_configured() {
    let h = resp(&format!(
        "HTTP/1.1 200 OK\n{DATE}\nLast-Modified: Sat, 05 Nov 1994 08:49:37 GMT"
    ));
    assert_eq!(lifetime(&h, T, &rules()), 0);
    assert_eq!(
        storable(&req(GET), &Directives::default(), &h, &rules()),
        Err(NotStored::NoFreshness)
    );
    let on = Rules {
        heuristic: true,
        ..rules()
    };
    assert_eq!(lifetime(&h, T, &on), 8640, "a tenth of a day");
    assert_eq!(storable(&req(GET), &Directives::default(), &h, &on), Ok(()));
}

#[test]
fn age_is_the_larger_of_apparent_and_corrected() {
    // Date 10 s before the response arrived; the origin said Age: 3; the
    // exchange took 2 s.
    let h = resp(&format!("HTTP/1.1 200 OK\n{DATE}\nAge: 3"));
    assert_eq!(initial_age(&h, T + 8, T + 10), 10);
    let h = resp(&format!("HTTP/1.1 200 OK\n{DATE}\nAge: 30"));
    assert_eq!(initial_age(&h, T + 8, T + 10), 32);
    // A Date in the future gives no negative age.
    let h = resp(&format!("HTTP/1.1 200 OK\n{DATE}"));
    assert_eq!(initial_age(&h, T - 100, T - 99), 1);
}

#[test]
fn requests_directives_decide_use() {
    let e = Stored {
        age: 10,
        lifetime: 60,
        ..Default::default()
    };
    let none = Directives::default();
    assert_eq!(usable(&e, &none), Use::Fresh);
    let d = |s: &str| directives([s.as_bytes()].into_iter());
    assert_eq!(usable(&e, &d("no-cache")), Use::Revalidate);
    assert_eq!(usable(&e, &d("max-age=0")), Use::Revalidate);
    assert_eq!(usable(&e, &d("max-age=10")), Use::Fresh);
    assert_eq!(usable(&e, &d("min-fresh=51")), Use::Revalidate);
    let stale = Stored {
        age: 70,
        lifetime: 60,
        ..Default::default()
    };
    assert_eq!(usable(&stale, &none), Use::Revalidate);
    assert_eq!(usable(&stale, &d("max-stale=10")), Use::Fresh);
    assert_eq!(usable(&stale, &d("max-stale=9")), Use::Revalidate);
    assert_eq!(usable(&stale, &d("max-stale")), Use::Fresh);
    let strict = Stored {
        must_revalidate: true,
        ..stale
    };
    assert_eq!(usable(&strict, &d("max-stale")), Use::Revalidate);
    let nc = Stored { no_cache: true, ..e };
    assert_eq!(usable(&nc, &none), Use::Revalidate);
    // Pragma: no-cache only without Cache-Control.
    let r = req("GET /a HTTP/1.1\nHost: h\nPragma: no-cache\n");
    assert!(request_directives(&r).no_cache);
    let r = req("GET /a HTTP/1.1\nHost: h\nPragma: no-cache\nCache-Control: max-age=5\n");
    assert!(!request_directives(&r).no_cache);
}

#[test]
fn stale_if_error_has_a_window_and_yields_to_must_revalidate() {
    let e = Stored {
        age: 70,
        lifetime: 60,
        ..Default::default()
    };
    let none = Directives::default();
    assert!(stale_if_error_ok(&e, Some(10), &none));
    assert!(!stale_if_error_ok(&e, Some(9), &none));
    assert!(!stale_if_error_ok(&e, None, &none));
    let strict = Stored {
        must_revalidate: true,
        ..e
    };
    assert!(!stale_if_error_ok(&strict, Some(1000), &none));
}

#[test]
fn vary_names_and_values() {
    let h = resp("HTTP/1.1 200 OK\nVary: Accept-Encoding, accept-encoding\nVary: X-A");
    let names = vary_names(&h).unwrap();
    assert_eq!(
        names,
        vec!["accept-encoding".into(), "x-a".into()] as Vec<Box<str>>
    );
    assert!(vary_names(&resp("HTTP/1.1 200 OK\nVary: a, *")).is_none());
    let r = req("GET / HTTP/1.1\nHost: h\nAccept-Encoding: gzip ,  br\n");
    assert_eq!(
        vary_values(&r, &names),
        vec![Some(b"gzip,br".to_vec().into_boxed_slice()), None]
    );
}

#[test]
fn unsafe_methods_invalidate_their_uri_and_same_host_locations() {
    assert!(invalidates(b"POST", 201));
    assert!(invalidates(b"DELETE", 302));
    assert!(!invalidates(b"POST", 500));
    assert!(!invalidates(b"GET", 200));
    let h = resp("HTTP/1.1 201 Created\nLocation: http://h/new?x=1\nContent-Location: http://other/b");
    assert_eq!(invalidated_paths(&h, b"http", b"h"), vec![b"/new?x=1".to_vec()]);
    let h = resp("HTTP/1.1 201 Created\nLocation: /rel\nContent-Location: //evil/x");
    assert_eq!(invalidated_paths(&h, b"http", b"h"), vec![b"/rel".to_vec()]);
}

#[test]
fn lists_split_outside_quotes_only() {
    let v: Vec<&[u8]> = split_list(b" a, \"b,c\" ,,d=\"x\\\",y\"").collect();
    assert_eq!(v, vec![&b"a"[..], b"\"b,c\"", b"d=\"x\\\",y\""]);
}

#[test]
fn preconditions_on_a_stored_response() {
    let lm = b"Sun, 06 Nov 1994 08:49:37 GMT";
    let tag = Some(&b"\"a\""[..]);
    let p = |h: &str| precondition(&req(&format!("GET / HTTP/1.1\nHost: h\n{h}\n")), tag, Some(lm));
    assert_eq!(p("If-None-Match: \"b\", W/\"a\""), Some(304), "weak comparison");
    assert_eq!(p("If-None-Match: \"b\""), None);
    assert_eq!(p("If-None-Match: *"), Some(304));
    assert_eq!(p("If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT"), Some(304));
    assert_eq!(p("If-Modified-Since: Sat, 05 Nov 1994 08:49:37 GMT"), None);
    assert_eq!(
        p("If-None-Match: \"b\"\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT"),
        None,
        "If-None-Match wins"
    );
    assert_eq!(p("If-Match: \"b\""), Some(412));
    assert_eq!(p("If-Match: \"a\""), None);
    assert!(if_range_holds(b"\"a\"", tag, Some(lm)));
    assert!(!if_range_holds(b"W/\"a\"", tag, Some(lm)));
    assert!(if_range_holds(lm, tag, Some(lm)));
    assert!(!if_range_holds(b"Sat, 05 Nov 1994 08:49:37 GMT", tag, Some(lm)));
}
