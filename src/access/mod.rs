//! Phases preaccess and access of a request, between the choice of its
//! location and the content phase, so they hold for `return` locations as
//! for proxied ones: `[[limit]]`s (`crate::limit`), then IP rules
//! (`ip.rs`), then authentication (`auth`, one method per location: Basic
//! in `basic.rs` over `htpasswd.rs`, API keys in `apikey.rs`, JWTs in
//! `jwt.rs`, forward auth in `request.rs`).
//!
//! What authentication learns goes upstream as fields ringway sets
//! (`X-Consumer`, a JWT's `claims_to_headers`, forward auth's
//! `copy_headers`). Every such name in the
//! config, and a location's API key field, is in each location's `strip`
//! list, so what a client sent under them never goes upstream.
//!
//! A location's [`Plan`] is made when the config loads; a location with
//! nothing in it costs the request one branch.

pub mod apikey;
pub mod basic;
pub mod cache;
pub mod config;
pub mod htpasswd;
pub mod ip;
pub mod jwt;
pub mod request;
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
    /// Request fields never passed upstream (lower-case): every one that
    /// any `auth` of the config sets (so no location passes on a client's
    /// forged `X-User`, whatever its own auth), and the one that carries
    /// this location's API key. Filled in once every block is checked.
    pub strip: Vec<String>,
}

/// An authentication method, with what it read at load.
#[derive(Debug)]
pub enum Auth {
    Basic(basic::Basic),
    ApiKey(apikey::ApiKey),
    Jwt(jwt::Jwt),
    Request(request::Forward),
}

impl Auth {
    /// The request fields this method sets upstream (lower-case).
    pub fn sets(&self) -> Vec<String> {
        match self {
            Auth::Basic(_) => Vec::new(),
            Auth::ApiKey(_) => vec![apikey::CONSUMER.to_string()],
            Auth::Jwt(j) => jwt::fields(j).collect(),
            Auth::Request(f) => f.copy.clone(),
        }
    }

    /// The field that carries this method's credential when it must not go
    /// on upstream (an API key's), lower-case.
    pub fn carrier(&self) -> Option<&str> {
        match self {
            Auth::ApiKey(k) => match &k.from {
                apikey::From::Header(h) => Some(h),
                apikey::From::Query(_) => None,
            },
            _ => None,
        }
    }

    /// The query parameter to cut from the upstream target, if any.
    pub fn query_param(&self) -> Option<&str> {
        match self {
            Auth::ApiKey(k) => match &k.from {
                apikey::From::Query(q) => Some(q),
                apikey::From::Header(_) => None,
            },
            _ => None,
        }
    }
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.limits.is_empty() && self.ip.is_none() && self.auth.is_none()
    }
}

/// What a request keeps until it ends: the places it holds under
/// `connections` limits, and the fields auth sets upstream (whole lines;
/// empty, and unallocated, without auth).
#[derive(Default)]
pub struct Admitted {
    pub holds: Holds,
    pub lines: Vec<u8>,
}

/// The request as the access phase sees it.
pub struct Request<'a> {
    /// The client's address, after `trusted_proxies`.
    pub client: IpAddr,
    pub head: &'a RequestHead,
    /// The `Host` (or `:authority`), and whether the request came over TLS.
    pub host: Option<&'a [u8]>,
    pub https: bool,
}

/// Runs `plan` for one request on worker `w`: limits, then IP rules (403),
/// then authentication (401).
pub async fn check(
    w: usize,
    plan: &Plan,
    limits: &[Arc<LimitState>],
    vars: &vars::Request<'_>,
    req: &Request<'_>,
) -> Result<Admitted, Refusal> {
    let (client, head) = (req.client, req.head);
    let holds = limit::preaccess(w, limits, &plan.limits, vars).await?;
    if let Some(rules) = &plan.ip {
        if !rules.allows(client) {
            tracing::debug!(%client, "request refused by the IP rules");
            return Err(Refusal {
                status: 403,
                lines: Vec::new(),
                body: None,
            });
        }
    }
    let mut lines = Vec::new();
    match plan.auth.as_deref() {
        None => {}
        Some(Auth::Basic(b)) => b.check(head).await?,
        Some(Auth::ApiKey(k)) => {
            let name = k.check(head)?;
            crate::http::encode::header(b"X-Consumer", name.as_bytes(), &mut lines);
        }
        Some(Auth::Jwt(j)) => j.check(head, &mut lines)?,
        Some(Auth::Request(f)) => f.check(head, req.host, req.https, &mut lines).await?,
    }
    Ok(Admitted { holds, lines })
}
