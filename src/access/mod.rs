//! Phases preaccess and access of a request, between the choice of its
//! location and the content phase, so they hold for `return` locations as
//! for proxied ones: `[[limit]]`s (`crate::limit`), then IP rules
//! (`ip.rs`).
//!
//! A location's [`Plan`] is made when the config loads; a location with
//! nothing in it costs the request one branch.

pub mod config;
pub mod ip;

use std::net::IpAddr;
use std::sync::Arc;

pub use config::{RawRule, Report};

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
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.limits.is_empty() && self.ip.is_none()
    }
}

/// What a request keeps until it ends: the places it holds under
/// `connections` limits.
pub type Admitted = Holds;

/// Runs `plan` for one request on worker `w` from `client`: limits, then
/// IP rules (403).
pub async fn check(
    w: usize,
    plan: &Plan,
    limits: &[Arc<LimitState>],
    vars: &vars::Request<'_>,
    client: IpAddr,
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
    Ok(holds)
}
