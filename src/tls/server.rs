//! TLS termination of client connections: certificates chosen by SNI,
//! handshakes under a deadline, session resumption.
