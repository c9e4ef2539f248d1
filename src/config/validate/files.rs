//! The checks of static locations (`root`, `alias` and their keys, see
//! `crate::files`) and of `error_pages` and `intercept_errors`, at server
//! and location level.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::files::{ErrorPages, Expires, PageTarget, Static, Symlinks, TryFiles, TryLast};
use crate::vars::Scope;

/// The keys that only a static location takes.
fn static_keys(r: &RawLocation) -> [(Option<Range<usize>>, &'static str); 9] {
    [
        (r.index.as_ref().map(|v| v.span()), "index"),
        (r.try_files.as_ref().map(|v| v.span()), "try_files"),
        (r.autoindex.as_ref().map(|v| v.span()), "autoindex"),
        (r.default_type.as_ref().map(|v| v.span()), "default_type"),
        (r.expires.as_ref().map(|v| v.span()), "expires"),
        (r.cache_control.as_ref().map(|v| v.span()), "cache_control"),
        (r.precompressed.as_ref().map(|v| v.span()), "precompressed"),
        (r.follow_symlinks.as_ref().map(|v| v.span()), "follow_symlinks"),
        (r.serve_hidden.as_ref().map(|v| v.span()), "serve_hidden"),
    ]
}

/// Refuses the static keys on a location without `root` or `alias`.
pub(super) fn refuse_static_keys(c: &mut Checker, r: &RawLocation, key: &str) -> bool {
    let mut ok = true;
    for (span, name) in static_keys(r) {
        if let Some(span) = span {
            c.error(span, format!("{key}.{name}"), "only applies with root or alias");
            ok = false;
        }
    }
    ok
}

/// A location with `root` or `alias` (exactly one of them).
pub(super) fn check_static(
    c: &mut Checker,
    l: &Spanned<RawLocation>,
    key: &str,
    kind: &LocationKind,
    scope: Scope,
) -> Option<Static> {
    let r = l.get_ref();
    let (dir, alias) = match (&r.root, &r.alias) {
        (Some(_), Some(a)) => {
            c.error(a.span(), format!("{key}.alias"), "give root or alias, not both");
            return None;
        }
        (Some(d), None) => (d, false),
        (None, Some(d)) => (d, true),
        (None, None) => unreachable!("called for a static location"),
    };
    let which = if alias { "alias" } else { "root" };
    let mut ok = true;
    if dir.get_ref().trim().is_empty() {
        c.error(
            dir.span(),
            format!("{key}.{which}"),
            "an empty path: name a directory",
        );
        ok = false;
    }
    if alias && !matches!(kind, LocationKind::Prefix { .. }) {
        c.error(
            dir.span(),
            format!("{key}.alias"),
            "alias replaces a path prefix, which only a path location has: use root here",
        );
        ok = false;
    }
    let path = Path::new(dir.get_ref());
    let dir_path = match Path::new(&c.file).parent() {
        Some(d) if path.is_relative() => d.join(path),
        _ => path.to_path_buf(),
    };
    let mut index = Vec::new();
    match &r.index {
        None => index.push("index.html".to_string()),
        Some(v) => {
            for (i, n) in v.get_ref().iter().enumerate() {
                let s = n.get_ref();
                if s.is_empty() || s.contains('/') || s.contains('\0') || s == "." || s == ".." {
                    c.error(
                        n.span(),
                        format!("{key}.index[{i}]"),
                        "a file name, without slashes",
                    );
                    ok = false;
                } else {
                    index.push(s.clone());
                }
            }
        }
    }
    let try_files = match &r.try_files {
        None => None,
        Some(v) => check_try_files(c, v, &format!("{key}.try_files"), scope),
    };
    ok &= r.try_files.is_none() || try_files.is_some();
    let default_type = match &r.default_type {
        None => "application/octet-stream".to_string(),
        Some(t) => {
            let s = t.get_ref().trim();
            let valid = s.split_once('/').is_some_and(|(a, b)| {
                !a.is_empty() && !b.is_empty() && !s.bytes().any(|b| b.is_ascii_control() || b == b'\n')
            });
            if !valid {
                c.error(
                    t.span(),
                    format!("{key}.default_type"),
                    "a media type (\"text/plain\")",
                );
                ok = false;
            }
            s.to_string()
        }
    };
    let expires = match &r.expires {
        None => None,
        Some(e) => match e.get_ref().trim() {
            "off" => None,
            "epoch" => Some(Expires::Epoch),
            // nginx's `max`: ten years.
            "max" => Some(Expires::After(Duration::from_secs(315_360_000))),
            s => match humantime::parse_duration(s) {
                Ok(d) => Some(Expires::After(d)),
                Err(_) => {
                    c.error(
                        e.span(),
                        format!("{key}.expires"),
                        "a duration (\"1h\", \"30d\"), \"max\", \"epoch\" or \"off\"",
                    );
                    ok = false;
                    None
                }
            },
        },
    };
    let cache_control = r.cache_control.as_ref().and_then(|v| {
        let s = v.get_ref().trim();
        if s.is_empty() || s.bytes().any(|b| b.is_ascii_control()) {
            c.error(
                v.span(),
                format!("{key}.cache_control"),
                "a Cache-Control value, on one line",
            );
            None
        } else {
            Some(s.to_string())
        }
    });
    ok &= r.cache_control.is_none() || cache_control.is_some();
    let symlinks = match r.follow_symlinks.as_ref().map(|v| *v.get_ref()) {
        None => Symlinks::Beneath,
        Some(true) => Symlinks::Any,
        Some(false) => Symlinks::Never,
    };
    ok.then(|| Static {
        dir: Arc::from(dir_path.as_path()),
        alias,
        index,
        try_files,
        autoindex: r.autoindex.as_ref().is_some_and(|v| *v.get_ref()),
        default_type,
        expires,
        cache_control,
        precompressed: r.precompressed.as_ref().is_none_or(|v| *v.get_ref()),
        symlinks,
        serve_hidden: r.serve_hidden.as_ref().is_some_and(|v| *v.get_ref()),
    })
}

fn check_try_files(
    c: &mut Checker,
    v: &Spanned<Vec<Spanned<String>>>,
    key: &str,
    scope: Scope,
) -> Option<TryFiles> {
    let entries = v.get_ref();
    if entries.len() < 2 {
        c.error(
            v.span(),
            key,
            "needs at least two entries: files to try, then a URI, \"=code\" or \"@name\" to fall back to",
        );
        return None;
    }
    let (last, files) = entries.split_last().expect("two entries");
    let mut ok = true;
    let mut out = Vec::new();
    for (i, f) in files.iter().enumerate() {
        if f.get_ref().is_empty() {
            c.error(f.span(), format!("{key}[{i}]"), "an empty entry");
            ok = false;
            continue;
        }
        match rewrite::template(c, f, &format!("{key}[{i}]"), scope) {
            Some(t) => out.push(t),
            None => ok = false,
        }
    }
    let lkey = format!("{key}[{}]", files.len());
    let s = last.get_ref();
    let last = if let Some(code) = s.strip_prefix('=') {
        match code.parse::<u16>() {
            Ok(n) if (200..=599).contains(&n) => TryLast::Status(n),
            _ => {
                c.error(last.span(), lkey, "\"=code\" takes a status from 200 to 599");
                return None;
            }
        }
    } else if let Some(name) = s.strip_prefix('@') {
        TryLast::Unresolved(name.to_string(), last.span())
    } else if s.starts_with('/') || s.starts_with('$') {
        TryLast::Uri(rewrite::template(c, last, &lkey, scope)?)
    } else {
        c.error(
            last.span(),
            lkey,
            "the last entry is a URI (\"/index.html\"), a status (\"=404\") or a named location (\"@app\")",
        );
        return None;
    };
    ok.then_some(TryFiles { files: out, last })
}

/// `error_pages` of a server block or location: `None` when not written.
pub(super) fn error_pages(
    c: &mut Checker,
    v: Option<&Spanned<BTreeMap<String, Spanned<String>>>>,
    key: &str,
) -> Option<Arc<ErrorPages>> {
    let v = v?;
    let key = format!("{key}.error_pages");
    let mut pages: Vec<(u16, PageTarget)> = Vec::new();
    for (codes, target) in v.get_ref() {
        let t = target.get_ref().trim();
        let to = if let Some(name) = t.strip_prefix('@') {
            PageTarget::Unresolved(name.to_string(), target.span())
        } else if t.starts_with('/') && !t.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            PageTarget::Uri(t.to_string())
        } else {
            c.error(
                target.span(),
                format!("{key}.{codes:?}"),
                "a path (\"/errors/50x.html\") or a named location (\"@fallback\")",
            );
            continue;
        };
        for code in codes.split_ascii_whitespace() {
            match code.parse::<u16>() {
                Ok(n) if (300..=599).contains(&n) => {
                    if pages.iter().any(|(s, _)| *s == n) {
                        c.error(
                            target.span(),
                            format!("{key}.{codes:?}"),
                            format!("status {n} has two pages"),
                        );
                    }
                    pages.push((n, to.clone()));
                }
                _ => c.error(
                    v.span(),
                    format!("{key}.{codes:?}"),
                    format!(
                        "{code:?} is not a status from 300 to 599 (keys are statuses separated by spaces)"
                    ),
                ),
            }
        }
        if codes.split_ascii_whitespace().next().is_none() {
            c.error(
                v.span(),
                format!("{key}.{codes:?}"),
                "name the statuses (\"502 503 504\")",
            );
        }
    }
    pages.sort_by_key(|(s, _)| *s);
    Some(Arc::new(ErrorPages { pages }))
}

