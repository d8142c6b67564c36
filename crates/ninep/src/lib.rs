//! The 9P2000.L wire format and a small async client.

#![forbid(unsafe_code)]
