//! `global.user`: after the listeners are bound and the log files opened,
//! the process gives up root for good, keeping only `CAP_NET_BIND_SERVICE`,
//! so that a reload can still bind a port below 1024.
//!
//! Runs on the main thread before any worker, the reload thread or the
//! resolver is spawned; every thread made later copies the main thread's
//! ids and capability sets. Threads alive at the time (none that outlive
//! `Server::bind` today) are covered too: glibc's `setresuid`/`setresgid`/
//! `setgroups`, which `libc::` calls, apply the change to every thread of
//! the process (the kernel's calls are per thread; glibc signals each
//! thread to repeat them). Capabilities are per thread and `capset` is a
//! raw syscall, so such a thread would end with none, which is only safer.
//!
//! The order is the one that works: keep capabilities across the uid change
//! (PR_SET_KEEPCAPS), supplementary groups, then gid, then uid (once the uid
//! is dropped, changing groups is no longer allowed), then trim the sets to
//! CAP_NET_BIND_SERVICE and raise it as ambient, so a binary started by
//! this one (an upgrade) keeps it too.

use std::io;

use crate::config::RunAs;

/// `CAP_NET_BIND_SERVICE`, from linux/capability.h.
const CAP_NET_BIND_SERVICE: u32 = 10;
/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets in two 32-bit words.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Becomes `who` in every thread: real, effective, saved (and so fs) uid
/// and gid, the primary group as the only supplementary one, and
/// `CAP_NET_BIND_SERVICE` the only capability left. An error, with the
/// reason, when not started as root or when a step is refused; nothing is
/// half done that matters then, since the caller stops.
pub fn drop_to(who: &RunAs) -> io::Result<()> {
    // SAFETY: get*id have no preconditions.
    let (euid, uid, egid, gid) =
        unsafe { (libc::geteuid(), libc::getuid(), libc::getegid(), libc::getgid()) };
    if euid != 0 {
        // Started as the user already (systemd's User=): the same config
        // serves both ways of starting, and there is nothing to drop.
        if (uid, euid, gid, egid) == (who.uid, who.uid, who.gid, who.gid) {
            tracing::info!("already running as user {} group {}", who.user, who.group);
            return Ok(());
        }
        return Err(io::Error::other(format!(
            "global.user = {:?} needs ringway to be started as root, or as that user and group \
             (running as uid {euid} gid {egid})",
            who.user
        )));
    }
    let step = |what: &str, rc: libc::c_int| -> io::Result<()> {
        if rc == 0 {
            Ok(())
        } else {
            let e = io::Error::last_os_error();
            Err(io::Error::new(
                e.kind(),
                format!("global.user {:?}: {what}: {e}", who.user),
            ))
        }
    };
    // SAFETY: plain prctl/set*id calls with integer arguments, and a
    // one-element group list that lives across the call.
    unsafe {
        step(
            "prctl(PR_SET_KEEPCAPS)",
            libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0),
        )?;
        let groups = [who.gid];
        step("setgroups", libc::setgroups(1, groups.as_ptr()))?;
        step("setresgid", libc::setresgid(who.gid, who.gid, who.gid))?;
        step("setresuid", libc::setresuid(who.uid, who.uid, who.uid))?;
    }
    let bit = 1u32 << CAP_NET_BIND_SERVICE;
    let mut hdr = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: bit,
            permitted: bit,
            inheritable: bit,
        },
        CapData::default(),
    ];
    // SAFETY: capset reads a header and two data words, both alive and of
    // the layout linux/capability.h gives for version 3.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut hdr, data.as_ptr()) } as libc::c_int;
    step("capset(CAP_NET_BIND_SERVICE)", rc)?;
    // SAFETY: integer-argument prctls.
    unsafe {
        step(
            "prctl(PR_CAP_AMBIENT_RAISE)",
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE,
                CAP_NET_BIND_SERVICE as libc::c_ulong,
                0,
                0,
            ),
        )?;
        // Not needed past this point; a later setuid (there is none) should
        // not keep anything.
        step(
            "prctl(PR_SET_KEEPCAPS, 0)",
            libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0),
        )?;
    }
    // SAFETY: get*id have no preconditions. A check that the change took in
    // this thread, since a silent failure here would leave root behind.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    if (uid, gid) != (who.uid, who.gid) {
        return Err(io::Error::other(format!(
            "global.user {:?}: still uid {uid} gid {gid} after the change",
            who.user
        )));
    }
    tracing::info!(
        "running as user {} ({}) group {} ({}), keeping CAP_NET_BIND_SERVICE",
        who.user,
        who.uid,
        who.group,
        who.gid
    );
    Ok(())
}
