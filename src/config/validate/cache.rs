//! `[[cache]]` zones and a location's `cache`: the checks are the
//! feature's (`crate::cache::config`); here they get the loader's error
//! list and the zones a location may name.

use super::*;
use crate::cache::config as feature;

/// Checks every `[[cache]]`, and keeps them (and every name written) for
/// the locations that name them.
pub(super) fn zones(c: &mut Checker, raw: &RawConfig) -> Vec<crate::cache::ZoneDef> {
    c.cache_names = raw
        .cache
        .iter()
        .map(|z| z.get_ref().name.get_ref().trim().to_string())
        .collect();
    c.caches = feature::check_zones(c, &raw.cache);
    c.caches.clone()
}

/// A proxy location's `cache`.
pub(super) fn location(
    c: &mut Checker,
    v: &Spanned<crate::cache::RawCache>,
    key: &str,
    scope: crate::vars::Scope,
) -> Option<Arc<crate::cache::Cache>> {
    let (zones, names) = (std::mem::take(&mut c.caches), std::mem::take(&mut c.cache_names));
    let plan = feature::check_location(c, v, &format!("{key}.cache"), &zones, &names, scope);
    (c.caches, c.cache_names) = (zones, names);
    plan.map(Arc::new)
}
