//! The walk over nginx's tree: `http`, `server`, `location` and `upstream`
//! become ringway's tables, with nginx's inheritance worked out first (a
//! directive written at a lower level replaces the same name inherited from
//! above), so each location carries what nginx would apply there.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use toml_edit::{Array, ArrayOfTables, Item, Table, Value};

use super::parse::Directive;
use super::table::{lookup, Ctx, Kind};
use super::values;

pub struct Options {
    /// Turn off, where ringway has a key for it, what ringway adds that
    /// nginx did not ask for.
    pub strict_nginx: bool,
    /// nginx's prefix (`-p`): the base of relative `root` and `alias`.
    pub prefix: Option<PathBuf>,
    /// nginx's conf prefix: the directory of the main file, the base of
    /// relative includes and key, certificate and password files.
    pub conf_dir: PathBuf,
}

/// Directive names nginx inherits into inner levels, grouped where nginx
/// treats several names as one list (`allow` and `deny`).
pub(super) fn inherit_key(name: &str) -> Option<&str> {
    match name {
        "allow" | "deny" => Some("allow"),
        "rewrite" | "return" | "set" | "if" | "break" | "location" | "listen" | "server_name"
        | "proxy_pass" | "try_files" | "alias" | "upstream" | "server" | "limit_except" | "types" => None,
        n => Some(n),
    }
}

/// What applies at one level: name (or group) → its directives, in order.
pub(super) type Eff<'a> = BTreeMap<&'a str, Vec<&'a Directive>>;

pub(super) fn overlay<'a>(parent: &Eff<'a>, own: &'a [Directive]) -> Eff<'a> {
    let mut eff = parent.clone();
    let mut replaced = HashSet::new();
    for d in own.iter().filter(|d| d.block.is_none()) {
        let Some(k) = inherit_key(&d.name) else { continue };
        if replaced.insert(k) {
            eff.insert(k, Vec::new());
        }
        eff.get_mut(k).unwrap().push(d);
    }
    eff
}

/// The whole import's state.
pub struct Cx<'a> {
    pub opts: &'a Options,
    pub warnings: Vec<String>,
    warned: HashSet<String>,
    pub notes_top: Vec<String>,
    pub global: Table,
    pub upstream_defs: BTreeMap<String, &'a Directive>,
    /// Generated `[[upstream]]` tables with the settings that made them.
    pub upstreams: Vec<(String, Table)>,
    pub limits: BTreeMap<String, (Table, Option<String>)>,
    pub caches: Vec<Table>,
    pub log_formats: Table,
    pub trusted: Vec<String>,
    pub servers: ArrayOfTables,
    /// nginx's `$server_name` in the block being read: its first name.
    pub server_name: Option<String>,
    /// Whether every address of the block being read is on its scheme's
    /// default port (80, or 443 with ssl); `None` when they are mixed.
    pub default_ports: Option<bool>,
    /// Beside `servers`: whether each came from a `default_server` block, and which.
    server_origin: Vec<(bool, &'a Directive)>,
}

impl<'a> Cx<'a> {
    pub fn new(opts: &'a Options) -> Cx<'a> {
        Cx {
            opts,
            warnings: Vec::new(),
            warned: HashSet::new(),
            notes_top: Vec::new(),
            global: Table::new(),
            upstream_defs: BTreeMap::new(),
            upstreams: Vec::new(),
            limits: BTreeMap::new(),
            caches: Vec::new(),
            log_formats: Table::new(),
            trusted: Vec::new(),
            servers: ArrayOfTables::new(),
            server_name: None,
            default_ports: Some(true),
            server_origin: Vec::new(),
        }
    }

    /// A warning naming the directive's file:line (each said once).
    pub fn warn(&mut self, d: &Directive, why: impl std::fmt::Display) {
        let w = format!("{}: {}: {why}", d.at(), d.name);
        if self.warned.insert(w.clone()) {
            self.warnings.push(w);
        }
    }

    /// Looks `d` up in the table: warns when it is unknown, out of place or
    /// known as untranslatable, adds a note for `Note`s; `true` for a `Key`.
    pub fn check(&mut self, d: &Directive, ctx: Ctx, notes: &mut Vec<String>) -> bool {
        match lookup(&d.name, ctx) {
            Err(why) => {
                self.warn(d, why);
                false
            }
            Ok(e) => match e.kind {
                Kind::Key => true,
                Kind::Note => {
                    notes.push(format!("{} ({}): {}", d.name, d.at(), e.ringway));
                    false
                }
                Kind::Warn => {
                    self.warn(d, e.ringway);
                    false
                }
            },
        }
    }

    /// A request value's variables as ringway's; `$server_name`, a
    /// constant of the block in nginx, is written as that name.
    pub fn map_vars(&self, v: &str) -> Result<String, String> {
        let mut v = v.to_string();
        if let Some(name) = &self.server_name {
            v = v.replace("${server_name}", name);
            let mut out = String::new();
            let mut rest = v.as_str();
            while let Some(i) = rest.find("$server_name") {
                let after = &rest[i + "$server_name".len()..];
                out.push_str(&rest[..i]);
                if after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                    out.push_str("$server_name");
                } else {
                    out.push_str(name);
                }
                rest = after;
            }
            out.push_str(rest);
            v = out;
        }
        super::vars::map(&v, super::vars::Place::Request)
    }

