//! The TLS keys toward upstreams: `tls`, `tls_verify`, `tls_ca`,
//! `tls_server_name`, `tls_cert` and `tls_key` on an `[[upstream]]`, and the
//! same keys prefixed `proxy_` on a location whose `proxy_pass` is an
//! `https://` address (its implicit upstream has no table of its own).
//!
//! Certificates and keys are read here, at load, and the rustls client
//! config is built here, so that a bad file or key is a config error and a
//! worker never reads a file. Relative paths are taken from the directory of
//! the config file, as nginx takes them from its configuration prefix.

use std::ops::Range;
use std::path::PathBuf;

use rustls::RootCertStore;

use super::*;
use crate::config::{TlsSpec, UpstreamTls};
use crate::tls::{self, client};

/// `tls_server_name = "$host"`: the request's host name, as nginx's
/// `proxy_ssl_name $host`.
const HOST_VARIABLE: &str = "$host";

/// The TLS keys of an upstream (`tls_*`) or a location (`proxy_tls_*`).
pub(super) struct TlsKeys<'a> {
    prefix: &'static str,
    verify: Option<&'a Spanned<bool>>,
    ca: Option<&'a Spanned<String>>,
    server_name: Option<&'a Spanned<String>>,
    cert: Option<&'a Spanned<String>>,
    key: Option<&'a Spanned<String>>,
}

impl TlsKeys<'_> {
    pub(super) fn upstream(u: &RawUpstream) -> TlsKeys<'_> {
        TlsKeys {
            prefix: "tls_",
            verify: u.tls_verify.as_ref(),
            ca: u.tls_ca.as_ref(),
            server_name: u.tls_server_name.as_ref(),
            cert: u.tls_cert.as_ref(),
            key: u.tls_key.as_ref(),
        }
    }

    pub(super) fn location(l: &RawLocation) -> TlsKeys<'_> {
        TlsKeys {
            prefix: "proxy_tls_",
            verify: l.proxy_tls_verify.as_ref(),
            ca: l.proxy_tls_ca.as_ref(),
            server_name: l.proxy_tls_server_name.as_ref(),
            cert: l.proxy_tls_cert.as_ref(),
            key: l.proxy_tls_key.as_ref(),
        }
    }

    /// The keys written, with where.
    fn written(&self) -> Vec<(&'static str, Range<usize>)> {
        let strings = [
            ("ca", self.ca),
            ("server_name", self.server_name),
            ("cert", self.cert),
            ("key", self.key),
        ];
        let mut out: Vec<_> = self.verify.map(|v| ("verify", v.span())).into_iter().collect();
        out.extend(strings.iter().filter_map(|(n, v)| v.map(|v| (*n, v.span()))));
        out
    }
}

/// Reports every TLS key written where no TLS is spoken; true when there is none.
pub(super) fn refuse_unused(c: &mut Checker, keys: &TlsKeys, key: &str, needs: &str) -> bool {
    let written = keys.written();
    for (name, span) in &written {
        c.error(
            span.clone(),
            format!("{key}.{}{name}", keys.prefix),
            format!("applies only with {needs}"),
        );
    }
    written.is_empty()
}

/// What to say about a `proxy_pass` that is neither `http://` nor `https://`.
pub(super) fn bad_scheme(v: &str) -> String {
    let Some((scheme, _)) = v.split_once("://") else {
        return "must start with http:// or https:// (\"http://app/\", \"https://127.0.0.1:8443\")"
            .to_string();
    };
    let lower = scheme.to_ascii_lowercase();
    let near = ["http", "https"]
        .into_iter()
        .map(|k| (strsim::levenshtein(&lower, k), k))
        .filter(|(d, _)| *d <= 2)
        .min();
    match near {
        Some((_, k)) => {
            format!("unknown scheme {scheme:?}; did you mean {k}://? (proxy_pass takes http:// or https://)")
        }
        None => format!("unknown scheme {scheme:?} (proxy_pass takes http:// or https://)"),
    }
}

/// `proxy_pass = "https://host[:port]"` naming no upstream: an upstream of
/// one server with the location's `proxy_tls_*` settings. Locations naming
/// the same address with the same settings share it, and so its pool.
pub(super) fn implicit_https(
    c: &mut Checker,
    p: &Spanned<String>,
    key: &str,
    authority: &str,
    path: Option<String>,
    keys: &TlsKeys,
    upstreams: &mut Vec<Upstream>,
) -> Option<ProxyPass> {
    // `https://host` is port 443, as anywhere else.
    let has_port = match authority.strip_prefix('[') {
        Some(v6) => v6.contains("]:"),
        None => authority.contains(':'),
    };
    let with_port = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:443")
    };
    let addr = match resolve(&with_port) {
        Ok(addr) => addr,
        Err(e) if has_port => {
            c.error(p.span(), key, e);
            return None;
        }
        Err(e) => {
            c.error(
                p.span(),
                key,
                format!(
                    "no upstream named {authority:?} ({}), and as a host name: {e}",
                    defined_upstreams(upstreams)
                ),
            );
            return None;
        }
    };
    let location_key = key.trim_end_matches(".proxy_pass");
    let peer = Peer::new(authority.to_string(), addr);
    let tls = check(c, keys, location_key, std::slice::from_ref(&peer), p.span())?;
    let shared = upstreams.iter().position(|u| {
        u.implicit && u.name == authority && u.tls.as_ref().is_some_and(|t| t.spec == tls.spec)
    });
    let upstream = shared.unwrap_or_else(|| {
        upstreams.push(Upstream {
            tls: Some(tls),
            ..upstream_defaults(authority.to_string(), vec![peer], true)
        });
        upstreams.len() - 1
    });
    Some(ProxyPass {
        upstream,
        path,
        preserve_host: true,
        split: Vec::new(),
        split_by: None,
        uri: None,
    })
}

