//! Controller bring-up, reset and shutdown, and the state every queue pair shares.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::admin::{AdminQueue, backoff};
use crate::command::cns;
use crate::error::{Error, Result};
use crate::identify::{ControllerInfo, Namespace};
use crate::platform::{DMA_PAGE_SIZE, Interrupt, Platform};
use crate::queue_pair::QueuePair;
use crate::regs::{self, Cap};
use crate::ring::{Rings, Shadow};

/// Tunables of the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// How long an admin command may take.
    pub admin_timeout: Duration,
    /// How long an I/O command may take before it is aborted.
    pub io_timeout: Duration,
    /// Submission queue entries wanted per I/O queue pair (bounded by CAP.MQES).
    pub queue_depth: u16,
    /// I/O queue pairs to ask for.
    pub io_queues: u16,
    /// Largest transfer of one command in bytes (further bounded by MDTS).
    pub max_transfer: usize,
    /// How many times a failed, retryable or timed-out command is resubmitted.
    pub retries: u8,
    /// Have each I/O completion queue raise its own interrupt vector (MSI-X), which
    /// [`QueuePair::interrupt`] hands out to sleep on, instead of only being polled. Bring-up
    /// fails if the platform has no interrupts (uio, the model without them).
    pub interrupts: bool,
    /// Use shadow doorbells (Doorbell Buffer Config) when the controller offers them: I/O
    /// doorbell values go to a page in memory, and the registers are written only when the
    /// controller's event index asks for it.
    pub shadow_doorbells: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            admin_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(10),
            queue_depth: 1024,
            io_queues: 8,
            max_transfer: 1 << 20,
            retries: 3,
            interrupts: false,
            shadow_doorbells: true,
        }
    }
}

/// The largest transfer one command is allowed to carry, whatever `Options` and MDTS say:
/// 65536 blocks (the 16-bit NLB) of the smallest block size, 512 bytes. It also bounds the PRP
/// list pages every command slot reserves (17 pages at this size).
pub const MAX_TRANSFER_LIMIT: usize = 32 << 20;
/// The longest timeout `Options` may ask for: deadlines are computed by adding it to the clock.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

impl Options {
    /// Checks the options the driver cannot simply clamp; the error says which one is wrong.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidOptions(what));
        for (name, value) in [
            ("admin_timeout", self.admin_timeout),
            ("io_timeout", self.io_timeout),
        ] {
            if value.is_zero() || value > MAX_TIMEOUT {
                return bad(format!(
                    "{name} is {value:?}; it must be more than zero and at most {MAX_TIMEOUT:?}"
                ));
            }
        }
        if self.queue_depth == 0 {
            return bad("queue_depth is 0; at least one entry is needed".into());
        }
        Ok(())
    }
}

const ADMIN_ENTRIES: u16 = 32;
/// Fallback shutdown bound when the controller reports no RTD3E (as Linux does).
const DEFAULT_SHUTDOWN: Duration = Duration::from_secs(5);

/// State shared by the controller handle and its queue pairs.
pub(crate) struct Shared<P: Platform> {
    pub(crate) platform: P,
    pub(crate) cap: Cap,
    pub(crate) options: Options,
    pub(crate) info: ControllerInfo,
    pub(crate) namespaces: Vec<Namespace>,
    pub(crate) max_transfer: usize,
    pub(crate) admin: Mutex<AdminQueue<P::Dma>>,
    /// Bumped by every controller reset; queue pairs recreate their queues when it changes.
    pub(crate) generation: AtomicU64,
    pub(crate) dead: AtomicBool,
    /// Set once the platform confirmed the device can reach no memory any more
    /// ([`Platform::stop_dma`]): from then on everything it knew may be freed.
    stopped: AtomicBool,
    granted: AtomicU64,
    queue_ids: Mutex<Vec<bool>>,
    /// Interrupt vectors by number (vector `q` belongs to I/O queue `q`; 0 is the admin
    /// queue's, which is polled): empty unless [`Options::interrupts`].
    pub(crate) interrupts: Vec<Arc<Interrupt>>,
    /// The shadow doorbell pages, when the controller took them (see [`Shadow`]): shared by
    /// the queue pairs without a lock, each storing to its own entries only.
    pub(crate) shadow: Option<Shadow<P::Dma>>,
}

