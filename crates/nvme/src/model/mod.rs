//! A software NVMe controller that implements [`Platform`] in-process.
//!
//! It keeps namespaces in memory, walks PRPs (including chained lists) over its own made-up bus,
//! honours MQES and MDTS, tracks phase tags, and processes commands synchronously when a
//! submission doorbell is written, which makes every test deterministic. Faults can be injected
//! through [`Model::inject`], [`Model::set_fatal`] and [`Model::stop_responding`].

mod engine;
pub(crate) mod memory;

use std::sync::{Arc, Mutex, MutexGuard};

pub use memory::{DmaLayout, ModelDma};

use crate::platform::{Interrupt, Platform, PlatformError};
use crate::status::Status;
use engine::Engine;
use memory::Bus;

/// One namespace of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamespaceConfig {
    /// Size in logical blocks.
    pub blocks: u64,
    /// Logical block size as a power of two (9 = 512 bytes, 12 = 4 KiB).
    pub lba_shift: u8,
}

/// The shape of the model controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelConfig {
    /// CAP.MQES: largest queue size, 0-based.
    pub mqes: u16,
    /// Identify MDTS: largest transfer is 2^mdts pages; 0 means no limit.
    pub mdts: u8,
    /// CAP.DSTRD: doorbell stride is 4 << dstrd bytes.
    pub dstrd: u8,
    /// CAP.TO in 500 ms units.
    pub timeout_units: u8,
    /// CAP.MPSMIN.
    pub mps_min: u8,
    /// CAP.MPSMAX.
    pub mps_max: u8,
    /// How many I/O queue pairs Set Features Number of Queues grants at most.
    pub max_io_queues: u16,
    /// The namespaces, numbered from 1.
    pub namespaces: Vec<NamespaceConfig>,
    /// How bus addresses of allocated pages are laid out.
    pub dma_layout: DmaLayout,
    /// Whether the controller offers Doorbell Buffer Config (OACS bit 8). Once configured,
    /// an I/O doorbell write makes it read the queue's value from the shadow page (the
    /// register's value is ignored), and it writes the value it acted on as the event index.
    pub shadow_doorbells: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            mqes: 0x7ff,
            mdts: 7,
            dstrd: 0,
            timeout_units: 2,
            mps_min: 0,
            mps_max: 4,
            max_io_queues: 8,
            namespaces: vec![NamespaceConfig {
                blocks: 32 * 1024,
                lba_shift: 9,
            }],
            dma_layout: DmaLayout::Scattered,
            shadow_doorbells: true,
        }
    }
}

/// Which commands a [`Fault`] applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The next I/O command, or the next one with this opcode.
    Io(Option<u8>),
    /// The next admin command with this opcode.
    Admin(u8),
}

/// What an injected fault does to the command it hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Complete it with this status without running it.
    Fail(Status),
    /// Run it but never post its completion.
    LoseCompletion,
    /// Keep it outstanding, never completed, until it is aborted or the controller is reset.
    Hang,
}

/// A one-shot fault: the first command matching `target` gets `effect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// Which command.
    pub target: Target,
    /// What happens to it.
    pub effect: Effect,
}

/// Counters of what the model saw, for tests to check the driver's behaviour.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelStats {
    /// Commands fetched from any submission queue.
    pub commands: u64,
    /// Read commands run.
    pub reads: u64,
    /// Write commands run.
    pub writes: u64,
    /// Write commands with Force Unit Access.
    pub fua_writes: u64,
    /// Flush commands run.
    pub flushes: u64,
    /// Write Zeroes commands run.
    pub write_zeroes: u64,
    /// Dataset Management deallocate commands run.
    pub deallocates: u64,
    /// Abort commands received.
    pub aborts: u64,
    /// Transitions of CC.EN from 1 to 0.
    pub resets: u64,
    /// Normal shutdowns completed.
    pub shutdowns: u64,
    /// Largest data transfer of one command, in bytes.
    pub largest_transfer: usize,
    /// Most PRP list pages one command used.
    pub most_prp_list_pages: usize,
    /// Submission queue tail doorbell writes.
    pub sq_doorbells: u64,
    /// Completion queue head doorbell writes.
    pub cq_doorbells: u64,
    /// Doorbell Buffer Config commands accepted.
    pub shadow_doorbell_configs: u64,
    /// I/O doorbell values taken from the shadow page (rather than from the register written).
    pub shadow_doorbell_reads: u64,
    /// Completions that found their completion queue full and had to wait for the host.
    pub cq_full_waits: u64,
    /// I/O submission queues currently existing.
    pub live_io_sqs: usize,
    /// I/O completion queues currently existing.
    pub live_io_cqs: usize,
}

