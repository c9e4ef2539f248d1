//! Each worker's cache of opened files (nginx's `open_file_cache`): a
//! lookup that was made less than [`VALID`] ago is answered from here
//! without a helper round trip, with the file's bytes when it is small.
//! An entry older than that is looked up again, so a changed, replaced or
//! removed file is seen within [`VALID`]. Bounded to [`CAPACITY`] entries;
//! failed lookups are not kept (a flood of missing names costs helper
//! work, never memory here).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::open::{Meta, Rep};

/// How long a lookup is trusted.
pub const VALID: Duration = Duration::from_secs(1);
/// Entries per worker.
pub const CAPACITY: usize = 1024;

/// A kept lookup. Always behind an `Rc`, so the variants' sizes do not matter.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Cached {
    /// The file and its precompressed siblings (zstd, br, gzip).
    File(Rep, [Option<Rep>; 3]),
    Dir(Meta),
}

/// A kept lookup and when it was made.
type Entry = (Rc<Cached>, Instant);

#[derive(Default)]
pub struct OpenCache {
    map: RefCell<HashMap<Vec<u8>, Entry>>,
}

impl OpenCache {
    /// The key of `rel` below `dir` as looked up with these settings.
    pub fn key(dir: &std::path::Path, rel: &[u8], how: u8) -> Vec<u8> {
        use std::os::unix::ffi::OsStrExt;
        let d = dir.as_os_str().as_bytes();
        let mut k = Vec::with_capacity(d.len() + rel.len() + 2);
        k.extend_from_slice(d);
        k.push(0);
        k.extend_from_slice(rel);
        k.push(how);
        k
    }

    /// A lookup made less than [`VALID`] before `now`.
    pub fn get(&self, key: &[u8], now: Instant) -> Option<Rc<Cached>> {
        let map = self.map.borrow();
        let (c, at) = map.get(key)?;
        (now.saturating_duration_since(*at) < VALID).then(|| c.clone())
    }

    pub fn put(&self, key: Vec<u8>, c: Rc<Cached>, now: Instant) {
        let mut map = self.map.borrow_mut();
        if map.len() >= CAPACITY && !map.contains_key(&key) {
            map.retain(|_, (_, at)| now.saturating_duration_since(*at) < VALID);
            if map.len() >= CAPACITY {
                // All fresh: the oldest goes.
                if let Some(k) = map.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| k.clone()) {
                    map.remove(&k);
                }
            }
        }
        map.insert(key, (c, now));
    }

    pub fn len(&self) -> usize {
        self.map.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn dir() -> Rc<Cached> {
        Rc::new(Cached::Dir(Meta {
            size: 0,
            mtime: SystemTime::UNIX_EPOCH,
            dev: 1,
            ino: 2,
            dir: true,
        }))
    }

    #[test]
    fn entries_expire_and_the_table_stays_bounded() {
        let c = OpenCache::default();
        let t0 = Instant::now();
        c.put(b"a".to_vec(), dir(), t0);
        assert!(c.get(b"a", t0 + Duration::from_millis(500)).is_some());
        assert!(c.get(b"a", t0 + VALID).is_none());
        for i in 0..CAPACITY * 3 {
            c.put(
                format!("k{i}").into_bytes(),
                dir(),
                t0 + Duration::from_micros(i as u64),
            );
        }
        assert_eq!(c.len(), CAPACITY);
        // The newest survive.
        assert!(c
            .get(
                format!("k{}", CAPACITY * 3 - 1).as_bytes(),
                t0 + Duration::from_millis(1)
            )
            .is_some());
    }
}