/// A brought-up NVMe controller. Open one [`QueuePair`] per thread for I/O.
pub struct Controller<P: Platform> {
    pub(crate) shared: Arc<Shared<P>>,
}

fn wait_ready<P: Platform>(platform: &P, ready: bool, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut spins = 0;
    loop {
        let csts = platform.read32(regs::CSTS);
        if csts == u32::MAX {
            return Err(Error::ControllerDead);
        }
        if ready && csts & regs::CSTS_CFS != 0 {
            return Err(Error::ControllerFatal);
        }
        if (csts & regs::CSTS_RDY != 0) == ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Timeout(if ready {
                "the controller to become ready"
            } else {
                "the controller to stop"
            }));
        }
        backoff(&mut spins);
    }
}

/// Disables the controller (waiting for RDY to agree with EN first) and waits until it stops.
fn disable<P: Platform>(platform: &P, cap: Cap) -> Result<()> {
    let timeout = Duration::from_millis(cap.timeout_ms().max(500));
    let cc = platform.read32(regs::CC);
    if cc == u32::MAX {
        return Err(Error::ControllerDead);
    }
    if cc & regs::CC_EN != 0 {
        // Changing EN while RDY still disagrees is undefined; a fatal status ends the wait too.
        let csts = platform.read32(regs::CSTS);
        if csts & regs::CSTS_CFS == 0 {
            wait_ready(platform, true, timeout)?;
        }
        platform.write32(regs::CC, cc & !regs::CC_EN);
    }
    wait_ready(platform, false, timeout)
}

/// Programs the admin queue, enables the controller and waits for it.
fn enable<P: Platform>(platform: &P, cap: Cap, admin: &AdminQueue<P::Dma>) -> Result<()> {
    let rings = &admin.rings;
    let entries = rings.entries as u32 - 1;
    platform.write32(regs::AQA, entries << 16 | entries);
    platform.write64(regs::ASQ, rings.sq_addr());
    platform.write64(regs::ACQ, rings.cq_addr());
    platform.write32(regs::INTMS, u32::MAX);
    // 4 KiB pages: DMA memory is only known to be contiguous within 4 KiB.
    platform.write32(regs::CC, regs::cc_value(0));
    platform.write32(regs::CC, regs::cc_value(0) | regs::CC_EN);
    wait_ready(
        platform,
        true,
        Duration::from_millis(cap.timeout_ms().max(500)),
    )
}

/// Allocates the shadow doorbell pages and hands them to the controller; `None` (doorbell
/// registers only) if it refuses. Pages a failed command may still point at stay with the admin
/// queue until the controller is disabled or stopped.
fn configure_shadow<P: Platform>(
    platform: &P,
    admin: &mut AdminQueue<P::Dma>,
) -> Option<Shadow<P::Dma>> {
    let pages = platform
        .alloc_dma(DMA_PAGE_SIZE)
        .and_then(|d| Ok((d, platform.alloc_dma(DMA_PAGE_SIZE)?)));
    let (doorbells, event_indexes) = match pages {
        Ok(pages) => pages,
        Err(e) => {
            tracing::warn!("no memory for shadow doorbells ({e}); writing the registers");
            return None;
        }
    };
    let shadow = Shadow::new(doorbells, event_indexes);
    match send_shadow_config(platform, admin, &shadow) {
        Ok(()) => Some(shadow),
        Err(e) => {
            tracing::warn!("Doorbell Buffer Config failed ({e}); writing the registers");
            if crate::admin::may_be_outstanding(&e) {
                admin.park(shadow.into_memory());
            }
            None
        }
    }
}

fn send_shadow_config<P: Platform>(
    platform: &P,
    admin: &mut AdminQueue<P::Dma>,
    shadow: &Shadow<P::Dma>,
) -> Result<()> {
    let mut sqe = crate::command::Sqe::new(crate::command::admin::DOORBELL_BUFFER_CONFIG, 0);
    sqe.set_prps(
        shadow.doorbells.bus_addr(0),
        shadow.event_indexes.bus_addr(0),
    );
    admin.run(platform, sqe).map(drop)
}

