//! The response cache (nginx's `proxy_cache`): `[[cache]]` zones, and a
//! location's `cache = { zone = "...", ... }` plan, run in the content
//! phase of a `proxy_pass` location after its limits and access rules.
//!
//! One store per zone for the whole process (`store.rs`), shared by every
//! worker: per-worker caches would multiply origin traffic and memory by
//! the core count. Its entries are immutable and a hit holds a shard's
//! lock only for one map lookup. The RFC 9111 rules are pure functions in
//! `policy.rs`, and `entry.rs` makes stored entries with them; `lock.rs`
//! coalesces concurrent misses of a key across workers; the tee that
//! copies a miss's body while it is proxied is `tee.rs`; the request-path
//! glue is `proxy/cache.rs` (with `cache_reply.rs`, the hit, and
//! `cache_refresh.rs`, the background refresh).
//!
//! Zones are built off the workers with the metrics' layout of each
//! config, and a zone whose definition a reload leaves unchanged keeps its
//! store (entries of a changed zone are dropped with it).

pub mod config;
pub mod entry;
pub mod lock;
pub mod policy;
pub mod store;
pub mod tee;

use std::sync::Arc;

use crate::metrics::Counter;

pub use config::{Cache, RawCache, RawZone, ZoneDef};
pub use store::{Entry, Store};
pub use tee::Tee;

/// One zone of the config in force.
pub struct Zone {
    pub def: ZoneDef,
    pub store: Store,
    /// `lock = true`'s table of keys being fetched.
    pub locks: Arc<lock::Locks>,
    /// Requests by cache status, per worker (written by its worker alone).
    pub counters: Arc<Counters>,
    /// `min_uses`: misses counted per key.
    pub uses: Uses,
}

/// Misses per key, for `min_uses`, by a keyed 64-bit hash of the key.
/// Bounded: past [`MAX_COUNTED`] keys the counts start again from zero
/// (a key then needs `min_uses` more misses, never fewer).
#[derive(Default)]
pub struct Uses {
    // A std Mutex held for one map update, never across an await. Only a
    // miss of a location with `min_uses` > 1 takes it (no hit, no location
    // without `cache`). Not per worker: with N workers a key's misses are
    // spread over them, and per-worker counts would store it only after
    // up to N x `min_uses` misses.
    #[allow(clippy::disallowed_types)]
    map: std::sync::Mutex<std::collections::HashMap<u64, u32>>,
    hasher: std::collections::hash_map::RandomState,
}

const MAX_COUNTED: usize = 100_000;

impl Uses {
    /// Counts one more miss of `key`; the misses counted so far.
    pub fn count(&self, key: &[u8]) -> u32 {
        use std::hash::BuildHasher;
        let h = self.hasher.hash_one(key);
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= MAX_COUNTED && !m.contains_key(&h) {
            m.clear();
        }
        let n = m.entry(h).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }
}

pub struct Counters {
    pub w: Box<[[Counter; Status::ALL.len()]]>,
}

impl Zone {
    /// One request of worker `w` ended with `s`.
    pub fn count(&self, w: usize, s: Status) {
        if let Some(c) = self.counters.w.get(w) {
            c[s as usize].add(1);
        }
    }
}

/// The zones of `defs` for `workers` workers: a zone defined as in
/// `previous` is carried whole, a changed one keeps only its counters.
pub fn zones(defs: &[ZoneDef], workers: usize, previous: &[Arc<Zone>]) -> Vec<Arc<Zone>> {
    defs.iter()
        .map(|def| {
            let old = previous.iter().find(|p| p.def.name == def.name);
            if let Some(o) = old.filter(|o| o.def == *def && o.counters.w.len() == workers) {
                return o.clone();
            }
            let counters = old
                .map(|o| o.counters.clone())
                .filter(|c| c.w.len() == workers)
                .unwrap_or_else(|| {
                    Arc::new(Counters {
                        w: (0..workers).map(|_| Default::default()).collect(),
                    })
                });
            Arc::new(Zone {
                def: def.clone(),
                store: Store::new(def.memory, def.max_object),
                locks: Default::default(),
                counters,
                uses: Default::default(),
            })
        })
        .collect()
}

