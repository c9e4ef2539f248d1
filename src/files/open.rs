//! Opening files below a static location's directory, off the workers: a
//! small pool of helper threads does the `openat2`, `fstat`, directory
//! reads and (on the epoll driver, whose file reads would block) the reads,
//! and answers over a channel the worker awaits. The queue is bounded: a
//! worker that finds it full answers 503 rather than wait.
//!
//! `openat2(2)`'s `RESOLVE_BENEATH` makes the kernel refuse any step of a
//! lookup that leaves the directory (a `..`, an absolute symlink, a
//! symlink whose target lies outside), so what a request names can never
//! open a file elsewhere, whatever the path resolution above got wrong.
//! Where `openat2` is missing (`ENOSYS`: a seccomp filter of an older
//! container runtime, an emulator), the file is opened with `openat` and
//! kept only if where it ended up (its `/proc/self/fd` link) is the place
//! the rules allow; said once in the log.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use bytes::Bytes;

use crate::helpers::Pool;

use super::Symlinks;

/// Helper threads of the pool.
const THREADS: usize = 2;
/// Jobs waiting for a helper, across workers.
const QUEUE: usize = 4096;
/// Files up to this size are read whole when opened and served from
/// memory (the open-file cache keeps the bytes).
pub const SMALL: u64 = 64 * 1024;
/// Entries shown by a directory listing at most.
pub const MAX_LISTED: usize = 10_000;

/// What `fstat` said of an opened file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub size: u64,
    pub mtime: SystemTime,
    pub dev: u64,
    pub ino: u64,
    pub dir: bool,
}

/// One opened representation of a file: the file itself or a
/// precompressed sibling.
#[derive(Debug, Clone)]
pub struct Rep {
    pub file: Arc<File>,
    pub meta: Meta,
    /// The whole content, for files up to [`SMALL`].
    pub bytes: Option<Bytes>,
    /// Its validators as sent, made once when it is opened.
    pub etag: Box<str>,
    pub last_modified: Box<str>,
}

/// The outcome of a lookup.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // moved once, from a helper to a worker
pub enum Opened {
    /// A regular file, and its precompressed siblings (zstd, br, gzip, in
    /// `compress::Algorithm` order) that exist and are not older than it.
    File(Rep, [Option<Rep>; 3]),
    Dir(Meta),
    /// 404: no such file, or not a regular file or directory.
    Missing,
    /// 403: permission denied, or a symlink the location does not follow.
    Forbidden,
    /// 414: the kernel found the name too long.
    TooLong,
}

/// A directory listing's entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: Vec<u8>,
    pub dir: bool,
    pub size: u64,
    pub mtime: SystemTime,
}

enum Job {
    Open {
        root: Arc<Path>,
        rel: Vec<u8>,
        symlinks: Symlinks,
        siblings: bool,
        reply: flume::Sender<io::Result<Opened>>,
    },
    List {
        root: Arc<Path>,
        rel: Vec<u8>,
        symlinks: Symlinks,
        reply: flume::Sender<io::Result<(Vec<Entry>, bool)>>,
    },
    Read {
        file: Arc<File>,
        offset: u64,
        len: usize,
        reply: flume::Sender<io::Result<Bytes>>,
    },
}

pub use crate::helpers::Busy;

fn pool() -> &'static Pool<Job> {
    static POOL: OnceLock<Pool<Job>> = OnceLock::new();
    POOL.get_or_init(|| Pool::start("ringway-files", THREADS, QUEUE, run))
}

/// A helper always answers; a lost answer (a helper panicked) is a 503.
async fn ask<T>(make: impl FnOnce(flume::Sender<T>) -> Job) -> Result<T, Busy> {
    pool().ask(make).await
}

/// Looks `rel` up below `root`; `siblings`: also the precompressed ones.
pub async fn open(
    root: &Arc<Path>,
    rel: &[u8],
    symlinks: Symlinks,
    siblings: bool,
) -> Result<io::Result<Opened>, Busy> {
    ask(|reply| Job::Open {
        root: root.clone(),
        rel: rel.to_vec(),
        symlinks,
        siblings,
        reply,
    })
    .await
}

