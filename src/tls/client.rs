//! TLS toward upstream servers: verification against system roots or a
//! configured CA, SNI, and resumption of upstream sessions.
