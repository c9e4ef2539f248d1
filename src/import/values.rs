//! nginx's value syntaxes (times, sizes, listen addresses) read into what
//! ringway writes. Pure functions, unit-tested.

/// nginx's time (`30`, `500ms`, `1h30m`, `2d`, `1M`, `1y`) as ringway's
/// duration, in whole seconds or milliseconds.
pub fn duration(s: &str) -> Option<String> {
    let ms = millis(s)?;
    Some(if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    })
}

/// nginx's time in milliseconds (a bare number is seconds).
pub fn millis(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u64>().ok()?.checked_mul(1000);
    }
    let mut total: u64 = 0;
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !c.is_ascii_digit())?;
        if n_end == 0 {
            return None;
        }
        let n: u64 = rest[..n_end].parse().ok()?;
        rest = &rest[n_end..];
        let (unit, len) = if rest.starts_with("ms") {
            (1, 2)
        } else {
            let u = match rest.as_bytes()[0] {
                b's' => 1000,
                b'm' => 60_000,
                b'h' => 3_600_000,
                b'd' => 86_400_000,
                b'w' => 7 * 86_400_000,
                b'M' => 30 * 86_400_000,
                b'y' => 365 * 86_400_000,
                _ => return None,
            };
            (u, 1)
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
        rest = rest[len..].trim_start();
    }
    Some(total)
}

/// nginx's size (`512`, `8k`, `1M`, `2g`) as ringway writes it.
pub fn size(s: &str) -> Option<String> {
    let (num, unit) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], "k"),
        b'm' | b'M' => (&s[..s.len() - 1], "m"),
        b'g' | b'G' => (&s[..s.len() - 1], "g"),
        _ => (s, ""),
    };
    let n: u64 = num.parse().ok()?;
    Some(format!("{n}{unit}"))
}

/// Bytes of an nginx size.
pub fn size_bytes(s: &str) -> Option<u64> {
    let (num, mul) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1u64 << 10),
        b'm' | b'M' => (&s[..s.len() - 1], 1 << 20),
        b'g' | b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mul)
}

/// The address of `listen` (`80`, `127.0.0.1:8080`, `[::]:443`, `*:80`,
/// `localhost`) as `host:port`; `None` for a UNIX socket or garbage.
pub fn listen_addr(a: &str) -> Option<String> {
    if a.starts_with("unix:") {
        return None;
    }
    if a.bytes().all(|b| b.is_ascii_digit()) {
        return Some(format!("0.0.0.0:{a}"));
    }
    if let Some(rest) = a.strip_prefix('[') {
        let (ip, tail) = rest.split_once(']')?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p,
            None if tail.is_empty() => "80",
            None => return None,
        };
        return Some(format!("[{ip}]:{port}"));
    }
    let (host, port) = match a.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty() => (h, p),
        _ => (a, "80"),
    };
    let host = if host == "*" { "0.0.0.0" } else { host };
    Some(format!("{host}:{port}"))
}

/// A `server` address of an `upstream`, or the host of `proxy_pass`, with
/// the scheme's port when none is written.
pub fn with_port(a: &str, default: u16) -> String {
    if a.starts_with('[') {
        if a.contains("]:") {
            return a.to_string();
        }
        return format!("{a}:{default}");
    }
    match a.rsplit_once(':') {
        Some((_, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => a.to_string(),
        _ => format!("{a}:{default}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_sizes() {
        assert_eq!(duration("60").as_deref(), Some("60s"));
        assert_eq!(duration("500ms").as_deref(), Some("500ms"));
        assert_eq!(duration("1h30m").as_deref(), Some("5400s"));
        assert_eq!(duration("30d").as_deref(), Some("2592000s"));
        assert_eq!(duration("1x"), None);
        assert_eq!(size("10M").as_deref(), Some("10m"));
        assert_eq!(size("512").as_deref(), Some("512"));
        assert_eq!(size_bytes("1k"), Some(1024));
        assert_eq!(size("x"), None);
    }

    #[test]
    fn listen_forms() {
        assert_eq!(listen_addr("80").as_deref(), Some("0.0.0.0:80"));
        assert_eq!(listen_addr("127.0.0.1:8080").as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(listen_addr("[::]:443").as_deref(), Some("[::]:443"));
        assert_eq!(listen_addr("*:80").as_deref(), Some("0.0.0.0:80"));
        assert_eq!(listen_addr("localhost").as_deref(), Some("localhost:80"));
        assert_eq!(listen_addr("unix:/x"), None);
        assert_eq!(with_port("app.internal", 80), "app.internal:80");
        assert_eq!(with_port("10.0.0.1:81", 80), "10.0.0.1:81");
        assert_eq!(with_port("[::1]", 443), "[::1]:443");
    }
}
