//! `hw-probe vfio|uio DDDD:BB:DD.F [HOLD_SECONDS]`: checks a binding end to end on an NVMe
//! function, then keeps the device open for `HOLD_SECONDS` (default 0).
//!
//! Maps BAR0, prints CAP and VS, brings up the admin queue pair and runs Identify Controller
//! through DMA with the data straddling two 4 KiB pages (so PRP2 must carry the second page's
//! own bus address), then disables the controller again. Written against `hw` alone so a
//! binding problem shows up here without the driver in the way.

use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use hw::{DmaBuffer, Mmio, PciAddress, Sysfs, UioDevice, VfioDevice};

const CAP: usize = 0x00;
const VS: usize = 0x08;
const CC: usize = 0x14;
const CSTS: usize = 0x1c;
const AQA: usize = 0x24;
const ASQ: usize = 0x28;
const ACQ: usize = 0x30;
const SQ0_TAIL: usize = 0x1000;
const CQ0_HEAD: usize = 0x1004;

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hw-probe: {e}");
            ExitCode::FAILURE
        }
    }
}

enum Device {
    Vfio(VfioDevice),
    Uio(UioDevice),
}

impl Device {
    fn bar0(&self) -> &Mmio {
        match self {
            Device::Vfio(d) => d.bar0(),
            Device::Uio(d) => d.bar0(),
        }
    }

    fn alloc(&self, len: usize) -> Result<DmaBuffer> {
        match self {
            Device::Vfio(d) => d.alloc_dma(len),
            Device::Uio(d) => d.alloc_dma(len),
        }
        .map_err(|e| e.to_string())
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || "usage: hw-probe vfio|uio DDDD:BB:DD.F [HOLD_SECONDS]".to_owned();
    let (mode, addr, hold) = match args.as_slice() {
        [mode, addr] => (mode, addr, 0),
        [mode, addr, hold] => (mode, addr, hold.parse().map_err(|_| usage())?),
        _ => return Err(usage()),
    };
    let addr: PciAddress = addr.parse().map_err(|e: hw::Error| e.to_string())?;
    let sysfs = Sysfs::default();
    let dev = match mode.as_str() {
        "vfio" => Device::Vfio(VfioDevice::open(&sysfs, addr).map_err(|e| e.to_string())?),
        // SAFETY: this program gives the device only bus addresses of the three buffers below,
        // and disables the controller (waiting for RDY=0) before they are dropped; the device
        // handle, declared first, drops last and clears Bus Master.
        #[allow(unsafe_code)]
        "uio" => Device::Uio(unsafe { UioDevice::open(&sysfs, addr) }.map_err(|e| e.to_string())?),
        other => return Err(format!("unknown mode {other:?} (vfio or uio)")),
    };
    let regs = dev.bar0();
    let reg = |r: hw::Result<u32>| r.map_err(|e| e.to_string());
    let cap = regs.read64(CAP).map_err(|e| e.to_string())?;
    let vs = reg(regs.read32(VS))?;
    println!("hw-probe: CAP={cap:#018x} VS={vs:#010x}");
    if cap == u64::MAX {
        return Err("BAR0 reads all ones: the device is gone".into());
    }
    let timeout = Duration::from_millis(500 * (((cap >> 24) & 0xff) + 1));

    let wait_ready = |want: u32| -> Result<()> {
        let start = Instant::now();
        loop {
            let csts = reg(regs.read32(CSTS))?;
            if csts & 2 != 0 {
                return Err("controller fatal status (CSTS.CFS)".into());
            }
            if csts & 1 == want {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(format!("CSTS.RDY did not become {want} within {timeout:?}"));
            }
            thread::sleep(Duration::from_millis(1));
        }
    };

    let cc = reg(regs.read32(CC))?;
    if cc & 1 != 0 {
        wait_ready(1)?;
        reg(regs.write32(CC, cc & !1).map(|()| 0))?;
    }
    wait_ready(0)?;

    let sq = dev.alloc(4096)?;
    let cq = dev.alloc(4096)?;
    let data = dev.alloc(3 * 4096)?;
    let e = |r: hw::Result<()>| r.map_err(|e| e.to_string());
    e(regs.write32(AQA, (15 << 16) | 15))?;
    e(regs.write64(ASQ, sq.bus_addr(0).map_err(|e| e.to_string())?))?;
    e(regs.write64(ACQ, cq.bus_addr(0).map_err(|e| e.to_string())?))?;
    e(regs.write32(CC, (4 << 20) | (6 << 16) | 1))?;
    wait_ready(1)?;

    // Identify Controller (CNS 1) into bytes 6 KiB..10 KiB of `data`: across a page boundary.
    let prp1 = data.bus_addr(4096 + 2048).map_err(|e| e.to_string())?;
    let prp2 = data.bus_addr(2 * 4096).map_err(|e| e.to_string())?;
    let mut sqe = [0u8; 64];
    sqe[0] = 0x06;
    sqe[2..4].copy_from_slice(&7u16.to_le_bytes());
    sqe[24..32].copy_from_slice(&prp1.to_le_bytes());
    sqe[32..40].copy_from_slice(&prp2.to_le_bytes());
    sqe[40..44].copy_from_slice(&1u32.to_le_bytes());
    e(sq.write(0, &sqe))?;
    e(regs.write32(SQ0_TAIL, 1))?;

    let start = Instant::now();
    let dw3 = loop {
        let dw3 = cq.read_u32(12).map_err(|e| e.to_string())?;
        if dw3 & (1 << 16) != 0 {
            break dw3;
        }
        if start.elapsed() > timeout {
            return Err(format!("no completion for Identify within {timeout:?}"));
        }
        std::hint::spin_loop();
    };
    e(regs.write32(CQ0_HEAD, 1))?;
    let status = (dw3 >> 17) & 0x7fff;
    let cid = dw3 & 0xffff;
    if status != 0 || cid != 7 {
        return Err(format!("Identify failed: status {status:#x}, cid {cid}"));
    }
    let mut id = [0u8; 4096];
    e(data.read(4096 + 2048, &mut id))?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_owned();
    let vid = u16::from_le_bytes([id[0], id[1]]);
    println!(
        "hw-probe: IDENTIFY OK vid={vid:#06x} serial={:?} model={:?} firmware={:?}",
        text(&id[4..24]),
        text(&id[24..64]),
        text(&id[64..72])
    );

    e(regs.write32(CC, 0))?;
    wait_ready(0)?;
    if hold > 0 {
        println!("hw-probe: holding {addr} for {hold} s");
        thread::sleep(Duration::from_secs(hold));
    }
    Ok(())
}