/// Identify Controller, the usable namespaces, and Set Features Number of Queues.
fn identify_all<P: Platform>(
    platform: &P,
    admin: &mut AdminQueue<P::Dma>,
    io_queues: u16,
) -> Result<(ControllerInfo, Vec<Namespace>, u16)> {
    let info = ControllerInfo::parse(&admin.identify(platform, cns::CONTROLLER, 0)?);
    let mut namespaces = Vec::new();
    for id in admin.active_namespaces(platform)? {
        let ns = Namespace::parse(id, &admin.identify(platform, cns::NAMESPACE, id)?);
        if ns.blocks > 0 && ns.metadata_size == 0 && (9..=16).contains(&ns.block_shift) {
            namespaces.push(ns);
        }
    }
    let granted = admin.set_queue_count(platform, io_queues.max(1))?;
    Ok((info, namespaces, granted))
}

impl<P: Platform> Controller<P> {
    /// Brings the controller up: reset, admin queue, identify, namespaces and queue count.
    pub fn new(platform: P, options: Options) -> Result<Controller<P>> {
        options.validate()?;
        let cap = Cap(platform.read64(regs::CAP));
        if cap.0 == u64::MAX {
            return Err(Error::ControllerDead);
        }
        if !cap.supports_nvm_command_set() {
            return Err(Error::Unsupported("no NVM command set".into()));
        }
        if cap.mps_min() > 0 {
            return Err(Error::Unsupported(format!(
                "smallest memory page is {} bytes, the driver uses {DMA_PAGE_SIZE}",
                DMA_PAGE_SIZE << cap.mps_min()
            )));
        }
        disable(&platform, cap)?;
        let admin_entries = ADMIN_ENTRIES.min(cap.max_queue_entries().min(4096) as u16);
        let rings = Rings::new(&platform, 0, admin_entries, cap.doorbell_stride())?;
        let mut admin = AdminQueue::new(rings, options.admin_timeout);
        let brought_up = enable(&platform, cap, &admin)
            .and_then(|()| identify_all(&platform, &mut admin, options.io_queues));
        let (info, namespaces, granted) = match brought_up {
            Ok(found) => found,
            Err(e) => {
                // The controller may hold the admin queue addresses (and a timed-out command
                // the page it points at): stop it before the memory goes, or keep the memory
                // forever if it cannot be stopped.
                if disable(&platform, cap).is_err()
                    && let Err(stop) = platform.stop_dma()
                {
                    let bytes = admin.leak();
                    tracing::error!(
                        "controller could not be stopped after a failed bring-up ({stop}); \
                         leaking {bytes} bytes of DMA memory it may still reach"
                    );
                }
                return Err(e);
            }
        };
        let shadow = if options.shadow_doorbells && info.supports_doorbell_buffer() {
            configure_shadow(&platform, &mut admin)
        } else {
            None
        };
        let interrupts = if options.interrupts {
            match platform.enable_interrupts(granted.saturating_add(1)) {
                Ok(vectors) => vectors,
                Err(e) => {
                    if disable(&platform, cap).is_err() && platform.stop_dma().is_err() {
                        let bytes = admin.leak();
                        tracing::error!(
                            "controller could not be stopped after a failed bring-up; \
                             leaking {bytes} bytes of DMA memory it may still reach"
                        );
                    }
                    return Err(e.into());
                }
            }
        } else {
            Vec::new()
        };
        let mdts_limit = match info.mdts {
            0 => usize::MAX,
            n if n >= 20 => usize::MAX,
            n => DMA_PAGE_SIZE << n,
        };
        let max_transfer = options
            .max_transfer
            .min(mdts_limit)
            .clamp(DMA_PAGE_SIZE, MAX_TRANSFER_LIMIT);
        let max_transfer = max_transfer - max_transfer % DMA_PAGE_SIZE;
        Ok(Controller {
            shared: Arc::new(Shared {
                platform,
                cap,
                max_transfer,
                info,
                namespaces,
                admin: Mutex::new(admin),
                generation: AtomicU64::new(0),
                dead: AtomicBool::new(false),
                stopped: AtomicBool::new(false),
                granted: AtomicU64::new(granted as u64),
                queue_ids: Mutex::new(vec![false; granted as usize]),
                interrupts,
                shadow,
                options,
            }),
        })
    }

    /// What Identify Controller reported.
    pub fn info(&self) -> &ControllerInfo {
        &self.shared.info
    }

