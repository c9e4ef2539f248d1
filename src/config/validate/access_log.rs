//! `access_log` of a server block: where its lines go and in which format;
//! `[log_format.NAME]` templates.

use super::*;
use crate::log::{Escape, LogTemplate};

/// Each `[log_format.NAME]`: its template parsed (unknown variables are
/// errors with "did you mean") and its `escape`. The names are kept in the
/// checker for `access_log.format`.
pub(super) fn check_formats(c: &mut Checker<'_>, raw: &RawConfig) -> Vec<Arc<LogTemplate>> {
    let mut out = Vec::new();
    for (name, f) in &raw.log_format {
        let key = format!("log_format.{name}");
        let f = f.get_ref();
        if matches!(name.as_str(), "combined" | "json" | "off") {
            c.error(
                f.format.span(),
                &key,
                format!("{name:?} is a built-in format name; give this one another"),
            );
            continue;
        }
        let escape = match f.escape.as_ref().map(|e| (e.get_ref().as_str(), e.span())) {
            None | Some(("default", _)) => Escape::Default,
            Some(("json", _)) => Escape::Json,
            Some(("none", _)) => Escape::None,
            Some((other, span)) => {
                c.error(
                    span,
                    format!("{key}.escape"),
                    format!("unknown escape {other:?} (known: \"default\", \"json\", \"none\")"),
                );
                continue;
            }
        };
        match LogTemplate::parse(name, f.format.get_ref(), escape) {
            Ok(t) => {
                c.log_formats.push(name.clone());
                out.push(Arc::new(t));
            }
            Err(e) => c.error(f.format.span(), format!("{key}.format"), e),
        }
    }
    out
}

/// `access_log`: a path, `"stdout"` or `"off"`, or a table with `path`
/// and `format` (`"combined"` or `"json"`).
pub(super) fn check_access_log(
    c: &mut Checker<'_>,
    v: Option<&Spanned<RawAccessLog>>,
    key: &str,
) -> AccessLog {
    let Some(v) = v else {
        return AccessLog::Stdout(LogFormat::Combined);
    };
    let (path, format) = match v.get_ref() {
        RawAccessLog::Path(p) => (p.as_str(), None),
        RawAccessLog::Table(t) => (t.path.as_str(), t.format.as_deref()),
    };
    let format = match format {
        None | Some("combined") => LogFormat::Combined,
        Some("json") => LogFormat::Json,
        Some(other) => match c.log_formats.iter().position(|n| n == other) {
            Some(i) => LogFormat::Named(i),
            None => {
                let mut known = vec!["combined", "json"];
                known.extend(c.log_formats.iter().map(String::as_str));
                let near = known
                    .iter()
                    .map(|k| (strsim::levenshtein(other, k), *k))
                    .filter(|(d, _)| *d <= 2)
                    .min();
                let message = match near {
                    Some((_, k)) => format!("unknown format {other:?}; did you mean {k:?}?"),
                    None => format!(
                        "unknown format {other:?} (known: {}; or define [log_format.{other}])",
                        known
                            .iter()
                            .map(|k| format!("{k:?}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                c.error(v.span(), format!("{key}.access_log.format"), message);
                LogFormat::Combined
            }
        },
    };
    match path {
        "off" => AccessLog::Off,
        "stdout" => AccessLog::Stdout(format),
        "" => {
            c.error(
                v.span(),
                format!("{key}.access_log"),
                "a path, \"stdout\" or \"off\"",
            );
            AccessLog::Off
        }
        p => AccessLog::File(p.into(), format),
    }
}