    /// A file path nginx reads relative to its conf prefix.
    pub fn conf_path(&self, p: &str) -> String {
        if Path::new(p).is_absolute() {
            p.to_string()
        } else {
            self.opts.conf_dir.join(p).display().to_string()
        }
    }

    /// A `root`/`alias` nginx takes relative to its prefix.
    pub fn prefix_path(&mut self, d: &Directive, p: &str) -> String {
        if p.contains('$') {
            self.warn(
                d,
                "a path with variables has no ringway form (ringway's paths are fixed at load)",
            );
        }
        if Path::new(p).is_absolute() {
            return p.to_string();
        }
        match &self.opts.prefix {
            Some(pre) => pre.join(p).display().to_string(),
            None => {
                self.warn(
                    d,
                    format!("relative path {p:?} is relative to nginx's prefix: give --prefix (kept relative to the output file here)"),
                );
                p.to_string()
            }
        }
    }

    pub fn main(&mut self, tree: &'a [Directive]) {
        let mut notes = Vec::new();
        for d in tree {
            if !self.check(d, Ctx::Main, &mut notes) {
                continue;
            }
            match d.name.as_str() {
                "worker_processes" => match d.args.first().map(String::as_str) {
                    Some("auto") => {
                        self.global.insert("workers", toml_edit::value("auto"));
                    }
                    Some(n) if n.parse::<i64>().is_ok() => {
                        self.global
                            .insert("workers", toml_edit::value(n.parse::<i64>().unwrap()));
                    }
                    _ => self.warn(d, "expects auto or a number"),
                },
                "user" => {
                    if let Some(u) = d.args.first() {
                        self.global.insert("user", toml_edit::value(u.as_str()));
                    }
                    if let Some(g) = d.args.get(1) {
                        self.global.insert("group", toml_edit::value(g.as_str()));
                    }
                }
                "pid" => {
                    let p = self.conf_path(d.args.first().map_or("", String::as_str));
                    self.global.insert("pid_file", toml_edit::value(p));
                }
                "events" => {
                    for e in d.block.as_deref().unwrap_or(&[]) {
                        if self.check(e, Ctx::Events, &mut notes) {
                            match e.args.first().and_then(|n| n.parse::<i64>().ok()) {
                                Some(n) => {
                                    self.global.insert("max_connections", toml_edit::value(n));
                                    notes.push(format!("worker_connections ({}): nginx counts upstream connections too; ringway answers 503 past the limit", e.at()));
                                }
                                None => self.warn(e, "expects a number"),
                            }
                        }
                    }
                }
                "http" => self.http(d),
                _ => {}
            }
        }
        self.notes_top.extend(notes);
    }

    fn http(&mut self, h: &'a Directive) {
        let body = h.block.as_deref().unwrap_or(&[]);
        let mut notes = Vec::new();
        // Definitions first: a server may name an upstream or zone defined below it.
        for d in body {
            match d.name.as_str() {
                "upstream" => {
                    if let Some(n) = d.args.first() {
                        self.upstream_defs.insert(n.clone(), d);
                    }
                }
                "limit_req_zone" | "limit_conn_zone" => self.zone(d),
                "proxy_cache_path" => self.cache_path(d),
                "log_format" => self.log_format(d),
                _ => {}
            }
        }
        let eff = overlay(&Eff::new(), body);
        for d in body {
            if !self.check(d, Ctx::Http, &mut notes) {
                continue;
            }
            if d.name == "upstream" {
                for s in d.block.as_deref().unwrap_or(&[]) {
                    self.check(s, Ctx::Upstream, &mut notes);
                }
            }
            if d.name == "server" {
                self.server(d, &eff);
            }
            if d.name == "types" {
                self.types(d, &mut notes);
            }
        }
        self.real_ip(&eff);
        self.check_defaults();
        self.notes_top.extend(notes);
    }

