//! A `location` block: its match, its content (`proxy_pass`, `return` or
//! files) and the keys nginx would apply there, inherited ones included.

use toml_edit::{Array, InlineTable, Table, Value};

use super::parse::Directive;
use super::table::Ctx;
use super::translate::{location_match, overlay, Cx, Eff};
use super::values;
use super::vars;

impl<'a> Cx<'a> {
    pub(super) fn location(
        &mut self,
        l: &'a Directive,
        srv: &Eff<'a>,
        server_notes: &mut Vec<String>,
    ) -> Option<Table> {
        let Some((kind, m, skip)) = location_match(&l.args) else {
            self.warn(l, "a location ringway cannot match");
            return None;
        };
        if kind == "regex" {
            if let Err(e) = regex::Regex::new(&m) {
                self.warn(
                    l,
                    format!(
                        "the regex does not compile in ringway's syntax: {}",
                        e.to_string().lines().last().unwrap_or("")
                    ),
                );
                return None;
            }
        }
        let body = l.block.as_deref().unwrap_or(&[]);
        let eff = overlay(srv, body);
        let mut notes = Vec::new();
        let mut t = Table::new();
        t.insert(kind, toml_edit::value(m));
        if skip {
            t.insert("skip_regex", toml_edit::value(true));
        }
        let (mut pass, mut ret, mut rules, mut try_files, mut alias) = (None, None, Vec::new(), None, None);
        for d in body {
            if !self.check(d, Ctx::Location, &mut notes) {
                continue;
            }
            match d.name.as_str() {
                "proxy_pass" => pass = Some(d),
                "return" if ret.is_none() => ret = Some(d),
                "rewrite" => {
                    if ret.is_some() {
                        self.warn(d, "written after a return, which nginx runs first; ringway runs every rewrite before a location's return");
                    }
                    if let Some(r) = self.rewrite_rule(d, &eff) {
                        rules.push(r);
                    }
                }
                "try_files" => try_files = Some(d),
                "alias" => alias = Some(d),
                "location" => self.warn(d, "nested locations are not translated"),
                "types" => self.types(d, &mut notes),
                _ => {}
            }
        }
        if !rules.is_empty() {
            t.insert("rewrite", toml_edit::value(Array::from_iter(rules)));
        }
        if let Some(r) = ret {
            if let Some(p) = pass {
                notes.push(format!(
                    "proxy_pass ({}): never reached, return answers first",
                    p.at()
                ));
            }
            self.location_return(r, &eff, &mut t);
        } else if let Some(p) = pass {
            self.proxy(p, &eff, &mut t);
        } else {
            self.files(l, &eff, alias, try_files, &mut t);
        }
        self.location_keys(&eff, body, &mut t, &mut notes);
        if t.contains_key("return") {
            self.answer_before_access(&eff, &mut t, &mut notes);
        }
        let mut comment = format!("\n# from {}\n", l.at());
        for n in notes {
            comment.push_str(&format!("# {n}\n"));
        }
        t.decor_mut().set_prefix(comment);
        let _ = server_notes;
        Some(t)
    }

    pub(super) fn location_return(&mut self, d: &Directive, eff: &Eff<'a>, t: &mut Table) {
        let mut r = InlineTable::new();
        let (code, text) = match d.args.as_slice() {
            [u] if u.starts_with("http://") || u.starts_with("https://") || u.starts_with("$scheme") => {
                (302, Some(u.clone()))
            }
            [c] => match c.parse::<i64>() {
                Ok(c) => (c, None),
                Err(_) => return self.warn(d, "expects a status code"),
            },
            [c, x] => match c.parse::<i64>() {
                Ok(c) => (c, Some(x.clone())),
                Err(_) => return self.warn(d, "expects a status code"),
            },
            _ => return self.warn(d, "expects a code and a text or URL"),
        };
        if code == 444 || !(100..=599).contains(&code) {
            // nginx's 444 closes the connection without an answer.
            return self.warn(d, format!("status {code} has no ringway form"));
        }
        r.insert("status", code.into());
        if let Some(x) = text {
            let v = match self.map_vars(&x) {
                Ok(v) => v,
                Err(why) => return self.warn(d, why),
            };
            if matches!(code, 301 | 302 | 303 | 307 | 308) {
                let v = self.absolute_redirect(d, eff, v);
                r.insert("location", v.into());
            } else {
                r.insert("body", v.into());
            }
        } else if matches!(code, 301 | 302 | 303 | 307 | 308) {
            return self.warn(d, "a redirect without a URL");
        }
        t.insert("return", toml_edit::value(r));
    }

