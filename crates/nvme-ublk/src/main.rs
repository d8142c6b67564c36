//! `nvme-ublk`: serves one namespace of an NVMe controller, driven from userspace by the `nvme`
//! crate, as a Linux ublk block device (`/dev/ublkbN`), so that filesystems, fio and every other
//! program can use it through the kernel's block layer.
//!
//! One ublk queue per driver queue pair, each served by its own thread (see [`queue`]); the
//! device's geometry comes from Identify (see [`geometry`]). SIGTERM or SIGINT stop the device:
//! the kernel drains what is in flight, the queues end, the ublk device is deleted and the
//! controller is shut down by the driver's `Drop`.
//!
//! A daemon that dies instead leaves the device to the kernel: by default it fails the I/O and
//! stops the device; with `--recoverable` the I/O waits for a new daemon to take the device over
//! (see [`recovery`]).

// Unsafe code is denied but for the one call that opens a device without an IOMMU (uio).
#![deny(unsafe_code)]

mod affinity;
mod geometry;
mod nap;
mod queue;
mod recovery;
mod supervisor;

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use libublk::UblkFlags;
use libublk::ctrl::{UblkCtrl, UblkCtrlBuilder};
use nvme::hw_platform::{HwPlatform, parse_spec};
use nvme::{Controller, Options, QueuePair};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::affinity::QueueThreads;
use crate::geometry::Geometry;
use crate::queue::QueueParts;
use crate::recovery::{Identity, Orphan};
use crate::supervisor::{Failure, Supervisor};