/// The in-process controller. Cloning gives another handle to the same controller.
#[derive(Debug, Clone)]
pub struct Model {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    bus: Arc<Bus>,
    layout: DmaLayout,
    engine: Mutex<Engine>,
    /// Whether `stop_dma` fails (a device whose config space cannot be reached either).
    refuse_stop_dma: std::sync::atomic::AtomicBool,
}

impl Model {
    /// A powered-on, disabled controller.
    pub fn new(config: ModelConfig) -> Model {
        let bus = Bus::new();
        let layout = config.dma_layout;
        Model {
            inner: Arc::new(Inner {
                engine: Mutex::new(Engine::new(config, Arc::clone(&bus))),
                bus,
                layout,
                refuse_stop_dma: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// From now on [`Platform::stop_dma`] fails, like a device that vanished from the bus
    /// while it may still be mastering it: the driver must leak what the device knew.
    pub fn refuse_stop_dma(&self) {
        self.inner
            .refuse_stop_dma
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether Bus Master is set (cleared by [`Platform::stop_dma`], set again when the
    /// controller is next enabled, as a fresh open of a real device would).
    pub fn bus_master(&self) -> bool {
        self.inner.bus.bus_master()
    }

    /// Bus addresses of the pages freed while the controller still referred to them (its rings,
    /// or what an outstanding command points at) and could master the bus: every one is memory
    /// a real device could have written after it was given back. Empty for a correct driver.
    pub fn freed_while_reachable(&self) -> Vec<u64> {
        self.inner.bus.freed_while_reachable()
    }

    fn engine(&self) -> MutexGuard<'_, Engine> {
        self.inner
            .engine
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Arms a one-shot fault.
    pub fn inject(&self, fault: Fault) {
        self.engine().faults.push(fault);
    }

    /// Sets CSTS.CFS: the controller stops processing commands until it is reset.
    pub fn set_fatal(&self) {
        self.engine().set_fatal();
    }

    /// The device stops answering for good: registers read all-ones, writes are ignored.
    pub fn stop_responding(&self) {
        self.engine().stopped = true;
    }

    /// What the model has seen so far.
    pub fn stats(&self) -> ModelStats {
        self.engine().stats.clone()
    }

    /// Copies bytes of namespace `nsid` straight from the model's media (`None` if out of range).
    pub fn media(&self, nsid: u32, offset: u64, len: usize) -> Option<Vec<u8>> {
        self.engine().media(nsid, offset, len)
    }

    /// Pages of DMA memory currently allocated (for leak checks).
    pub fn mapped_dma_pages(&self) -> usize {
        self.inner.bus.mapped_pages()
    }
}

impl Platform for Model {
    type Dma = ModelDma;

    fn read32(&self, offset: usize) -> u32 {
        self.engine().read32(offset)
    }

    fn write32(&self, offset: usize, value: u32) {
        self.engine().write32(offset, value);
    }

    fn read64(&self, offset: usize) -> u64 {
        let engine = self.engine();
        engine.read32(offset) as u64 | (engine.read32(offset + 4) as u64) << 32
    }

    fn write64(&self, offset: usize, value: u64) {
        let mut engine = self.engine();
        engine.write32(offset, value as u32);
        engine.write32(offset + 4, (value >> 32) as u32);
    }

    fn alloc_dma(&self, len: usize) -> Result<ModelDma, PlatformError> {
        if len == 0 || len > (1 << 32) {
            return Err(PlatformError::OutOfDmaMemory { requested: len });
        }
        Ok(self.inner.bus.alloc(len, self.inner.layout))
    }

    fn stop_dma(&self) -> Result<(), PlatformError> {
        if self
            .inner
            .refuse_stop_dma
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(PlatformError::Unsupported(
                "the model refuses to clear Bus Master".into(),
            ));
        }
        self.inner.bus.set_bus_master(false);
        Ok(())
    }

    /// One MSI-X vector per queue the model can have (`max_io_queues + 1`, as QEMU's
    /// controller): a completion queue created with interrupts enabled fires its vector on
    /// every completion it posts.
    fn enable_interrupts(&self, vectors: u16) -> Result<Vec<Arc<Interrupt>>, PlatformError> {
        let mut engine = self.engine();
        let count = vectors.min(engine.max_io_queues().saturating_add(1));
        let irqs = (0..count)
            .map(|_| Interrupt::new().map(Arc::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PlatformError::Unsupported(e.to_string()))?;
        engine.vectors = irqs.clone();
        Ok(irqs)
    }
}