    pub(super) fn rewrite_rule(&mut self, d: &Directive, eff: &Eff<'a>) -> Option<Value> {
        let (from, to, flag) = match d.args.as_slice() {
            [f, t] => (f, t, None),
            [f, t, g] => (f, t, Some(g.as_str())),
            _ => {
                self.warn(d, "expects a regex, a replacement and an optional flag");
                return None;
            }
        };
        let to = match self.map_vars(to) {
            Ok(v) => v,
            Err(why) => {
                self.warn(d, why);
                return None;
            }
        };
        if let Err(e) = regex::Regex::new(from) {
            self.warn(
                d,
                format!(
                    "the regex does not compile in ringway's syntax: {}",
                    e.to_string().lines().last().unwrap_or("")
                ),
            );
            return None;
        }
        let to = if matches!(flag, Some("redirect" | "permanent")) {
            self.absolute_redirect(d, eff, to)
        } else {
            to
        };
        let mut r = InlineTable::new();
        r.insert("from", from.as_str().into());
        r.insert("to", to.into());
        match flag {
            None => {}
            Some(f @ ("last" | "break" | "redirect" | "permanent")) => {
                r.insert("flag", f.into());
            }
            Some(f) => {
                self.warn(d, format!("unknown flag {f:?}"));
                return None;
            }
        }
        Some(Value::InlineTable(r))
    }

    /// `root`/`alias`, `index`, `try_files`: nginx serves files wherever a
    /// location has no other content, from `html` under its prefix when no
    /// `root` is written.
    fn files(
        &mut self,
        l: &Directive,
        eff: &Eff<'a>,
        alias: Option<&Directive>,
        try_files: Option<&Directive>,
        t: &mut Table,
    ) {
        if let Some(a) = alias {
            let p = a.args.first().cloned().unwrap_or_default();
            if t.contains_key("path") {
                let v = self.prefix_path(a, &p);
                t.insert("alias", toml_edit::value(v));
            } else {
                self.warn(a, "alias in a regex, exact or named location has no ringway form");
                return;
            }
        } else {
            let root = match eff.get("root").and_then(|v| v.last()) {
                Some(r) => {
                    let p = r.args.first().cloned().unwrap_or_default();
                    self.prefix_path(r, &p)
                }
                None => match &self.opts.prefix {
                    Some(pre) => pre.join("html").display().to_string(),
                    None => {
                        self.warn(l, "no root: nginx serves files from html under its compiled-in prefix; give --prefix or a root");
                        return;
                    }
                },
            };
            t.insert("root", toml_edit::value(root));
        }
        if let Some(i) = eff.get("index").and_then(|v| v.last()) {
            t.insert(
                "index",
                toml_edit::value(Array::from_iter(i.args.iter().map(String::as_str))),
            );
        }
        if let Some(tf) = try_files {
            let mut a = Array::new();
            for x in &tf.args {
                match self.map_vars(x) {
                    Ok(v) => a.push(v),
                    Err(why) => return self.warn(tf, why),
                }
            }
            t.insert("try_files", toml_edit::value(a));
        }
        if let Some(d) = eff.get("default_type").and_then(|v| v.last()) {
            t.insert(
                "default_type",
                toml_edit::value(d.args.first().cloned().unwrap_or_default()),
            );
        }
        if let Some(e) = eff.get("expires").and_then(|v| v.last()) {
            match e.args.as_slice() {
                [x] if matches!(x.as_str(), "off" | "max" | "epoch") => {
                    t.insert("expires", toml_edit::value(x.as_str()));
                }
                [x] => match values::duration(x) {
                    Some(v) => {
                        t.insert("expires", toml_edit::value(v));
                    }
                    None => self.warn(
                        e,
                        format!("{x:?}: only a positive time, max, epoch or off is translated"),
                    ),
                },
                _ => self.warn(e, "the modified and @time forms have no ringway form"),
            }
        }
    }