/// Serve an NVMe namespace as /dev/ublkbN through the userspace driver.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// The controller: `vfio:BDF` (bound to vfio-pci behind an IOMMU) or `uio:BDF` (bound to
    /// uio_pci_generic, no IOMMU: root, hugepages reserved, polling only).
    #[arg(
        long,
        value_name = "vfio:BDF|uio:BDF",
        required_unless_present = "delete"
    )]
    device: Option<String>,
    /// The namespace to serve (default: the first active one).
    #[arg(long)]
    nsid: Option<u32>,
    /// ublk queues, each with its own driver queue pair and thread (at most what the controller
    /// grants; default: as many as it grants and this process may run CPUs).
    #[arg(long)]
    queues: Option<u16>,
    /// Requests in flight per queue (at most what a driver queue pair holds).
    #[arg(long, default_value_t = 64)]
    depth: u16,
    /// Wait for completions by polling the completion queues (the default): the lowest
    /// latency, but a queue thread spins on a CPU while commands are in flight.
    #[arg(long, conflicts_with = "interrupts")]
    poll: bool,
    /// Wait for completions on MSI-X interrupts (one vector per queue, through vfio eventfds):
    /// no CPU spent waiting. Not available through uio.
    #[arg(long)]
    interrupts: bool,
    /// Write the doorbell registers for every I/O doorbell, even when the controller offers
    /// shadow doorbells (Doorbell Buffer Config), which are used by default.
    #[arg(long)]
    no_shadow_doorbells: bool,
    /// When polling: how long a queue thread keeps polling for the next request once nothing is
    /// in flight, before it sleeps (0: sleep at once). Saves a wake-up per request at low queue
    /// depth, for that much CPU time after each burst.
    #[arg(long, default_value_t = 200, value_name = "MICROSECONDS")]
    poll_linger_us: u64,
    /// When polling: a queue thread that finds nothing to do sleeps instead of spinning while the
    /// commands in flight are expected to take at least this long (from the recent time per
    /// completion), for a quarter of that time or until a request arrives (0: always spin). Frees
    /// the CPU for a slow or emulated controller; a fast device stays under the threshold.
    #[arg(long, default_value_t = 200, value_name = "MICROSECONDS")]
    poll_nap_us: u64,
    /// The ublk device id, N of /dev/ublkbN (default: the first free one). A device of that id
    /// left by a daemon that died is removed first (or taken over, see --recoverable).
    #[arg(long, value_name = "ID")]
    id: Option<u32>,
    /// Add a device that outlives this daemon: if the daemon dies, the device's I/O waits, instead
    /// of failing, until `--recover ID` takes the device over (or `--delete ID` gives it up). With
    /// `--id`, a device of that id left by a dead daemon is taken over instead of added, so a
    /// service manager restarts the daemon with the same command line (the device keeps its
    /// queue count and depth). Without it, the kernel fails a dead daemon's I/O and removes its
    /// device.
    #[arg(long)]
    recoverable: bool,
    /// Take over ublk device ID, added with --recoverable, whose daemon died: the same
    /// /dev/ublkbID resumes, served from this controller, which must be the one the device served
    /// (with the device's queue count and depth).
    #[arg(long, value_name = "ID", conflicts_with_all = ["queues", "depth", "recoverable", "id"])]
    recover: Option<u32>,
    /// Delete ublk device ID, whose I/O then fails: for a --recoverable device that will not be
    /// recovered. Does not wait for a file system mounted from its disk to be unmounted.
    #[arg(long, value_name = "ID", exclusive = true)]
    delete: Option<u32>,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .with_max_level(tracing::Level::INFO)
        .init();
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("nvme-ublk: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Opens `vfio:BDF` or `uio:BDF`.
fn open(spec: &str) -> Result<HwPlatform> {
    let opening = || format!("opening {spec}");
    Ok(match parse_spec(spec).context("--device")? {
        ("uio", addr) => {
            // SAFETY: the device handle goes straight to the controller, which gives the device
            // only bus addresses of buffers it holds, and frees none of them while the device
            // may still use them (it stops the device's DMA first, or leaks them).
            #[allow(unsafe_code)]
            let device = unsafe { hw::UioDevice::open(&hw::Sysfs::default(), addr) };
            tracing::info!("{spec}: uio_pci_generic has no MSI-X: the queues are polling");
            HwPlatform::from_uio(device.with_context(opening)?)
        }
        (_, addr) => HwPlatform::open_vfio(addr).with_context(opening)?,
    })
}

/// The CPUs this process may run on (its affinity and cgroup quota), for the default queue count.
fn usable_cpus() -> u16 {
    std::thread::available_parallelism().map_or(1, |n| u16::try_from(n.get()).unwrap_or(u16::MAX))
}

/// The queue count and depth: those of the device to recover, or those asked for (the queue count by
/// default one per usable CPU), within the `granted` I/O queues.
fn shape(cli: &Cli, orphan: Option<&Orphan>, granted: u16) -> Result<(u16, u16)> {
    let (queues, depth) = match orphan {
        Some(orphan) => {
            let (queues, depth) = orphan.shape();
            ensure!(
                queues <= granted,
                "the device to recover has {queues} queues, the controller grants {granted}"
            );
            (queues, depth)
        }
        None => match cli.queues {
            Some(asked) if asked > granted => {
                bail!("--queues {asked}: the controller grants {granted} I/O queues")
            }
            Some(asked) => (asked, cli.depth),
            None => (granted.min(usable_cpus()), cli.depth),
        },
    };
    ensure!(queues > 0, "the controller grants no I/O queue");
    Ok((queues, depth))
}

/// Adds the ublk device, as `--id`, `--recoverable` and the geometry say.
fn add(cli: &Cli, queues: u16, geometry: &Geometry) -> Result<UblkCtrl> {
    UblkCtrlBuilder::default()
        .name("nvme-ublk")
        .id(cli.id.map_or(Ok(-1), i32::try_from).context("--id")?)
        .nr_queues(queues)
        .depth(geometry.depth)
        .io_buf_bytes(geometry.max_io_bytes)
        .ctrl_flags(if cli.recoverable { recovery::FLAGS } else { 0 })
        .dev_flags(UblkFlags::UBLK_DEV_F_ADD_DEV)
        .build()
        .context("adding the ublk device (is the ublk_drv module loaded?)")
}

fn run(cli: Cli) -> Result<()> {
    if let Some(id) = cli.delete {
        return recovery::delete(id);
    }
    let Some(device) = cli.device.as_deref() else {
        bail!("--device is needed");
    };
    if cli.queues == Some(0) || cli.depth == 0 {
        bail!("--queues and --depth must be at least 1");
    }
    if cli.interrupts && device.starts_with("uio:") {
        bail!("--interrupts needs vfio: uio_pci_generic has no MSI-X (a uio device is polled)");
    }
    // Before the controller is touched: the device must be one that can be recovered.
    let orphan = match (cli.recover, cli.id) {
        (Some(id), _) => Some(Orphan::find(id)?),
        (None, Some(id)) => recovery::claim(id, cli.recoverable)?,
        (None, None) => None,
    };
    let platform = open(device)?;
    // Installed before any thread starts, so a signal that arrives during bring-up is not lost.
    let mut signals = Signals::new([SIGTERM, SIGINT]).context("installing signal handlers")?;

    let options = Options {
        interrupts: cli.interrupts,
        shadow_doorbells: !cli.no_shadow_doorbells,
        ..Options::default()
    };
    let controller = Controller::new(platform, options).context("controller bring-up")?;
    let ns = match cli.nsid {
        Some(id) => controller
            .namespaces()
            .iter()
            .find(|ns| ns.id == id)
            .copied(),
        None => controller.namespaces().first().copied(),
    }
    .with_context(|| match cli.nsid {
        Some(id) => format!("namespace {id} is not active"),
        None => "the controller has no active namespace".to_string(),
    })?;
    let (queues, depth) = shape(&cli, orphan.as_ref(), controller.queues_granted())?;
    let pairs = (0..queues)
        .map(|_| controller.queue_pair())
        .collect::<nvme::Result<Vec<QueuePair<HwPlatform>>>>()
        .context("creating I/O queue pairs")?;
    let geometry = Geometry::new(&ns, controller.info(), &pairs[0], depth)?;
    let identity = Identity::new(controller.info(), geometry);
    tracing::info!(
        ?geometry,
        "serving namespace {} on {queues} queue(s) ({}, {})",
        ns.id,
        if controller.interrupts() {
            "interrupts"
        } else {
            "polling"
        },
        if controller.shadow_doorbells() {
            "shadow doorbells"
        } else {
            "doorbell registers"
        }
    );

    let recovering = orphan.is_some();
    let ctrl = match orphan {
        Some(orphan) => orphan.open(&identity)?,
        None => add(&cli, queues, &geometry)?,
    };
    // Every queue's memory before the device starts (an error here deletes the device with `ctrl`).
    let info = ctrl.dev_info();
    let parts = pairs
        .into_iter()
        .enumerate()
        .map(|(qid, qp)| {
            QueueParts::new(
                qp,
                usize::from(info.queue_depth),
                info.max_io_buf_bytes as usize,
            )
            .with_context(|| format!("queue {qid}"))
        })
        .collect::<Result<Vec<_>>>()?;

    let parts: Arc<Mutex<Vec<Option<QueueParts>>>> =
        Arc::new(Mutex::new(parts.into_iter().map(Some).collect()));
    let take_parts = move |qid: u16| {
        parts
            .lock()
            .ok()
            .and_then(|mut p| p.get_mut(qid as usize)?.take())
    };
    // The polling knobs (at most a second); a queue on interrupts neither lingers nor naps.
    let when_polling = |us: u64| {
        if cli.interrupts {
            std::time::Duration::ZERO
        } else {
            std::time::Duration::from_micros(us.min(1_000_000))
        }
    };
    let linger = when_polling(cli.poll_linger_us);
    let nap = when_polling(cli.poll_nap_us);
    let queue_threads = Arc::new(QueueThreads::new()?);
    let registry = Arc::clone(&queue_threads);
    // A device being recovered is not deleted if this daemon fails too: it waits for another.
    let supervisor = Arc::new(Supervisor::new(info.dev_id, !recovering, signals.handle())?);
    if recovering {
        recovery::start(&ctrl)?;
    }
    let on_failure = Arc::clone(&supervisor);
    let serve = move |qid: u16, dev: &libublk::io::UblkDev| {
        let served = match take_parts(qid) {
            Some(parts) => {
                registry.register();
                queue::serve(qid, dev, parts, geometry, linger, nap::Pacer::new(nap))
            }
            None => Err(Failure::Setup(anyhow::anyhow!("no driver queue pair"))),
        };
        if let Err(failure) = served {
            on_failure.queue_failed(qid, failure);
        }
    };
    let run = ctrl.run_target(
        |dev| {
            geometry.apply(dev);
            dev.set_target_json(identity.to_json());
            Ok(())
        },
        serve,
        move |ctrl| {
            // Every queue thread has registered: the device starts only once each fetched.
            queue_threads.restore();
            println!("{}", ctrl.get_bdev_path());
            match signals.forever().next() {
                Some(signal) => tracing::info!("signal {signal}: stopping the device"),
                None => tracing::info!("a queue failed: stopping the device"),
            }
            if let Err(err) = ctrl.kill_dev() {
                tracing::error!("stopping the ublk device: {err}");
            }
        },
    );
    if let Err(err) = run {
        let err = anyhow::Error::from(err);
        supervisor.abandon(format!("running the ublk device: {err:#}"));
    }
    if recovering {
        // libublk deletes only the devices it added itself.
        if let Err(err) = ctrl.del_dev() {
            tracing::error!("deleting the ublk device: {err}");
        }
    }
    drop(ctrl);
    drop(controller);
    match supervisor.failure() {
        Some(reason) => bail!("{reason}"),
        None => Ok(()),
    }
}
