//! `nvme-tool`: identify, read, write and benchmark an NVMe controller through the userspace
//! driver, on the in-process model or a real PCI function (`vfio:BDF`, `uio:BDF`).

// Unsafe code is denied but for the one call that opens a device without an IOMMU.
#![deny(unsafe_code)]

mod bench;
mod manage;
mod passthru;
mod setup;
mod size;

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use nvme::model::{DmaLayout, Model, ModelConfig, NamespaceConfig};
use nvme::{Controller, Options, Platform};

/// The model keeps its namespace in memory.
const MAX_MODEL_SIZE: u64 = 4 << 30;

/// Set when SIGINT or SIGTERM arrives.
static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Whether the user asked the tool to stop.
fn stop_requested() -> bool {
    STOP.get()
        .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
}

#[derive(Debug, Parser)]
#[command(version, about = "A userspace NVMe driver's command line")]
struct Cli {
    /// The controller: `vfio:BDF` or `uio:BDF` (bound to vfio-pci / uio_pci_generic), or `model`
    /// (an in-process controller in memory, for tests and demos). Required: nothing picks a device
    /// for you, so a command never appears to succeed on nothing.
    #[arg(long, global = true, value_name = "model|vfio:BDF|uio:BDF")]
    device: Option<String>,
    /// Size of the model's namespace (with `--device model`).
    #[arg(long, global = true, default_value = "256M", value_parser = size::parse)]
    model_size: u64,
    /// Wait for I/O completions by polling (the default): lowest latency, a CPU spins meanwhile.
    #[arg(long, global = true, conflicts_with = "interrupts")]
    poll: bool,
    /// Wait for I/O completions on MSI-X interrupts, one vector per queue (vfio and the model;
    /// uio_pci_generic has no MSI-X and refuses).
    #[arg(long, global = true)]
    interrupts: bool,
    /// Write the doorbell registers for every I/O doorbell, even when the controller offers
    /// shadow doorbells (used by default).
    #[arg(long, global = true)]
    no_shadow_doorbells: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show what the controller and its namespaces report.
    Identify {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Read blocks and print them as hex (or write them raw to a file).
    Read {
        #[arg(long, default_value_t = 1)]
        nsid: u32,
        /// First logical block.
        #[arg(long)]
        lba: u64,
        /// Number of blocks.
        #[arg(long, default_value_t = 1)]
        blocks: u64,
        /// Write the raw bytes here instead of printing hex.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write blocks from a file, or filled with one byte value.
    Write {
        #[arg(long, default_value_t = 1)]
        nsid: u32,
        /// First logical block.
        #[arg(long)]
        lba: u64,
        /// The data (its length must be whole blocks).
        #[arg(long, conflicts_with = "pattern")]
        input: Option<PathBuf>,
        /// Fill `--blocks` blocks with this byte (decimal or 0x hex).
        #[arg(long, value_parser = parse_byte)]
        pattern: Option<u8>,
        /// Number of blocks (with `--pattern`).
        #[arg(long, default_value_t = 1)]
        blocks: u64,
        /// Force Unit Access.
        #[arg(long)]
        fua: bool,
    },
    /// Measure IOPS, bandwidth and latency, in the manner of fio.
    Bench(bench::BenchArgs),
    /// The controller's namespaces: serial, model, size, format (nvme-cli's `list`).
    List(manage::Output),
    /// Identify Controller, every field (nvme-cli's `id-ctrl`).
    IdCtrl(manage::Output),
    /// Identify Namespace, every field and LBA format (nvme-cli's `id-ns`).
    IdNs {
        #[arg(short = 'n', long = "namespace-id", default_value_t = 1)]
        namespace_id: u32,
        #[command(flatten)]
        output: manage::Output,
    },
    /// The active namespace IDs.
    ListNs(manage::Output),
    /// SMART / Health Information log.
    SmartLog {
        #[arg(short = 'n', long = "namespace-id", default_value_t = nvme::ALL_NAMESPACES, value_parser = manage::parse_u32)]
        namespace_id: u32,
        #[command(flatten)]
        output: manage::Output,
    },
    /// Error Information log (at most the entries the controller keeps).
    ErrorLog {
        #[arg(short = 'e', long = "log-entries", default_value_t = 64)]
        log_entries: u32,
        #[command(flatten)]
        output: manage::Output,
    },
    /// Firmware Slot Information log.
    FwLog(manage::Output),
    /// Read a feature's value.
    GetFeature(manage::GetFeatureArgs),
    /// Change a feature's value.
    SetFeature(manage::SetFeatureArgs),
    /// Any log page, as raw bytes.
    GetLog(manage::GetLogArgs),
    /// Flush the volatile write cache of a namespace.
    Flush {
        #[arg(short = 'n', long = "namespace-id", default_value_t = 1)]
        namespace_id: u32,
    },
    /// Write Zeroes: `--block-count` is 0-based, as in nvme-cli.
    WriteZeroes {
        #[arg(short = 'n', long = "namespace-id", default_value_t = 1)]
        namespace_id: u32,
        #[arg(short = 's', long = "start-block")]
        start_block: u64,
        #[arg(short = 'c', long = "block-count", default_value_t = 0)]
        block_count: u16,
    },
    /// Dataset Management: deallocate (`--ad`) ranges.
    Dsm {
        #[arg(short = 'n', long = "namespace-id", default_value_t = 1)]
        namespace_id: u32,
        /// First block of each range (comma-separated).
        #[arg(short = 's', long = "slbs", value_delimiter = ',', required = true)]
        slbs: Vec<u64>,
        /// Blocks in each range (comma-separated).
        #[arg(short = 'b', long = "blocks", value_delimiter = ',', required = true)]
        blocks: Vec<u64>,
        /// Deallocate (the only attribute supported).
        #[arg(short = 'd', long = "ad", required = true)]
        ad: bool,
    },
    /// Reset the controller (disable, re-enable, recreate the queues).
    Reset,
    /// A raw admin command (not the queue, abort, event or format commands the driver owns).
    AdminPassthru(passthru::PassthruArgs),
    /// A raw I/O command on a queue pair of its own (nvme-cli's io-passthru).
    IoPassthru(passthru::PassthruArgs),
    /// Format NVM: erase a namespace and give it another LBA format (asks first unless --force).
    Format(manage::FormatArgs),
    /// Bind a controller to vfio-pci or uio_pci_generic (or back to nvme); needs no --device.
    Setup(setup::SetupArgs),
    /// Which driver holds each NVMe controller, IOMMU groups, hugepages; needs no --device.
    Status(setup::StatusArgs),
}

/// A byte value: `65` or `0x41`.
fn parse_byte(text: &str) -> Result<u8, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u8::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| format!("{text:?} is not a byte value (0-255 or 0x00-0xff)"))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The driver logs what it must leak (memory a device it cannot stop may still write).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .with_max_level(tracing::Level::WARN)
        .init();
    // SIGINT/SIGTERM end a benchmark early instead of killing the process, so the controller is
    // still shut down and its DMA memory released in order.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(&stop)) {
            eprintln!("nvme-tool: cannot watch signal {signal}: {e}");
        }
    }
    STOP.set(stop).ok();
    match dispatch(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("nvme-tool: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn options(cli: &Cli) -> Options {
    let queues = match &cli.command {
        Command::Bench(b) => b.queues.max(1),
        _ => 1,
    };
    let depth = match &cli.command {
        Command::Bench(b) => b.iodepth.clamp(1, 4095) as u16,
        _ => 64,
    };
    Options {
        io_queues: queues as u16,
        queue_depth: depth.max(64),
        interrupts: cli.interrupts,
        shadow_doorbells: !cli.no_shadow_doorbells,
        ..Options::default()
    }
}

/// The `--device` a command needs.
fn device(cli: &Cli) -> Result<&str> {
    cli.device.as_deref().context(
        "this command needs --device vfio:BDF, uio:BDF or model (the in-process model, in memory)",
    )
}

fn dispatch(cli: &Cli) -> Result<std::process::ExitCode> {
    match &cli.command {
        Command::Setup(args) => {
            return setup::setup(args).map(|()| std::process::ExitCode::SUCCESS);
        }
        Command::Status(args) => {
            return setup::status(args).map(|()| std::process::ExitCode::SUCCESS);
        }
        _ => {}
    }
    let options = options(cli);
    let device = device(cli)?;
    if device == "model" {
        if !(4096..=MAX_MODEL_SIZE).contains(&cli.model_size) || !cli.model_size.is_multiple_of(512)
        {
            bail!(
                "--model-size must be a multiple of 512 bytes from 4 KiB to 4 GiB (it lives in memory)"
            );
        }
        let model = Model::new(ModelConfig {
            namespaces: vec![NamespaceConfig {
                blocks: cli.model_size / 512,
                lba_shift: 9,
            }],
            max_io_queues: 64,
            dma_layout: DmaLayout::Contiguous,
            ..ModelConfig::default()
        });
        return run(Controller::new(model, options)?, cli);
    }
    open_hw(device, cli, options)
}

#[cfg(feature = "hw")]
fn open_hw(device: &str, cli: &Cli, options: Options) -> Result<std::process::ExitCode> {
    use nvme::hw_platform::{HwPlatform, parse_spec};
    let opening = || format!("opening {device}");
    let platform = match parse_spec(device).with_context(opening)? {
        ("uio", addr) => {
            // SAFETY: the device handle goes straight to the controller, which gives the device
            // only bus addresses of buffers it holds, and frees none of them while the device
            // may still use them (it stops the device's DMA first, or leaks them).
            #[allow(unsafe_code)]
            let device = unsafe { hw::UioDevice::open(&hw::Sysfs::default(), addr) };
            HwPlatform::from_uio(device.with_context(opening)?)
        }
        (_, addr) => HwPlatform::open_vfio(addr).with_context(opening)?,
    };
    run(Controller::new(platform, options)?, cli)
}

#[cfg(not(feature = "hw"))]
fn open_hw(device: &str, _cli: &Cli, _options: Options) -> Result<std::process::ExitCode> {
    bail!("device {device:?}: built without the `hw` feature, only `model` is available")
}

fn run<P: Platform>(ctrl: Controller<P>, cli: &Cli) -> Result<std::process::ExitCode> {
    match &cli.command {
        Command::Identify { json } => identify(&ctrl, *json)?,
        Command::Read {
            nsid,
            lba,
            blocks,
            out,
        } => read(&ctrl, *nsid, *lba, *blocks, out.as_ref())?,
        Command::Write {
            nsid,
            lba,
            input,
            pattern,
            blocks,
            fua,
        } => {
            let data = match (input, pattern) {
                (Some(path), _) => {
                    std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
                }
                (None, Some(byte)) => {
                    let ns = namespace(&ctrl, *nsid)?;
                    let len = blocks
                        .checked_mul(ns.block_size() as u64)
                        .filter(|&l| l <= 1 << 30)
                        .context("--blocks too large")?;
                    vec![*byte; len as usize]
                }
                (None, None) => bail!("give --input FILE or --pattern BYTE"),
            };
            let mut qp = ctrl.queue_pair()?;
            qp.write(*nsid, *lba, &data, *fua)?;
            println!("wrote {} bytes at block {lba}", data.len());
        }
        Command::Bench(args) => return bench::run(&ctrl, args),
        Command::List(output) => manage::list(&ctrl, device(cli)?, output)?,
        Command::IdCtrl(output) => manage::id_ctrl(&ctrl, output)?,
        Command::IdNs {
            namespace_id,
            output,
        } => manage::id_ns(&ctrl, *namespace_id, output)?,
        Command::ListNs(output) => manage::list_ns(&ctrl, output)?,
        Command::SmartLog {
            namespace_id,
            output,
        } => manage::smart_log(&ctrl, *namespace_id, output)?,
        Command::ErrorLog {
            log_entries,
            output,
        } => manage::error_log(&ctrl, *log_entries, output)?,
        Command::FwLog(output) => manage::fw_log(&ctrl, device(cli)?, output)?,
        Command::GetFeature(args) => manage::get_feature(&ctrl, args)?,
        Command::SetFeature(args) => manage::set_feature(&ctrl, args)?,
        Command::GetLog(args) => manage::get_log(&ctrl, device(cli)?, args)?,
        Command::Flush { namespace_id } => manage::flush(&ctrl, *namespace_id)?,
        Command::WriteZeroes {
            namespace_id,
            start_block,
            block_count,
        } => manage::write_zeroes(&ctrl, *namespace_id, *start_block, *block_count)?,
        Command::Dsm {
            namespace_id,
            slbs,
            blocks,
            ad: _,
        } => manage::deallocate(&ctrl, *namespace_id, slbs, blocks)?,
        Command::Reset => {
            ctrl.reset()?;
            println!("controller reset");
        }
        Command::AdminPassthru(args) => passthru::admin_passthru(&ctrl, args)?,
        Command::IoPassthru(args) => passthru::io_passthru(&ctrl, args)?,
        Command::Format(args) => manage::format(ctrl, args)?,
        Command::Setup(_) | Command::Status(_) => bail!("setup and status open no controller"),
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn namespace<P: Platform>(ctrl: &Controller<P>, nsid: u32) -> Result<nvme::Namespace> {
    ctrl.namespaces()
        .iter()
        .find(|ns| ns.id == nsid)
        .copied()
        .with_context(|| format!("no usable namespace {nsid}"))
}

fn identify<P: Platform>(ctrl: &Controller<P>, json: bool) -> Result<()> {
    let info = ctrl.info();
    let cap = ctrl.cap();
    if json {
        let namespaces: Vec<_> = ctrl
            .namespaces()
            .iter()
            .map(|ns| {
                serde_json::json!({
                    "nsid": ns.id, "blocks": ns.blocks, "block_size": ns.block_size(),
                    "bytes": ns.capacity(),
                })
            })
            .collect();
        let doc = serde_json::json!({
            "vendor_id": info.vendor_id, "serial": info.serial, "model": info.model,
            "firmware": info.firmware, "mdts": info.mdts, "max_transfer": ctrl.max_transfer(),
            "max_queue_entries": cap.max_queue_entries(), "doorbell_stride": cap.doorbell_stride(),
            "timeout_ms": cap.timeout_ms(), "io_queues_granted": ctrl.queues_granted(),
            "volatile_write_cache": info.volatile_write_cache, "namespaces": namespaces,
        });
        println!("{doc:#}");
        return Ok(());
    }
    println!("model:        {}", info.model);
    println!("serial:       {}", info.serial);
    println!("firmware:     {}", info.firmware);
    println!("vendor id:    {:#06x}", info.vendor_id);
    println!(
        "max transfer: {} KiB (MDTS {})",
        ctrl.max_transfer() / 1024,
        info.mdts
    );
    println!(
        "queues:       {} I/O queue pairs granted, up to {} entries each",
        ctrl.queues_granted(),
        cap.max_queue_entries()
    );
    println!("write cache:  {}", info.volatile_write_cache);
    for ns in ctrl.namespaces() {
        println!(
            "namespace {}: {} blocks of {} bytes ({} MiB)",
            ns.id,
            ns.blocks,
            ns.block_size(),
            ns.capacity() >> 20
        );
    }
    Ok(())
}

fn read<P: Platform>(
    ctrl: &Controller<P>,
    nsid: u32,
    lba: u64,
    blocks: u64,
    out: Option<&PathBuf>,
) -> Result<()> {
    let ns = namespace(ctrl, nsid)?;
    let len = blocks
        .checked_mul(ns.block_size() as u64)
        .filter(|&l| l <= 1 << 30)
        .context("--blocks too large")?;
    let mut data = vec![0; len as usize];
    ctrl.queue_pair()?.read(nsid, lba, &mut data)?;
    if let Some(path) = out {
        std::fs::write(path, &data).with_context(|| format!("writing {}", path.display()))?;
        return Ok(());
    }
    hexdump(&data)
}

/// Prints `data` as offset, hex and ASCII columns.
fn hexdump(data: &[u8]) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    for (i, line) in data.chunks(16).enumerate() {
        let hex: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
        let text: String = line
            .iter()
            .map(|&b| if b.is_ascii_graphic() { b as char } else { '.' })
            .collect();
        writeln!(stdout, "{:08x}  {:<47}  {text}", i * 16, hex.join(" "))?;
    }
    Ok(())
}
