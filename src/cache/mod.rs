//! The response cache: RFC 9111's rules as pure functions (`policy.rs`),
//! the memory tier shared by every worker (`store.rs`), and the tee that
//! copies a miss's body while it is proxied (`tee.rs`).

pub mod policy;
pub mod store;
pub mod tee;

pub use store::{Entry, Store};
pub use tee::Tee;
