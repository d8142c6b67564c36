//! DMA memory of the model: the simulated bus of `hw::sim`, where heap pages get made-up bus
//! addresses the model resolves (consecutive pages scattered by default, freed pages gone from
//! the bus) and where pages freed while the model could still reach them are recorded.
//!
//! It lives in `hw` because [`crate::DmaMemory`] is an `unsafe trait` and this crate forbids
//! unsafe code: memory the driver points a device at is vouched for by the audited core alone.

pub(crate) use hw::sim::SimBus as Bus;
pub use hw::sim::{DmaLayout, SimDma as ModelDma};