/// The entries of directory `rel` below `root`, sorted by name, and
/// whether there were more than [`MAX_LISTED`].
pub async fn list(
    root: &Arc<Path>,
    rel: &[u8],
    symlinks: Symlinks,
) -> Result<io::Result<(Vec<Entry>, bool)>, Busy> {
    ask(|reply| Job::List {
        root: root.clone(),
        rel: rel.to_vec(),
        symlinks,
        reply,
    })
    .await
}

/// Up to `len` bytes of `file` from `offset` (the epoll driver's reads).
pub async fn read(file: &Arc<File>, offset: u64, len: usize) -> Result<io::Result<Bytes>, Busy> {
    ask(|reply| Job::Read {
        file: file.clone(),
        offset,
        len,
        reply,
    })
    .await
}

fn run(job: Job) {
    match job {
        Job::Open {
            root,
            rel,
            symlinks,
            siblings,
            reply,
        } => {
            let _ = reply.send(open_now(&root, &rel, symlinks, siblings));
        }
        Job::List {
            root,
            rel,
            symlinks,
            reply,
        } => {
            let _ = reply.send(list_now(&root, &rel, symlinks));
        }
        Job::Read {
            file,
            offset,
            len,
            reply,
        } => {
            let mut buf = vec![0; len];
            let r = file.read_at(&mut buf, offset).map(|n| {
                buf.truncate(n);
                Bytes::from(buf)
            });
            let _ = reply.send(r);
        }
    }
}

fn open_now(root: &Path, rel: &[u8], symlinks: Symlinks, siblings: bool) -> io::Result<Opened> {
    let file = match beneath(root, rel, symlinks) {
        Ok(f) => f,
        Err(e) => return refusal(e),
    };
    let meta = meta_of(&file)?;
    if meta.dir {
        return Ok(Opened::Dir(meta));
    }
    let Some(main) = rep(file, meta)? else {
        return Ok(Opened::Missing);
    };
    let mut reps: [Option<Rep>; 3] = [None, None, None];
    if siblings && !rel.is_empty() {
        for (slot, ext) in reps.iter_mut().zip([".zst", ".br", ".gz"]) {
            let mut name = rel.to_vec();
            name.extend_from_slice(ext.as_bytes());
            let Ok(f) = beneath(root, &name, symlinks) else {
                continue;
            };
            let Ok(m) = meta_of(&f) else { continue };
            // An older sibling was made from an older file: not served.
            if m.dir || m.mtime < meta.mtime {
                continue;
            }
            *slot = rep(f, m)?;
        }
    }
    Ok(Opened::File(main, reps))
}

/// A regular file as a [`Rep`] (read whole when small); `None` for a
/// FIFO, socket or device, which a static location never serves.
fn rep(file: File, meta: Meta) -> io::Result<Option<Rep>> {
    if !file.metadata()?.file_type().is_file() {
        return Ok(None);
    }
    let bytes = if meta.size <= SMALL {
        let mut buf = vec![0; meta.size as usize];
        let mut got = 0;
        while got < buf.len() {
            match file.read_at(&mut buf[got..], got as u64)? {
                0 => break,
                n => got += n,
            }
        }
        buf.truncate(got);
        Some(Bytes::from(buf))
    } else {
        None
    };
    let meta = Meta {
        size: bytes.as_ref().map_or(meta.size, |b| b.len() as u64),
        ..meta
    };
    Ok(Some(Rep {
        file: Arc::new(file),
        etag: super::http::etag(meta.mtime, meta.size).into(),
        last_modified: httpdate::fmt_http_date(meta.mtime).into(),
        meta,
        bytes,
    }))
}

fn refusal(e: io::Error) -> io::Result<Opened> {
    match e.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR) => Ok(Opened::Missing),
        Some(libc::EACCES | libc::EPERM | libc::ELOOP | libc::EXDEV) => Ok(Opened::Forbidden),
        Some(libc::ENAMETOOLONG) => Ok(Opened::TooLong),
        _ => Err(e),
    }
}

