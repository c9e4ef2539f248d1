//! `access_log` of a server block: where its lines go and in which format.

use super::*;

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
        Some(other) => {
            c.error(
                v.span(),
                format!("{key}.access_log.format"),
                format!("unknown format {other:?} (known: \"combined\", \"json\")"),
            );
            LogFormat::Combined
        }
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
