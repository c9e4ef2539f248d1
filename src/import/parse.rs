//! nginx's config grammar, read into a tree of directives that each know
//! their file and line.
//!
//! The grammar: a directive is a name and arguments ended by `;`, or by a
//! `{ ... }` block; `#` starts a comment where a word could start; words are
//! bare or quoted (`"..."`, `'...'`, with `\` escapes), and `${var}` inside a
//! bare word is a variable, not a block. `include` is followed here, as nginx
//! follows it: a relative pattern is taken from the directory of the main
//! config file (nginx's conf prefix), a glob's matches are read in sorted
//! order, and a glob that matches nothing is no error.

use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Includes nested deeper than this are refused (nginx has no bound; a
/// file that includes itself would otherwise never end).
pub const MAX_INCLUDE_DEPTH: usize = 16;
/// Files read in all, the main one included.
pub const MAX_FILES: usize = 1000;

/// One directive as written: `name args... ;` or `name args... { block }`.
#[derive(Debug, Clone)]
pub struct Directive {
    pub name: String,
    pub args: Vec<String>,
    pub file: Rc<str>,
    pub line: usize,
    /// `Some` for a block directive (`server { ... }`), its directives in order.
    pub block: Option<Vec<Directive>>,
}

impl Directive {
    /// `file:line`, as warnings and output comments name it.
    pub fn at(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// A parse error, already `file:line: what`.
#[derive(Debug)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String),
    Semi,
    Open,
    Close,
}

/// Splits one file's text into tokens, each with its line.
fn tokenize(text: &str, file: &str) -> Result<Vec<(Tok, usize)>, ParseError> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let mut lua_pending = false;
    while i < b.len() {
        let c = b[i];
        if !matches!(c, b' ' | b'\t' | b'\r' | b'\n' | b'{') {
            lua_pending = false;
        }
        match c {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b' ' | b'\t' | b'\r' => i += 1,
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b';' => {
                out.push((Tok::Semi, line));
                i += 1;
            }
            b'{' => {
                out.push((Tok::Open, line));
                i += 1;
                if lua_pending {
                    // The Lua module reads `*_by_lua_block { ... }` with a
                    // lexer of its own: skip its code, braces counted,
                    // strings and `--` comments passed over.
                    let (end, lines) = skip_lua(&b[i..]).ok_or_else(|| {
                        ParseError(format!("{file}:{line}: unexpected end of file in a Lua block"))
                    })?;
                    i += end;
                    line += lines;
                    out.push((Tok::Close, line));
                    i += 1;
                }
            }
            b'}' => {
                out.push((Tok::Close, line));
                i += 1;
            }
            b'"' | b'\'' => {
                let start = line;
                let mut word = Vec::new();
                i += 1;
                loop {
                    let Some(&d) = b.get(i) else {
                        return Err(ParseError(format!(
                            "{file}:{start}: unterminated {} quote",
                            if c == b'"' { "double" } else { "single" }
                        )));
                    };
                    i += 1;
                    match d {
                        _ if d == c => break,
                        b'\\' if i < b.len() => {
                            // nginx's escapes inside quotes: \" \' \\ \t \r \n;
                            // any other pair is kept as written.
                            let e = b[i];
                            i += 1;
                            match e {
                                b'"' | b'\'' | b'\\' => word.push(e),
                                b't' => word.push(b'\t'),
                                b'r' => word.push(b'\r'),
                                b'n' => word.push(b'\n'),
                                _ => {
                                    word.push(b'\\');
                                    word.push(e);
                                }
                            }
                            if e == b'\n' {
                                line += 1;
                            }
                        }
                        b'\n' => {
                            line += 1;
                            word.push(d);
                        }
                        _ => word.push(d),
                    }
                }
                // nginx wants a separator after a closing quote.
                if let Some(&n) = b.get(i) {
                    if !matches!(n, b' ' | b'\t' | b'\r' | b'\n' | b';' | b'{' | b'}') {
                        return Err(ParseError(format!(
                            "{file}:{line}: unexpected \"{}\" after a quoted word",
                            n as char
                        )));
                    }
                }
                out.push((Tok::Word(String::from_utf8_lossy(&word).into_owned()), start));
            }
            _ => {
                let start = line;
                let mut word = Vec::new();
                while i < b.len() {
                    let d = b[i];
                    match d {
                        b' ' | b'\t' | b'\r' | b'\n' | b';' | b'{' | b'}' => break,
                        b'\\' if i + 1 < b.len() => {
                            // The same escapes as in quotes; `\.` stays `\.`
                            // (a regex's escape).
                            let e = b[i + 1];
                            i += 2;
                            match e {
                                b'"' | b'\'' | b'\\' => word.push(e),
                                b't' => word.push(b'\t'),
                                b'r' => word.push(b'\r'),
                                b'n' => word.push(b'\n'),
                                _ => {
                                    word.push(b'\\');
                                    word.push(e);
                                }
                            }
                        }
                        b'$' if b.get(i + 1) == Some(&b'{') => {
                            // `${var}`: the braces belong to the word.
                            let close = b[i..].iter().position(|&x| x == b'}');
                            let Some(close) = close else {
                                return Err(ParseError(format!(
                                    "{file}:{line}: unterminated \"${{\" variable"
                                )));
                            };
                            word.extend_from_slice(&b[i..i + close + 1]);
                            i += close + 1;
                        }
                        _ => {
                            word.push(d);
                            i += 1;
                        }
                    }
                }
                lua_pending = out
                    .last()
                    .is_some_and(|(t, _)| *t == Tok::Semi || *t == Tok::Open || *t == Tok::Close)
                    && word.ends_with(b"_by_lua_block");
                out.push((Tok::Word(String::from_utf8_lossy(&word).into_owned()), start));
            }
        }
    }
    Ok(out)
}

/// The offset of the `}` that closes a Lua block starting at `b`, and the
/// newlines before it.
fn skip_lua(b: &[u8]) -> Option<(usize, usize)> {
    let (mut depth, mut lines, mut i) = (0usize, 0usize, 0usize);
    while i < b.len() {
        match b[i] {
            b'\n' => lines += 1,
            b'{' => depth += 1,
            b'}' if depth == 0 => return Some((i, lines)),
            b'}' => depth -= 1,
            q @ (b'"' | b'\'') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The state of one read: where relative includes start, and the bounds.
struct Reader {
    conf_prefix: PathBuf,
    files: usize,
}

/// Reads `path` and every file it includes.
pub fn parse_file(path: &Path) -> Result<Vec<Directive>, ParseError> {
    let conf_prefix = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut r = Reader {
        conf_prefix,
        files: 0,
    };
    r.read_file(path, 0, None)
}

/// Parses text as one file named `name`, with includes taken from `base`.
pub fn parse_str(text: &str, name: &str, base: &Path) -> Result<Vec<Directive>, ParseError> {
    let mut r = Reader {
        conf_prefix: base.to_path_buf(),
        files: 1,
    };
    r.parse_text(text, name, 0)
}

impl Reader {
    fn read_file(
        &mut self,
        path: &Path,
        depth: usize,
        from: Option<&Directive>,
    ) -> Result<Vec<Directive>, ParseError> {
        let at = from.map(|d| format!("{}: ", d.at())).unwrap_or_default();
        self.files += 1;
        if self.files > MAX_FILES {
            return Err(ParseError(format!("{at}more than {MAX_FILES} files included")));
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| ParseError(format!("{at}{}: {e}", path.display())))?;
        self.parse_text(&text, &path.display().to_string(), depth)
    }

    fn parse_text(&mut self, text: &str, name: &str, depth: usize) -> Result<Vec<Directive>, ParseError> {
        let toks = tokenize(text, name)?;
        let file: Rc<str> = Rc::from(name);
        let mut pos = 0;
        let out = self.parse_block(&toks, &mut pos, &file, depth, None)?;
        Ok(out)
    }

    /// Directives up to the `}` that closes `open` (or the end of the file
    /// when `open` is `None`).
    fn parse_block(
        &mut self,
        toks: &[(Tok, usize)],
        pos: &mut usize,
        file: &Rc<str>,
        depth: usize,
        open: Option<usize>,
    ) -> Result<Vec<Directive>, ParseError> {
        let mut out = Vec::new();
        loop {
            let Some((tok, line)) = toks.get(*pos) else {
                return match open {
                    Some(l) => Err(ParseError(format!(
                        "{file}:{l}: unexpected end of file: the \"{{\" here is never closed"
                    ))),
                    None => Ok(out),
                };
            };
            *pos += 1;
            let name = match tok {
                Tok::Word(w) => w.clone(),
                Tok::Close if open.is_some() => return Ok(out),
                Tok::Close => return Err(ParseError(format!("{file}:{line}: unexpected \"}}\""))),
                Tok::Semi => return Err(ParseError(format!("{file}:{line}: unexpected \";\""))),
                Tok::Open => return Err(ParseError(format!("{file}:{line}: unexpected \"{{\""))),
            };
            let mut d = Directive {
                name,
                args: Vec::new(),
                file: file.clone(),
                line: *line,
                block: None,
            };
            loop {
                match toks.get(*pos) {
                    None => {
                        return Err(ParseError(format!(
                            "{file}:{}: unexpected end of file, expecting \";\" or \"}}\" after \"{}\"",
                            d.line, d.name
                        )))
                    }
                    Some((Tok::Word(w), _)) => {
                        d.args.push(w.clone());
                        *pos += 1;
                    }
                    Some((Tok::Semi, _)) => {
                        *pos += 1;
                        break;
                    }
                    Some((Tok::Open, l)) => {
                        *pos += 1;
                        d.block = Some(self.parse_block(toks, pos, file, depth, Some(*l))?);
                        break;
                    }
                    Some((Tok::Close, l)) => {
                        return Err(ParseError(format!(
                            "{file}:{l}: unexpected \"}}\": \"{}\" (line {}) has no \";\"",
                            d.name, d.line
                        )))
                    }
                }
            }
            if d.name == "include" && d.block.is_none() {
                out.extend(self.include(&d, depth)?);
            } else {
                out.push(d);
            }
        }
    }

    /// The directives of every file an `include` names, in nginx's order.
    fn include(&mut self, d: &Directive, depth: usize) -> Result<Vec<Directive>, ParseError> {
        if d.args.len() != 1 {
            return Err(ParseError(format!(
                "{}: \"include\" takes one file or pattern",
                d.at()
            )));
        }
        if depth + 1 > MAX_INCLUDE_DEPTH {
            return Err(ParseError(format!(
                "{}: includes nested deeper than {MAX_INCLUDE_DEPTH}",
                d.at()
            )));
        }
        let pattern = self.conf_prefix.join(&d.args[0]);
        let files = if has_glob(&d.args[0]) {
            glob(&pattern)
        } else {
            vec![pattern]
        };
        let mut out = Vec::new();
        for f in files {
            out.extend(self.read_file(&f, depth + 1, Some(d))?);
        }
        Ok(out)
    }
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The paths matching `pattern` (wildcards in any component), sorted by
/// bytes as glob(3) sorts them in the C locale. As in glob(3), a wildcard
/// does not match a leading `.` of a name.
pub fn glob(pattern: &Path) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::new()];
    for comp in pattern.components() {
        let part = comp.as_os_str().to_string_lossy().into_owned();
        let mut next = Vec::new();
        for base in &found {
            if !has_glob(&part) {
                next.push(base.join(&part));
                continue;
            }
            let dir = if base.as_os_str().is_empty() {
                Path::new(".")
            } else {
                base.as_path()
            };
            let Ok(rd) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut names: Vec<String> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.') || part.starts_with('.'))
                .filter(|n| glob_match(part.as_bytes(), n.as_bytes()))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| base.join(n)));
        }
        found = next;
    }
    found.retain(|p| p.exists());
    found.sort();
    found
}

/// `*`, `?` and `[...]` (with ranges and `!`/`^` negation) against one name.
fn glob_match(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|k| glob_match(&p[1..], &s[k..])),
        Some(b'?') => !s.is_empty() && glob_match(&p[1..], &s[1..]),
        Some(b'[') => {
            let Some(end) = p.iter().skip(2).position(|&c| c == b']').map(|e| e + 2) else {
                return s.first() == Some(&b'[') && glob_match(&p[1..], &s[1..]);
            };
            let Some(&c) = s.first() else { return false };
            let mut set = &p[1..end];
            let neg = matches!(set.first(), Some(b'!') | Some(b'^'));
            if neg {
                set = &set[1..];
            }
            let mut hit = false;
            let mut k = 0;
            while k < set.len() {
                if k + 2 < set.len() && set[k + 1] == b'-' {
                    hit |= set[k] <= c && c <= set[k + 2];
                    k += 3;
                } else {
                    hit |= set[k] == c;
                    k += 1;
                }
            }
            hit != neg && glob_match(&p[end + 1..], &s[1..])
        }
        Some(&c) => s.first() == Some(&c) && glob_match(&p[1..], &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Vec<Directive>, ParseError> {
        parse_str(t, "t.conf", Path::new("."))
    }

    #[test]
    fn directives_blocks_and_lines() {
        let d = parse("user www;\n# comment ; {\nhttp {\n  server { listen 80; }\n}\n").unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(
            (d[0].name.as_str(), d[0].args.clone(), d[0].line),
            ("user", vec!["www".to_string()], 1)
        );
        let http = d[1].block.as_ref().unwrap();
        assert_eq!(d[1].line, 3);
        let server = &http[0];
        assert_eq!(server.line, 4);
        assert_eq!(server.block.as_ref().unwrap()[0].args, ["80"]);
    }

    #[test]
    fn quotes_escapes_and_variables() {
        let d = parse(
            "add_header X \"a \\\"b\\\" c\";\nreturn 200 'it\\'s';\nset $a ${host}x;\nx a\\ b \"multi\nline\";",
        )
        .unwrap();
        assert_eq!(d[0].args, ["X", "a \"b\" c"]);
        assert_eq!(d[1].args, ["200", "it's"]);
        assert_eq!(d[2].args, ["$a", "${host}x"]);
        assert_eq!(d[3].args, ["a\\ b", "multi\nline"]);
        assert_eq!(d[3].line, 4);
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("http {\n server {\n }\n").unwrap_err().0;
        assert!(e.starts_with("t.conf:1:"), "{e}");
        let e = parse("a b;\n}\n").unwrap_err().0;
        assert!(e.starts_with("t.conf:2: unexpected \"}\""), "{e}");
        let e = parse("server {\n listen 80\n}\n").unwrap_err().0;
        assert!(
            e.starts_with("t.conf:3:") && e.contains("\"listen\" (line 2) has no \";\""),
            "{e}"
        );
        let e = parse("a b;\nreturn 200 \"open;\n\n").unwrap_err().0;
        assert!(e.starts_with("t.conf:2: unterminated double quote"), "{e}");
        let e = parse("a b").unwrap_err().0;
        assert!(e.starts_with("t.conf:1: unexpected end of file"), "{e}");
    }

    #[test]
    fn glob_patterns() {
        assert!(glob_match(b"*.conf", b"a.conf"));
        assert!(!glob_match(b"*.conf", b"a.confx"));
        assert!(glob_match(b"[a-c]?.c*", b"b1.conf"));
        assert!(!glob_match(b"[!a-c]*", b"b"));
        assert!(glob_match(b"x[^0-9]", b"xy"));
    }
}
