//! Procedural macros for pinit (no syn).

#![forbid(unsafe_code)]