impl Checker<'_> {
    /// A path as written, relative to the config file's directory.
    pub(super) fn config_path(&self, v: &str) -> PathBuf {
        let p = Path::new(v.trim());
        match Path::new(&self.file).parent() {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p.to_path_buf(),
        }
    }

    fn system_roots(&mut self) -> Result<Arc<RootCertStore>, String> {
        self.system_roots
            .get_or_insert_with(|| client::system_roots().map(Arc::new))
            .clone()
    }
}

/// Checks the TLS keys of an upstream (or of an `https://` location, `key`
/// naming it) whose `servers` are known, and loads what they name. `anchor`
/// is where to point at for errors about no key in particular.
pub(super) fn check(
    c: &mut Checker,
    keys: &TlsKeys,
    key: &str,
    servers: &[Peer],
    anchor: Range<usize>,
) -> Option<UpstreamTls> {
    let prefix = keys.prefix;
    let name = |n: &str| format!("{key}.{prefix}{n}");
    let mut ok = true;
    let verify = keys.verify.is_none_or(|v| *v.get_ref());

    let ca = keys.ca.map(|v| (v, c.config_path(v.get_ref())));
    if let (false, Some((v, _))) = (verify, &ca) {
        c.error(
            v.span(),
            name("ca"),
            format!("has no effect with {prefix}verify = false: remove one of them"),
        );
        ok = false;
    }

    let from_host = keys
        .server_name
        .is_some_and(|v| v.get_ref().trim() == HOST_VARIABLE);
    let configured = match keys.server_name {
        None => None,
        Some(_) if from_host => None,
        Some(v) if v.get_ref().trim().starts_with('$') => {
            c.error(
                v.span(),
                name("server_name"),
                format!(
                    "unknown variable {:?} (the only one is \"{HOST_VARIABLE}\")",
                    v.get_ref().trim()
                ),
            );
            ok = false;
            None
        }
        Some(v) => match client::parse_server_name(v.get_ref().trim()) {
            Ok(n) => Some(n),
            Err(e) => {
                c.error(v.span(), name("server_name"), e);
                ok = false;
                None
            }
        },
    };
    let mut names = Vec::with_capacity(servers.len());
    for s in servers {
        match configured
            .clone()
            .map_or_else(|| client::default_server_name(&s.authority), Ok)
        {
            Ok(n) => names.push(n),
            Err(e) => {
                c.error(
                    anchor.clone(),
                    name("server_name"),
                    format!("server {}: {e}; set {prefix}server_name", s.authority),
                );
                ok = false;
            }
        }
    }

    let client_cert = match (keys.cert, keys.key) {
        (None, None) => None,
        (Some(cv), Some(kv)) => {
            let (cert_path, key_path) = (c.config_path(cv.get_ref()), c.config_path(kv.get_ref()));
            let chain = tls::check_pem_file(&cert_path)
                .and_then(|_| tls::read_certs(&cert_path))
                .map_err(|e| c.error(cv.span(), name("cert"), e));
            let pkey = tls::check_pem_file(&key_path)
                .and_then(|_| tls::read_key(&key_path))
                .map_err(|e| c.error(kv.span(), name("key"), e));
            match (chain, pkey) {
                (Ok(chain), Ok(pkey)) => Some((cert_path, key_path, chain, pkey)),
                _ => {
                    ok = false;
                    None
                }
            }
        }
        (Some(v), None) => {
            c.error(v.span(), name("cert"), format!("needs {prefix}key as well"));
            ok = false;
            None
        }
        (None, Some(v)) => {
            c.error(v.span(), name("key"), format!("needs {prefix}cert as well"));
            ok = false;
            None
        }
    };

    let roots = match (verify, &ca) {
        (false, _) => None,
        (true, Some((v, path))) => match tls::check_pem_file(path).and_then(|_| tls::read_roots(path)) {
            Ok(roots) => Some(Arc::new(roots)),
            Err(e) => {
                c.error(v.span(), name("ca"), e);
                ok = false;
                None
            }
        },
        (true, None) => match c.system_roots() {
            Ok(roots) => Some(roots),
            Err(e) => {
                c.error(anchor.clone(), name("ca"), format!("{e}, with {prefix}ca"));
                ok = false;
                None
            }
        },
    };
    if !ok {
        return None;
    }

    let (cert_paths, auth) = match client_cert {
        Some((cp, kp, chain, pkey)) => (Some((cp, kp)), Some((chain, pkey))),
        None => (None, None),
    };
    let client = match client::client_config(roots, auth) {
        Ok(cfg) => cfg,
        Err(e) => {
            let span = keys.key.map_or(anchor, |k| k.span());
            c.error(span, name("key"), e);
            return None;
        }
    };
    Some(UpstreamTls {
        spec: TlsSpec {
            verify,
            ca: ca.map(|(_, p)| p),
            server_name: keys.server_name.map(|v| v.get_ref().trim().to_string()),
            client_cert: cert_paths,
        },
        names,
        name_from_host: from_host,
        client: Arc::new(client),
    })
}
