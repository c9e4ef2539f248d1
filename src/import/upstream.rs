//! `upstream` blocks and `proxy_pass` targets as `[[upstream]]` tables.
//!
//! nginx keeps timeouts and retry rules on the location; ringway keeps them
//! on the upstream. So each distinct (target, settings) pair a location uses
//! becomes one `[[upstream]]`: the nginx name for the first, `NAME-2`, ...
//! for others (each then has its own passive health state).

use toml_edit::{Array, InlineTable, Table, Value};

use super::parse::Directive;
use super::translate::{Cx, Eff};
use super::values;
use super::vars::{self, Place};

fn last<'b>(eff: &Eff<'b>, k: &str) -> Option<&'b Directive> {
    eff.get(k).and_then(|v| v.last().copied())
}

impl<'a> Cx<'a> {
    /// The name of the `[[upstream]]` for this target and the location's settings.
    pub(super) fn upstream_for(&mut self, p: &Directive, scheme: &str, host: &str, eff: &Eff<'a>) -> String {
        let def = self.upstream_defs.get(host).copied();
        let (mut t, base, count) = match def {
            Some(u) => {
                let (t, n) = self.upstream_block(u);
                (t, host.to_string(), n)
            }
            None => {
                let addr = values::with_port(host, if scheme == "https" { 443 } else { 80 });
                let mut t = Table::new();
                t.insert("servers", toml_edit::value(Array::from_iter([addr.as_str()])));
                t.insert("keepalive", toml_edit::value(0));
                let base: String = host
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '-' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                (t, base, 1)
            }
        };
        for (k, n) in [
            ("connect_timeout", "proxy_connect_timeout"),
            ("read_timeout", "proxy_read_timeout"),
            ("send_timeout", "proxy_send_timeout"),
        ] {
            let v = match last(eff, n) {
                Some(d) => match d.args.first().and_then(|a| values::duration(a)) {
                    Some(v) => v,
                    None => {
                        self.warn(d, "bad time");
                        continue;
                    }
                },
                // nginx's default for all three.
                None => "60s".into(),
            };
            t.insert(k, toml_edit::value(v));
        }
        let mut next = Array::new();
        match last(eff, "proxy_next_upstream") {
            None => {
                next.push("error");
                next.push("timeout");
            }
            Some(d) => {
                for a in &d.args {
                    match a.as_str() {
                        "error" | "timeout" | "invalid_header" | "http_500" | "http_502" | "http_503"
                        | "http_504" | "http_403" | "http_404" | "http_429" | "off" => next.push(a.as_str()),
                        "non_idempotent" => {
                            self.warn(d, "ringway never sends a non-idempotent request twice")
                        }
                        o => self.warn(d, format!("{o:?} is not translated")),
                    }
                }
            }
        }
        t.insert("next_upstream", toml_edit::value(next));
        // proxy_next_upstream_tries 0 (the default): every server may be tried.
        let tries = match last(eff, "proxy_next_upstream_tries") {
            Some(d) => match d.args.first().and_then(|a| a.parse::<usize>().ok()) {
                Some(0) => count,
                Some(n) => n,
                None => {
                    self.warn(d, "bad number");
                    count
                }
            },
            None => count,
        };
        if count > 1 || tries > 1 {
            t.insert("tries", toml_edit::value(tries.clamp(1, 100) as i64));
        }
        if let Some(d) = last(eff, "proxy_next_upstream_timeout") {
            match d.args.first().and_then(|a| values::duration(a)) {
                Some(v) => {
                    t.insert("tries_timeout", toml_edit::value(v));
                }
                None => self.warn(d, "bad time"),
            }
        }
        if let Some(d) = last(eff, "proxy_http_version") {
            if d.args.first().map(String::as_str) != Some("1.1") {
                self.warn(d, "ringway speaks HTTP/1.1 to upstreams");
            }
        }
        if let Some(d) = last(eff, "proxy_redirect") {
            if d.args.first().map(String::as_str) != Some("default") {
                self.warn(d, "ringway rewrites upstream Location fields as proxy_redirect default; other forms have no ringway key");
            }
        }
        if scheme == "https" {
            self.upstream_tls(eff, &mut t);
        }
        // Reuse a table with the same settings, else a new name.
        let sig = t.to_string();
        let mut name = base.clone();
        let mut k = 1;
        loop {
            match self.upstreams.iter().find(|(n, _)| *n == name) {
                Some((_, u)) if strip_name(u) == sig => return name,
                Some(_) => {
                    k += 1;
                    name = format!("{base}-{k}");
                }
                None => break,
            }
        }
        let mut out = Table::new();
        out.insert("name", toml_edit::value(name.as_str()));
        for (k, v) in t.iter() {
            out.insert(k, v.clone());
        }
        let from = def.map_or_else(|| p.at(), |u| u.at());
        out.decor_mut().set_prefix(format!(
            "\n# from {from}\n# ringway speaks HTTP/1.1 upstream and keeps connections only with nginx's `keepalive`\n"
        ));
        self.upstreams.push((name.clone(), out));
        name
    }

