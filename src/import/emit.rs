//! Keys of a server block or location made from what nginx applies there:
//! headers, compression, limits, IP rules, Basic auth, error pages, body
//! size, TLS, the cache, and the definitions they name (zones, formats).

use toml_edit::{Array, InlineTable, Item, Table, Value};

use super::parse::Directive;
use super::translate::{Cx, Eff};
use super::values;
use super::vars::{self, Place};

/// ringway's own forwarding fields, which nginx does not send unless asked.
const FORWARDING: &[&str] = &[
    "X-Real-IP",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
    "X-Forwarded-Port",
    "X-Request-ID",
];

/// The comment each server block carries about what ringway adds.
pub fn forwarding_comment(strict: bool) -> String {
    if strict {
        "# --strict-nginx: ringway's X-Real-IP, X-Forwarded-Proto/Host/Port and X-Request-ID are removed\n\
         # (a client's own fields of those names go too); X-Forwarded-For still gets the peer appended\n\
         # and upstream Location fields are still rewritten: ringway has no key to turn those off\n"
            .to_string()
    } else {
        "# ringway adds what nginx sends only when asked: X-Forwarded-For (peer appended), X-Real-IP,\n\
         # X-Forwarded-Proto/Host/Port, X-Request-ID, and rewrites upstream Location fields\n\
         # (--strict-nginx removes the fields it has a key for)\n"
            .to_string()
    }
}

fn last<'b>(eff: &Eff<'b>, k: &str) -> Option<&'b Directive> {
    eff.get(k).and_then(|v| v.last().copied())
}

fn arg<'b>(eff: &Eff<'b>, k: &str) -> Option<&'b str> {
    last(eff, k).and_then(|d| d.args.first().map(String::as_str))
}

/// Whether the location's own body writes any of `names`.
fn own(body: &[Directive], names: &[&str]) -> bool {
    body.iter().any(|d| names.contains(&d.name.as_str()))
}

impl<'a> Cx<'a> {
    /// Keys of a server block (its locations inherit them in ringway too).
    pub(super) fn server_keys(&mut self, eff: &Eff<'a>, t: &mut Table, notes: &mut Vec<String>) {
        for (k, what) in [
            ("client_header_timeout", "t"),
            ("client_body_timeout", "t"),
            ("send_timeout", "t"),
            ("keepalive_requests", "n"),
        ] {
            if let Some(d) = last(eff, k) {
                let a = d.args.first().map(String::as_str).unwrap_or("");
                match (what, values::duration(a), a.parse::<i64>()) {
                    ("t", Some(v), _) => {
                        t.insert(k, toml_edit::value(v));
                    }
                    ("n", _, Ok(n)) => {
                        t.insert(k, toml_edit::value(n));
                    }
                    _ => self.warn(d, format!("bad value {a:?}")),
                }
            }
        }
        if let Some(d) = last(eff, "keepalive_timeout") {
            match d.args.first().and_then(|a| values::duration(a)) {
                Some(v) => {
                    t.insert("keepalive_timeout", toml_edit::value(v));
                }
                None => self.warn(d, "bad time"),
            }
            if d.args.len() > 1 {
                self.warn(
                    d,
                    "the Keep-Alive header time (second argument) is not sent by ringway",
                );
            }
        }
        match last(eff, "client_max_body_size") {
            None => {
                t.insert("client_max_body_size", toml_edit::value("1m"));
            }
            Some(d) => self.body_size(d, t),
        }
        self.access_log(eff, t, notes);
        self.request_headers(eff, t);
        self.response_headers(eff, t, notes);
        self.compress(eff, t, notes);
        self.limits(eff, t);
        self.ip_rules(eff, t);
        self.auth(eff, t, false);
        self.error_pages(eff, t);
    }