fn meta_of(f: &File) -> io::Result<Meta> {
    let m = f.metadata()?;
    Ok(Meta {
        size: m.len(),
        mtime: m.modified()?,
        dev: m.dev(),
        ino: m.ino(),
        dir: m.is_dir(),
    })
}

/// Opens `rel` (no `..`, no leading slash) below `root` for reading.
fn beneath(root: &Path, rel: &[u8], symlinks: Symlinks) -> io::Result<File> {
    let dir = open_path(
        libc::AT_FDCWD,
        root.as_os_str().as_bytes(),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
    )?;
    let rel: &[u8] = if rel.is_empty() { b"." } else { rel };
    let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY;
    if NO_OPENAT2.load(Ordering::Relaxed) {
        return checked_open(&dir, rel, flags, symlinks);
    }
    let resolve = match symlinks {
        Symlinks::Beneath => libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
        Symlinks::Never => libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
        Symlinks::Any => libc::RESOLVE_NO_MAGICLINKS,
    };
    match open_path(dir.as_raw_fd(), rel, flags, resolve) {
        // An absolute symlink: RESOLVE_BENEATH refuses it even when it
        // points inside the directory. Follow it, then keep the file only
        // if where it ended up lies below the directory after all.
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) && symlinks == Symlinks::Beneath => {
            let fd = open_path(dir.as_raw_fd(), rel, flags, libc::RESOLVE_NO_MAGICLINKS)?;
            if below(&dir, &fd, None)? {
                Ok(File::from(fd))
            } else {
                Err(e)
            }
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => checked_open(&dir, rel, flags, symlinks),
        Err(e) => Err(e),
        Ok(fd) => Ok(File::from(fd)),
    }
}

/// Set once `openat2` answered `ENOSYS`.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Without `openat2`: opens `rel` following whatever it meets, then keeps
/// the file only if its real path is below `dir` (`Beneath`), exactly
/// `dir`/`rel` (`Never`: any symlink on the way makes them differ), or
/// anywhere (`Any`). A refusal is the error `openat2` would have given.
fn checked_open(dir: &OwnedFd, rel: &[u8], flags: libc::c_int, symlinks: Symlinks) -> io::Result<File> {
    let fd = open_path(dir.as_raw_fd(), rel, flags, 0)?;
    let ok = match symlinks {
        Symlinks::Any => true,
        Symlinks::Beneath => below(dir, &fd, None)?,
        Symlinks::Never => below(dir, &fd, Some(rel))?,
    };
    if ok {
        Ok(File::from(fd))
    } else {
        Err(io::Error::from_raw_os_error(match symlinks {
            Symlinks::Never => libc::ELOOP,
            _ => libc::EXDEV,
        }))
    }
}

/// Whether `fd` lies below the directory `dir` (with `exact`: is
/// `dir`/`exact`), by the links of both in `/proc/self/fd`.
fn below(dir: &OwnedFd, fd: &OwnedFd, exact: Option<&[u8]>) -> io::Result<bool> {
    let real = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
    let top = std::fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd()))?;
    Ok(match exact {
        None => real.starts_with(&top),
        Some(rel) => {
            let mut want = top;
            for part in rel.split(|&b| b == b'/').filter(|p| !p.is_empty() && *p != b".") {
                want.push(std::ffi::OsStr::from_bytes(part));
            }
            real == want
        }
    })
}

fn open_path(dir: libc::c_int, path: &[u8], flags: libc::c_int, resolve: u64) -> io::Result<OwnedFd> {
    let c = CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::ENOENT))?;
    if NO_OPENAT2.load(Ordering::Relaxed) {
        return open_at(dir, &c, flags, resolve);
    }
    // SAFETY: open_how is plain data; every field is set below.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = resolve;
    loop {
        // SAFETY: `c` and `how` outlive the call; the size is open_how's.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir,
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd >= 0 {
            // SAFETY: a new descriptor that nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) });
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOSYS) {
            if !NO_OPENAT2.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "openat2 is not available here (ENOSYS): static files are opened with openat and checked by their real path instead"
                );
            }
            return open_at(dir, &c, flags, resolve);
        }
        if e.raw_os_error() != Some(libc::EAGAIN) && e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// `openat` for a lookup without `resolve` rules; with rules, `ENOSYS`
