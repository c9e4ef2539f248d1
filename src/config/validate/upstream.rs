//! The checks of an `[[upstream]]`: its servers (resolved here, at load),
//! keep-alive and timeouts, balancing and `hash` keys, `next_upstream`,
//! `sticky` and active health checks. Its TLS keys are `upstream_tls.rs`'s,
//! its HTTP/2 keys `http2.rs`'s.

use super::*;

pub(super) fn upstream_defaults(name: String, servers: Vec<Peer>, implicit: bool) -> Upstream {
    let servers_len = servers.len();
    Upstream {
        name,
        servers,
        keepalive: 32,
        keepalive_timeout: Duration::from_secs(60),
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(60),
        send_timeout: Duration::from_secs(60),
        implicit,
        balance: Balance::RoundRobin,
        // nginx tries every server by default; one retry elsewhere covers a
        // dead server without multiplying the load of a slow one.
        tries: if servers_len > 1 { 2 } else { 1 },
        tries_timeout: Duration::ZERO,
        sticky: None,
        next_upstream: NextUpstream::DEFAULT,
        tls: None,
        health_check: None,
        resolve_interval: None,
        protocol: UpstreamProtocol::Http1,
        h2_connections: 1,
    }
}

/// Resolves `host:port` once, at load. Blocking, which is why it lives here.
#[allow(clippy::disallowed_methods)]
pub(super) fn resolve(authority: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = authority.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = authority.rsplit_once(':') else {
        return Err(format!("{authority:?} has no port (write host:port)"));
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!("{authority:?} is not host:port"));
    }
    match authority.to_socket_addrs() {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| format!("{host:?} resolves to no address")),
        Err(e) => Err(format!("cannot resolve {host:?}: {e}")),
    }
}

