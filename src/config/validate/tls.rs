//! The TLS keys of a server block (`tls`, `hsts`), and the rule that every
//! block on one address has TLS or none does.

use super::*;

/// The TLS protocol names accepted in `protocols`, as nginx writes them.
pub(super) const TLS_PROTOCOLS: [&str; 2] = ["TLSv1.2", "TLSv1.3"];

pub(super) fn check_tls(c: &mut Checker, t: &Spanned<RawTls>, key: &str, index: usize) -> Option<Tls> {
    let r = t.get_ref();
    let before = c.errors.len();
    let reject_handshake = r.reject_handshake.unwrap_or(false);
    if reject_handshake {
        for (name, v) in [("cert", &r.cert), ("key", &r.key)] {
            if let Some(v) = v {
                c.error(
                    v.span(),
                    format!("{key}.{name}"),
                    "a block with reject_handshake = true serves no certificate: remove it",
                );
            }
        }
    } else {
        for (name, v) in [("cert", &r.cert), ("key", &r.key)] {
            if v.is_none() {
                c.error(
                    t.span(),
                    format!("{key}.{name}"),
                    "missing: tls needs cert and key (or reject_handshake = true)",
                );
            }
        }
    }
    let verify_client = match &r.verify_client {
        None => VerifyClient::Off,
        Some(v) => match v.get_ref().as_str() {
            "off" => VerifyClient::Off,
            "on" => VerifyClient::On,
            "optional" => VerifyClient::Optional,
            other => {
                c.error(
                    v.span(),
                    format!("{key}.verify_client"),
                    format!("{other:?} is not \"on\", \"optional\" or \"off\""),
                );
                VerifyClient::Off
            }
        },
    };
    match (&r.client_ca, verify_client, &r.verify_client) {
        (None, VerifyClient::On | VerifyClient::Optional, Some(v)) => c.error(
            v.span(),
            format!("{key}.verify_client"),
            "needs client_ca: the CA certificates that client certificates must chain to",
        ),
        (Some(ca), VerifyClient::Off, _) => c.error(
            ca.span(),
            format!("{key}.client_ca"),
            "has no effect without verify_client = \"on\" or \"optional\"",
        ),
        _ => {}
    }
    let mut protocols = Vec::new();
    match &r.protocols {
        None => protocols = vec![TlsVersion::V1_2, TlsVersion::V1_3],
        Some(list) => {
            if list.get_ref().is_empty() {
                c.error(
                    list.span(),
                    format!("{key}.protocols"),
                    "needs at least one protocol",
                );
            }
            for (j, p) in list.get_ref().iter().enumerate() {
                let v = match p.get_ref().as_str() {
                    "TLSv1.2" => TlsVersion::V1_2,
                    "TLSv1.3" => TlsVersion::V1_3,
                    other => {
                        c.error(
                            p.span(),
                            format!("{key}.protocols[{j}]"),
                            format!(
                                "{other:?} is not supported (known: {})",
                                TLS_PROTOCOLS.map(|p| format!("{p:?}")).join(", ")
                            ),
                        );
                        continue;
                    }
                };
                if !protocols.contains(&v) {
                    protocols.push(v);
                }
            }
        }
    }
    let ciphers = r.ciphers.as_ref().map(|list| {
        let known: Vec<&'static str> = crate::tls::provider()
            .cipher_suites
            .iter()
            .filter_map(|s| s.suite().as_str())
            .collect();
        if list.get_ref().is_empty() {
            c.error(
                list.span(),
                format!("{key}.ciphers"),
                "needs at least one cipher suite",
            );
        }
        let mut names = Vec::new();
        for (j, n) in list.get_ref().iter().enumerate() {
            if known.contains(&n.get_ref().as_str()) {
                names.push(n.get_ref().clone());
            } else {
                c.error(
                    n.span(),
                    format!("{key}.ciphers[{j}]"),
                    format!(
                        "unknown cipher suite {:?} (known: {})",
                        n.get_ref(),
                        known.join(", ")
                    ),
                );
            }
        }
        names
    });
    // Relative paths are taken from the config file's directory, as for
    // upstream TLS files (and as nginx takes them from its prefix).
    let mut tls = Tls {
        cert: r
            .cert
            .as_ref()
            .map(|v| c.config_path(v.get_ref()))
            .unwrap_or_default(),
        key: r
            .key
            .as_ref()
            .map(|v| c.config_path(v.get_ref()))
            .unwrap_or_default(),
        client_ca: r.client_ca.as_ref().map(|v| c.config_path(v.get_ref())),
        verify_client,
        protocols,
        ciphers,
        reject_handshake,
        material: None,
    };
    if c.errors.len() > before {
        return None;
    }
    if reject_handshake {
        return Some(tls);
    }
    // The files are read now, so --check reports what a start would fail on.
    let (Some(cert), Some(k)) = (&r.cert, &r.key) else {
        return None;
    };
    match crate::tls::server::load_material(&tls.cert, &tls.key, tls.client_ca.as_deref()) {
        Ok(m) => {
            if let Err(e) = crate::tls::server::server_config(&tls, &m, index as u64, false) {
                let span = r.ciphers.as_ref().map_or(t.span(), |v| v.span());
                c.error(span, format!("{key}.ciphers"), e);
                return None;
            }
            tls.material = Some(std::sync::Arc::new(m));
            Some(tls)
        }
        Err((which, e)) => {
            use crate::tls::server::TlsFile;
            let (name, span) = match which {
                TlsFile::Cert => ("cert", cert.span()),
                TlsFile::Key => ("key", k.span()),
                TlsFile::ClientCa => ("client_ca", r.client_ca.as_ref().map_or(t.span(), |v| v.span())),
            };
            c.error(span, format!("{key}.{name}"), e);
            None
        }
    }
}

