//! A PCI function bound to `uio_pci_generic`: BAR0 through sysfs `resource0`, Bus Master set
//! by hand, and DMA memory from hugepages translated through `/proc/self/pagemap`.
//!
//! There is no IOMMU here: the device sees physical addresses and can reach all of memory.
//! That is why [`UioDevice::open`] is `unsafe`: from then on the device does whatever its
//! registers (written through [`UioDevice::bar0`]) and the queue entries in its DMA memory tell
//! it, and nothing checks that those name only live buffers. See its `# Safety` section.
//!
//! What this module does guarantee:
//! - One handle per function at a time, in any process: opening takes an exclusive `flock` on
//!   the function's config space, held until the handle is dropped (or the process ends).
//! - Bus Master is cleared and the function reset (sysfs `reset`: FLR or the like) before Bus
//!   Master is enabled, so a controller left running by an earlier owner is stopped first.
//! - Hugepages are used because they are never moved or swapped while mapped. Every hugepage
//!   the pool maps stays mapped until the handle is dropped, and dropping it clears Bus Master
//!   and resets the function first: a dropped buffer's pages only go back to the pool (small
//!   ones to their chunk, large ones to a spare list reused by the next large buffer of the same
//!   size), so a command still in flight when its buffer is dropped writes into our own memory
//!   (possibly another buffer's), never into pages the kernel has handed to someone else. If
//!   Bus Master cannot be cleared, the pool's memory is leaked for the rest of the process.
//! - At process exit without `Drop` (`std::process::exit`, `main` returning while another
//!   thread owns the handle) an `atexit` hook clears Bus Master; on a kill by signal, closing
//!   `/dev/uioN` (held open for that reason) makes `uio_pci_generic` clear it. In that last case
//!   the kernel frees the process's memory slightly before it closes its files, so a controller
//!   still running in that window could write into freed hugepages: prefer VFIO.

use std::fs::{File, OpenOptions};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::dma::DmaBuffer;
use crate::error::{Error, Result};
use crate::exit::ExitGuard;
use crate::map::{Backing, Mapping, PAGE_SIZE, round_up_to_page};
use crate::mmio::Mmio;
use crate::pagemap::Pagemap;
use crate::pci::{COMMAND_BUS_MASTER, DeviceLock, PciAddress, PciDevice, Sysfs};
use crate::ranges::RangeAllocator;

/// The hugepage size carved into DMA buffers.
pub const HUGE_PAGE_SIZE: usize = 2 << 20;

/// A PCI function driven through `uio_pci_generic`.
#[derive(Debug)]
pub struct UioDevice {
    pci: PciDevice,
    bar0: Mmio,
    pool: DmaPool,
    /// Set once Bus Master was cleared (and the function reset) by [`UioDevice::stop_dma`].
    stopped: AtomicBool,
    _exit: ExitGuard,
    /// `/dev/uioN`: its release clears Bus Master however the process ends.
    _node: File,
    // Dropped last: nobody else may open the function before it is stopped.
    _lock: DeviceLock,
}

