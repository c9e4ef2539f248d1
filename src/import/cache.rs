//! `proxy_cache_path` and `proxy_cache*` as a `[[cache]]` zone and a
//! location's `cache`, and `log_format` as `[log_format.NAME]`.

use toml_edit::{Array, InlineTable, Table, Value};

use super::parse::Directive;
use super::translate::{Cx, Eff};
use super::values;
use super::vars::{self, Place};

fn last<'b>(eff: &Eff<'b>, k: &str) -> Option<&'b Directive> {
    eff.get(k).and_then(|v| v.last().copied())
}

/// The most memory an imported zone is given: nginx's `max_size` is disk.
const MAX_MEMORY: u64 = 1 << 30;

impl<'a> Cx<'a> {
    /// `proxy_cache_path PATH keys_zone=NAME:SIZE [max_size=SIZE] ...`.
    pub(super) fn cache_path(&mut self, d: &Directive) {
        let mut name = None;
        let mut memory = None;
        for a in d.args.iter().skip(1) {
            if let Some(z) = a.strip_prefix("keys_zone=") {
                name = z.split(':').next().map(str::to_string);
            } else if let Some(m) = a.strip_prefix("max_size=") {
                memory = values::size_bytes(m);
            }
        }
        let Some(name) = name else {
            return self.warn(d, "no keys_zone=");
        };
        let mut t = Table::new();
        t.insert("name", toml_edit::value(name.as_str()));
        let mut note = String::from("# a memory store, shared by every worker, for nginx's disk cache\n");
        let bytes = match memory {
            Some(m) if m <= MAX_MEMORY => m,
            Some(_) => {
                self.warn(
                    d,
                    "max_size is more than the 1g of memory given to the imported zone",
                );
                MAX_MEMORY
            }
            None => {
                note.push_str("# nginx's max_size is unset (the disk's size): 256m of memory chosen\n");
                256 << 20
            }
        };
        t.insert("memory", toml_edit::value(bytes as i64));
        t.decor_mut().set_prefix(format!("\n# from {}\n{note}", d.at()));
        self.caches.push(t);
    }

    /// A proxied location's `cache`, from the `proxy_cache*` that apply.
    pub(super) fn cache(&mut self, eff: &Eff<'a>, t: &mut Table, notes: &mut Vec<String>) {
        let Some(z) = last(eff, "proxy_cache") else { return };
        let zone = z.args.first().cloned().unwrap_or_default();
        if zone == "off" {
            return;
        }
        if !self
            .caches
            .iter()
            .any(|c| c.get("name").and_then(|n| n.as_str()) == Some(&zone))
        {
            return self.warn(z, format!("no proxy_cache_path defines zone {zone:?}"));
        }
        let mut c = InlineTable::new();
        c.insert("zone", zone.as_str().into());
        match last(eff, "proxy_cache_key") {
            Some(d) => match vars::map(d.args.first().map_or("", String::as_str), Place::Request) {
                Ok(k) => {
                    c.insert("key", k.into());
                }
                Err(why) => self.warn(d, why),
            },
            None => notes.push("proxy_cache_key: nginx's default is $scheme$proxy_host$request_uri, ringway's $scheme$host$request_uri".into()),
        }
        let mut valid = InlineTable::new();
        for d in eff.get("proxy_cache_valid").cloned().unwrap_or_default() {
            let Some((time, codes)) = d.args.split_last() else {
                continue;
            };
            let Some(time) = values::duration(time) else {
                self.warn(d, "bad time");
                continue;
            };
            let codes = if codes.is_empty() {
                "200 301 302".to_string()
            } else {
                codes.join(" ")
            };
            valid.insert(&codes, time.into());
        }
        if !valid.is_empty() {
            c.insert("valid", Value::InlineTable(valid));
        }
        if let Some(d) = last(eff, "proxy_cache_bypass") {
            let mut b = Array::new();
            for a in &d.args {
                match vars::map(a, Place::Request) {
                    Ok(v) => b.push(v),
                    Err(why) => self.warn(d, why),
                }
            }
            c.insert("bypass", Value::Array(b));
        }
        if let Some(d) = last(eff, "proxy_cache_use_stale") {
            let list: Vec<&str> = d
                .args
                .iter()
                .map(String::as_str)
                .filter(|a| *a != "off")
                .collect();
            if !list.is_empty() {
                c.insert("use_stale", Value::Array(Array::from_iter(list)));
            }
        }
        for (k, n) in [
            ("lock", "proxy_cache_lock"),
            ("background_update", "proxy_cache_background_update"),
        ] {
            if let Some(d) = last(eff, n) {
                c.insert(k, (d.args.first().map(String::as_str) == Some("on")).into());
            }
        }
        if let Some(d) = last(eff, "proxy_cache_lock_timeout") {
            match d.args.first().and_then(|a| values::duration(a)) {
                Some(v) => {
                    c.insert("lock_timeout", v.into());
                }
                None => self.warn(d, "bad time"),
            }
        }
        if let Some(d) = last(eff, "proxy_cache_min_uses") {
            match d.args.first().and_then(|a| a.parse::<i64>().ok()) {
                Some(n) => {
                    c.insert("min_uses", n.into());
                }
                None => self.warn(d, "bad number"),
            }
        }
        for d in eff.get("add_header").cloned().unwrap_or_default() {
            if d.args.get(1).map(String::as_str) == Some("$upstream_cache_status") {
                c.insert("status_header", d.args[0].as_str().into());
            }
        }
        t.insert("cache", toml_edit::value(c));
    }

    /// `log_format NAME [escape=...] STRING...` as `[log_format.NAME]`.
    pub(super) fn log_format(&mut self, d: &Directive) {
        let Some(name) = d.args.first() else { return };
        if name == "combined" {
            return self.warn(d, "combined is ringway's default format and cannot be redefined");
        }
        let mut rest = &d.args[1..];
        let mut escape = None;
        if let Some(e) = rest.first().and_then(|a| a.strip_prefix("escape=")) {
            escape = Some(e.to_string());
            rest = &rest[1..];
        }
        let text: String = rest.concat();
        let format = match vars::map(&text, Place::Log) {
            Ok(f) => f,
            Err(why) => return self.warn(d, why),
        };
        let mut t = Table::new();
        t.insert("format", toml_edit::value(format));
        if let Some(e) = escape {
            t.insert("escape", toml_edit::value(e));
        }
        t.decor_mut().set_prefix(format!("\n# from {}\n", d.at()));
        self.log_formats.insert(name, toml_edit::Item::Table(t));
    }
}
