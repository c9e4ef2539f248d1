//! `[admin]`: the operator's listener for `/metrics`, `/status` and
//! `/healthz` (see `crate::admin`). Off unless the table is there; its
//! address must be its own, since a socket bound to a `[[server]]` address
//! would join that address's SO_REUSEPORT group and take a share of its
//! clients.

use super::*;
use crate::config::Admin;

pub(super) fn check(c: &mut Checker, raw: &RawConfig, servers: &[Server]) -> Option<Admin> {
    let a = raw.admin.as_ref()?;
    let Some(listen) = &a.get_ref().listen else {
        c.error(
            a.span(),
            "admin.listen",
            "the [admin] table needs a listen address: listen = \"127.0.0.1:9901\"",
        );
        return None;
    };
    let addr = check_listen(c, listen, "admin.listen")?;
    for (i, s) in servers.iter().enumerate() {
        if let Some(j) = s.listen.iter().position(|l| overlaps(*l, addr)) {
            c.error(
                listen.span(),
                "admin.listen",
                format!(
                    "{addr} is also server[{i}].listen[{j}] ({}): the admin listener needs an address of its own",
                    s.listen[j]
                ),
            );
            return None;
        }
    }
    Some(Admin { listen: addr })
}

/// Two addresses of one family and port where one is the other or the
/// wildcard: binding both would share connections (or fail).
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}
