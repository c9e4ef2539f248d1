//! The one mapping table: every nginx directive the importer knows, where it
//! may stand, and what it becomes. A directive not listed here is warned
//! about as unknown; one listed as `Warn` is known and warned about with the
//! reason given. The README's "Coming from nginx" table is made from this.

/// Where a directive may be written in nginx.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ctx {
    Main,
    Events,
    Http,
    Server,
    Location,
    Upstream,
}

use Ctx::*;

/// What becomes of a directive.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// Translated to the ringway key described.
    Key,
    /// ringway does this itself: written as a comment on its block.
    Note,
    /// Not translated, for the reason given: always a warning.
    Warn,
}

#[derive(Debug)]
pub struct Entry {
    pub name: &'static str,
    pub ctx: &'static [Ctx],
    pub kind: Kind,
    /// The ringway key (for `Key`) or the reason (for `Note` and `Warn`).
    pub ringway: &'static str,
}

const HSL: &[Ctx] = &[Http, Server, Location];
const HS: &[Ctx] = &[Http, Server];
const SL: &[Ctx] = &[Server, Location];

macro_rules! e {
    ($n:expr, $c:expr, $k:ident, $r:expr) => {
        Entry {
            name: $n,
            ctx: $c,
            kind: Kind::$k,
            ringway: $r,
        }
    };
}