    /// Keys of a location: each group the location's own body writes is
    /// made from what applies there (nginx replaces inherited directives
    /// name by name; ringway replaces a table whole, so the table is made
    /// from the names inherited and written alike).
    pub(super) fn location_keys(
        &mut self,
        eff: &Eff<'a>,
        body: &'a [Directive],
        t: &mut Table,
        notes: &mut Vec<String>,
    ) {
        let proxied = t.contains_key("proxy_pass");
        if own(body, &["proxy_set_header"]) && proxied {
            self.request_headers(eff, t);
        }
        if own(body, &["add_header", "proxy_hide_header"]) {
            self.response_headers(eff, t, notes);
        }
        if own(
            body,
            &["gzip", "gzip_types", "gzip_min_length", "gzip_comp_level"],
        ) {
            self.compress(eff, t, notes);
            if !t.contains_key("compress") {
                t.insert("compress", toml_edit::value(false));
            }
        }
        if own(body, &["limit_req", "limit_conn"]) {
            self.limits(eff, t);
        }
        if own(body, &["allow", "deny"]) {
            self.ip_rules(eff, t);
        }
        if own(body, &["auth_basic", "auth_basic_user_file"]) {
            self.auth(eff, t, true);
        }
        if own(body, &["error_page"]) {
            self.error_pages(eff, t);
        }
        if let Some(d) = body.iter().rev().find(|d| d.name == "client_max_body_size") {
            self.body_size(d, t);
        }
        for d in body.iter().filter(|d| {
            matches!(
                d.name.as_str(),
                "access_log"
                    | "client_header_timeout"
                    | "keepalive_timeout"
                    | "keepalive_requests"
                    | "send_timeout"
                    | "client_body_timeout"
            )
        }) {
            self.warn(d, "ringway sets this per server block, not per location");
        }
        if proxied {
            self.cache(eff, t, notes);
            if let Some(e) = last(eff, "expires").filter(|e| e.args.first().is_some_and(|a| a != "off")) {
                self.warn(
                    e,
                    "on proxied responses: ringway's expires is for static files only",
                );
            }
        }
    }

    /// A `return` answers in nginx's rewrite phase, before limits, IP rules
    /// and auth ever run; ringway runs those before a location's content.
    /// So a returning location gets none of them, the server's cancelled.
    pub(super) fn answer_before_access(&mut self, eff: &Eff<'a>, t: &mut Table, notes: &mut Vec<String>) {
        let removed = ["limits", "allow", "deny", "access", "auth"]
            .iter()
            .filter(|k| t.remove(k).is_some())
            .count();
        let had = removed > 0;
        let mut cancelled = false;
        if eff.contains_key("limit_req") || eff.contains_key("limit_conn") {
            t.insert("limits", toml_edit::value(Array::new()));
            cancelled = true;
        }
        if eff.get("allow").is_some_and(|v| !v.is_empty()) {
            t.insert("allow", toml_edit::value(Array::new()));
            cancelled = true;
        }
        if arg(eff, "auth_basic").is_some_and(|r| r != "off") {
            let mut a = InlineTable::new();
            a.insert("off", true.into());
            t.insert("auth", toml_edit::value(a));
            cancelled = true;
        }
        if had || cancelled {
            notes.push(
                "return answers before nginx's limits, allow/deny and auth run: none of them here".into(),
            );
        }
    }

    fn body_size(&mut self, d: &Directive, t: &mut Table) {
        match d.args.first().map(String::as_str) {
            Some("0") => {
                t.remove("client_max_body_size");
            }
            Some(a) => match values::size(a) {
                Some(v) => {
                    t.insert("client_max_body_size", toml_edit::value(v));
                }
                None => self.warn(d, format!("bad size {a:?}")),
            },
            None => {}
        }
    }

    fn access_log(&mut self, eff: &Eff<'a>, t: &mut Table, notes: &mut Vec<String>) {
        let Some(all) = eff.get("access_log") else {
            match &self.opts.prefix {
                Some(p) => {
                    t.insert("access_log", toml_edit::value(p.join("logs/access.log").display().to_string()));
                }
                None => notes.push("access_log: none written; ringway logs to stdout (nginx: logs/access.log under its prefix)".into()),
            }
            return;
        };
        if all.len() > 1 {
            self.warn(
                all[1],
                "ringway writes one access log per server block; the first is kept",
            );
        }
        let d = all[0];
        let path = d.args.first().map(String::as_str).unwrap_or("off");
        if path == "off" {
            t.insert("access_log", toml_edit::value("off"));
            return;
        }
        if path.starts_with("syslog:") || path.starts_with("memory:") {
            return self.warn(d, "syslog and memory logs have no ringway form");
        }
        let file = if path == "/dev/stdout" {
            "stdout".to_string()
        } else {
            self.prefix_path(d, path)
        };
        for p in d.args.iter().skip(2) {
            self.warn(d, format!("parameter {p:?} is not translated"));
        }
        match d.args.get(1).map(String::as_str) {
            None | Some("combined") => {
                t.insert("access_log", toml_edit::value(file));
            }
            Some(f) if self.log_formats.contains_key(f) => {
                let mut it = InlineTable::new();
                it.insert("path", file.into());
                it.insert("format", f.into());
                t.insert("access_log", toml_edit::value(it));
            }
            Some(f) => self.warn(d, format!("log_format {f:?} was not translated")),
        }
    }