pub(super) fn check_upstream(c: &mut Checker, u: &RawUpstream, key: &str) -> Option<Upstream> {
    let name = u.name.get_ref().clone();
    let mut ok = true;
    if name.is_empty() || name.contains(['/', ':', ' ']) {
        c.error(
            u.name.span(),
            format!("{key}.name"),
            "must be a plain name such as \"app\"",
        );
        ok = false;
    }
    if u.servers.get_ref().is_empty() {
        c.error(
            u.servers.span(),
            format!("{key}.servers"),
            "needs at least one server",
        );
        ok = false;
    }
    let mut servers = Vec::new();
    for (j, p) in u.servers.get_ref().iter().enumerate() {
        let pkey = format!("{key}.servers[{j}]");
        let (authority, weight, t) = match p.get_ref() {
            RawPeer::Addr(a) => (a.clone(), 1, None),
            RawPeer::Full(t) => (t.addr.clone(), t.weight.unwrap_or(1), Some(t)),
        };
        if !(1..=10_000).contains(&weight) {
            c.error(p.span(), &pkey, "weight must be from 1 to 10000");
            ok = false;
            continue;
        }
        let addr = match resolve(&authority) {
            Ok(addr) => addr,
            Err(e) => {
                c.error(p.span(), &pkey, e);
                ok = false;
                continue;
            }
        };
        let mut peer = Peer::new(authority, addr);
        peer.weight = weight as u32;
        if let Some(t) = t {
            peer.backup = t.backup.unwrap_or(false);
            if let Some(n) = t.max_fails {
                match u32::try_from(n) {
                    Ok(n) if n <= 1000 => peer.max_fails = n,
                    _ => {
                        c.error(p.span(), format!("{pkey}.max_fails"), "must be from 0 to 1000");
                        ok = false;
                    }
                }
            }
            // Inside an untagged enum the value has no span of its own: the
            // error points at the server entry.
            if let Some(d) = &t.fail_timeout {
                match humantime::parse_duration(d.trim()) {
                    Ok(d) if !d.is_zero() => peer.fail_timeout = d,
                    Ok(_) => {
                        c.error(
                            p.span(),
                            format!("{pkey}.fail_timeout"),
                            "must be above 0 (write max_fails = 0 to never mark the server down)",
                        );
                        ok = false;
                    }
                    Err(e) => {
                        c.error(
                            p.span(),
                            format!("{pkey}.fail_timeout"),
                            format!("bad duration {d:?}: {e} (write it like \"750ms\", \"5s\" or \"2m\")"),
                        );
                        ok = false;
                    }
                }
            }
        }
        servers.push(peer);
    }
    if !servers.is_empty() && servers.iter().all(|s| s.backup) {
        c.error(
            u.servers.span(),
            format!("{key}.servers"),
            "every server is a backup: at least one must not be",
        );
        ok = false;
    }
    let mut up = upstream_defaults(name, servers, false);
    if let Some(k) = &u.keepalive {
        match usize::try_from(*k.get_ref()) {
            Ok(n) if n <= 65_536 => up.keepalive = n,
            _ => {
                c.error(k.span(), format!("{key}.keepalive"), "must be from 0 to 65536");
                ok = false;
            }
        }
    }
    up.keepalive_timeout = c.duration(
        &u.keepalive_timeout,
        &format!("{key}.keepalive_timeout"),
        up.keepalive_timeout,
    );
    up.connect_timeout = c.duration(
        &u.connect_timeout,
        &format!("{key}.connect_timeout"),
        up.connect_timeout,
    );
    up.read_timeout = c.duration(&u.read_timeout, &format!("{key}.read_timeout"), up.read_timeout);
    up.send_timeout = c.duration(&u.send_timeout, &format!("{key}.send_timeout"), up.send_timeout);
    if let Some(b) = &u.balance {
        match Balance::parse(b.get_ref()) {
            Some(v) => up.balance = v,
            None => {
                c.error(
                    b.span(),
                    format!("{key}.balance"),
                    format!(
                        "unknown balance {:?} (one of: {})",
                        b.get_ref(),
                        Balance::NAMES.join(", ")
                    ),
                );
                ok = false;
            }
        }
    }
    if let Some(d) = &u.ewma_decay {
        let dkey = format!("{key}.ewma_decay");
        let decay = c.duration(&u.ewma_decay, &dkey, Balance::EWMA_DECAY);
        match up.balance {
            Balance::Ewma(_) if decay.is_zero() => {
                c.error(d.span(), dkey, "must be above 0");
                ok = false;
            }
            Balance::Ewma(_) => up.balance = Balance::Ewma(decay),
            _ => {
                c.error(d.span(), dkey, "only applies with balance = \"ewma\"");
                ok = false;
            }
        }
    }
    if let Some(h) = &u.hash {
        let hkey = format!("{key}.hash");
        if u.balance.is_some() {
            c.error(
                h.span(),
                hkey,
                "`hash` chooses the server itself: remove `balance`",
            );
            ok = false;
        } else {
            match parse_key(h.get_ref()) {
                Ok(k) => up.balance = Balance::Hash(k),
                Err(why) => {
                    c.error(h.span(), hkey, why);
                    ok = false;
                }
            }
        }
    }
    if let Some(t) = &u.tries {
        match usize::try_from(*t.get_ref()) {
            Ok(n) if (1..=100).contains(&n) => up.tries = n,
            _ => {
                c.error(t.span(), format!("{key}.tries"), "must be from 1 to 100");
                ok = false;
            }
        }
    }
    up.tries_timeout = c.duration(
        &u.tries_timeout,
        &format!("{key}.tries_timeout"),
        up.tries_timeout,
    );
    if let Some(list) = &u.next_upstream {
        match check_next_upstream(c, list, &format!("{key}.next_upstream")) {
            Some(n) => up.next_upstream = n,
            None => ok = false,
        }
    }
    if let Some(st) = &u.sticky {
        match check_sticky(c, st.get_ref(), &format!("{key}.sticky")) {
            Some(st) => up.sticky = Some(st),
            None => ok = false,
        }
    }
    let tls_keys = upstream_tls::TlsKeys::upstream(u);
    match &u.tls {
        Some(on) if *on.get_ref() && ok => {
            up.tls = upstream_tls::check(c, &tls_keys, key, &up.servers, on.span());
            ok &= up.tls.is_some();
        }
        Some(on) if *on.get_ref() => {}
        _ => ok &= upstream_tls::refuse_unused(c, &tls_keys, key, "tls = true"),
    }
    ok &= http2::check_upstream(c, u, key, &mut up);
    if let Some(h) = &u.health_check {
        up.health_check = check_health_check(c, h, &format!("{key}.health_check"));
        ok &= up.health_check.is_some();
    }
    if let Some(r) = &u.resolve_interval {
        let rkey = format!("{key}.resolve_interval");
        let before = c.errors.len();
        let d = c.duration(&u.resolve_interval, &rkey, Duration::ZERO);
        if c.errors.len() > before {
            ok = false;
        } else if d.is_zero() {
            c.error(
                r.span(),
                rkey,
                "must be above 0 (leave it out to resolve names only when the config loads)",
            );
            ok = false;
        } else {
            up.resolve_interval = Some(d);
        }
    }
    ok.then_some(up)
}