impl UioDevice {
    /// Opens `addr`, which must already be bound to `uio_pci_generic`: takes the function's
    /// exclusive lock, clears Bus Master, resets the function, maps BAR0 and enables memory
    /// space and Bus Master. Run as root (pagemap hides physical addresses from others), with
    /// hugepages reserved in `/proc/sys/vm/nr_hugepages`.
    ///
    /// # Safety
    ///
    /// There is no IOMMU: the device can read and write any physical memory, and it does what
    /// BAR0's registers and the commands in its queues say. The caller promises that, for as
    /// long as the handle lives, everything written to [`UioDevice::bar0`] and everything the
    /// device reads from memory (queue entries, PRPs, list pages) names only bus addresses of
    /// [`DmaBuffer`]s from this handle's [`UioDevice::alloc_dma`] that are still alive, and that
    /// a buffer the device may still use is not dropped before [`UioDevice::stop_dma`] (or the
    /// controller's own disable) has stopped it. Handing the handle to a driver that keeps
    /// those rules (such as the `nvme` crate's controller) discharges this.
    #[allow(unsafe_code)]
    pub unsafe fn open(sysfs: &Sysfs, addr: PciAddress) -> Result<Self> {
        let pci = sysfs.device(addr)?;
        pci.require_driver("uio_pci_generic")?;
        let lock = pci.lock()?;
        // Binding takes the same lock: checked again now nobody can rebind underneath.
        pci.require_driver("uio_pci_generic")?;
        let node = open_uio_node(&pci, sysfs)?;
        let path = pci.resource_path(0);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io(format!("stat {}", path.display()), e))?
            .len() as usize;
        let bar0 = Mmio::new(Mapping::of_file(&file, len, 0, "BAR0 (resource0)")?);
        let pool = DmaPool::new(Translation::Physical(Pagemap::open()?), Backing::Huge);
        // A controller left enabled by an earlier owner may still be running: stop it before
        // the device may master the bus again. The reset restores config space as it was
        // before, so Bus Master is cleared first to stay cleared.
        pci.clear_command_bits(COMMAND_BUS_MASTER)?;
        pci.reset_function()?;
        let exit = ExitGuard::register(pci.config_path());
        pci.enable_bus_master()?;
        Ok(Self {
            pci,
            bar0,
            pool,
            stopped: AtomicBool::new(false),
            _exit: exit,
            _node: node,
            _lock: lock,
        })
    }

    /// The PCI function (read-only: its mutators are this crate's).
    pub fn pci(&self) -> &PciDevice {
        &self.pci
    }

    /// BAR0's registers.
    pub fn bar0(&self) -> &Mmio {
        &self.bar0
    }

    /// Zeroed DMA memory of `len` bytes rounded up to 4 KiB pages.
    pub fn alloc_dma(&self, len: usize) -> Result<DmaBuffer> {
        self.pool.alloc(len)
    }

    /// Stops the device from reaching memory for good: clears Bus Master, then resets the
    /// function. `Ok` once Bus Master is clear (a failed reset is only logged: without Bus
    /// Master the function can issue no DMA). After this the handle only frees memory safely;
    /// the device needs a fresh open to work again.
    pub fn stop_dma(&self) -> Result<()> {
        if self.stopped.load(Ordering::Acquire) {
            return Ok(());
        }
        self.pci.clear_command_bits(COMMAND_BUS_MASTER)?;
        self.stopped.store(true, Ordering::Release);
        if let Err(e) = self.pci.reset_function() {
            tracing::warn!(
                "{}: Bus Master cleared, but the function reset failed: {e}",
                self.pci.address()
            );
        }
        Ok(())
    }
}

/// Opens the `/dev/uioN` node of `pci`.
fn open_uio_node(pci: &PciDevice, sysfs: &Sysfs) -> Result<File> {
    let dir = pci.sysfs_dir().join("uio");
    let no_node = || Error::WrongState(format!("{} has no uio node", pci.address()));
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(no_node()),
        Err(e) => return Err(Error::io(format!("read {}", dir.display()), e)),
    };
    let name = entries
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .find(|name| name.starts_with("uio"))
        .ok_or_else(no_node)?;
    let path = sysfs.dev_dir().join(&name);
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))
}

impl Drop for UioDevice {
    /// Stops the device from mastering the bus before the pool's hugepages go back to the kernel
    /// (the fields drop after this): without an IOMMU nothing else would stop a controller left
    /// enabled from writing into memory that is no longer ours. If that fails, the pool's memory
    /// stays mapped for the rest of the process instead.
    fn drop(&mut self) {
        if let Err(e) = self.stop_dma() {
            let bytes = self.pool.keep_forever();
            tracing::error!(
                "{}: cannot clear Bus Master ({e}); leaking {bytes} bytes of DMA memory it may still reach",
                self.pci.address()
            );
        }
    }
}