    fn request_headers(&mut self, eff: &Eff<'a>, t: &mut Table) {
        let mut set = InlineTable::new();
        let mut remove = Array::new();
        let mut written = Vec::new();
        for d in eff.get("proxy_set_header").cloned().unwrap_or_default() {
            let (Some(name), Some(v)) = (d.args.first(), d.args.get(1)) else {
                self.warn(d, "expects a name and a value");
                continue;
            };
            let lower = name.to_ascii_lowercase();
            // What ringway does already, the same way.
            let same = matches!(
                (lower.as_str(), v.as_str()),
                ("host", _)
                    | ("x-forwarded-for", "$proxy_add_x_forwarded_for")
                    | ("x-real-ip", "$remote_addr")
                    | ("x-forwarded-proto", "$scheme")
                    | ("upgrade", "$http_upgrade")
                    | (
                        "connection",
                        "upgrade" | "$connection_upgrade" | "" | "close" | "keep-alive"
                    )
            );
            written.push(lower.clone());
            if same {
                continue;
            }
            if matches!(
                lower.as_str(),
                "connection" | "upgrade" | "keep-alive" | "te" | "transfer-encoding" | "content-length"
            ) {
                self.warn(d, "ringway owns this field");
                continue;
            }
            if v.is_empty() {
                remove.push(name.as_str());
                continue;
            }
            match self.map_vars(v) {
                Ok(m) => {
                    set.insert(name, m.into());
                }
                Err(why) => self.warn(d, why),
            }
        }
        if self.opts.strict_nginx {
            for f in FORWARDING {
                if !written.contains(&f.to_ascii_lowercase()) {
                    remove.push(*f);
                }
            }
        }
        let mut rh = InlineTable::new();
        if !set.is_empty() {
            rh.insert("set", Value::InlineTable(set));
        }
        if !remove.is_empty() {
            rh.insert("remove", Value::Array(remove));
        }
        if !rh.is_empty() {
            t.insert("request_headers", toml_edit::value(rh));
        }
    }

    fn response_headers(&mut self, eff: &Eff<'a>, t: &mut Table, notes: &mut Vec<String>) {
        let mut add = InlineTable::new();
        let mut remove = Array::new();
        let (mut always, mut plain) = (None::<&Directive>, None::<&Directive>);
        for d in eff.get("add_header").cloned().unwrap_or_default() {
            let (Some(name), Some(v)) = (d.args.first(), d.args.get(1)) else {
                self.warn(d, "expects a name and a value");
                continue;
            };
            match d.args.get(2).map(String::as_str) {
                Some("always") => always = Some(d),
                None => plain = Some(d),
                Some(o) => self.warn(d, format!("unknown parameter {o:?}")),
            }
            if v == "$upstream_cache_status" {
                // The cache's status field, written on the location's cache.
                notes.push(format!(
                    "add_header {name} $upstream_cache_status ({}): the cache's status_header",
                    d.at()
                ));
                continue;
            }
            if add.contains_key(name) {
                self.warn(d, "ringway adds one value per field name; the last is kept");
            }
            match self.map_vars(v) {
                Ok(m) => {
                    add.insert(name, m.into());
                }
                Err(why) => self.warn(d, why),
            }
        }
        if let (Some(a), Some(_)) = (always, plain) {
            self.warn(a, "ringway's always covers every added field of a block; here some are always and some not (always = true kept)");
        }
        for d in eff.get("proxy_hide_header").cloned().unwrap_or_default() {
            if let Some(n) = d.args.first() {
                remove.push(n.as_str());
            }
        }
        let mut rh = InlineTable::new();
        if !add.is_empty() {
            rh.insert("add", Value::InlineTable(add));
        }
        if !remove.is_empty() {
            rh.insert("remove", Value::Array(remove));
        }
        if always.is_some() {
            rh.insert("always", true.into());
        }
        if !rh.is_empty() {
            t.insert("response_headers", toml_edit::value(rh));
        }
    }