/// `next_upstream = [...]`, nginx's `proxy_next_upstream` names.
pub(super) fn check_next_upstream(
    c: &mut Checker,
    list: &Spanned<Vec<Spanned<String>>>,
    key: &str,
) -> Option<NextUpstream> {
    let before = c.errors.len();
    let mut flags = NextUpstream::OFF;
    let names = list.get_ref();
    if names.is_empty() {
        c.error(
            list.span(),
            key,
            "is empty: write [\"off\"] to never try another server",
        );
    }
    for (i, n) in names.iter().enumerate() {
        let name = n.get_ref().as_str();
        match (name, NextUpstream::parse(name)) {
            (_, Some(f)) => flags = flags.with(f),
            ("off", _) if names.len() == 1 => {}
            ("off", _) => c.error(n.span(), format!("{key}[{i}]"), "\"off\" goes alone"),
            ("non_idempotent", _) => c.error(
                n.span(),
                format!("{key}[{i}]"),
                "not supported: a request that is not idempotent is never sent to a second server once sent",
            ),
            _ => {
                let known: Vec<&str> = NextUpstream::NAMES
                    .iter()
                    .map(|(n, _)| *n)
                    .chain(["off"])
                    .collect();
                let closest = known
                    .iter()
                    .map(|k| (strsim::levenshtein(name, k), *k))
                    .filter(|(d, _)| *d <= 2)
                    .min();
                let hint = match closest {
                    Some((_, k)) => format!("; did you mean {k:?}?"),
                    None => format!(" (one of: {})", known.join(", ")),
                };
                c.error(
                    n.span(),
                    format!("{key}[{i}]"),
                    format!("unknown failure kind {name:?}{hint}"),
                );
            }
        }
    }
    (c.errors.len() == before).then_some(flags)
}

/// `sticky = { ... }`. Cookie attributes are checked against RFC 6265's
/// grammar, since a bad one would be sent to every client.
pub(super) fn check_sticky(c: &mut Checker, r: &RawSticky, key: &str) -> Option<Sticky> {
    let before = c.errors.len();
    let mut st = Sticky {
        cookie: "rw_srv".to_string(),
        path: "/".to_string(),
        domain: None,
        max_age: None,
        httponly: r.httponly.unwrap_or(false),
        secure: r.secure.unwrap_or(false),
        samesite: None,
    };
    if let Some(n) = &r.cookie {
        // RFC 6265 §4.1.1: a cookie name is an RFC 2616 token.
        if n.get_ref().is_empty() || !n.get_ref().bytes().all(is_token) {
            c.error(
                n.span(),
                format!("{key}.cookie"),
                format!(
                    "{:?} is not a cookie name (letters, digits and !#$%&'*+-.^_`|~)",
                    n.get_ref()
                ),
            );
        }
        st.cookie = n.get_ref().clone();
    }
    // RFC 6265 §4.1.1: attribute values are any visible character but `;`.
    let attr_ok = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic() && b != b';');
    if let Some(p) = &r.path {
        if !p.get_ref().starts_with('/') || !attr_ok(p.get_ref()) {
            c.error(
                p.span(),
                format!("{key}.path"),
                "must start with \"/\" and hold no spaces or `;`",
            );
        }
        st.path = p.get_ref().clone();
    }
    if let Some(d) = &r.domain {
        if !attr_ok(d.get_ref()) {
            c.error(
                d.span(),
                format!("{key}.domain"),
                "must be a host name with no spaces or `;`",
            );
        }
        st.domain = Some(d.get_ref().clone());
    }
    if r.max_age.is_some() {
        let parsed = c.errors.len();
        let d = c.duration(&r.max_age, &format!("{key}.max_age"), Duration::ZERO);
        if let (Some(v), true) = (&r.max_age, d.as_secs() == 0) {
            if c.errors.len() == parsed {
                c.error(
                    v.span(),
                    format!("{key}.max_age"),
                    "must be 1s or more (leave it out for a session cookie)",
                );
            }
        }
        st.max_age = Some(d);
    }
    if let Some(v) = &r.samesite {
        st.samesite = match v.get_ref().to_ascii_lowercase().as_str() {
            "strict" => Some("Strict"),
            "lax" => Some("Lax"),
            "none" if st.secure => Some("None"),
            "none" => {
                c.error(
                    v.span(),
                    format!("{key}.samesite"),
                    "\"None\" needs secure = true (browsers drop the cookie otherwise)",
                );
                None
            }
            _ => {
                c.error(
                    v.span(),
                    format!("{key}.samesite"),
                    "one of: \"Strict\", \"Lax\", \"None\"",
                );
                None
            }
        };
    }
    (c.errors.len() == before).then_some(st)
}

