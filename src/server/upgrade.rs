//! Binary upgrade (SIGUSR2, `ringway --upgrade`): the running process starts
//! the binary again and hands it every listening socket, so no connection
//! queued in a backlog is lost and none is refused.
//!
//! The old process, on its reload thread:
//! 1. makes a `SOCK_SEQPACKET` socket pair and starts the executable found
//!    at the path this process was started from (see `remember_exe`), with
//!    the same arguments and the environment variable `RINGWAY_UPGRADE_FD`
//!    naming its end of the pair;
//! 2. sends, one message per socket, `sock <configured address>` with the
//!    socket as SCM_RIGHTS, every socket of every SO_REUSEPORT group in
//!    worker order, then `end`;
//! 3. waits (at most `READY_WITHIN`) for `ready <pid>`. If the new process
//!    exits first, hangs up or is too slow, the old one logs why (the
//!    new one's own errors are on the same stderr), stops it if it still
//!    runs, writes its own id to the pid file again and goes on serving.
//!    On `ready` the old process stops accepting, answers the next request
//!    of each keep-alive connection with `Connection: close` (HTTP/2:
//!    GOAWAY), lets requests finish within `drain_timeout` and exits.
//!
//! The new process reads the sockets before anything else, uses them for
//! the addresses its config still lists (keyed by the configured address,
//! so a reordered config is fine), binds the addresses that are new, and
//! closes those its config no longer lists (connections queued on them at
//! that moment are lost, as with a stop: a config that drops an address is
//! best applied by a reload, which drains it). It keeps the number of
//! sockets per group as its worker count, since a member closed out of a
//! SO_REUSEPORT group resets what is queued on it. Once its workers run it
//! writes the pid file, tells systemd `MAINPID=`, and sends `ready`.
//!
//! Both ends are the same open sockets, so between `ready` and the old
//! process's last accept both accept from the same queues.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The environment variable that names the new process's end of the pair.
pub const FD_ENV: &str = "RINGWAY_UPGRADE_FD";

/// How long the new process may take from its start to `ready`.
pub const READY_WITHIN: Duration = Duration::from_secs(20);

static EXE: OnceLock<(PathBuf, Vec<OsString>)> = OnceLock::new();

/// Records the executable's path and the arguments, at start. The path is
/// the one `/proc/self/exe` names then; an upgrade runs whatever file is at
/// that path when it happens (a package manager renames the new binary
/// over the old one, and `/proc/self/exe` then reads "... (deleted)", which
/// is why it is not read again later).
pub fn remember_exe() {
    let _ = EXE.get_or_init(|| {
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
        (exe, std::env::args_os().skip(1).collect())
    });
}

/// A connected `SOCK_SEQPACKET` socket: message boundaries are kept, and
/// a peer's exit reads as the end.
pub struct Channel(OwnedFd);

fn pair() -> io::Result<(Channel, Channel)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: socketpair writes two descriptors into the array on success.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nothing else.
    Ok(unsafe {
        (
            Channel(OwnedFd::from_raw_fd(fds[0])),
            Channel(OwnedFd::from_raw_fd(fds[1])),
        )
    })
}

