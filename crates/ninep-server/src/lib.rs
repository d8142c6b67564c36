//! An async 9P2000.L file server library and the `ninepd` binary.
//!
//! [`Server`] holds the exports ([`exports`], from one directory or a [`config`] file);
//! [`conn::serve`] serves one connection over any byte stream; [`listen::run`] accepts
//! connections on TCP, a unix socket or standard input/output. [`systemd`], [`signals`] and
//! [`stats`] make `ninepd` a service: socket activation and readiness, reloads, statistics.
//! Every fid is a file descriptor and every name is resolved below it by the kernel (see
//! [`fs`]), so nothing a client sends can reach outside the exported directory.

#![forbid(unsafe_code)]

mod attr;
mod budget;
pub mod busy_poll;
pub mod config;
pub mod conn;
pub mod exports;
mod fid;
pub mod fs;
mod inflight;
pub mod listen;
pub mod munge;
mod pipe;
pub mod sandbox;
pub mod server;
mod session;
pub mod signals;
mod sink;
mod socket;
mod source;
pub mod stats;
mod stdio;
pub mod systemd;
mod trace;
pub mod trust;
mod unwind;

#[cfg(test)]
mod fault;
#[cfg(test)]
mod panic_tests;

pub use server::{Config, Server};
pub use trust::Peer;