    /// The active namespaces the driver can use.
    pub fn namespaces(&self) -> &[Namespace] {
        &self.shared.namespaces
    }

    /// The controller capabilities register.
    pub fn cap(&self) -> Cap {
        self.shared.cap
    }

    /// Largest transfer of one command (MDTS and the driver's own bound).
    pub fn max_transfer(&self) -> usize {
        self.shared.max_transfer
    }

    /// Whether I/O queues raise interrupts ([`Options::interrupts`]).
    pub fn interrupts(&self) -> bool {
        !self.shared.interrupts.is_empty()
    }

    /// Whether I/O doorbells go through shadow doorbells ([`Options::shadow_doorbells`] and a
    /// controller that took them).
    pub fn shadow_doorbells(&self) -> bool {
        self.shared.shadow.is_some()
    }

    /// I/O queue pairs the controller granted.
    pub fn queues_granted(&self) -> u16 {
        self.shared.granted.load(Ordering::Relaxed) as u16
    }

    /// A read-only view of the controller's registers. The platform itself stays the
    /// controller's: a register write from outside could point the device at any memory.
    pub fn platform(&self) -> Registers<'_, P> {
        Registers {
            platform: &self.shared.platform,
        }
    }

    /// Whether the controller was found dead (it stopped answering and could not be reset).
    pub fn is_dead(&self) -> bool {
        self.shared.dead.load(Ordering::Acquire)
    }

    /// Creates an I/O queue pair (CQ, then SQ) for the calling thread.
    pub fn queue_pair(&self) -> Result<QueuePair<P>> {
        QueuePair::new(Arc::clone(&self.shared))
    }

    /// Resets the controller now; live queue pairs recreate their queues on their next use.
    pub fn reset(&self) -> Result<()> {
        let seen = self.shared.generation.load(Ordering::Acquire);
        self.shared.reset(seen)
    }
}

/// Read access to a controller's BAR0 registers (see [`Controller::platform`]).
#[derive(Debug)]
pub struct Registers<'a, P> {
    platform: &'a P,
}

/// Where the doorbells start: the view covers the controller registers below.
const REGISTERS_END: usize = regs::DOORBELL_BASE;

impl<P: Platform> Registers<'_, P> {
    /// Reads the 32-bit controller register at `offset` (4-byte aligned, below the doorbells);
    /// `None` for any other offset.
    pub fn read32(&self, offset: usize) -> Option<u32> {
        (offset.is_multiple_of(4) && offset.checked_add(4)? <= REGISTERS_END)
            .then(|| self.platform.read32(offset))
    }

    /// Reads the 64-bit controller register at `offset` (8-byte aligned, below the doorbells);
    /// `None` for any other offset.
    pub fn read64(&self, offset: usize) -> Option<u64> {
        (offset.is_multiple_of(8) && offset.checked_add(8)? <= REGISTERS_END)
            .then(|| self.platform.read64(offset))
    }
}

impl<P: Platform> Shared<P> {
    /// Marks the controller dead and stops it reaching memory ([`Platform::stop_dma`]). Until
    /// that succeeded ([`Shared::dma_stopped`]), nothing the controller knew may be freed.
    pub(crate) fn mark_dead(&self) {
        if self.dead.swap(true, Ordering::AcqRel) {
            return;
        }
        match self.platform.stop_dma() {
            Ok(()) => self.stopped.store(true, Ordering::Release),
            Err(e) => tracing::error!(
                "the controller is dead and its DMA could not be stopped ({e}): every buffer, \
                 ring and list page it knew is leaked"
            ),
        }
    }

    /// Whether the device certainly reaches no memory any more.
    pub(crate) fn dma_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    pub(crate) fn lock_admin(&self) -> MutexGuard<'_, AdminQueue<P::Dma>> {
        self.admin
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes a free I/O queue ID.
    pub(crate) fn take_queue_id(&self) -> Result<u16> {
        let mut ids = self
            .queue_ids
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let index = ids
            .iter()
            .position(|used| !used)
            .ok_or(Error::NoQueuesLeft(ids.len() as u16))?;
        ids[index] = true;
        Ok(index as u16 + 1)
    }

    /// Gives an I/O queue ID back.
    pub(crate) fn release_queue_id(&self, qid: u16) {
        let mut ids = self
            .queue_ids
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(used) = ids.get_mut(qid as usize - 1) {
            *used = false;
        }
    }