    /// `gzip on` and its companions, with nginx's defaults where unwritten.
    fn compress(&mut self, eff: &Eff<'a>, t: &mut Table, notes: &mut Vec<String>) {
        match arg(eff, "gzip") {
            Some("on") => {}
            Some(_) => {
                if t.contains_key("path")
                    || t.contains_key("regex")
                    || t.contains_key("exact")
                    || t.contains_key("name")
                {
                    t.insert("compress", toml_edit::value(false));
                }
                return;
            }
            None => return,
        }
        let mut c = InlineTable::new();
        c.insert("algorithms", Value::Array(Array::from_iter(["gzip"])));
        // text/html is always compressed, whatever gzip_types says.
        let mut types = vec!["text/html".to_string()];
        for d in eff.get("gzip_types").cloned().unwrap_or_default() {
            for ty in &d.args {
                if !types.contains(ty) {
                    types.push(ty.clone());
                }
            }
        }
        if types.iter().any(|t| t == "*") {
            types = vec!["*".into()];
        }
        c.insert("types", Value::Array(Array::from_iter(types)));
        let min = arg(eff, "gzip_min_length").unwrap_or("20");
        match values::size(min) {
            Some(v) => {
                c.insert("min_length", v.into());
            }
            None => self.warn(last(eff, "gzip_min_length").unwrap(), "bad size"),
        }
        let level = arg(eff, "gzip_comp_level")
            .and_then(|l| l.parse::<i64>().ok())
            .unwrap_or(1);
        let mut lv = InlineTable::new();
        lv.insert("gzip", level.into());
        c.insert("level", Value::InlineTable(lv));
        t.insert("compress", toml_edit::value(c));
        if arg(eff, "gzip_vary") != Some("on") {
            notes.push("gzip: ringway always adds Vary: Accept-Encoding to compressible responses (nginx's gzip_vary on)".into());
        }
        if arg(eff, "gzip_proxied") != Some("any") {
            notes.push(
                "gzip: ringway compresses responses to requests with Via too (nginx's gzip_proxied any)"
                    .into(),
            );
        }
        notes.push("gzip: ringway compresses every status, nginx only 200, 403 and 404".into());
    }

    fn limits(&mut self, eff: &Eff<'a>, t: &mut Table) {
        let mut names = Array::new();
        let status = arg(eff, "limit_req_status")
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(503);
        for d in eff.get("limit_req").cloned().unwrap_or_default() {
            let mut zone = None;
            let mut set: Vec<(&str, Value)> = vec![("status", status.into())];
            for a in &d.args {
                if let Some(z) = a.strip_prefix("zone=") {
                    zone = Some(z.to_string());
                } else if let Some(b) = a.strip_prefix("burst=") {
                    set.push(("burst", b.parse::<i64>().unwrap_or(0).into()));
                } else if let Some(b) = a.strip_prefix("delay=") {
                    set.push(("delay", b.parse::<i64>().unwrap_or(0).into()));
                } else if a == "nodelay" {
                    set.push(("nodelay", true.into()));
                } else {
                    self.warn(d, format!("parameter {a:?} is not translated"));
                }
            }
            if let Some(z) = zone {
                if self.use_limit(d, &z, "rate", set) {
                    names.push(z);
                }
            }
        }
        let cstatus = arg(eff, "limit_conn_status")
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(503);
        for d in eff.get("limit_conn").cloned().unwrap_or_default() {
            let (Some(z), Some(n)) = (d.args.first(), d.args.get(1).and_then(|n| n.parse::<i64>().ok()))
            else {
                self.warn(d, "expects a zone and a number");
                continue;
            };
            if self.use_limit(
                d,
                z,
                "key",
                vec![("connections", n.into()), ("status", cstatus.into())],
            ) {
                names.push(z.as_str());
            }
        }
        if !names.is_empty() {
            t.insert("limits", toml_edit::value(names));
        }
    }