/// (the caller checks the result itself, see [`checked_open`]).
fn open_at(dir: libc::c_int, c: &CString, flags: libc::c_int, resolve: u64) -> io::Result<OwnedFd> {
    if resolve != 0 {
        return Err(io::Error::from_raw_os_error(libc::ENOSYS));
    }
    loop {
        // SAFETY: `c` outlives the call.
        let fd = unsafe { libc::openat(dir, c.as_ptr(), flags | libc::O_CLOEXEC) };
        if fd >= 0 {
            // SAFETY: a new descriptor that nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn list_now(root: &Path, rel: &[u8], symlinks: Symlinks) -> io::Result<(Vec<Entry>, bool)> {
    let dir = beneath(root, rel, symlinks)?;
    let path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    let mut out = Vec::new();
    let mut more = false;
    for e in std::fs::read_dir(path)? {
        let e = e?;
        if out.len() == MAX_LISTED {
            more = true;
            break;
        }
        let Ok(m) = e.metadata() else { continue };
        out.push(Entry {
            name: e.file_name().as_bytes().to_vec(),
            dir: m.is_dir(),
            size: m.len(),
            mtime: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((out, more))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A root with a file, a relative and an absolute symlink to it, and a
    /// symlink out to a file beside the root.
    fn tree(name: &str) -> PathBuf {
        let base = std::env::temp_dir().join(format!("ringway-open-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/file.txt"), "inside").unwrap();
        std::fs::write(base.join("outside.txt"), "outside").unwrap();
        symlink("sub/file.txt", root.join("rel-link")).unwrap();
        symlink(root.join("sub/file.txt"), root.join("abs-link")).unwrap();
        symlink("../outside.txt", root.join("out-link")).unwrap();
        symlink("../sub", root.join("sub/up")).unwrap();
        root
    }

    fn fallback(root: &Path, rel: &str, symlinks: Symlinks) -> Result<String, i32> {
        let dir = open_at(
            libc::AT_FDCWD,
            &CString::new(root.as_os_str().as_bytes()).unwrap(),
            libc::O_PATH | libc::O_DIRECTORY,
            0,
        )
        .unwrap();
        checked_open(&dir, rel.as_bytes(), libc::O_RDONLY, symlinks)
            .map(|f| std::io::read_to_string(f).unwrap())
            .map_err(|e| e.raw_os_error().unwrap())
    }

    #[test]
    fn without_openat2_the_real_path_decides() {
        let root = tree("fallback");
        use Symlinks::*;
        for s in [Beneath, Never, Any] {
            assert_eq!(fallback(&root, "sub/file.txt", s).as_deref(), Ok("inside"));
        }
        // Symlinks whose target stays below the root: Beneath and Any.
        for rel in ["rel-link", "abs-link", "sub/up/file.txt"] {
            assert_eq!(fallback(&root, rel, Beneath).as_deref(), Ok("inside"), "{rel}");
            assert_eq!(fallback(&root, rel, Any).as_deref(), Ok("inside"), "{rel}");
            assert_eq!(fallback(&root, rel, Never), Err(libc::ELOOP), "{rel}");
        }
        // Out of the root: Any alone.
        assert_eq!(fallback(&root, "out-link", Beneath), Err(libc::EXDEV));
        assert_eq!(fallback(&root, "out-link", Never), Err(libc::ELOOP));
        assert_eq!(fallback(&root, "out-link", Any).as_deref(), Ok("outside"));
        assert_eq!(fallback(&root, "missing", Beneath), Err(libc::ENOENT));
        let _ = std::fs::remove_dir_all(root.parent().unwrap());
    }
}