/// Compiles a request key such as `"$http_x_tenant:$cookie_session"`
/// (`hash`, `split_by`) with the variable engine; a key without a variable
/// would send every request to the same place, so it is refused.
pub(super) fn parse_key(text: &str) -> Result<RequestKey, String> {
    let key = crate::vars::Template::parse(text, crate::vars::Scope::default())?;
    if !key.has_vars() {
        return Err(format!(
            "{text:?} has no variable, so every request would get the same key (known: {})",
            crate::vars::known()
        ));
    }
    Ok(key)
}

/// `"200-399"`, `"200"`, `"200,204,300-302"`: each code from 100 to 599.
pub(super) fn parse_expect(s: &str) -> Option<Vec<(u16, u16)>> {
    let code = |t: &str| t.trim().parse::<u16>().ok().filter(|c| (100..=599).contains(c));
    s.split(',')
        .map(|part| match part.split_once('-') {
            Some((lo, hi)) => Some((code(lo)?, code(hi)?)).filter(|(lo, hi)| lo <= hi),
            None => code(part).map(|c| (c, c)),
        })
        .collect()
}

pub(super) fn check_health_check(
    c: &mut Checker,
    h: &Spanned<super::raw::RawHealthCheck>,
    key: &str,
) -> Option<HealthCheck> {
    let r = h.get_ref();
    let k = |name: &str| format!("{key}.{name}");
    let mut ok = true;
    let tcp = match &r.type_ {
        None => false,
        Some(t) if t.get_ref() == "http" => false,
        Some(t) if t.get_ref() == "tcp" => true,
        Some(t) => {
            c.error(
                t.span(),
                k("type"),
                format!("unknown check type {:?} (one of: http, tcp)", t.get_ref()),
            );
            return None;
        }
    };
    let interval = c.duration(&r.interval, &k("interval"), Duration::from_secs(5));
    let timeout = c.duration(&r.timeout, &k("timeout"), Duration::from_secs(2));
    // Below 10ms a probe is a busy loop, not a check.
    for (v, name, d) in [
        (&r.interval, "interval", interval),
        (&r.timeout, "timeout", timeout),
    ] {
        if let (Some(v), true) = (v, d < Duration::from_millis(10)) {
            c.error(v.span(), k(name), "must be at least 10ms");
            ok = false;
        }
    }
    let mut count = |v: &Option<Spanned<i64>>, name: &str, default: u32| match v {
        None => default,
        Some(n) if (1..=100).contains(n.get_ref()) => *n.get_ref() as u32,
        Some(n) => {
            c.error(n.span(), k(name), "must be from 1 to 100");
            ok = false;
            default
        }
    };
    let rise = count(&r.rise, "rise", 2);
    let fall = count(&r.fall, "fall", 3);
    let probe = if tcp {
        for (v, name) in [(&r.path, "path"), (&r.host, "host"), (&r.expect, "expect")] {
            if let Some(v) = v {
                c.error(v.span(), k(name), "only applies to type = \"http\"");
                ok = false;
            }
        }
        Probe::Tcp
    } else {
        let path = match &r.path {
            None => "/".to_string(),
            Some(p) => {
                let v = p.get_ref();
                if !v.starts_with('/') || v.bytes().any(|b| b <= b' ' || b == 0x7f) {
                    c.error(
                        p.span(),
                        k("path"),
                        "must start with \"/\" and have no spaces or control characters",
                    );
                    ok = false;
                }
                v.clone()
            }
        };
        let host = r.host.as_ref().map(|h| {
            let v = h.get_ref();
            if v.is_empty() || v.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'/') {
                c.error(h.span(), k("host"), "must be a host name or host:port");
                ok = false;
            }
            v.clone()
        });
        let expect = match &r.expect {
            None => vec![(200, 399)],
            Some(e) => parse_expect(e.get_ref()).unwrap_or_else(|| {
                c.error(
                    e.span(),
                    k("expect"),
                    format!(
                        "bad status list {:?}: write codes or ranges from 100 to 599 (\"200-399\", \"200,204\")",
                        e.get_ref()
                    ),
                );
                ok = false;
                Vec::new()
            }),
        };
        Probe::Http { path, host, expect }
    };
    ok.then_some(HealthCheck {
        probe,
        interval,
        timeout,
        rise,
        fall,
    })
}