/// What the cache did for a request: nginx's `$upstream_cache_status`
/// values, sent in the location's `status_header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Status {
    Miss,
    Hit,
    /// A stored entry was stale (or the request asked for a fresh one)
    /// and the origin sent a new response.
    Expired,
    /// A stale entry served because the origin failed.
    Stale,
    /// A stale entry served while another request refreshes it.
    Updating,
    /// A stale entry the origin confirmed with 304.
    Revalidated,
    /// `bypass` sent the request to the origin.
    Bypass,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Miss,
        Status::Hit,
        Status::Expired,
        Status::Stale,
        Status::Updating,
        Status::Revalidated,
        Status::Bypass,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Miss => "MISS",
            Status::Hit => "HIT",
            Status::Expired => "EXPIRED",
            Status::Stale => "STALE",
            Status::Updating => "UPDATING",
            Status::Revalidated => "REVALIDATED",
            Status::Bypass => "BYPASS",
        }
    }
}

/// `DELETE /cache/<zone>?key=<key>` on the admin listener: removes every
/// variant of the key (as expanded by the location's `key`, percent-encoded
/// in the query). 200 when something was removed, 404 when not (or no such
/// zone), 400 without a key.
pub fn admin_purge(zones: &[Arc<Zone>], target: &[u8]) -> (u16, String) {
    let rest = target.strip_prefix(b"/cache/").unwrap_or_default();
    let (name, query) = match rest.iter().position(|&b| b == b'?') {
        Some(q) => (&rest[..q], &rest[q + 1..]),
        None => (rest, &b""[..]),
    };
    let Some(zone) = zones.iter().find(|z| z.def.name.as_bytes() == name) else {
        return (404, "no such cache zone\n".into());
    };
    let key = query
        .split(|&b| b == b'&')
        .find_map(|p| p.strip_prefix(b"key="))
        .and_then(percent_decoded);
    match key {
        None => (400, "give ?key=... (the expanded key, percent-encoded)\n".into()),
        Some(k) if zone.store.remove(&k) => (200, "purged\n".into()),
        Some(_) => (404, "not in the cache\n".into()),
    }
}

/// `%XX` decoded, `+` kept as it is; `None` for a broken escape.
fn percent_decoded(v: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' {
            let hex = v.get(i + 1..i + 3)?;
            let s = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(s, 16).ok()?);
            i += 3;
        } else {
            out.push(v[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_purge_finds_the_zone_and_the_decoded_key() {
        let zones = zones(
            &[ZoneDef {
                name: "main".into(),
                memory: 1 << 20,
                max_object: 1 << 16,
            }],
            1,
            &[],
        );
        let e = Arc::new(Entry {
            head: bytes::Bytes::from_static(b"HTTP/1.1 200 OK\r\n\r\n"),
            body: bytes::Bytes::new(),
            status: 200,
            stored: std::time::Instant::now(),
            initial_age: 0,
            lifetime: 60,
            vary: Vec::new(),
            etag: None,
            last_modified: None,
            no_cache: false,
            must_revalidate: false,
            stale_if_error: None,
            stale_while_revalidate: None,
        });
        zones[0].store.put(b"httph/a b?x=1", e);
        assert_eq!(admin_purge(&zones, b"/cache/other?key=x").0, 404);
        assert_eq!(admin_purge(&zones, b"/cache/main").0, 400);
        assert_eq!(admin_purge(&zones, b"/cache/main?key=%zz").0, 400);
        assert_eq!(
            admin_purge(&zones, b"/cache/main?key=httph%2Fa%20b%3Fx%3D1").0,
            200
        );
        assert_eq!(
            admin_purge(&zones, b"/cache/main?key=httph%2Fa%20b%3Fx%3D1").0,
            404
        );
    }
}