    /// Resets the controller unless someone already did since generation `seen`.
    ///
    /// Disabling stops all DMA; the admin queue is rebuilt and the queue count set again.
    /// A controller that cannot be reset is marked dead.
    pub(crate) fn reset(&self, seen: u64) -> Result<()> {
        let mut admin = self.lock_admin();
        if self.dead.load(Ordering::Acquire) {
            return Err(Error::ControllerDead);
        }
        if self.generation.load(Ordering::Acquire) != seen {
            return Ok(());
        }
        let result = (|| {
            disable(&self.platform, self.cap)?;
            // Disabled: no command is outstanding any more.
            admin.release_parked();
            admin.rings.reset();
            enable(&self.platform, self.cap, &admin)?;
            let wanted = self.granted.load(Ordering::Relaxed) as u16;
            admin.set_queue_count(&self.platform, wanted)?;
            // A reset forgot the shadow pages: they start again from zero. Queue pairs write
            // them either way, so a controller that refuses them now is given up on.
            //
            // Queue pairs on other threads are not stopped meanwhile: one may still store a
            // doorbell of its old queues, before or after this clearing. No lock is needed for
            // that to be harmless: each store is one atomic word to that queue pair's own
            // entries; the controller, disabled and then without I/O queues, reads none of
            // them; and the queue pair zeroes its entries again (`recover`, under the admin
            // lock, after this generation is published) before it creates its queues anew.
            if let Some(shadow) = &self.shadow {
                shadow.clear();
                send_shadow_config(&self.platform, &mut admin, shadow)?;
            }
            Ok(())
        })();
        match result {
            Ok(_) => {
                self.generation.fetch_add(1, Ordering::AcqRel);
                Ok(())
            }
            Err(e) => {
                drop(admin);
                self.mark_dead();
                Err(e)
            }
        }
    }
}

impl<P: Platform> Drop for Shared<P> {
    /// Orderly shutdown: CC.SHN = normal, then wait for SHST = complete, bounded by RTD3E.
    /// Then the device's DMA is stopped before the admin rings and parked pages are freed; if
    /// that fails and the controller may still be running, they are leaked instead.
    fn drop(&mut self) {
        let shut_down = !self.dead.load(Ordering::Acquire) && self.shut_down();
        if self.dma_stopped() {
            return;
        }
        match self.platform.stop_dma() {
            Ok(()) => self.stopped.store(true, Ordering::Release),
            Err(e) => {
                let admin = self
                    .admin
                    .get_mut()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if !shut_down || admin.parked_bytes() > 0 {
                    let mut bytes = admin.leak();
                    if let Some(shadow) = self.shadow.take() {
                        // `Shared` is being dropped: no queue pair is left to share the pages.
                        bytes += 2 * DMA_PAGE_SIZE;
                        std::mem::forget(shadow);
                    }
                    tracing::error!(
                        "the controller could not be stopped ({e}); leaking {bytes} bytes of \
                         admin queue memory it may still reach"
                    );
                }
            }
        }
    }
}

impl<P: Platform> Shared<P> {
    /// Sets CC.SHN = normal and waits for SHST = complete; `true` if it completed.
    fn shut_down(&self) -> bool {
        let cc = self.platform.read32(regs::CC);
        if cc == u32::MAX {
            return false;
        }
        if cc & regs::CC_EN == 0 {
            return true;
        }
        self.platform
            .write32(regs::CC, (cc & !regs::CC_SHN_MASK) | regs::CC_SHN_NORMAL);
        let bound = Duration::from_micros(self.info.rtd3e_us as u64).max(DEFAULT_SHUTDOWN);
        let deadline = Instant::now() + bound;
        let mut spins = 0;
        loop {
            let csts = self.platform.read32(regs::CSTS);
            if csts == u32::MAX {
                return false;
            }
            if csts & regs::CSTS_SHST_MASK == regs::CSTS_SHST_COMPLETE {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            backoff(&mut spins);
        }
    }
}

impl<P: Platform> std::fmt::Debug for Controller<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("info", &self.shared.info)
            .field("namespaces", &self.shared.namespaces)
            .field("generation", &self.shared.generation)
            .field("dead", &self.shared.dead)
            .finish()
    }
}