/// How the pool finds the bus address of its memory.
#[derive(Debug)]
enum Translation {
    /// Physical addresses from pagemap (uio, no IOMMU).
    Physical(Pagemap),
    /// The virtual address itself: only for testing the pool's bookkeeping.
    #[cfg(test)]
    Virtual,
}

impl Translation {
    fn pages(&self, mem: &Mapping, len: usize) -> Result<Vec<u64>> {
        match self {
            Translation::Physical(pagemap) => pagemap.physical_pages(mem.addr(), len),
            #[cfg(test)]
            Translation::Virtual => Ok((0..len / PAGE_SIZE)
                .map(|i| (mem.addr() + i * PAGE_SIZE) as u64)
                .collect()),
        }
    }
}

/// One hugepage shared by several small buffers.
#[derive(Debug)]
struct Chunk {
    mem: Arc<Mapping>,
    pages: Vec<u64>,
}

/// Hands out DMA buffers: small ones carved from shared hugepages, large ones on their own.
#[derive(Debug)]
struct DmaPool {
    translation: Translation,
    backing: Backing,
    chunks: Mutex<Vec<Chunk>>,
    /// Free space of each chunk, shared with the buffers so they can give it back on drop.
    free: Arc<Mutex<Vec<RangeAllocator>>>,
    /// Memory of dropped large buffers, kept (the device may still write it) for reuse.
    spare: Arc<Mutex<Vec<Chunk>>>,
}

/// Gives a large buffer's memory back to the pool's spare list when the buffer is dropped.
struct SpareLease {
    spare: Arc<Mutex<Vec<Chunk>>>,
    chunk: Option<Chunk>,
}

impl Drop for SpareLease {
    fn drop(&mut self) {
        if let Some(chunk) = self.chunk.take() {
            self.spare
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(chunk);
        }
    }
}

/// Returns a buffer's pages to its chunk when the buffer is dropped.
struct PoolLease {
    free: Arc<Mutex<Vec<RangeAllocator>>>,
    chunk: usize,
    offset: u64,
    len: u64,
}

impl Drop for PoolLease {
    fn drop(&mut self) {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        let returned = free[self.chunk].free(self.offset, self.len);
        debug_assert!(returned, "pool pages returned twice");
    }
}