    /// `proxy_pass`: the target becomes an `[[upstream]]` carrying the
    /// location's timeouts and retry rules (ringway keeps them there).
    fn proxy(&mut self, p: &Directive, eff: &Eff<'a>, t: &mut Table) {
        let Some(url) = p.args.first() else {
            return self.warn(p, "expects a URL");
        };
        let (scheme, rest) = if let Some(r) = url.strip_prefix("http://") {
            ("http", r)
        } else if let Some(r) = url.strip_prefix("https://") {
            ("https", r)
        } else {
            return self.warn(p, "only http:// and https:// are translated");
        };
        let (host, uri) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if vars::has_vars(host) || host.starts_with("unix:") {
            return self.warn(p, "a target with variables or a UNIX socket has no ringway form");
        }
        let uri = match self.map_vars(uri) {
            Ok(u) => u,
            Err(why) => return self.warn(p, why),
        };
        let name = self.upstream_for(p, scheme, host, eff);
        t.insert("proxy_pass", toml_edit::value(format!("{scheme}://{name}{uri}")));
        let named = self.upstream_defs.contains_key(host);
        self.host_header(p, eff, named, host, t);
    }

    /// nginx sends `Host: $proxy_host` (the upstream's name, or host:port as
    /// written) unless `proxy_set_header Host` says otherwise.
    fn host_header(&mut self, p: &Directive, eff: &Eff<'a>, named: bool, host: &str, t: &mut Table) {
        let set = eff.get("proxy_set_header").and_then(|v| {
            v.iter()
                .rev()
                .find(|d| d.args.first().is_some_and(|n| n.eq_ignore_ascii_case("host")))
                .copied()
        });
        match set.and_then(|d| d.args.get(1).map(|v| (d, v.as_str()))) {
            None | Some((_, "$proxy_host")) => {
                t.insert("preserve_host", toml_edit::value(false));
                if named {
                    self.warn(p, format!("nginx sends Host: {host} (the upstream's name); ringway, with preserve_host = false, sends each server's address"));
                }
            }
            Some((_, "$http_host")) => {
                t.insert("preserve_host", toml_edit::value(true));
            }
            Some((d, "$host")) => {
                t.insert("preserve_host", toml_edit::value(true));
                self.warn(d, "Host $host: ringway sends the client's Host as written (port and case kept); nginx's $host is lower-cased without the port");
            }
            Some((d, v)) => {
                self.warn(
                    d,
                    format!(
                        "Host {v:?}: ringway sends the client's Host or the server's address, nothing else"
                    ),
                );
            }
        }
    }

    /// A redirect to a path, made absolute as nginx's `absolute_redirect`
    /// (on by default) makes it: the request's host (or the block's name
    /// with `server_name_in_redirect on`), and the port unless it is the
    /// scheme's default (`port_in_redirect`).
    pub(super) fn absolute_redirect(&mut self, d: &Directive, eff: &Eff<'a>, to: String) -> String {
        let flag = |k: &str| {
            eff.get(k)
                .and_then(|v| v.last())
                .and_then(|d| d.args.first())
                .map(String::as_str)
        };
        if !to.starts_with('/') || flag("absolute_redirect") == Some("off") {
            return to;
        }
        let host = match (flag("server_name_in_redirect"), &self.server_name) {
            (Some("on"), Some(n)) if !n.is_empty() => n.clone(),
            _ => "$host".to_string(),
        };
        let port = match (flag("port_in_redirect"), self.default_ports) {
            (Some("off"), _) | (_, Some(true)) => "",
            (_, Some(false)) => ":$server_port",
            (_, None) => {
                self.warn(d, "nginx makes this redirect absolute with a port only on the block's non-default ports; ringway has no such condition (written with $server_port)");
                ":$server_port"
            }
        };
        format!("$scheme://{host}{port}{to}")
    }
}