    /// Puts a use's settings on the zone's `[[limit]]`; ringway keeps them
    /// per limit, so two uses that differ are a warning.
    fn use_limit(&mut self, d: &Directive, zone: &str, needs: &str, set: Vec<(&str, Value)>) -> bool {
        let Some((lt, used)) = self.limits.get_mut(zone) else {
            self.warn(d, format!("no zone {zone:?} defined"));
            return false;
        };
        if !lt.contains_key(needs) {
            self.warn(d, format!("zone {zone:?} is of the other kind"));
            return false;
        }
        let sig: String = set.iter().map(|(k, v)| format!("{k}={v};")).collect();
        match used {
            Some(s) if *s != sig => {
                let why = format!("zone {zone:?} is used with other settings elsewhere; ringway keeps burst, delay and connections per limit (the first use's kept)");
                self.warn(d, why);
            }
            Some(_) => {}
            None => {
                *used = Some(sig);
                for (k, v) in set {
                    lt.insert(k, toml_edit::value(v));
                }
            }
        }
        true
    }

    /// `limit_req_zone`/`limit_conn_zone`: a `[[limit]]`, written when used.
    pub(super) fn zone(&mut self, d: &Directive) {
        let Some(key) = d.args.first() else {
            return self.warn(d, "expects a key");
        };
        let key = match vars::map(key, Place::Request) {
            Ok(k) => k,
            Err(why) => return self.warn(d, why),
        };
        let mut t = Table::new();
        let mut name = None;
        for a in &d.args[1..] {
            if let Some(z) = a.strip_prefix("zone=") {
                name = z.split(':').next().map(str::to_string);
            } else if let Some(r) = a.strip_prefix("rate=") {
                t.insert("rate", toml_edit::value(r));
            } else if a != "sync" {
                self.warn(d, format!("parameter {a:?} is not translated"));
            }
        }
        let Some(name) = name else {
            return self.warn(d, "no zone=");
        };
        if d.name == "limit_req_zone" && !t.contains_key("rate") {
            return self.warn(d, "no rate=");
        }
        t.insert("name", toml_edit::value(name.as_str()));
        t.insert("key", toml_edit::value(key));
        t.sort_values_by(|a, _, b, _| (a.get() != "name").cmp(&(b.get() != "name")));
        t.decor_mut().set_prefix(format!("\n# from {}\n", d.at()));
        self.limits.insert(name, (t, None));
    }

    fn ip_rules(&mut self, eff: &Eff<'a>, t: &mut Table) {
        let rules = eff.get("allow").cloned().unwrap_or_default();
        let first_deny = rules.iter().position(|d| d.name == "deny").unwrap_or(rules.len());
        let ordered = rules[first_deny..].iter().any(|d| d.name == "allow");
        let (mut allow, mut deny, mut access) = (Array::new(), Array::new(), Array::new());
        for d in &rules {
            let Some(a) = d.args.first() else { continue };
            if a.starts_with("unix:") {
                self.warn(d, "UNIX socket clients have no ringway rule");
                continue;
            }
            if ordered {
                let mut e = InlineTable::new();
                e.insert(&d.name, a.as_str().into());
                access.push(Value::InlineTable(e));
            } else if d.name == "allow" {
                allow.push(a.as_str());
            } else {
                deny.push(a.as_str());
            }
        }
        if ordered {
            t.insert("access", toml_edit::value(access));
        } else if !rules.is_empty() {
            t.insert("allow", toml_edit::value(allow));
            t.insert("deny", toml_edit::value(deny));
        }
    }

    fn auth(&mut self, eff: &Eff<'a>, t: &mut Table, in_location: bool) {
        let Some(d) = last(eff, "auth_basic") else { return };
        let realm = d.args.first().cloned().unwrap_or_default();
        let mut a = InlineTable::new();
        if realm == "off" {
            if !in_location {
                return;
            }
            a.insert("off", true.into());
        } else {
            let Some(f) = last(eff, "auth_basic_user_file") else {
                return self.warn(d, "no auth_basic_user_file");
            };
            let mut b = InlineTable::new();
            b.insert("realm", realm.into());
            let path = self.conf_path(f.args.first().map_or("", String::as_str));
            b.insert("users_file", path.into());
            a.insert("basic", Value::InlineTable(b));
        }
        t.insert("auth", toml_edit::value(a));
    }

