//! `ringway import-nginx`: an nginx config read (includes followed) and
//! written as ringway TOML, each block with a comment naming the nginx
//! file:line it came from. What cannot be translated faithfully is a
//! warning with its file:line, never dropped in silence.
//!
//! parse.rs reads nginx's grammar; table.rs is the one mapping of
//! directives; translate.rs walks http/server; location.rs, upstream.rs,
//! emit.rs and cache.rs make the keys; vars.rs and values.rs rewrite
//! variables, times, sizes and addresses.

mod cache;
mod emit;
mod location;
pub mod parse;
pub mod table;
mod translate;
mod upstream;
pub mod values;
pub mod vars;

use std::path::Path;

use toml_edit::{ArrayOfTables, DocumentMut, Item, Table};

pub use translate::Options;

/// What an import made: the TOML text and the warnings, in order.
pub struct Import {
    pub toml: String,
    pub warnings: Vec<String>,
}

/// Imports the nginx config at `path`. `Err` is a parse error (`file:line: ...`).
pub fn import_file(path: &Path, opts: &Options) -> Result<Import, parse::ParseError> {
    let tree = parse::parse_file(path)?;
    Ok(import_tree(&tree, &path.display().to_string(), opts))
}

fn import_tree(tree: &[parse::Directive], name: &str, opts: &Options) -> Import {
    let mut cx = translate::Cx::new(opts);
    cx.main(tree);
    let mut doc = DocumentMut::new();
    let mut head = format!("# ringway config imported from {name} by `ringway import-nginx`\n");
    if opts.strict_nginx {
        head.push_str("# with --strict-nginx\n");
    }
    for n in &cx.notes_top {
        head.push_str(&format!("# {n}\n"));
    }
    if !cx.trusted.is_empty() {
        cx.global.insert(
            "trusted_proxies",
            toml_edit::value(toml_edit::Array::from_iter(cx.trusted.iter().map(String::as_str))),
        );
    }
    let mut global = std::mem::take(&mut cx.global);
    global.decor_mut().set_prefix(head.clone());
    if !global.is_empty() {
        doc.insert("global", Item::Table(global));
    } else {
        doc.decor_mut().set_prefix(head);
    }
    if !cx.log_formats.is_empty() {
        let mut lf = std::mem::take(&mut cx.log_formats);
        lf.set_implicit(true);
        doc.insert("log_format", Item::Table(lf));
    }
    let mut limits = ArrayOfTables::new();
    for (_, (t, used)) in std::mem::take(&mut cx.limits) {
        if used.is_some() {
            limits.push(t);
        }
    }
    if !limits.is_empty() {
        doc.insert("limit", Item::ArrayOfTables(limits));
    }
    let caches = std::mem::take(&mut cx.caches);
    if !caches.is_empty() {
        doc.insert("cache", Item::ArrayOfTables(caches.into_iter().collect()));
    }
    let ups: ArrayOfTables = std::mem::take(&mut cx.upstreams)
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    if !ups.is_empty() {
        doc.insert("upstream", Item::ArrayOfTables(ups));
    }
    let servers = std::mem::take(&mut cx.servers);
    if servers.is_empty() {
        cx.warnings.push(format!(
            "{name}: no server block: the output has nothing to serve"
        ));
    }
    doc.insert("server", Item::ArrayOfTables(servers));
    let _ = Table::new;
    Import {
        toml: doc.to_string(),
        warnings: cx.warnings,
    }
}

/// The subcommand: TOML on stdout, warnings on stderr; exit 1 on a parse
/// error, or with `strict` on any warning (and then nothing on stdout).
pub fn run(
    file: &Path,
    prefix: Option<std::path::PathBuf>,
    strict: bool,
    strict_nginx: bool,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    let conf_dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| ".".into());
    let opts = Options {
        strict_nginx,
        prefix,
        conf_dir,
    };
    let out = match import_file(file, &opts) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ringway: import-nginx: {e}");
            return ExitCode::FAILURE;
        }
    };
    for w in &out.warnings {
        eprintln!("warning: {w}");
    }
    if strict && !out.warnings.is_empty() {
        eprintln!(
            "ringway: import-nginx: {} warning{} and --strict: nothing written",
            out.warnings.len(),
            if out.warnings.len() == 1 { "" } else { "s" }
        );
        return ExitCode::FAILURE;
    }
    print!("{}", out.toml);
    ExitCode::SUCCESS
}
