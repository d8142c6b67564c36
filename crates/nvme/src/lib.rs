//! A userspace NVMe driver, generic over a platform (registers + DMA), with an in-process controller model.

#![forbid(unsafe_code)]

#[cfg(feature = "hw")]
pub mod hw_platform;
pub mod platform;