pub const TABLE: &[Entry] = &[
    e!("http", &[Main], Key, "the `[[server]]` blocks it holds"),
    e!("events", &[Main], Key, "its directives"),
    e!("server", &[Http], Key, "`[[server]]` (one per TLS/plain address set)"),
    e!("location", SL, Key, "`[[server.location]]`: `path`, `exact` (`=`), `regex` (`~`, `~*` as `(?i)`), `path` + `skip_regex` (`^~`), `name` (`@x`)"),
    e!("upstream", &[Http], Key, "`[[upstream]]`"),
    e!("server", &[Upstream], Key, "`servers` (`weight`, `backup`, `max_fails`, `fail_timeout`; `down` left out)"),
    e!("keepalive", &[Upstream], Key, "`keepalive` (without it: `keepalive = 0`, as nginx keeps none)"),
    e!("keepalive_timeout", &[Upstream], Key, "`keepalive_timeout`"),
    e!("zone", &[Upstream], Note, "ringway keeps balancing and health state per worker"),
    e!("least_conn", &[Upstream], Key, "`balance = \"least_conn\"`"),
    e!("ip_hash", &[Upstream], Key, "`balance = \"ip_hash\"`"),
    e!("hash", &[Upstream], Key, "`hash` (`consistent` only; without it a warning)"),
    e!("random", &[Upstream], Key, "`balance = \"random_two\"` (`random two` only)"),
    e!("listen", &[Server], Key, "`listen`; `ssl` → `tls`, `http2` → `http2` (`h2c` without TLS), `default_server` → first block of the address"),
    e!("http2", &[Server], Key, "`http2` on TLS addresses, `h2c` on plain ones (nginx 1.25's `http2 on`)"),
    e!("server_name", &[Server], Key, "`server_name` (`_` dropped, `.a.com` → `a.com`, `*.a.com`)"),
    e!("proxy_pass", &[Location], Key, "`proxy_pass` (an `[[upstream]]` for each target)"),
    e!("proxy_set_header", HSL, Key, "`request_headers.set`/`remove`; `Host` → `preserve_host`"),
    e!("proxy_hide_header", HSL, Key, "`response_headers.remove`"),
    e!("add_header", HSL, Key, "`response_headers.add` (`always` → `always = true`)"),
    e!("proxy_connect_timeout", HSL, Key, "upstream `connect_timeout` (default 60s)"),
    e!("proxy_read_timeout", HSL, Key, "upstream `read_timeout`"),
    e!("proxy_send_timeout", HSL, Key, "upstream `send_timeout`"),
    e!("proxy_next_upstream", HSL, Key, "upstream `next_upstream` (default `[\"error\", \"timeout\"]`)"),
    e!("proxy_next_upstream_tries", HSL, Key, "upstream `tries` (0: every server)"),
    e!("proxy_next_upstream_timeout", HSL, Key, "upstream `tries_timeout`"),
    e!("proxy_http_version", HSL, Key, "nothing: ringway speaks HTTP/1.1 upstream (`1.0` warns)"),
    e!("proxy_redirect", HSL, Key, "nothing for `default`; other forms warn"),
    e!("proxy_ssl_verify", HSL, Key, "upstream `tls_verify` (default off, as nginx)"),
    e!("proxy_ssl_trusted_certificate", HSL, Key, "upstream `tls_ca`"),
    e!("proxy_ssl_name", HSL, Key, "upstream `tls_server_name`"),
    e!("proxy_ssl_server_name", HSL, Key, "nothing: ringway sends SNI"),
    e!("proxy_ssl_certificate", HSL, Key, "upstream `tls_cert`"),
    e!("proxy_ssl_certificate_key", HSL, Key, "upstream `tls_key`"),
    e!("return", SL, Key, "location `return`; in a server block a redirect is a server `rewrite`, another answer a location `/`"),
    e!("absolute_redirect", HSL, Key, "redirects to a path written as `$scheme://$host[:$server_port]/path` (on, the default) or kept relative (off)"),
    e!("port_in_redirect", HSL, Key, "the `:$server_port` of absolute redirects"),
    e!("server_name_in_redirect", HSL, Key, "the host of absolute redirects: the block's first name when on"),
    e!("rewrite", SL, Key, "`rewrite = [{ from, to, flag }]`"),
    e!("root", HSL, Key, "location `root`"),
    e!("alias", &[Location], Key, "location `alias`"),
    e!("index", HSL, Key, "location `index`"),
    e!("try_files", &[Location], Key, "location `try_files`"),
    e!("error_page", HSL, Key, "`error_pages` (`=code` warns)"),
    e!("gzip", HSL, Key, "`compress = { algorithms = [\"gzip\"], ... }`"),
    e!("gzip_types", HSL, Key, "`compress.types` (`text/html` always in)"),
    e!("gzip_min_length", HSL, Key, "`compress.min_length` (default 20)"),
    e!("gzip_comp_level", HSL, Key, "`compress.level.gzip` (default 1)"),
    e!("gzip_vary", HSL, Key, "nothing: ringway always sends `Vary: Accept-Encoding`"),
    e!("gzip_proxied", HSL, Key, "nothing for `any`; other values are a comment (ringway compresses as `any`)"),
    e!("gzip_http_version", HSL, Note, "ringway compresses for HTTP/1.0 clients too"),
    e!("gzip_buffers", HSL, Note, "ringway streams each read"),
    e!("gzip_disable", HSL, Warn, "ringway has no per-client exception"),
    e!("client_max_body_size", HSL, Key, "`client_max_body_size` (default 1m, as nginx)"),
    e!("client_header_timeout", HS, Key, "`client_header_timeout`"),
    e!("client_body_timeout", HSL, Key, "`client_body_timeout`"),
    e!("keepalive_timeout", HSL, Key, "`keepalive_timeout` (a second argument warns)"),
    e!("keepalive_requests", HSL, Key, "`keepalive_requests`"),
    e!("send_timeout", HSL, Key, "`send_timeout`"),
    e!("allow", HSL, Key, "`allow`, or `access = [...]` in nginx's order where mixed"),
    e!("deny", HSL, Key, "`deny`, or `access = [...]`"),
    e!("auth_basic", HSL, Key, "`auth = { basic = { realm } }`; `off` → `auth = { off = true }`"),
    e!("auth_basic_user_file", HSL, Key, "`auth.basic.users_file`"),
    e!("limit_req_zone", &[Http], Key, "`[[limit]]` with `rate`"),
    e!("limit_req", HSL, Key, "`limits`, and `burst`/`delay`/`nodelay` on the `[[limit]]`"),
    e!("limit_req_status", HSL, Key, "`[[limit]] status` (default 503, as nginx)"),
    e!("limit_conn_zone", &[Http], Key, "`[[limit]]` with `connections`"),
    e!("limit_conn", HSL, Key, "`limits`, and `connections` on the `[[limit]]`"),
    e!("limit_conn_status", HSL, Key, "`[[limit]] status`"),
    e!("ssl_certificate", HS, Key, "`tls.cert`"),
    e!("ssl_certificate_key", HS, Key, "`tls.key`"),
    e!("ssl_protocols", HS, Key, "`tls.protocols` (`TLSv1`, `TLSv1.1` refused on purpose: a warning)"),
    e!("ssl_ciphers", HS, Warn, "OpenSSL cipher strings do not name rustls's suites; ringway's default set is used"),
    e!("ssl_prefer_server_ciphers", HS, Note, "ringway always uses the server's order"),
    e!("ssl_session_cache", HS, Note, "ringway resumes sessions by tickets and a per-worker cache"),
    e!("ssl_session_timeout", HS, Note, "ringway's tickets live one to two hours"),
    e!("ssl_session_tickets", HS, Note, "ringway issues tickets"),
    e!("access_log", HSL, Key, "server `access_log` (`off`, a path, a `log_format`)"),
    e!("log_format", &[Http], Key, "`[log_format.NAME]`"),
    e!("error_log", &[Main, Http, Server], Note, "ringway logs diagnostics on stderr (`log_level`)"),
    e!("worker_processes", &[Main], Key, "`global.workers`"),
    e!("worker_connections", &[Events], Key, "`global.max_connections`"),
    e!("user", &[Main], Key, "`global.user` (and `group`)"),
    e!("pid", &[Main], Key, "`global.pid_file`"),
    e!("default_type", HSL, Key, "location `default_type`"),
    e!("types", HSL, Key, "nothing for `mime.types`: ringway's built-in table; other `types` warn"),
    e!("expires", HSL, Key, "location `expires`"),
    e!("proxy_cache_path", &[Http], Key, "`[[cache]]` (`memory` from `max_size`, a memory store)"),
    e!("proxy_cache", HSL, Key, "location `cache.zone`"),
    e!("proxy_cache_key", HSL, Key, "`cache.key`"),
    e!("proxy_cache_valid", HSL, Key, "`cache.valid`"),
    e!("proxy_cache_bypass", HSL, Key, "`cache.bypass`"),
    e!("proxy_cache_use_stale", HSL, Key, "`cache.use_stale`"),
    e!("proxy_cache_lock", HSL, Key, "`cache.lock`"),
    e!("proxy_cache_lock_timeout", HSL, Key, "`cache.lock_timeout`"),
    e!("proxy_cache_min_uses", HSL, Key, "`cache.min_uses`"),
    e!("proxy_cache_background_update", HSL, Key, "`cache.background_update`"),
    e!("proxy_cache_revalidate", HSL, Note, "ringway always revalidates stale entries"),
    e!("set_real_ip_from", HSL, Key, "`global.trusted_proxies`"),
    e!("real_ip_header", HSL, Key, "nothing for `X-Forwarded-For`; others warn"),
    e!("real_ip_recursive", HSL, Key, "nothing for `on`; ringway always walks the list"),
    e!("sendfile", HSL, Note, "ringway reads files with io_uring"),
    e!("tcp_nopush", HSL, Note, "no ringway setting"),
    e!("tcp_nodelay", HSL, Note, "ringway sets TCP_NODELAY"),
    e!("types_hash_max_size", &[Http], Note, "no ringway setting"),
    e!("server_names_hash_bucket_size", &[Http], Note, "no ringway setting"),
    e!("multi_accept", &[Events], Note, "no ringway setting"),
    e!("use", &[Events], Note, "ringway picks io_uring or epoll itself"),
    e!("proxy_buffering", HSL, Note, "ringway streams responses"),
    e!("proxy_request_buffering", HSL, Note, "ringway streams request bodies"),
    e!("proxy_buffers", HSL, Note, "ringway streams responses"),
    e!("proxy_buffer_size", HSL, Note, "ringway's head limit is 64 KiB"),
    e!("if", SL, Warn, "`if` has no ringway equivalent"),
    e!("set", SL, Warn, "ringway has no user variables"),
    e!("map", &[Http], Warn, "`map` has no general ringway equivalent"),
    e!("load_module", &[Main], Warn, "ringway has no dynamic modules"),
    e!("limit_except", &[Location], Warn, "no ringway equivalent"),
    e!("fastcgi_pass", &[Location], Warn, "ringway speaks HTTP only"),
    e!("uwsgi_pass", &[Location], Warn, "ringway speaks HTTP only"),
    e!("grpc_pass", &[Location], Warn, "not translated: write an `[[upstream]]` with `protocol = \"h2\"`"),
    e!("proxy_protocol", &[Server], Warn, "PROXY protocol is not supported yet"),
];

