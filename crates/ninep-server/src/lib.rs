//! An async 9P2000.L file server library and the ninepd binary.

#![forbid(unsafe_code)]