    /// nginx's default server of an address is its `default_server` block,
    /// else its first; ringway's is its first block without `server_name`,
    /// else its first. Where the two differ, say so.
    fn check_defaults(&mut self) {
        let listens = |t: &Table| -> Vec<String> {
            t.get("listen")
                .and_then(Item::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                .unwrap_or_default()
        };
        let mut addrs: Vec<String> = self.servers.iter().flat_map(listens).collect();
        addrs.sort();
        addrs.dedup();
        for a in addrs {
            let on: Vec<usize> = (0..self.servers.len())
                .filter(|&i| listens(self.servers.get(i).unwrap()).contains(&a))
                .collect();
            let nginx = on
                .iter()
                .copied()
                .find(|&i| self.server_origin[i].0)
                .unwrap_or(on[0]);
            let ringway = on
                .iter()
                .copied()
                .find(|&i| !self.servers.get(i).unwrap().contains_key("server_name"))
                .unwrap_or(on[0]);
            if nginx != ringway {
                let (d, r) = (self.server_origin[nginx].1, self.server_origin[ringway].1);
                let why = format!("the default server of {a} in nginx; ringway's would be the block of {} (the first without server_name)", r.at());
                self.warn(d, why);
            }
        }
    }

    /// `include mime.types` is ringway's built-in table; other `types` warn.
    pub fn types(&mut self, d: &Directive, notes: &mut Vec<String>) {
        if d.file.ends_with("mime.types") {
            notes.push(format!(
                "types ({}): ringway's built-in table of types by extension",
                d.at()
            ));
        } else {
            self.warn(
                d,
                "ringway takes types from its built-in table; a types block of its own is not translated",
            );
        }
    }

    /// `set_real_ip_from` anywhere becomes the one `trusted_proxies`.
    pub fn real_ip(&mut self, eff: &Eff<'a>) {
        for d in eff.get("set_real_ip_from").cloned().unwrap_or_default() {
            if let Some(a) = d.args.first() {
                if !self.trusted.contains(a) {
                    self.trusted.push(a.clone());
                }
            }
            let recursive = eff
                .get("real_ip_recursive")
                .and_then(|v| v.last())
                .is_some_and(|r| r.args.first().map(String::as_str) == Some("on"));
            if !recursive {
                self.warn(d, "ringway walks X-Forwarded-For past every trusted address (real_ip_recursive on); nginx's default takes only the last one");
            }
        }
        for d in eff.get("real_ip_header").cloned().unwrap_or_default() {
            if !d
                .args
                .first()
                .is_some_and(|h| h.eq_ignore_ascii_case("x-forwarded-for"))
            {
                self.warn(d, "ringway reads the client address from X-Forwarded-For only");
            }
        }
    }

    /// A `server` block: one `[[server]]`, or two when it mixes plain and
    /// TLS addresses (ringway's `tls` covers every address of a block).
    fn server(&mut self, s: &'a Directive, http: &Eff<'a>) {
        let body = s.block.as_deref().unwrap_or(&[]);
        let eff = overlay(http, body);
        self.real_ip(&eff);
        let defaults: Vec<bool> = body
            .iter()
            .filter(|d| d.name == "listen")
            .filter_map(|d| {
                let addr = values::listen_addr(d.args.first()?)?;
                let port = addr.rsplit_once(':')?.1.to_string();
                let ssl = d.args.iter().any(|a| a == "ssl");
                Some(port == if ssl { "443" } else { "80" })
            })
            .collect();
        self.default_ports = if defaults.iter().all(|&x| x) {
            Some(true)
        } else if defaults.iter().all(|&x| !x) {
            Some(false)
        } else {
            None
        };
        // nginx's $server_name: the block's first name ("" without one); a
        // regex name is left unmapped (it warns where used).
        self.server_name = match body
            .iter()
            .find(|d| d.name == "server_name")
            .and_then(|d| d.args.first())
        {
            Some(n) if n.starts_with('~') => None,
            Some(n) => Some(n.clone()),
            None => Some(String::new()),
        };
        let mut notes = Vec::new();
        let mut t = Table::new();
        let (mut plain, mut tls, mut default) = (Vec::new(), Vec::new(), false);
        let (mut h2_plain, mut h2_tls) = (false, false);
        let mut server_rewrites = Vec::new();
        let mut answer: Option<&'a Directive> = None;
        let mut locations = ArrayOfTables::new();
        for d in body {
            if !self.check(d, Ctx::Server, &mut notes) {
                continue;
            }
            match d.name.as_str() {
                "listen" => {
                    let Some(addr) = d.args.first().and_then(|a| values::listen_addr(a)) else {
                        self.warn(d, "a UNIX socket or an address ringway cannot listen on");
                        continue;
                    };
                    let ssl = d.args[1..].iter().any(|p| p == "ssl");
                    for p in &d.args[1..] {
                        match p.as_str() {
                            "ssl" => {}
                            "http2" if ssl => h2_tls = true,
                            "http2" => h2_plain = true,
                            "default_server" | "default" => default = true,
                            "proxy_protocol" => self.warn(d, "PROXY protocol is not supported yet"),
                            o => self.warn(d, format!("listen parameter {o:?} is not translated")),
                        }
                    }
                    if ssl {
                        tls.push(addr)
                    } else {
                        plain.push(addr)
                    }
                }
                "server_name" => {
                    let mut names = Array::new();
                    for n in &d.args {
                        if n == "_" || n.is_empty() {
                            continue;
                        }
                        if n.starts_with('~') || (n.ends_with(".*")) {
                            self.warn(d, format!("server name {n:?}: regex and trailing-wildcard names have no ringway form"));
                        } else if let Some(base) = n.strip_prefix('.') {
                            names.push(base);
                            names.push(format!("*.{base}"));
                        } else {
                            names.push(n.to_lowercase());
                        }
                    }
                    if !names.is_empty() {
                        t.insert("server_name", toml_edit::value(names));
                    }
                }
                "return" => {
                    let handled = self.server_return(d, &eff, &mut server_rewrites);
                    if !handled && answer.is_none() {
                        answer = Some(d);
                    }
                }
                "rewrite" => {
                    if let Some(r) = self.rewrite_rule(d, &eff) {
                        server_rewrites.push(r);
                    }
                }
                "types" => self.types(d, &mut notes),
                // nginx 1.25's form: HTTP/2 on every address of the block.
                "http2" if d.args.first().map(String::as_str) == Some("on") => {
                    h2_plain = true;
                    h2_tls = true;
                }
                "location" => {
                    if let Some(l) = self.location(d, &eff, &mut notes) {
                        locations.push(l);
                    }
                }
                _ => {}
            }
        }
        if plain.is_empty() && tls.is_empty() {
            plain.push("0.0.0.0:80".to_string());
            notes.push(format!(
                "listen: none written ({}): nginx listens on *:80",
                s.at()
            ));
        }
        if let Some(r) = answer {
            // A server-level return answers every request before any
            // location is chosen: one location "/" answering so.
            if !server_rewrites.is_empty() {
                self.warn(
                    r,
                    "a server-level return after rewrites has no ringway form; move it into a location",
                );
            } else {
                let mut l = Table::new();
                l.insert("path", toml_edit::value("/"));
                self.location_return(r, &eff, &mut l);
                let mut ln = Vec::new();
                self.answer_before_access(&eff, &mut l, &mut ln);
                let mut c = format!("\n# from {}: answers every request of the block\n", r.at());
                for n in ln {
                    c.push_str(&format!("# {n}\n"));
                }
                l.decor_mut().set_prefix(c);
                if !locations.is_empty() {
                    notes.push(format!(
                        "return ({}): answers before any location, so the block's locations are left out",
                        r.at()
                    ));
                }
                locations = ArrayOfTables::new();
                locations.push(l);
            }
        }
        if !server_rewrites.is_empty() {
            t.insert("rewrite", toml_edit::value(Array::from_iter(server_rewrites)));
        }
        self.server_keys(&eff, &mut t, &mut notes);
        self.fallback_location(s, &eff, &mut locations);
        let mut comment = format!("\n# from {}\n", s.at());
        if default {
            comment.push_str("# default_server: written first among the blocks of its addresses\n");
        }
        comment.push_str(&super::emit::forwarding_comment(self.opts.strict_nginx));
        for n in &notes {
            comment.push_str(&format!("# {n}\n"));
        }
        for (addrs, is_tls) in [(plain, false), (tls, true)] {
            if addrs.is_empty() {
                continue;
            }
            let mut b = t.clone();
            let mut listen = Array::from_iter(addrs.iter().map(String::as_str));
            listen.decor_mut().clear();
            b.insert("listen", toml_edit::value(listen));
            b.sort_values_by(|a, _, b, _| key_rank(a.get()).cmp(&key_rank(b.get())));
            if is_tls {
                self.tls(&eff, s, &mut b);
                if !h2_tls {
                    b.insert("http2", toml_edit::value(false));
                }
            } else {
                if h2_plain {
                    b.insert("h2c", toml_edit::value(true));
                }
            }
            if !locations.is_empty() {
                b.insert("location", Item::ArrayOfTables(locations.clone()));
            }
            b.decor_mut().set_prefix(comment.clone());
            if default {
                let at = self.first_server_on(&addrs);
                self.servers_insert(at, b);
                self.server_origin.insert(at, (true, s));
            } else {
                self.servers.push(b);
                self.server_origin.push((false, s));
            }
        }
    }

    /// Where a `default_server` block goes: before the first block sharing
    /// one of its addresses.
    fn first_server_on(&self, addrs: &[String]) -> usize {
        for (i, s) in self.servers.iter().enumerate() {
            let on = s.get("listen").and_then(Item::as_array).is_some_and(|a| {
                a.iter()
                    .any(|v| v.as_str().is_some_and(|x| addrs.iter().any(|y| y == x)))
            });
            if on {
                return i;
            }
        }
        self.servers.len()
    }

    fn servers_insert(&mut self, at: usize, t: Table) {
        let mut all: Vec<Table> = self.servers.iter().cloned().collect();
        all.insert(at, t);
        self.servers = ArrayOfTables::new();
        for s in all {
            self.servers.push(s);
        }
    }

    /// nginx's server-level `return`: `return 301 https://$host$request_uri`
    /// (`return 301 https://$host$request_uri` among them: ringway's
    /// `redirect_https` keeps the case of `Host`, nginx's `$host` lowers it)
    /// is a server rewrite; `false` for
    /// the rest, which the caller answers from a location.
    fn server_return(&mut self, d: &Directive, eff: &Eff<'a>, rules: &mut Vec<Value>) -> bool {
        let code = d.args.first().and_then(|c| c.parse::<i64>().ok());
        let url = d.args.get(1).map(String::as_str);
        match (code, url) {
            (Some(c @ (301 | 302)), Some(u)) => match self.map_vars(u) {
                Ok(to) => {
                    let mut r = toml_edit::InlineTable::new();
                    r.insert("from", "^".into());
                    // A `to` ending in `?` drops the request's query, as
                    // `return` does not add it.
                    // `return` never adds the request's query; a final `?`
                    // says so to a rewrite.
                    let to = format!("{to}?");
                    let to = self.absolute_redirect(d, eff, to);
                    r.insert("to", to.into());
                    r.insert("flag", if c == 301 { "permanent" } else { "redirect" }.into());
                    rules.push(Value::InlineTable(r));
                    true
                }
                Err(why) => {
                    self.warn(d, why);
                    true
                }
            },
            _ => false,
        }
    }
}

/// Keys first in a block, in a readable order; tables (locations) last.
fn key_rank(k: &str) -> usize {
    const ORDER: &[&str] = &["listen", "server_name", "tls", "http2", "h2c"];
    ORDER.iter().position(|o| *o == k).unwrap_or(ORDER.len())
}

/// A location's match from nginx's modifier and argument.
pub(super) fn location_match(args: &[String]) -> Option<(&'static str, String, bool)> {
    let (m, p) = match args {
        [m, p] => (m.as_str(), p.clone()),
        [one] => {
            let o = one.as_str();
            if let Some(n) = o.strip_prefix('@') {
                return Some(("name", n.to_string(), false));
            } else if let Some(r) = o.strip_prefix("~*") {
                ("~*", r.to_string())
            } else if let Some(r) = o.strip_prefix('~') {
                ("~", r.to_string())
            } else if let Some(r) = o.strip_prefix("^~") {
                ("^~", r.to_string())
            } else if let Some(r) = o.strip_prefix('=') {
                ("=", r.to_string())
            } else {
                ("", o.to_string())
            }
        }
        _ => return None,
    };
    Some(match m {
        "" => ("path", p, false),
        "=" => ("exact", p, false),
        "^~" => ("path", p, true),
        "~" => ("regex", p, false),
        "~*" => ("regex", format!("(?i){p}"), false),
        _ => return None,
    })
}
