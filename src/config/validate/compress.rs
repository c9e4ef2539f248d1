//! `compress` at server and location level: the checks are the feature's
//! (`crate::compress`); here they get the loader's error list, and a
//! location gets its own setting or, without one, its server's.

use std::sync::Arc;

use super::*;
use crate::compress::{self as feature, Compress};

impl feature::Report for Checker<'_> {
    fn error(&mut self, span: Range<usize>, key: String, message: String) {
        Checker::error(self, span, key, message);
    }

    fn parse_size(&self, s: &str) -> Option<u64> {
        parse_size(s)
    }
}

/// The server block's `compress` (`None`: off, or not valid).
pub(super) fn server(c: &mut Checker, r: &RawServer, key: &str) -> Option<Arc<Compress>> {
    let v = r.compress.as_ref()?;
    feature::check(c, v, &format!("{key}.compress")).flatten()
}

/// A location's `compress`, which replaces its server's when written.
pub(super) fn location(
    c: &mut Checker,
    r: &RawLocation,
    key: &str,
    server: &Option<Arc<Compress>>,
) -> Option<Arc<Compress>> {
    match &r.compress {
        None => server.clone(),
        Some(v) => feature::check(c, v, &format!("{key}.compress")).flatten(),
    }
}
