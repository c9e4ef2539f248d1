//! `global.user` and `global.group`: looked up in the system's user and
//! group databases (NSS, through libc) when the config is checked, so an
//! unknown name is a `--check` error with its position, not a failure after
//! the listeners are bound.

use std::ffi::{CStr, CString};

use super::*;
use crate::config::raw::RawGlobal;
use crate::config::RunAs;

pub(super) fn check(c: &mut Checker, g: &RawGlobal) -> Option<RunAs> {
    let Some(user) = &g.user else {
        if let Some(group) = &g.group {
            c.error(
                group.span(),
                "global.group",
                "global.group needs global.user: the group is taken together with the user",
            );
        }
        return None;
    };
    let name = user.get_ref().trim();
    let (uid, primary) = match lookup_user(name) {
        Ok(Some(ids)) => ids,
        Ok(None) => {
            c.error(user.span(), "global.user", format!("unknown user {name:?}"));
            return None;
        }
        Err(e) => {
            c.error(
                user.span(),
                "global.user",
                format!("cannot look up user {name:?}: {e}"),
            );
            return None;
        }
    };
    if uid == 0 {
        c.error(
            user.span(),
            "global.user",
            format!("{name:?} is root (uid 0): leave global.user out to keep running as root"),
        );
        return None;
    }
    let (group, gid, span) = match &g.group {
        Some(gr) => {
            let gname = gr.get_ref().trim();
            match lookup_group(gname) {
                Ok(Some(gid)) => (gname.to_string(), gid, gr.span()),
                Ok(None) => {
                    c.error(gr.span(), "global.group", format!("unknown group {gname:?}"));
                    return None;
                }
                Err(e) => {
                    c.error(
                        gr.span(),
                        "global.group",
                        format!("cannot look up group {gname:?}: {e}"),
                    );
                    return None;
                }
            }
        }
        None => (
            group_name(primary).unwrap_or_else(|| primary.to_string()),
            primary,
            user.span(),
        ),
    };
    if gid == 0 {
        // Dropping the user but keeping gid 0 would leave every root-group
        // file (and /proc entries) open to the process.
        let key = if g.group.is_some() {
            "global.group"
        } else {
            "global.user"
        };
        c.error(
            span,
            key,
            "the group would be root's (gid 0): name another one in global.group",
        );
        return None;
    }
    Some(RunAs {
        user: name.to_string(),
        uid,
        group,
        gid,
    })
}

/// A buffer size for the `get*_r` calls; grown on ERANGE.
const BUF: usize = 1024;

/// The uid and primary gid of user `name`, `None` when there is no such user.
fn lookup_user(name: &str) -> std::io::Result<Option<(u32, u32)>> {
    let Ok(cname) = CString::new(name) else {
        return Ok(None);
    };
    let mut buf = vec![0u8; BUF];
    loop {
        // SAFETY: every pointer handed in is valid for the call: `pw` and
        // `out` live on this stack frame, `buf` is a live buffer of the size
        // given; the strings `pw` points into live in `buf`, not read here.
        let (rc, found) = unsafe {
            let mut pw: libc::passwd = std::mem::zeroed();
            let mut out: *mut libc::passwd = std::ptr::null_mut();
            let rc = libc::getpwnam_r(
                cname.as_ptr(),
                &mut pw,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut out,
            );
            (rc, (!out.is_null()).then_some((pw.pw_uid, pw.pw_gid)))
        };
        match rc {
            0 => return Ok(found),
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            // glibc answers "not found" as 0 with a null result, but some
            // NSS modules use these.
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => return Ok(None),
            e => return Err(std::io::Error::from_raw_os_error(e)),
        }
    }
}

/// The gid of group `name`, `None` when there is no such group.
fn lookup_group(name: &str) -> std::io::Result<Option<u32>> {
    let Ok(cname) = CString::new(name) else {
        return Ok(None);
    };
    let mut buf = vec![0u8; BUF];
    loop {
        // SAFETY: as in `lookup_user`.
        let (rc, found) = unsafe {
            let mut gr: libc::group = std::mem::zeroed();
            let mut out: *mut libc::group = std::ptr::null_mut();
            let rc = libc::getgrnam_r(
                cname.as_ptr(),
                &mut gr,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut out,
            );
            (rc, (!out.is_null()).then_some(gr.gr_gid))
        };
        match rc {
            0 => return Ok(found),
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => return Ok(None),
            e => return Err(std::io::Error::from_raw_os_error(e)),
        }
    }
}

/// The name of group `gid`, for messages; `None` when it has none.
fn group_name(gid: u32) -> Option<String> {
    let mut buf = vec![0u8; BUF];
    loop {
        // SAFETY: as in `lookup_user`; the name is copied out of `buf`
        // before it is freed.
        let (rc, found) = unsafe {
            let mut gr: libc::group = std::mem::zeroed();
            let mut out: *mut libc::group = std::ptr::null_mut();
            let rc = libc::getgrgid_r(gid, &mut gr, buf.as_mut_ptr().cast(), buf.len(), &mut out);
            let name = (!out.is_null()).then(|| CStr::from_ptr(gr.gr_name).to_string_lossy().into_owned());
            (rc, name)
        };
        match rc {
            0 => return found,
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            _ => return None,
        }
    }
}
