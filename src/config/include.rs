//! `include = ["conf.d/*.toml"]`: further files whose `[[server]]` and
//! `[[upstream]]` tables join the main file's, as nginx's `include` does.
//!
//! Each included file is first parsed on its own, so a syntax error names
//! that file and its own line and column. The files are then appended to
//! the main text, in pattern order and, within a pattern, in name order:
//! TOML appends repeated `[[server]]` tables to the array the main file
//! started, so one parse of the whole text gives one `RawConfig`, and every
//! later check reports positions through [`Sources::locate`], which maps an
//! offset in the whole text back to its file, line and column.
//!
//! Refused: an include that is not a list of strings, an empty pattern, a
//! wildcard outside the file name, a glob whose directory cannot be read, a
//! plain path that cannot be read, `include` or any other top-level key
//! than `server` and `upstream` inside an included file.

use std::path::{Path, PathBuf};

use super::validate::ConfigError;

/// The tables an included file may hold.
const INCLUDABLE: [&str; 2] = ["server", "upstream"];

/// At most this many files are included, so a stray pattern cannot make a
/// reload read a whole directory tree.
const MAX_FILES: usize = 256;

/// The main file's text with every included file's appended.
pub(super) struct Sources {
    pub text: String,
    /// Where each file starts in `text`, with its name as errors show it.
    parts: Vec<(usize, String)>,
    /// The files read, the main one first (what `reload_watch` polls).
    pub files: Vec<PathBuf>,
}

impl Sources {
    /// The file, 1-based line and column (in characters) of an offset.
    pub fn locate(&self, offset: usize) -> (&str, usize, usize) {
        let k = self.parts.partition_point(|(start, _)| *start <= offset).max(1) - 1;
        let (start, file) = &self.parts[k];
        let end = self.parts.get(k + 1).map_or(self.text.len(), |(s, _)| *s);
        let (line, col) = super::validate::line_col(&self.text[*start..end], offset - start);
        (file, line, col)
    }

    /// Errors in file order: the main file's first, then each included one's.
    pub fn order(&self, file: &str) -> usize {
        self.parts.iter().position(|(_, f)| f == file).unwrap_or(0)
    }
}

