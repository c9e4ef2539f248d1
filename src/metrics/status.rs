//! `/status`: the process at a glance, as JSON: version, uptime, the
//! config generation in force and when it was loaded, workers, listeners,
//! and every upstream server's health and requests in flight. Written by
//! hand (a handful of fields; every string escaped per RFC 8259 §7).

use std::fmt::Write;

use super::Registry;

/// A JSON string literal of `s`.
fn string(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

pub fn render(r: &Registry) -> String {
    let mut o = String::with_capacity(2048);
    let loaded = r.loaded_ms.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1000.0;
    o.push_str("{\"version\":");
    string(&mut o, env!("CARGO_PKG_VERSION"));
    let _ = write!(
        o,
        ",\"uptime_seconds\":{:.3},\"started_at\":{:.3},\"draining\":{},\
         \"config\":{{\"generation\":{},\"loaded_at\":{:.3}}},\
         \"workers\":{{\"configured\":{},\"running\":{}}}",
        r.uptime().as_secs_f64(),
        r.started_unix,
        r.draining(),
        r.generation(),
        loaded,
        r.workers.len(),
        r.running(),
    );
    let l = r.layout();
    o.push_str(",\"listeners\":[");
    for (i, li) in l.listeners.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push_str("{\"address\":");
        string(&mut o, &li.addr.to_string());
        let accepted = super::sum(&li.w, |c| c.get());
        let _ = write!(o, ",\"accepted\":{accepted}}}");
    }
    o.push_str("],\"upstreams\":[");
    for (u, up) in l.config.upstreams.iter().enumerate() {
        if u > 0 {
            o.push(',');
        }
        o.push_str("{\"name\":");
        string(&mut o, &up.name);
        o.push_str(",\"servers\":[");
        for (s, peer) in up.servers.iter().enumerate() {
            if s > 0 {
                o.push(',');
            }
            let series = &l.upstreams[u].peers[s];
            let active = match (&up.health_check, l.probed_down(u, s)) {
                (None, _) => "off",
                (Some(_), true) => "down",
                (Some(_), false) => "up",
            };
            let passive_down = series.w.iter().any(|b| b.passive_down.get() != 0);
            let up_now = active != "down" && !passive_down;
            o.push_str("{\"server\":");
            string(&mut o, &peer.authority);
            o.push_str(",\"backup\":");
            o.push_str(if peer.backup { "true" } else { "false" });
            let _ = write!(
                o,
                ",\"health\":\"{}\",\"active_check\":\"{active}\",\"passive_check\":\"{}\",\"in_flight\":{}}}",
                if up_now { "up" } else { "down" },
                if passive_down { "down" } else { "up" },
                super::sum(&series.w, |b| b.in_flight.get()),
            );
        }
        o.push_str("]}");
    }
    o.push_str("]}\n");
    o
}

#[cfg(test)]
mod tests {
    #[test]
    fn strings_are_escaped() {
        let mut o = String::new();
        super::string(&mut o, "a\"\\\n\u{1}é");
        assert_eq!(o, "\"a\\\"\\\\\\u000a\\u0001é\"");
    }
}