impl Channel {
    /// Takes over the descriptor named by `RINGWAY_UPGRADE_FD`, if any, and
    /// removes the variable (a later upgrade sets its own).
    pub fn inherited() -> io::Result<Option<Channel>> {
        let Some(v) = std::env::var_os(FD_ENV) else {
            return Ok(None);
        };
        std::env::remove_var(FD_ENV);
        let fd: RawFd = v
            .to_str()
            .and_then(|s| s.parse().ok())
            .filter(|fd| *fd > 2)
            .ok_or_else(|| io::Error::other(format!("{FD_ENV}={v:?} is not a descriptor")))?;
        // SAFETY: the parent made this descriptor for this process alone and
        // nothing else here refers to it.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // Keep it from a further child.
        // SAFETY: fcntl on a descriptor we own.
        unsafe { libc::fcntl(owned.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
        Ok(Some(Channel(owned)))
    }

    fn send(&self, msg: &str, fd: Option<RawFd>) -> io::Result<()> {
        let mut iov = libc::iovec {
            iov_base: msg.as_ptr() as *mut libc::c_void,
            iov_len: msg.len(),
        };
        // Room for one descriptor, aligned as cmsghdr needs.
        let mut space = [0u64; 8];
        // SAFETY: an all-zero msghdr is valid; the pointers set below point
        // into `iov` and `space`, which outlive the call.
        let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
        hdr.msg_iov = &mut iov;
        hdr.msg_iovlen = 1;
        if let Some(fd) = fd {
            // SAFETY: CMSG_SPACE of one int fits in `space` (64 bytes); the
            // header and its data are written inside it.
            unsafe {
                hdr.msg_control = space.as_mut_ptr() as *mut libc::c_void;
                hdr.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
                let c = libc::CMSG_FIRSTHDR(&hdr);
                (*c).cmsg_level = libc::SOL_SOCKET;
                (*c).cmsg_type = libc::SCM_RIGHTS;
                (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
                std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut RawFd, fd);
            }
        }
        // SAFETY: hdr is fully set up above.
        let n = unsafe { libc::sendmsg(self.0.as_raw_fd(), &hdr, libc::MSG_NOSIGNAL) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// One message and the descriptor it carries; `None` at the end.
    fn recv(&self) -> io::Result<Option<(String, Option<OwnedFd>)>> {
        let mut buf = [0u8; 512];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        let mut space = [0u64; 8];
        // SAFETY: as in `send`; the kernel writes into `buf` and `space`.
        let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
        hdr.msg_iov = &mut iov;
        hdr.msg_iovlen = 1;
        hdr.msg_control = space.as_mut_ptr() as *mut libc::c_void;
        hdr.msg_controllen = std::mem::size_of_val(&space);
        let n = loop {
            // SAFETY: hdr points at live buffers of the sizes given.
            let n = unsafe { libc::recvmsg(self.0.as_raw_fd(), &mut hdr, libc::MSG_CMSG_CLOEXEC) };
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break n;
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            return Ok(None);
        }
        let mut fd = None;
        // SAFETY: the kernel filled `hdr.msg_control` with valid cmsg headers;
        // each SCM_RIGHTS descriptor is new in this process and ours.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&hdr);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                    let raw = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const RawFd);
                    fd = Some(OwnedFd::from_raw_fd(raw));
                }
                c = libc::CMSG_NXTHDR(&hdr, c);
            }
        }
        Ok(Some((
            String::from_utf8_lossy(&buf[..n as usize]).into_owned(),
            fd,
        )))
    }

    fn set_timeout(&self, t: Duration) -> io::Result<()> {
        let tv = libc::timeval {
            tv_sec: t.as_secs() as libc::time_t,
            tv_usec: t.subsec_micros().max(1) as libc::suseconds_t,
        };
        // SAFETY: setsockopt with a timeval of the right size.
        let r = unsafe {
            libc::setsockopt(
                self.0.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// New process: the groups sent by the old one, by configured address.
    pub fn receive(&self) -> io::Result<HashMap<SocketAddr, Vec<TcpListener>>> {
        self.set_timeout(Duration::from_secs(10))?;
        let mut groups: HashMap<SocketAddr, Vec<TcpListener>> = HashMap::new();
        loop {
            let Some((msg, fd)) = self.recv()? else {
                return Err(io::Error::other(
                    "the old process hung up before sending every socket",
                ));
            };
            if msg == "end" {
                return Ok(groups);
            }
            let addr = msg
                .strip_prefix("sock ")
                .and_then(|a| a.parse::<SocketAddr>().ok())
                .ok_or_else(|| {
                    io::Error::other(format!("unexpected message from the old process: {msg:?}"))
                })?;
            let fd = fd.ok_or_else(|| io::Error::other(format!("no socket came with {msg:?}")))?;
            groups.entry(addr).or_default().push(TcpListener::from(fd));
        }
    }

    /// New process: tells the old one that its workers accept.
    pub fn ready(&self) -> io::Result<()> {
        self.send(&format!("ready {}", std::process::id()), None)
    }
}

/// The descriptor the new process finds its end of the pair at.
const CHILD_FD: RawFd = 3;

/// In the forked child: moves the channel to `CHILD_FD` and marks every
/// other descriptor above stderr close-on-exec. Accepted connections,
/// upstream connections, rings and log files of the old process may lack
/// close-on-exec (the accepted connections did, as measured); one inherited by the new process would stay open there after the old one
/// closed it, so a client told `Connection: close` would never see the end.
fn only_channel_survives(fd: RawFd) -> io::Result<()> {
    // SAFETY: dup2 and fcntl on descriptors of this (forked) process; dup2
    // leaves the copy without close-on-exec.
    unsafe {
        if fd == CHILD_FD {
            libc::fcntl(fd, libc::F_SETFD, 0);
        } else if libc::dup2(fd, CHILD_FD) < 0 {
            return Err(io::Error::last_os_error());
        }
        let first = (CHILD_FD + 1) as libc::c_uint;
        // close_range(2) with CLOSE_RANGE_CLOEXEC (Linux 5.11); else one by one.
        const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
        if libc::syscall(
            libc::SYS_close_range,
            first,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        ) != 0
        {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
                lim.rlim_cur.min(1 << 20) as RawFd
            } else {
                1 << 16
            };
            for d in first as RawFd..max {
                libc::fcntl(d, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
    }
    Ok(())
}

/// Old process: starts the new binary, hands it `groups` and waits for it
/// to be ready. Returns the new process's id, or why it is not running.
pub fn hand_over(groups: &[(SocketAddr, Vec<TcpListener>)]) -> Result<u32, String> {
    let (exe, args) = EXE
        .get()
        .ok_or("the executable's path was not recorded at start")?;
    let (ours, theirs) = pair().map_err(|e| format!("socketpair: {e}"))?;
    let their_fd = theirs.0.as_raw_fd();
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .env(FD_ENV, CHILD_FD.to_string())
        // The watchdog is the new main process's to feed once it says so.
        .env_remove("WATCHDOG_PID");
    // SAFETY: the closure runs in the forked child before exec and only
    // makes async-signal-safe system calls (dup2, close_range, fcntl).
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || only_channel_survives(their_fd));
    }
    let spawned = cmd.spawn();
    drop(theirs);
    let mut child = spawned.map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let pid = child.id();
    tracing::info!("upgrade: started {} as process {pid}", exe.display());
    match handshake(&ours, groups) {
        Ok(()) => Ok(pid),
        Err(why) => Err(format!("{why}; the new process {}", reap(&mut child))),
    }
}

/// How a new process that failed ended: given a moment to exit on its own
/// (it hung up: it is on its way out), then stopped, since one that is not
/// ready must not serve beside us.
fn reap(child: &mut Child) -> String {
    let until = Instant::now() + Duration::from_secs(2);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return format!("ended with {status}"),
            Ok(None) if Instant::now() < until => {
                #[allow(clippy::disallowed_methods)] // the reload thread, not a worker
                std::thread::sleep(Duration::from_millis(10));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return "was stopped".into();
            }
        }
    }
}

fn handshake(ch: &Channel, groups: &[(SocketAddr, Vec<TcpListener>)]) -> Result<(), String> {
    for (addr, socks) in groups {
        for s in socks {
            ch.send(&format!("sock {addr}"), Some(s.as_raw_fd()))
                .map_err(|e| format!("sending the socket of {addr}: {e}"))?;
        }
    }
    ch.send("end", None)
        .map_err(|e| format!("sending the sockets: {e}"))?;
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "the new process did not say it was ready within {}s",
                READY_WITHIN.as_secs()
            ));
        }
        ch.set_timeout(left.min(Duration::from_millis(500)))
            .map_err(|e| e.to_string())?;
        match ch.recv() {
            Ok(Some((msg, _))) if msg.starts_with("ready ") => return Ok(()),
            Ok(Some((msg, _))) => return Err(format!("unexpected message from the new process: {msg:?}")),
            Ok(None) => return Err("the new process hung up before it was ready".into()),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => continue,
            Err(e) => return Err(format!("reading from the new process: {e}")),
        }
    }
}