impl DmaPool {
    fn new(translation: Translation, backing: Backing) -> Self {
        Self {
            translation,
            backing,
            chunks: Mutex::new(Vec::new()),
            free: Arc::new(Mutex::new(Vec::new())),
            spare: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Leaks every mapping the pool holds or will get back, for when the device may still
    /// reach them after the pool is gone. Returns how many bytes the pool had mapped.
    fn keep_forever(&self) -> usize {
        let chunks =
            std::mem::take(&mut *self.chunks.lock().unwrap_or_else(PoisonError::into_inner));
        let spare: usize = self
            .spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|c| c.mem.len())
            .sum();
        let bytes = chunks.iter().map(|c| c.mem.len()).sum::<usize>() + spare;
        std::mem::forget(chunks);
        std::mem::forget(self.spare.clone());
        bytes
    }

    fn alloc(&self, len: usize) -> Result<DmaBuffer> {
        let len = round_up_to_page(len.max(1)).ok_or(Error::AddressSpaceExhausted(len))?;
        if len > HUGE_PAGE_SIZE {
            return self.alloc_dedicated(len);
        }
        let mut chunks = self.chunks.lock().unwrap_or_else(PoisonError::into_inner);
        let found = {
            let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
            free.iter_mut()
                .enumerate()
                .find_map(|(i, f)| f.alloc(len as u64).map(|off| (i, off)))
        };
        let (chunk, offset) = match found {
            Some(hit) => hit,
            None => {
                let mem = Mapping::anonymous(HUGE_PAGE_SIZE, self.backing)?;
                let pages = self.translation.pages(&mem, HUGE_PAGE_SIZE)?;
                let mut space = RangeAllocator::new(0, HUGE_PAGE_SIZE as u64, PAGE_SIZE as u64);
                let offset = space
                    .alloc(len as u64)
                    .expect("a fresh chunk fits any small buffer");
                chunks.push(Chunk {
                    mem: Arc::new(mem),
                    pages,
                });
                self.free
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(space);
                (chunks.len() - 1, offset)
            }
        };
        let c = &chunks[chunk];
        let start = offset as usize;
        // Reused pages still hold a previous buffer's data.
        c.mem.copy_in(start, &vec![0; len])?;
        let pages = c.pages[start / PAGE_SIZE..(start + len) / PAGE_SIZE].to_vec();
        let lease = PoolLease {
            free: self.free.clone(),
            chunk,
            offset,
            len: len as u64,
        };
        Ok(DmaBuffer::new(
            c.mem.clone(),
            start,
            len,
            pages,
            Some(Box::new(lease)),
        ))
    }

    fn alloc_dedicated(&self, len: usize) -> Result<DmaBuffer> {
        let mapped = len
            .checked_next_multiple_of(HUGE_PAGE_SIZE)
            .ok_or(Error::AddressSpaceExhausted(len))?;
        let reused = {
            let mut spare = self.spare.lock().unwrap_or_else(PoisonError::into_inner);
            let hit = spare.iter().position(|c| c.mem.len() == mapped);
            hit.map(|i| spare.swap_remove(i))
        };
        let chunk = match reused {
            Some(chunk) => chunk,
            None => {
                let mem = Mapping::anonymous(mapped, self.backing)?;
                let pages = self.translation.pages(&mem, mapped)?;
                Chunk {
                    mem: Arc::new(mem),
                    pages,
                }
            }
        };
        // From here on the memory may have been the device's: it goes back to the spare list,
        // never to the kernel, whatever happens.
        let lease = SpareLease {
            spare: self.spare.clone(),
            chunk: Some(Chunk {
                mem: chunk.mem.clone(),
                pages: chunk.pages.clone(),
            }),
        };
        // Reused memory still holds a previous buffer's data.
        chunk.mem.copy_in(0, &vec![0; len])?;
        let pages = chunk.pages[..len / PAGE_SIZE].to_vec();
        Ok(DmaBuffer::new(
            chunk.mem,
            0,
            len,
            pages,
            Some(Box::new(lease)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::tests::{fake_tree, rebind_fake};

    /// Held by the test that spawns a child and by the one that re-opens a dropped handle: a child
    /// forked while a handle is open keeps a copy of its locked descriptor until it execs, so the
    /// re-open would find the function still locked.
    static SPAWN_OR_REOPEN: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// Opens the fake function (no device behind it, so nothing to promise).
    #[allow(unsafe_code)]
    fn open(sysfs: &Sysfs) -> Result<UioDevice> {
        // SAFETY: the fake tree's "BAR" is a plain file and no device will read this memory.
        unsafe { UioDevice::open(sysfs, "0000:00:02.0".parse().unwrap()) }
    }

    #[test]
    fn open_refuses_other_drivers_and_reports_a_missing_bar() {
        let (tmp, sysfs) = fake_tree();
        let err = open(&sysfs).unwrap_err().to_string();
        assert!(err.contains("bound to nvme, not uio_pci_generic"), "{err}");
        rebind_fake(&tmp, "uio_pci_generic");
        let err = open(&sysfs).unwrap_err().to_string();
        assert!(err.contains("no uio node"), "{err}");
        let sysfs = fake_uio(&tmp);
        std::fs::remove_file(tmp.path().join("devices/pci0000:00/0000:00:02.0/resource0")).unwrap();
        let err = open(&sysfs).unwrap_err().to_string();
        assert!(err.contains("resource0"), "{err}");
    }

    /// Completes the fake function as uio_pci_generic would show it: a 16 KiB BAR0, a uio node
    /// and a `reset` attribute.
    fn fake_uio(tmp: &tempfile::TempDir) -> Sysfs {
        let root = tmp.path();
        let dev = root.join("devices/pci0000:00/0000:00:02.0");
        std::fs::write(dev.join("resource0"), vec![0u8; 0x4000]).unwrap();
        std::fs::create_dir_all(dev.join("uio/uio3")).unwrap();
        std::fs::write(dev.join("reset"), "").unwrap();
        std::fs::create_dir_all(root.join("dev")).unwrap();
        std::fs::write(root.join("dev/uio3"), "").unwrap();
        Sysfs::new(root).with_dev_dir(root.join("dev"))
    }

    #[test]
    fn a_function_has_one_owner_reset_before_bus_master_and_stopped_on_drop() {
        let _no_spawn = SPAWN_OR_REOPEN.lock().unwrap_or_else(|e| e.into_inner());
        let (tmp, _) = fake_tree();
        rebind_fake(&tmp, "uio_pci_generic");
        let sysfs = fake_uio(&tmp);
        let fake = tmp.path().join("devices/pci0000:00/0000:00:02.0");
        // A controller left mastering the bus by an earlier owner.
        let mut config = std::fs::read(fake.join("config")).unwrap();
        config[4] |= COMMAND_BUS_MASTER as u8;
        std::fs::write(fake.join("config"), &config).unwrap();

        let first = open(&sysfs).unwrap();
        assert_eq!(
            std::fs::read_to_string(fake.join("reset")).unwrap(),
            "1",
            "function reset"
        );
        assert_ne!(first.pci().command().unwrap() & COMMAND_BUS_MASTER, 0);

        let err = open(&sysfs).unwrap_err().to_string();
        assert!(
            err.contains("already open"),
            "a second handle is refused: {err}"
        );
        assert_ne!(
            first.pci().command().unwrap() & COMMAND_BUS_MASTER,
            0,
            "the refused open left the first handle's device alone"
        );

        std::fs::write(fake.join("reset"), "").unwrap();
        let pci = first.pci().clone();
        drop(first);
        assert_eq!(
            pci.command().unwrap() & COMMAND_BUS_MASTER,
            0,
            "Bus Master cleared"
        );
        assert_eq!(
            std::fs::read_to_string(fake.join("reset")).unwrap(),
            "1",
            "reset on drop"
        );
        let again = open(&sysfs).unwrap();
        drop(again);
    }

    /// The child's half of the exit test: opens the fake function under `root` and leaves the
    /// process with the handle still open, as `std::process::exit` from anywhere would.
    fn exit_holding_the_device(root: &str) -> ! {
        let root = std::path::Path::new(root);
        let sysfs = Sysfs::new(root).with_dev_dir(root.join("dev"));
        let device = open(&sysfs).unwrap();
        assert_ne!(device.pci().command().unwrap() & COMMAND_BUS_MASTER, 0);
        std::process::exit(0)
    }

    #[test]
    fn exit_without_drop_clears_bus_master() {
        const TREE: &str = "HW_TEST_EXIT_HOLDING_TREE";
        if let Ok(root) = std::env::var(TREE) {
            exit_holding_the_device(&root);
        }
        let (tmp, _) = fake_tree();
        rebind_fake(&tmp, "uio_pci_generic");
        let sysfs = fake_uio(&tmp);
        let name = "uio::tests::exit_without_drop_clears_bus_master";
        let _no_reopen = SPAWN_OR_REOPEN.lock().unwrap_or_else(|e| e.into_inner());
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([name, "--exact", "--test-threads=1"])
            .env(TREE, tmp.path())
            .status()
            .unwrap();
        assert!(status.success());
        let pci = sysfs.device("0000:00:02.0".parse().unwrap()).unwrap();
        assert_eq!(
            pci.command().unwrap() & COMMAND_BUS_MASTER,
            0,
            "the exit hook cleared Bus Master"
        );
    }

    #[test]
    fn open_refuses_a_function_without_reset() {
        let (tmp, _) = fake_tree();
        rebind_fake(&tmp, "uio_pci_generic");
        let sysfs = fake_uio(&tmp);
        std::fs::remove_file(tmp.path().join("devices/pci0000:00/0000:00:02.0/reset")).unwrap();
        let err = open(&sysfs).unwrap_err().to_string();
        assert!(err.contains("no function reset"), "{err}");
    }

    fn pool() -> DmaPool {
        DmaPool::new(Translation::Virtual, Backing::Normal)
    }

    #[test]
    fn small_buffers_share_a_chunk_without_overlapping() {
        let pool = pool();
        let a = pool.alloc(1).unwrap();
        let b = pool.alloc(3 * PAGE_SIZE).unwrap();
        assert_eq!(a.len(), PAGE_SIZE);
        assert_eq!(b.len(), 3 * PAGE_SIZE);
        assert_eq!(pool.chunks.lock().unwrap().len(), 1);
        let a0 = a.bus_addr(0).unwrap();
        let b0 = b.bus_addr(0).unwrap();
        assert!(b0 >= a0 + PAGE_SIZE as u64 || a0 >= b0 + 3 * PAGE_SIZE as u64);
    }

    #[test]
    fn freed_pages_are_reused_and_zeroed() {
        let pool = pool();
        let a = pool.alloc(PAGE_SIZE).unwrap();
        let addr = a.bus_addr(0).unwrap();
        a.write(100, b"stale").unwrap();
        drop(a);
        let b = pool.alloc(PAGE_SIZE).unwrap();
        assert_eq!(
            b.bus_addr(0).unwrap(),
            addr,
            "the freed page is handed out again"
        );
        let mut out = [0xff; 5];
        b.read(100, &mut out).unwrap();
        assert_eq!(out, [0; 5]);
    }

    #[test]
    fn a_full_chunk_opens_another_and_large_buffers_stand_alone() {
        let pool = pool();
        let _whole = pool.alloc(HUGE_PAGE_SIZE).unwrap();
        let _more = pool.alloc(PAGE_SIZE).unwrap();
        assert_eq!(pool.chunks.lock().unwrap().len(), 2);
        let big = pool.alloc(HUGE_PAGE_SIZE + 1).unwrap();
        assert_eq!(big.len(), HUGE_PAGE_SIZE + PAGE_SIZE);
        assert_eq!(big.page_bus_addrs().len(), 513);
        assert_eq!(pool.chunks.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_dropped_large_buffer_stays_mapped_and_is_reused_zeroed() {
        let pool = pool();
        let big = pool.alloc(3 * HUGE_PAGE_SIZE).unwrap();
        let addr = big.bus_addr(0).unwrap();
        big.write(HUGE_PAGE_SIZE + 5, b"stale").unwrap();
        drop(big);
        assert_eq!(pool.spare.lock().unwrap().len(), 1, "kept, not unmapped");
        let other_size = pool.alloc(HUGE_PAGE_SIZE + 1).unwrap();
        assert_ne!(other_size.bus_addr(0).unwrap(), addr);
        let again = pool.alloc(3 * HUGE_PAGE_SIZE - PAGE_SIZE).unwrap();
        assert_eq!(
            again.bus_addr(0).unwrap(),
            addr,
            "the same memory comes back"
        );
        assert!(pool.spare.lock().unwrap().is_empty());
        let mut out = [0xff; 5];
        again.read(HUGE_PAGE_SIZE + 5, &mut out).unwrap();
        assert_eq!(out, [0; 5]);
        drop((again, other_size));
        assert_eq!(pool.spare.lock().unwrap().len(), 2);
    }
}