    fn upstream_tls(&mut self, eff: &Eff<'a>, t: &mut Table) {
        t.insert("tls", toml_edit::value(true));
        // nginx's proxy_ssl_verify is off unless turned on.
        let verify = last(eff, "proxy_ssl_verify")
            .and_then(|d| d.args.first())
            .is_some_and(|a| a == "on");
        t.insert("tls_verify", toml_edit::value(verify));
        if verify {
            if let Some(d) = last(eff, "proxy_ssl_trusted_certificate") {
                let p = self.conf_path(d.args.first().map_or("", String::as_str));
                t.insert("tls_ca", toml_edit::value(p));
            }
        }
        if let Some(d) = last(eff, "proxy_ssl_name") {
            match d.args.first().map(String::as_str) {
                Some("$proxy_host") | None => {}
                Some(v) => match vars::map(v, Place::Request) {
                    Ok(v) => {
                        t.insert("tls_server_name", toml_edit::value(v));
                    }
                    Err(why) => self.warn(d, why),
                },
            }
        }
        for (k, n) in [
            ("tls_cert", "proxy_ssl_certificate"),
            ("tls_key", "proxy_ssl_certificate_key"),
        ] {
            if let Some(d) = last(eff, n) {
                let p = self.conf_path(d.args.first().map_or("", String::as_str));
                t.insert(k, toml_edit::value(p));
            }
        }
    }

    /// An `upstream` block's servers and balancing, and its server count.
    fn upstream_block(&mut self, u: &Directive) -> (Table, usize) {
        let mut t = Table::new();
        let mut servers = Array::new();
        let mut keepalive = None;
        let mut hashed = false;
        let mut downs = Vec::new();
        for d in u.block.as_deref().unwrap_or(&[]) {
            match d.name.as_str() {
                "server" => {
                    let Some(a) = d.args.first() else { continue };
                    if a.starts_with("unix:") {
                        self.warn(d, "UNIX socket servers have no ringway form");
                        continue;
                    }
                    let addr = values::with_port(a, 80);
                    let mut s = InlineTable::new();
                    s.insert("addr", addr.as_str().into());
                    let mut down = false;
                    for p in &d.args[1..] {
                        let (k, v) = p.split_once('=').unwrap_or((p.as_str(), ""));
                        match k {
                            "weight" | "max_fails" => match v.parse::<i64>() {
                                Ok(n) => {
                                    s.insert(k, n.into());
                                }
                                Err(_) => self.warn(d, format!("bad {k}")),
                            },
                            "fail_timeout" => match values::duration(v) {
                                Some(v) => {
                                    s.insert(k, v.into());
                                }
                                None => self.warn(d, "bad fail_timeout"),
                            },
                            "backup" => {
                                s.insert("backup", true.into());
                            }
                            "down" => down = true,
                            o => self.warn(d, format!("server parameter {o:?} is not translated")),
                        }
                    }
                    if down {
                        downs.push(d);
                        continue;
                    }
                    if s.len() == 1 {
                        servers.push(addr);
                    } else {
                        servers.push(Value::InlineTable(s));
                    }
                }
                "keepalive" => keepalive = d.args.first().and_then(|n| n.parse::<i64>().ok()),
                "keepalive_timeout" => match d.args.first().and_then(|a| values::duration(a)) {
                    Some(v) => {
                        t.insert("keepalive_timeout", toml_edit::value(v));
                    }
                    None => self.warn(d, "bad time"),
                },
                "least_conn" => {
                    t.insert("balance", toml_edit::value("least_conn"));
                }
                "ip_hash" => {
                    hashed = true;
                    t.insert("balance", toml_edit::value("ip_hash"));
                }
                "hash" => {
                    hashed = true;
                    let Some(k) = d.args.first() else { continue };
                    if d.args.get(1).map(String::as_str) != Some("consistent") {
                        self.warn(d, "ringway's hash is always consistent (ketama); nginx's plain hash maps keys differently");
                    }
                    match vars::map(k, Place::Request) {
                        Ok(k) => {
                            t.insert("hash", toml_edit::value(k));
                        }
                        Err(why) => self.warn(d, why),
                    }
                }
                "random" => {
                    if d.args.first().map(String::as_str) == Some("two") {
                        t.insert("balance", toml_edit::value("random_two"));
                        if d.args.get(1).is_some_and(|m| m != "least_conn") {
                            self.warn(d, "ringway's random_two compares requests in flight (least_conn)");
                        }
                    } else {
                        self.warn(d, "plain random has no ringway form (random two is random_two)");
                    }
                }
                "zone" => {}
                _ => {}
            }
        }
        if hashed {
            for d in downs {
                self.warn(
                    d,
                    "a down server is left out, which moves keys of a hashed upstream",
                );
            }
        }
        let n = servers.len();
        t.insert("servers", toml_edit::value(servers));
        t.insert("keepalive", toml_edit::value(keepalive.unwrap_or(0)));
        (t, n)
    }
}

/// A generated table without its `name`, to compare settings.
fn strip_name(t: &Table) -> String {
    let mut c = Table::new();
    for (k, v) in t.iter().filter(|(k, _)| *k != "name") {
        c.insert(k, v.clone());
    }
    c.to_string()
}
