//! The checks of `rewrite = [{ from, to, flag }]` (server and location),
//! of regexes (locations and rewrites) and of strings with variables.

use super::raw::RawRewrite;
use super::*;
use crate::vars::{Scope, Template};

/// Compiles a regex of the config, or reports where it is wrong.
pub(super) fn compile_regex(c: &mut Checker, v: &Spanned<String>, key: &str) -> Option<regex::bytes::Regex> {
    // Size limits keep a pathological pattern from costing memory at load;
    // matching is linear in the path whatever the pattern.
    match regex::bytes::RegexBuilder::new(v.get_ref())
        .size_limit(1 << 20)
        .build()
    {
        Ok(re) if re.captures_len() > crate::vars::MAX_GROUPS => {
            c.error(
                v.span(),
                key,
                format!("at most {} capture groups", crate::vars::MAX_GROUPS - 1),
            );
            None
        }
        Ok(re) => Some(re),
        Err(e) => {
            // The crate's message spans lines (the pattern, a caret, the
            // reason): kept on one line, as every config error is.
            let why = e.to_string();
            let why: Vec<&str> = why.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            c.error(v.span(), key, format!("bad regex: {}", why.join(" ")));
            None
        }
    }
}

/// Parses a string with variables, or reports it.
pub(super) fn template(c: &mut Checker, v: &Spanned<String>, key: &str, scope: Scope) -> Option<Template> {
    match Template::parse(v.get_ref(), scope) {
        Ok(t) => Some(t),
        Err(why) => {
            c.error(v.span(), key, why);
            None
        }
    }
}

const FLAGS: [(&str, RewriteFlag); 4] = [
    ("last", RewriteFlag::Last),
    ("break", RewriteFlag::Break),
    ("redirect", RewriteFlag::Redirect),
    ("permanent", RewriteFlag::Permanent),
];

/// `rewrite = [...]` of a server or location; `None` when a rule is wrong.
pub(super) fn check_rewrites(
    c: &mut Checker,
    list: Option<&Spanned<Vec<Spanned<RawRewrite>>>>,
    key: &str,
) -> Option<Vec<Rewrite>> {
    let before = c.errors.len();
    let mut out = Vec::new();
    for (i, r) in list.iter().flat_map(|l| l.get_ref().iter()).enumerate() {
        let k = format!("{key}.rewrite[{i}]");
        let r = r.get_ref();
        let Some(from) = compile_regex(c, &r.from, &format!("{k}.from")) else {
            continue;
        };
        let flag = match &r.flag {
            None => RewriteFlag::Next,
            Some(f) => match FLAGS.iter().find(|(n, _)| n == f.get_ref()) {
                Some(&(_, flag)) => flag,
                None => {
                    let hint = FLAGS
                        .iter()
                        .map(|(n, _)| (strsim::levenshtein(f.get_ref(), n), *n))
                        .filter(|(d, _)| *d <= 2)
                        .min()
                        .map_or(String::new(), |(_, n)| format!("; did you mean {n:?}?"));
                    c.error(
                        f.span(),
                        format!("{k}.flag"),
                        format!(
                            "unknown flag {:?}{hint} (one of \"last\", \"break\", \"redirect\", \"permanent\", or none)",
                            f.get_ref()
                        ),
                    );
                    continue;
                }
            },
        };
        let text = r.to.get_ref();
        let absolute = text.starts_with("http://") || text.starts_with("https://");
        if !absolute && !text.starts_with('/') && !text.starts_with('$') {
            c.error(
                r.to.span(),
                format!("{k}.to"),
                "must be a path (\"/...\") or a URL (\"https://...\")",
            );
            continue;
        }
        if absolute && matches!(flag, RewriteFlag::Last | RewriteFlag::Break) {
            c.error(
                r.to.span(),
                format!("{k}.to"),
                "a URL always redirects: use flag = \"redirect\" or \"permanent\" (or none, a 302)",
            );
            continue;
        }
        let drop_args = text.ends_with('?');
        let Some(to) = template(c, &r.to, &format!("{k}.to"), Scope { regex: Some(&from) }) else {
            continue;
        };
        let to = if drop_args {
            strip_final_question_mark(to)
        } else {
            to
        };
        out.push(Rewrite {
            from,
            to,
            flag,
            drop_args,
            absolute,
        });
    }
    (c.errors.len() == before).then_some(out)
}

fn strip_final_question_mark(mut t: Template) -> Template {
    if let Some(crate::vars::Part::Lit(s)) = t.parts.last_mut() {
        s.pop();
        if s.is_empty() {
            t.parts.pop();
        }
    }
    t
}
