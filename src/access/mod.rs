//! Phases preaccess and access of a request, between the choice of its
//! location and the content phase, so they hold for `return` locations as
//! for proxied ones: `[[limit]]`s (`crate::limit`), then IP rules
//! (`ip.rs`), then authentication (`auth`, one method per location: Basic
//! in `basic.rs` over `htpasswd.rs`).
//!
//! A location's [`Plan`] is made when the config loads; a location with
//! nothing in it costs the request one branch.

pub mod basic;
pub mod cache;
pub mod config;
pub mod htpasswd;
pub mod ip;
pub mod verify;

use std::net::IpAddr;
use std::sync::Arc;

pub use config::{RawAuth, RawRule, Report};

use crate::http::RequestHead;
use crate::limit::{self, Holds, LimitState, Refusal};
use crate::vars;

/// What a location checks before its content phase.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// `limits`: indices into the config's `[[limit]]`s, in the order
    /// written (the location's list, else its server block's).
    pub limits: Vec<usize>,
    /// `allow`/`deny` or `access`: the location's, else its server
    /// block's.
    pub ip: Option<ip::Rules>,
    /// `auth`: the location's, else its server block's.
    pub auth: Option<Arc<Auth>>,
}

/// An authentication method, with what it read at load.
#[derive(Debug)]
pub enum Auth {
    Basic(basic::Basic),
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.limits.is_empty() && self.ip.is_none() && self.auth.is_none()
    }
}

/// What a request keeps until it ends: the places it holds under
/// `connections` limits.
pub type Admitted = Holds;

/// Runs `plan` for one request on worker `w` from `client`: limits, then
/// IP rules (403), then authentication (401).
pub async fn check(
    w: usize,
    plan: &Plan,
    limits: &[Arc<LimitState>],
    vars: &vars::Request<'_>,
    client: IpAddr,
    head: &RequestHead,
) -> Result<Admitted, Refusal> {
    let holds = limit::preaccess(w, limits, &plan.limits, vars).await?;
    if let Some(rules) = &plan.ip {
        if !rules.allows(client) {
            tracing::debug!(%client, "request refused by the IP rules");
            return Err(Refusal {
                status: 403,
                lines: Vec::new(),
            });
        }
    }
    match plan.auth.as_deref() {
        None => {}
        Some(Auth::Basic(b)) => b.check(head).await?,
    }
    Ok(holds)
}