/// Finds the named locations that `try_files` and `error_pages` hand
/// requests to, once a server block's locations are all known.
pub(super) fn resolve_names(
    c: &mut Checker,
    locations: &mut [Location],
    server_pages: &mut Option<Arc<ErrorPages>>,
    key: &str,
) {
    let names: Vec<(String, usize)> = locations
        .iter()
        .enumerate()
        .filter(|(_, l)| matches!(l.kind, LocationKind::Named))
        .map(|(i, l)| (l.path.clone(), i))
        .collect();
    let find = |n: &str| names.iter().find(|(m, _)| m == n).map(|(_, i)| *i);
    let mut missing: Vec<(String, Range<usize>)> = Vec::new();
    let fix_pages = |pages: &mut Arc<ErrorPages>, missing: &mut Vec<(String, Range<usize>)>| {
        if !pages
            .pages
            .iter()
            .any(|(_, t)| matches!(t, PageTarget::Unresolved(..)))
        {
            return;
        }
        let p = Arc::make_mut(pages);
        for (_, t) in &mut p.pages {
            if let PageTarget::Unresolved(n, at) = t {
                match find(n) {
                    Some(i) => *t = PageTarget::Named(i),
                    None => missing.push((n.clone(), at.clone())),
                }
            }
        }
    };
    if let Some(p) = server_pages {
        fix_pages(p, &mut missing);
    }
    for loc in locations.iter_mut() {
        if let Some(p) = &mut loc.error_pages {
            fix_pages(p, &mut missing);
        }
        if let Action::Static(s) = &mut loc.action {
            if let Some(t) = Arc::get_mut(s).and_then(|s| s.try_files.as_mut()) {
                if let TryLast::Unresolved(n, at) = &t.last {
                    match find(n) {
                        Some(i) => t.last = TryLast::Named(i),
                        None => missing.push((n.clone(), at.clone())),
                    }
                }
            }
        }
    }
    for (n, at) in missing {
        c.error(
            at,
            key,
            format!("no location has name = {n:?} (try_files and error_pages hand requests to \"@{n}\")"),
        );
    }
}
