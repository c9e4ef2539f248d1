//! Static files: a location with `root` or `alias` answers from a directory
//! (nginx's static module with `index`, `try_files`, `autoindex`,
//! `expires` and `gzip_static`), through the local-response seam, so the
//! response phases (header rules, compression, HSTS, HEAD, HTTP/1.1 and
//! HTTP/2 framing) are the proxied ones.
//!
//! - `path.rs`: request path → path below the directory (pure);
//! - `http.rs`: validators, preconditions, ranges (pure);
//! - `open.rs`: `openat2` below the directory, on helper threads;
//! - `cache.rs`: each worker's bounded cache of open files;
//! - the content phase itself is `proxy/files.rs`.

pub mod cache;
pub mod http;
pub mod open;
pub mod path;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::vars::Template;

/// A static location's settings, checked at load.
#[derive(Debug)]
pub struct Static {
    /// `root` or `alias`: the directory, relative paths taken from the
    /// config file's directory.
    pub dir: Arc<Path>,
    /// `alias`: the matched prefix is replaced by the directory; `root`:
    /// the whole path is appended to it.
    pub alias: bool,
    /// `index`: files tried for a directory, in order. Default `index.html`.
    pub index: Vec<String>,
    /// `try_files`: tried in order before the request's own path.
    pub try_files: Option<TryFiles>,
    /// `autoindex`: a directory without an index file is listed (else 403).
    pub autoindex: bool,
    /// `default_type`: the type of a file whose extension says nothing.
    pub default_type: String,
    /// `expires`: `Expires` and `Cache-Control: max-age` on 200/206/304.
    pub expires: Option<Expires>,
    /// `cache_control`: a `Cache-Control` value of its own (replaces the
    /// one `expires` would write).
    pub cache_control: Option<String>,
    /// `precompressed`: serve `file.zst`, `file.br`, `file.gz` to clients
    /// that take them. Default on.
    pub precompressed: bool,
    pub symlinks: Symlinks,
    /// `serve_hidden`: names starting with a dot are served (else 404).
    pub serve_hidden: bool,
}

/// `follow_symlinks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Symlinks {
    /// Default: a symlink is followed only when its target lies below the
    /// directory.
    Beneath,
    /// `true`: every symlink is followed (nginx's default).
    Any,
    /// `false`: no symlink below the directory is followed.
    Never,
}

/// `expires`: `"1h"` or `"epoch"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expires {
    After(Duration),
    Epoch,
}

/// `try_files = ["$uri", "$uri/", "/index.html"]`.
#[derive(Debug)]
pub struct TryFiles {
    /// Every entry but the last: a file (or, ending in `/`, a directory)
    /// whose existence is checked.
    pub files: Vec<Template>,
    pub last: TryLast,
}

/// The last entry of `try_files`.
#[derive(Debug)]
pub enum TryLast {
    /// A URI: the request goes there (routed anew).
    Uri(Template),
    /// `=404`: that status.
    Status(u16),
    /// `@name`: the named location, by index in its server block.
    Named(usize),
    /// A `@name` not yet matched to a location (while checking), and
    /// where the config wrote it.
    Unresolved(String, std::ops::Range<usize>),
}

/// `error_pages = { "404" = "/errors/404.html", "502 503 504" = "@fallback" }`.
#[derive(Debug, Default, Clone)]
pub struct ErrorPages {
    /// (status, where to), sorted by status.
    pub pages: Vec<(u16, PageTarget)>,
}

/// Where an error page is served from.
#[derive(Debug, Clone)]
pub enum PageTarget {
    /// A URI, routed anew as a GET.
    Uri(String),
    /// A named location, by index in its server block.
    Named(usize),
    /// As [`TryLast::Unresolved`].
    Unresolved(String, std::ops::Range<usize>),
}

impl ErrorPages {
    pub fn get(&self, status: u16) -> Option<&PageTarget> {
        self.pages
            .binary_search_by_key(&status, |(s, _)| *s)
            .ok()
            .map(|i| &self.pages[i].1)
    }
}
