//! A userspace NVMe driver, generic over a platform (registers + DMA), with an in-process controller model.
//!
//! [`Controller::new`] brings a controller up over any [`Platform`]; each thread then opens its own
//! [`QueuePair`] and submits [`Request`]s, polling for [`Completion`]s. [`model::Model`] is a
//! software controller implementing the same platform in-process.

#![forbid(unsafe_code)]

mod admin;
pub mod async_io;
pub mod command;
mod controller;
pub mod error;
#[cfg(feature = "hw")]
pub mod hw_platform;
pub mod identify;
pub mod model;
pub mod platform;
pub mod prp;
mod queue_pair;
pub mod regs;
mod request;
mod ring;
pub mod status;

pub use controller::{Controller, Options};
pub use error::{Error, Result};
pub use identify::{ControllerInfo, Namespace};
pub use platform::{DmaMemory, Platform, PlatformError};
pub use queue_pair::QueuePair;
pub use request::{Completion, IoKind, Rejected, Request};
pub use status::Status;
