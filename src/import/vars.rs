//! nginx variables in a value, rewritten as ringway's.
//!
//! Most names are the same in both (`$host`, `$uri`, `$http_<name>`, ...);
//! a few are spelled differently (`$query_string` is `$args`); the rest have
//! no ringway equivalent, and the caller warns about the value instead of
//! writing something that would mean another thing.

/// Where a value is used: log templates know more variables than requests.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Request,
    Log,
}

/// Request variables of ringway's engine, and those only a log line has.
const REQUEST: &[&str] = &crate::vars::FIXED;
const LOG: &[&str] = &crate::log::FINISHED_NAMES;

/// nginx names spelled differently in ringway, with the same value.
const RENAMED: &[(&str, &str)] = &[
    ("query_string", "args"),
    ("document_uri", "uri"),
    // Only the encoding differs (4 bytes instead of text): the same key.
    ("binary_remote_addr", "remote_addr"),
];

/// The ringway name of nginx's `$name`, if it has one here.
fn map_name(name: &str, place: Place) -> Option<String> {
    if let Some((_, to)) = RENAMED.iter().find(|(from, _)| *from == name) {
        return Some((*to).to_string());
    }
    let prefixed = ["http_", "cookie_", "arg_"]
        .iter()
        .any(|p| name.len() > p.len() && name.starts_with(p));
    if prefixed || REQUEST.contains(&name) || name.bytes().all(|b| b.is_ascii_digit()) {
        return Some(name.to_string());
    }
    if place == Place::Log && LOG.contains(&name) {
        return Some(name.to_string());
    }
    None
}

/// `value` with each variable renamed; `Err` names the first that ringway
/// does not have. A `$` that ringway would read as a variable start but
/// nginx does not (none: nginx has no escape for it) is left alone, and a
/// literal `$$` cannot occur in a valid nginx value.
pub fn map(value: &str, place: Place) -> Result<String, String> {
    let b = value.as_bytes();
    let mut out = String::with_capacity(value.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            let next = value[i..].find('$').map_or(b.len(), |k| i + k);
            out.push_str(&value[i..next]);
            i = next;
            continue;
        }
        let (name, end, braced) = if b.get(i + 1) == Some(&b'{') {
            match value[i + 2..].find('}') {
                Some(k) => (&value[i + 2..i + 2 + k], i + 3 + k, true),
                None => return Err(format!("unterminated \"${{\" in {value:?}")),
            }
        } else {
            let k = value[i + 1..]
                .bytes()
                .position(|c| !(c.is_ascii_alphanumeric() || c == b'_'))
                .map_or(b.len(), |k| i + 1 + k);
            (&value[i + 1..k], k, false)
        };
        if name.is_empty() {
            return Err(format!("a \"$\" without a variable name in {value:?}"));
        }
        let Some(to) = map_name(name, place) else {
            return Err(format!("${name} has no ringway equivalent"));
        };
        // Braces keep a name apart from the letters after it, as in nginx.
        let follows_word = b
            .get(end)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
        if braced || follows_word {
            out.push_str(&format!("${{{to}}}"));
        } else {
            out.push('$');
            out.push_str(&to);
        }
        i = end;
    }
    Ok(out)
}

/// Whether `value` has a variable at all.
pub fn has_vars(value: &str) -> bool {
    value.contains('$')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_mapped_or_refused() {
        assert_eq!(
            map("$host$request_uri", Place::Request).unwrap(),
            "$host$request_uri"
        );
        assert_eq!(map("/a?$query_string", Place::Request).unwrap(), "/a?$args");
        assert_eq!(map("${uri}x", Place::Request).unwrap(), "${uri}x");
        assert_eq!(
            map("$http_x_tenant:$cookie_s", Place::Request).unwrap(),
            "$http_x_tenant:$cookie_s"
        );
        assert_eq!(
            map("$binary_remote_addr", Place::Request).unwrap(),
            "$remote_addr"
        );
        assert_eq!(map("/new/$1", Place::Request).unwrap(), "/new/$1");
        assert!(map("$status", Place::Request).is_err());
        assert_eq!(map("$status", Place::Log).unwrap(), "$status");
        let e = map("$document_root$fastcgi_script_name", Place::Request).unwrap_err();
        assert!(e.contains("$document_root"), "{e}");
    }
}