/// The entry for `name` written in `ctx`, or the reason there is none.
pub fn lookup(name: &str, ctx: Ctx) -> Result<&'static Entry, String> {
    let mut seen = false;
    for e in TABLE.iter().filter(|e| e.name == name) {
        seen = true;
        if e.ctx.contains(&ctx) {
            return Ok(e);
        }
    }
    if name.contains("_by_lua") || name.starts_with("lua_") {
        return Err("a Lua directive: ringway runs no Lua".into());
    }
    if seen {
        Err(format!("\"{name}\" is not translated in this context"))
    } else {
        Err(format!("unknown or unsupported directive \"{name}\""))
    }
}

/// The table as Markdown rows, for the README.
pub fn markdown() -> String {
    let mut out = String::from("| nginx | ringway |\n| --- | --- |\n");
    let mut done = std::collections::HashSet::new();
    for e in TABLE {
        let ctx = if e.ctx == [Upstream] { " (upstream)" } else { "" };
        if !done.insert((e.name, ctx)) {
            continue;
        }
        let what = match e.kind {
            Kind::Key => e.ringway.to_string(),
            Kind::Note => format!("comment: {}", e.ringway),
            Kind::Warn => format!("warning: {}", e.ringway),
        };
        out.push_str(&format!("| `{}`{ctx} | {} |\n", e.name, what.replace('|', "\\|")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's table is this table: regenerate it with
    /// `RINGWAY_WRITE_README=1 cargo test --lib readme_table` when it changes.
    #[test]
    fn readme_table_is_the_mapping_table() {
        const BEGIN: &str = "<!-- import-nginx table begin -->\n";
        const END: &str = "<!-- import-nginx table end -->";
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let readme = std::fs::read_to_string(path).unwrap();
        let start = readme.find(BEGIN).expect("README has the table's begin marker") + BEGIN.len();
        let end = readme.find(END).expect("README has the table's end marker");
        let want = markdown();
        if std::env::var_os("RINGWAY_WRITE_README").is_some() {
            let new = format!("{}{want}{}", &readme[..start], &readme[end..]);
            std::fs::write(path, new).unwrap();
            return;
        }
        assert!(
            readme[start..end] == want,
            "README.md's import-nginx table differs from src/import/table.rs; \
             run RINGWAY_WRITE_README=1 cargo test --lib readme_table"
        );
    }

    #[test]
    fn lookup_by_context() {
        assert_eq!(lookup("server", Ctx::Upstream).unwrap().ringway, TABLE[5].ringway);
        assert!(lookup("proxy_pass", Ctx::Server)
            .unwrap_err()
            .contains("not translated in this context"));
        assert!(lookup("content_by_lua_block", Ctx::Location)
            .unwrap_err()
            .contains("Lua"));
        assert!(lookup("nope", Ctx::Http).unwrap_err().contains("unknown"));
    }
}
