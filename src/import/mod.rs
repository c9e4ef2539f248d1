//! `ringway import-nginx`: reading nginx configs into ringway's.
//!
//! parse.rs reads nginx's grammar, includes followed.

pub mod parse;