/// Renders the header value once: `max-age=N[; includeSubDomains][; preload]`.
pub(super) fn check_hsts(c: &mut Checker, h: &Spanned<RawHsts>, key: &str) -> Option<String> {
    let r = h.get_ref();
    let before = c.errors.len();
    let max_age = c.duration(
        &Some(r.max_age.clone()),
        &format!("{key}.max_age"),
        Duration::ZERO,
    );
    if c.errors.len() > before {
        return None;
    }
    let sub = r.include_subdomains.unwrap_or(false);
    let preload = r.preload.unwrap_or(false);
    // The preload list's own requirements (hstspreload.org).
    if preload && (!sub || max_age.as_secs() < 31_536_000) {
        c.error(
            h.span(),
            format!("{key}.preload"),
            "preload needs include_subdomains = true and a max_age of at least 365d",
        );
        return None;
    }
    let mut v = format!("max-age={}", max_age.as_secs());
    if sub {
        v.push_str("; includeSubDomains");
    }
    if preload {
        v.push_str("; preload");
    }
    Some(v)
}

/// Every block on one address must agree on TLS: the listener either runs
/// a handshake first or it does not.
pub(super) fn check_tls_addresses(c: &mut Checker, raw: &RawConfig, servers: &[Server]) {
    let mut first: HashMap<SocketAddr, (usize, bool)> = HashMap::new();
    for (i, s) in servers.iter().enumerate() {
        let has_tls = raw.server[i].get_ref().tls.is_some();
        for (j, addr) in s.listen.iter().enumerate() {
            match first.get(addr) {
                None => {
                    first.insert(*addr, (i, has_tls));
                }
                Some(&(other, tls)) if tls != has_tls => {
                    let span = raw.server[i].get_ref().listen.get_ref()[j].span();
                    let (with, without) = if tls { (other, i) } else { (i, other) };
                    c.error(
                        span,
                        format!("server[{i}].listen[{j}]"),
                        format!(
                            "{addr} mixes TLS and plain HTTP: server[{with}] has tls and server[{without}] does not; every block on one address needs tls, or none"
                        ),
                    );
                }
                Some(_) => {}
            }
        }
    }
}