    fn error_pages(&mut self, eff: &Eff<'a>, t: &mut Table) {
        let mut pages = InlineTable::new();
        for d in eff.get("error_page").cloned().unwrap_or_default() {
            let Some((uri, codes)) = d.args.split_last() else {
                continue;
            };
            if codes.iter().any(|c| c.starts_with('=')) {
                self.warn(d, "an answer code (=code) has no ringway form");
                continue;
            }
            if uri.starts_with("http://") || uri.starts_with("https://") {
                self.warn(d, "an error page redirect has no ringway form");
                continue;
            }
            let uri = match self.map_vars(uri) {
                Ok(u) if !vars::has_vars(&u) => u,
                Ok(_) => {
                    self.warn(d, "an error page with variables has no ringway form");
                    continue;
                }
                Err(why) => {
                    self.warn(d, why);
                    continue;
                }
            };
            pages.insert(codes.join(" ").as_str(), uri.into());
        }
        if !pages.is_empty() {
            t.insert("error_pages", toml_edit::value(pages));
        }
    }

    /// `ssl_certificate*` and `ssl_protocols` as `tls`.
    pub(super) fn tls(&mut self, eff: &Eff<'a>, s: &Directive, t: &mut Table) {
        let mut tls = InlineTable::new();
        for (k, n) in [("cert", "ssl_certificate"), ("key", "ssl_certificate_key")] {
            let all = eff.get(n).cloned().unwrap_or_default();
            if all.len() > 1 {
                self.warn(
                    all[1],
                    "ringway serves one certificate per block; the first is kept",
                );
            }
            match all.first() {
                Some(d) => {
                    let p = self.conf_path(d.args.first().map_or("", String::as_str));
                    if p.contains('$') {
                        self.warn(d, "a certificate chosen by variables has no ringway form (ringway picks one per block by SNI)");
                    }
                    tls.insert(k, p.into());
                }
                None => self.warn(s, format!("a TLS listen without {n}")),
            }
        }
        if let Some(d) = last(eff, "ssl_protocols") {
            let mut keep = Array::new();
            for p in &d.args {
                match p.as_str() {
                    "TLSv1.2" | "TLSv1.3" => keep.push(p.as_str()),
                    "TLSv1" | "TLSv1.1" | "SSLv2" | "SSLv3" => self.warn(
                        d,
                        format!("{p} is refused by ringway on purpose (TLS 1.2 and 1.3 only)"),
                    ),
                    o => self.warn(d, format!("unknown protocol {o:?}")),
                }
            }
            if !keep.is_empty() {
                tls.insert("protocols", Value::Array(keep));
            }
        }
        t.insert("tls", toml_edit::value(tls));
    }

    /// A location "/" serving files where nginx would: no location takes
    /// the rest of the paths, so nginx serves them from the root.
    pub(super) fn fallback_location(
        &mut self,
        s: &Directive,
        eff: &Eff<'a>,
        locs: &mut toml_edit::ArrayOfTables,
    ) {
        let has_root = locs
            .iter()
            .any(|l| l.get("path").and_then(Item::as_str) == Some("/"));
        let body = s.block.as_deref().unwrap_or(&[]);
        let redirects = body.iter().any(|d| d.name == "return");
        if has_root || redirects {
            return;
        }
        let root = match last(eff, "root") {
            Some(r) => {
                let p = r.args.first().cloned().unwrap_or_default();
                self.prefix_path(r, &p)
            }
            None => match &self.opts.prefix {
                Some(p) => p.join("html").display().to_string(),
                None => {
                    return self.warn(s, "paths no location takes are served by nginx from html under its prefix; give --prefix or a root (no location \"/\" written)");
                }
            },
        };
        let mut t = Table::new();
        t.insert("path", toml_edit::value("/"));
        t.insert("root", toml_edit::value(root));
        if let Some(i) = last(eff, "index") {
            t.insert(
                "index",
                toml_edit::value(Array::from_iter(i.args.iter().map(String::as_str))),
            );
        }
        t.decor_mut().set_prefix(format!(
            "\n# nginx serves the paths no location of {} takes from its root\n",
            s.at()
        ));
        locs.push(t);
    }
}
