//! ringway: an HTTP/1.1 and HTTP/2 reverse proxy on a thread-per-core
//! io_uring engine.
//!
//! The path of a request:
//!
//! ```text
//! server::run ── one pinned worker thread per core, each with its own monoio runtime
//!   server::worker ── own listeners (SO_REUSEPORT), own Rc<WorkerCtx>
//!     server::listener::accept_loop ─▶ proxy::serve_connection (on a TLS address,
//!                                        tls::server::accept first; then by protocol)
//!       proxy::h1 (keep-alive loop) | proxy::h2 (one task per stream) ── a ClientSession each
//!       proxy::phases: read_request_head → route (location, split) → content: return | static
//!                      | cache (proxy::cache: a hit, or a miss proxied through the tee) | proxy
//!       proxy::forward: select (sticky, balance, health) → connect_upstream (an HTTP/1.1
//!                      pooled connection, or a stream on the worker's HTTP/2 connection)
//!                      → send_request → forward_request_body → read_response_head
//!                      → forward_response_body (trailers) → finish
//!                      (select again, within `tries`, when a server fails)
//! upstream::probe ── one `ringway-health` thread: active checks, verdicts read by select
//! upstream::resolve ── one `ringway-resolve` thread: names looked up again, sent to workers
//! admin ── `[admin] listen` on worker 0: /metrics, /status, /healthz over every
//!          worker's `metrics` counters
//! ```
//!
//! Modules depend one way: `server` → `proxy` → {`http`, `route`, `upstream`}
//! → {`h2io`, `error`, `config`, `io`}. `http` is pure parsing and encoding, `route`
//! does no I/O, and `upstream` never parses HTTP.

pub mod access;
pub mod admin;
pub mod bufpool;
pub mod cache;
pub mod compress;
pub mod config;
pub mod ctx;
pub mod deadline;
pub mod error;
pub mod files;
pub mod generation;
pub mod h2io;
pub mod helpers;
pub mod http;
pub mod import;
pub mod io;
pub mod isolate;
pub mod limit;
pub mod log;
pub mod metrics;
pub mod proxy;
pub mod reqid;
pub mod route;
pub mod server;
pub mod shutdown;
pub mod tls;
pub mod trace;
pub mod upstream;
pub mod vars;
