//! Phases preaccess and access of a request, between the choice of its
//! location and the content phase, so they hold for `return` locations as
//! for proxied ones: `[[limit]]`s (`crate::limit`), then IP rules.
//!
//! A location's [`Plan`] is made when the config loads; a location with
//! nothing in it costs the request one branch.

use std::sync::Arc;

use crate::limit::{self, Holds, LimitState, Refusal};
use crate::vars;

/// What a location checks before its content phase.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// `limits`: indices into the config's `[[limit]]`s, in the order
    /// written (the location's list, else its server block's).
    pub limits: Vec<usize>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.limits.is_empty()
    }
}

/// What a request keeps until it ends: the places it holds under
/// `connections` limits.
pub type Admitted = Holds;

/// Runs `plan` for one request on worker `w`.
pub async fn check(
    w: usize,
    plan: &Plan,
    limits: &[Arc<LimitState>],
    vars: &vars::Request<'_>,
) -> Result<Admitted, Refusal> {
    limit::preaccess(w, limits, &plan.limits, vars).await
}
