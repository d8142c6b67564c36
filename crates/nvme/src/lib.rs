//! A userspace NVMe driver, generic over a platform (registers + DMA), with an in-process controller model.
//!
//! [`Controller::new`] brings a controller up over any [`Platform`]; each thread then opens its own
//! [`QueuePair`] and submits [`Request`]s, polling for [`Completion`]s. [`model::Model`] is a
//! software controller implementing the same platform in-process.
//!
//! This crate forbids unsafe code, and nothing it exports lets safe code point the controller at
//! memory: the DMA memory it programs into the controller is [`DmaMemory`], an `unsafe trait` of
//! the `hw` crate (truthful bus addresses, implemented there for real and simulated buffers);
//! [`Controller::platform`] only reads registers; and a device without an IOMMU reaches
//! [`hw_platform::HwPlatform`] only through the `unsafe` `hw::UioDevice::open`, whose contract
//! the controller keeps. It never frees memory the controller may still reach: a dead
//! controller's DMA is stopped first ([`Platform::stop_dma`]) or the memory is leaked.
//!
//! ```
//! use nvme::model::{Model, ModelConfig};
//! use nvme::{Controller, DmaMemory, Options, Request};
//!
//! let ctrl = Controller::new(Model::new(ModelConfig::default()), Options::default())?;
//! let mut qp = ctrl.queue_pair()?; // one per thread
//!
//! // Blocking helpers copy through a bounce buffer.
//! qp.write(1, 0, &[0xab; 4096], false)?;
//!
//! // Zero-copy: the request owns its DMA buffer until its completion hands it back.
//! let buf = qp.alloc_buffer(4096)?;
//! qp.submit(Request::read(1, 0, 8, buf).with_tag(7)).map_err(|r| r.error)?;
//! let mut done = Vec::new();
//! while done.is_empty() {
//!     qp.poll(|c| done.push(c));
//! }
//! let c = done.pop().unwrap();
//! assert_eq!(c.tag, 7);
//! c.result?;
//! let mut data = [0; 4096];
//! c.buffer.unwrap().read(0, &mut data);
//! assert_eq!(data, [0xab; 4096]);
//! # Ok::<(), nvme::Error>(())
//! ```

#![forbid(unsafe_code)]

mod admin;
pub mod async_io;
pub mod command;
mod controller;
pub mod error;
#[cfg(feature = "hw")]
pub mod hw_platform;
pub mod identify;
pub mod identify_data;
pub mod log;
mod management;
pub mod model;
pub mod platform;
pub mod prp;
mod queue_pair;
pub mod regs;
mod request;
mod retained;
mod ring;
pub mod status;

pub use controller::{Controller, MAX_TIMEOUT, MAX_TRANSFER_LIMIT, Options, Registers};
pub use error::{Error, Result};
pub use identify::{ControllerInfo, Namespace};
pub use management::{ALL_NAMESPACES, AdminPassthru, RESERVED_ADMIN_OPCODES};
pub use platform::{DmaMemory, Platform, PlatformError};
pub use queue_pair::{IoPassthru, QueuePair};
pub use request::{Completion, IoKind, Rejected, Request};
pub use status::Status;