/// Reads what `text` (the file at `origin`) includes. A main file that
/// does not parse is returned alone: the validator reports its error.
#[allow(clippy::disallowed_methods)] // config loading runs off the workers
pub(super) fn assemble(text: &str, origin: &Path) -> Result<Sources, Vec<ConfigError>> {
    let main_name = origin.display().to_string();
    let mut src = Sources {
        text: text.to_string(),
        parts: vec![(0, main_name.clone())],
        files: vec![origin.to_path_buf()],
    };
    let Ok(doc) = toml_edit::ImDocument::parse(text) else {
        return Ok(src);
    };
    let Some(item) = doc.get("include") else {
        return Ok(src);
    };
    let mut errors = Vec::new();
    let err_at =
        |errors: &mut Vec<ConfigError>, span: Option<std::ops::Range<usize>>, key: String, msg: String| {
            let (line, col) = span.map_or((0, 0), |s| super::validate::line_col(text, s.start));
            errors.push(ConfigError {
                file: main_name.clone(),
                line,
                col,
                key,
                message: msg,
            });
        };
    let Some(list) = item.as_array() else {
        err_at(
            &mut errors,
            item.span(),
            "include".into(),
            "must be a list of file patterns: include = [\"conf.d/*.toml\"]".into(),
        );
        return Err(errors);
    };
    let base = origin.parent().unwrap_or(Path::new("."));
    let mut chosen: Vec<PathBuf> = Vec::new();
    for (i, v) in list.iter().enumerate() {
        let key = format!("include[{i}]");
        let Some(pattern) = v.as_str() else {
            err_at(&mut errors, v.span(), key, "a file pattern is a string".into());
            continue;
        };
        match expand(base, pattern) {
            Ok(files) => {
                for f in files {
                    if !chosen.contains(&f) && f != origin {
                        chosen.push(f);
                    }
                }
            }
            Err(msg) => err_at(&mut errors, v.span(), key, msg),
        }
    }
    if chosen.len() > MAX_FILES {
        err_at(
            &mut errors,
            item.span(),
            "include".into(),
            format!(
                "{} files match; at most {MAX_FILES} may be included",
                chosen.len()
            ),
        );
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    for path in chosen {
        let name = path.display().to_string();
        let body = match std::fs::read_to_string(&path) {
            Ok(b) => b,
            Err(e) => {
                errors.push(ConfigError::whole_file(
                    &path,
                    format!("cannot read included file: {e}"),
                ));
                continue;
            }
        };
        if let Err(e) = check_included(&body) {
            let (line, col) = e.0.map_or((0, 0), |s| super::validate::line_col(&body, s.start));
            errors.push(ConfigError {
                file: name,
                line,
                col,
                key: e.1,
                message: e.2,
            });
            continue;
        }
        src.text.push('\n');
        src.parts.push((src.text.len(), name));
        src.text.push_str(&body);
        src.files.push(path);
    }
    if errors.is_empty() {
        Ok(src)
    } else {
        Err(errors)
    }
}

type Refusal = (Option<std::ops::Range<usize>>, String, String);

/// An included file parses alone and holds only `[[server]]` and `[[upstream]]`.
fn check_included(body: &str) -> Result<(), Refusal> {
    let doc = toml_edit::ImDocument::parse(body)
        .map_err(|e| (e.span(), String::new(), e.message().trim().to_string()))?;
    for (k, item) in doc.as_table().iter() {
        let span = doc.as_table().key(k).and_then(|key| key.span());
        if k == "include" {
            return Err((span, k.into(), "an included file cannot include others".into()));
        }
        if !INCLUDABLE.contains(&k) || !item.is_array_of_tables() {
            return Err((
                span,
                k.into(),
                "an included file holds only [[server]] and [[upstream]] tables".into(),
            ));
        }
    }
    Ok(())
}

/// The files a pattern names, relative to `base` unless absolute. Wildcards
/// (`*`, `?`) are allowed in the file name only; a glob may match nothing
/// (an empty conf.d), a plain path must exist.
fn expand(base: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    if pattern.trim().is_empty() {
        return Err("an empty pattern names no file".into());
    }
    let full = base.join(pattern);
    let name = full
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{pattern:?} does not end in a file name"))?
        .to_string();
    let dir = full.parent().unwrap_or(Path::new("."));
    if dir.to_string_lossy().contains(['*', '?', '[']) {
        return Err(format!(
            "{pattern:?}: wildcards are allowed in the file name only (\"conf.d/*.toml\")"
        ));
    }
    if !name.contains(['*', '?']) {
        if !full.is_file() {
            return Err(format!(
                "cannot read included file {}: no such file",
                full.display()
            ));
        }
        return Ok(vec![full]);
    }
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read directory {}: {e}", dir.display()))?;
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file() || t.is_symlink()))
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| matches(name.as_bytes(), n.as_bytes()))
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    Ok(out)
}

/// Shell-style match of a file name: `*` any run, `?` one character. Names
/// starting with a dot match only a pattern that does (editors' swap files).
fn matches(pattern: &[u8], name: &[u8]) -> bool {
    if name.first() == Some(&b'.') && pattern.first() != Some(&b'.') {
        return false;
    }
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, n));
            p += 1;
        } else if let Some((sp, sn)) = star {
            p = sp + 1;
            n = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn file_name_globs() {
        assert!(matches(b"*.toml", b"a.toml"));
        assert!(!matches(b"*.toml", b".toml"));
        assert!(matches(b"a?c*", b"abcdef"));
        assert!(!matches(b"*.toml", b"a.toml~"));
        assert!(!matches(b"*.toml", b".a.toml"));
        assert!(matches(b"*", b"x"));
        assert!(matches(b"**x", b"abx"));
        assert!(!matches(b"a*b", b"acbd"));
    }
}
