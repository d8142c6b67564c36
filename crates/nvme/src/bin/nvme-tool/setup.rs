//! `setup` and `status`: hand an NVMe controller from the kernel's driver to vfio-pci or
//! uio_pci_generic and back, reserve hugepages for uio, and refuse a controller whose namespaces
//! the kernel is using (mounted, swapped on, held by device-mapper/md, or opened exclusively)
//! unless `--force`.
//!
//! Everything goes through sysfs and procfs under `--root` (default `/`), so tests can run it
//! against a directory tree.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use serde_json::json;

use crate::manage::{Output, OutputFormat};

/// The driver to hand the controller to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Binding {
    /// vfio-pci: DMA confined by the IOMMU (recommended).
    Vfio,
    /// uio_pci_generic: no IOMMU, root only, needs hugepages.
    Uio,
}

impl Binding {
    fn driver(self) -> &'static str {
        match self {
            Binding::Vfio => "vfio-pci",
            Binding::Uio => "uio_pci_generic",
        }
    }
}

/// What `setup` takes.
#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Bind the controller to vfio-pci or uio_pci_generic.
    #[arg(long, value_enum, required_unless_present = "unbind")]
    pub bind: Option<Binding>,
    /// Give the controller back to the kernel's nvme driver.
    #[arg(long, conflicts_with = "bind")]
    pub unbind: bool,
    /// PCI address of the controller, e.g. 0000:00:04.0.
    pub bdf: String,
    /// Take the controller even if the kernel is using its namespaces (data may be lost).
    #[arg(long)]
    pub force: bool,
    /// 2 MiB hugepages to have reserved (default 64 with --bind uio, none otherwise).
    #[arg(long)]
    pub hugepages: Option<u64>,
    /// Where sysfs, procfs and /dev are found (for tests).
    #[arg(long, default_value = "/", hide = true)]
    pub root: PathBuf,
    /// How long the new driver may take to claim the controller.
    #[arg(long, default_value_t = 10_000, hide = true)]
    pub bind_timeout_ms: u64,
}

/// What `status` takes.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub output: Output,
    /// Where sysfs and procfs are found (for tests).
    #[arg(long, default_value = "/", hide = true)]
    pub root: PathBuf,
}

/// PCI class of NVMe controllers (mass storage, non-volatile memory, NVM Express).
const NVME_CLASS: &str = "0x010802";
/// Hugepages `--bind uio` reserves when not told.
const DEFAULT_UIO_HUGEPAGES: u64 = 64;

struct Paths {
    root: PathBuf,
}

impl Paths {
    fn at(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }
    fn device(&self, bdf: &str) -> PathBuf {
        self.at("/sys/bus/pci/devices").join(bdf)
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .with_context(|| format!("reading {}", path.display()))
}

fn write(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value).with_context(|| format!("writing {value:?} to {}", path.display()))
}

/// The driver a PCI function is bound to, if any.
fn driver(dev: &Path) -> Option<String> {
    let link = std::fs::read_link(dev.join("driver")).ok()?;
    Some(link.file_name()?.to_string_lossy().into_owned())
}

fn iommu_group(dev: &Path) -> Option<String> {
    let link = std::fs::read_link(dev.join("iommu_group")).ok()?;
    Some(link.file_name()?.to_string_lossy().into_owned())
}

/// A strict `DDDD:BB:DD.F` address, so a hostile argument cannot name another sysfs path.
fn check_bdf(bdf: &str) -> Result<()> {
    let b = bdf.as_bytes();
    let hex = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_hexdigit);
    let shaped = b.len() == 12
        && b[4] == b':'
        && b[7] == b':'
        && b[10] == b'.'
        && hex(0..4)
        && hex(5..7)
        && hex(8..10)
        && (b'0'..=b'7').contains(&b[11]);
    if !shaped {
        bail!("{bdf:?} is not a PCI address of the form 0000:00:04.0");
    }
    Ok(())
}

/// The block devices of the kernel driver's namespaces of controller `dev` (with partitions).
fn namespaces(paths: &Paths, dev: &Path) -> Vec<String> {
    let Ok(ctrls) = std::fs::read_dir(dev.join("nvme")) else {
        return Vec::new();
    };
    let prefixes: Vec<String> = ctrls
        .flatten()
        .map(|c| format!("{}n", c.file_name().to_string_lossy()))
        .collect();
    let mut found: Vec<String> = std::fs::read_dir(paths.at("/sys/block"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| prefixes.iter().any(|p| name.starts_with(p.as_str())))
        .collect();
    found.sort();
    found
}

/// Why the kernel still needs block device `name` (or one of its partitions), if it does.
fn in_use(paths: &Paths, name: &str) -> Option<String> {
    let block = paths.at("/sys/block").join(name);
    let mut devices = vec![(name.to_string(), block.clone())];
    for e in std::fs::read_dir(&block).into_iter().flatten().flatten() {
        let part = e.file_name().to_string_lossy().into_owned();
        if part.starts_with(name) && e.path().join("partition").exists() {
            devices.push((part, e.path()));
        }
    }
    let mountinfo = std::fs::read_to_string(paths.at("/proc/self/mountinfo")).unwrap_or_default();
    let swaps = std::fs::read_to_string(paths.at("/proc/swaps")).unwrap_or_default();
    for (dev_name, dir) in &devices {
        if let Ok(numbers) = read(&dir.join("dev")) {
            for line in mountinfo.lines() {
                let fields: Vec<&str> = line.split_whitespace().collect();
                if fields.get(2) == Some(&numbers.as_str()) {
                    let at = fields.get(4).unwrap_or(&"?");
                    return Some(format!("{dev_name} is mounted at {at}"));
                }
            }
        }
        let dev_path = format!("/dev/{dev_name}");
        if swaps
            .lines()
            .any(|l| l.split_whitespace().next() == Some(dev_path.as_str()))
        {
            return Some(format!("{dev_name} is in use as swap"));
        }
        let holders: Vec<String> = std::fs::read_dir(dir.join("holders"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        if !holders.is_empty() {
            return Some(format!("{dev_name} is held by {}", holders.join(", ")));
        }
        // An exclusive open fails while the kernel or a program holds the device exclusively
        // (a mount, a filesystem being checked, a RAID member).
        if paths.root == Path::new("/") {
            use std::os::unix::fs::OpenOptionsExt as _;
            const O_EXCL: i32 = 0o200;
            if let Err(e) = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(O_EXCL)
                .open(&dev_path)
                && e.raw_os_error() == Some(16)
            {
                return Some(format!("{dev_name} is open exclusively (busy)"));
            }
        }
    }
    None
}

/// Whether a program holds the controller's vfio group open (the kernel allows one opener, so
/// an open that fails with EBUSY says so; a successful one is closed at once).
fn vfio_in_use(paths: &Paths, dev: &Path) -> Option<String> {
    if paths.root != Path::new("/") {
        return None;
    }
    let group = iommu_group(dev)?;
    let path = format!("/dev/vfio/{group}");
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
    {
        Err(e) if e.raw_os_error() == Some(16) => Some(format!(
            "a program has {path} open (it is driving the controller)"
        )),
        _ => None,
    }
}

fn wait_for_driver(dev: &Path, wanted: Option<&str>, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let now = driver(dev);
        if now.as_deref() == wanted {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{} is bound to {} after {timeout:?}, not {}",
                dev.display(),
                now.as_deref().unwrap_or("no driver"),
                wanted.unwrap_or("no driver")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Makes sure `driver` is registered, loading its module if needed.
fn load_driver(paths: &Paths, driver: &str) -> Result<()> {
    let dir = paths.at("/sys/bus/pci/drivers").join(driver);
    if !dir.exists() && paths.root == Path::new("/") {
        let module = driver.replace('-', "_");
        let _ = std::process::Command::new("modprobe").arg(&module).status();
    }
    if !dir.exists() {
        bail!("the {driver} driver is not available (modprobe {driver} failed or is missing)");
    }
    Ok(())
}

/// Reserves at least `pages` 2 MiB hugepages.
fn reserve_hugepages(paths: &Paths, pages: u64) -> Result<u64> {
    let nr = paths.at("/proc/sys/vm/nr_hugepages");
    let now: u64 = read(&nr)?.parse().unwrap_or(0);
    if now < pages {
        write(&nr, &pages.to_string())?;
    }
    let got: u64 = read(&nr)?.parse().unwrap_or(0);
    if got < pages {
        bail!("asked for {pages} hugepages, the kernel reserved {got} (memory too fragmented?)");
    }
    Ok(got)
}

/// `setup`.
pub fn setup(a: &SetupArgs) -> Result<()> {
    check_bdf(&a.bdf)?;
    let paths = Paths {
        root: a.root.clone(),
    };
    let dev = paths.device(&a.bdf);
    if !dev.exists() {
        bail!("no PCI function {}", a.bdf);
    }
    let class = read(&dev.join("class"))?;
    if class != NVME_CLASS {
        bail!("{} is not an NVMe controller (class {class})", a.bdf);
    }
    let current = driver(&dev);
    let target = match a.bind {
        Some(b) => Some(b.driver()),
        None => Some("nvme"),
    };
    if current.as_deref() == target {
        println!("{} is already bound to {}", a.bdf, target.unwrap_or("-"));
    } else {
        if current.as_deref() == Some("nvme") {
            for ns in namespaces(&paths, &dev) {
                if let Some(why) = in_use(&paths, &ns) {
                    if !a.force {
                        bail!(
                            "refusing to take {} from the kernel: {why} (stop using it, or give \
                             --force to take it anyway and lose what the kernel has not written)",
                            a.bdf
                        );
                    }
                    eprintln!("nvme-tool: --force: taking {} although {why}", a.bdf);
                }
            }
        }
        if current.as_deref() == Some("vfio-pci")
            && let Some(why) = vfio_in_use(&paths, &dev)
        {
            if !a.force {
                bail!(
                    "refusing to take {} from vfio-pci: {why} (stop it first, or give --force)",
                    a.bdf
                );
            }
            eprintln!("nvme-tool: --force: taking {} although {why}", a.bdf);
        }
        if a.bind == Some(Binding::Vfio) && iommu_group(&dev).is_none() {
            bail!(
                "{} has no IOMMU group: vfio-pci needs an IOMMU (or use --bind uio)",
                a.bdf
            );
        }
        let target = target.unwrap_or("nvme");
        load_driver(&paths, target)?;
        if current.is_some() {
            write(&dev.join("driver/unbind"), &a.bdf)?;
        }
        // An empty override lets the kernel pick its own driver (nvme) again.
        let override_to = if a.unbind { "\n" } else { target };
        write(&dev.join("driver_override"), override_to)?;
        write(&paths.at("/sys/bus/pci/drivers_probe"), &a.bdf)?;
        wait_for_driver(&dev, Some(target), Duration::from_millis(a.bind_timeout_ms))?;
        println!("{} bound to {target}", a.bdf);
    }
    let pages = match (a.hugepages, a.bind) {
        (Some(n), _) => n,
        (None, Some(Binding::Uio)) => DEFAULT_UIO_HUGEPAGES,
        (None, _) => 0,
    };
    if pages > 0 {
        let got = reserve_hugepages(&paths, pages)?;
        println!("{got} hugepages of 2 MiB reserved");
    }
    Ok(())
}

/// `status`: every NVMe controller, its driver, IOMMU group and namespaces; the hugepages.
pub fn status(a: &StatusArgs) -> Result<()> {
    let paths = Paths {
        root: a.root.clone(),
    };
    let mut controllers = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(paths.at("/sys/bus/pci/devices"))
        .context("reading the PCI devices in sysfs")?
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let dev = e.path();
        if read(&dev.join("class")).ok().as_deref() != Some(NVME_CLASS) {
            continue;
        }
        let namespaces: Vec<_> = namespaces(&paths, &dev)
            .into_iter()
            .map(|ns| json!({ "name": ns, "in_use": in_use(&paths, &ns) }))
            .collect();
        controllers.push(json!({
            "bdf": e.file_name().to_string_lossy(),
            "driver": driver(&dev),
            "iommu_group": iommu_group(&dev),
            "namespaces": namespaces,
        }));
    }
    let hp = paths.at("/sys/kernel/mm/hugepages/hugepages-2048kB");
    let number = |f: &str| read(&hp.join(f)).ok().and_then(|s| s.parse::<u64>().ok());
    let hugepages = json!({ "total": number("nr_hugepages"), "free": number("free_hugepages") });
    match a.output.format {
        OutputFormat::Json => {
            println!(
                "{:#}",
                json!({ "controllers": controllers, "hugepages_2m": hugepages })
            );
        }
        OutputFormat::Normal => {
            for c in &controllers {
                let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
                println!(
                    "{} driver={} iommu_group={}",
                    text(&c["bdf"]),
                    text(&c["driver"]),
                    text(&c["iommu_group"])
                );
                for ns in c["namespaces"].as_array().into_iter().flatten() {
                    let use_ = ns["in_use"].as_str().unwrap_or("not in use");
                    println!("  {}: {use_}", text(&ns["name"]));
                }
            }
            println!(
                "hugepages (2 MiB): {} reserved, {} free",
                hugepages["total"], hugepages["free"]
            );
        }
    }
    Ok(())
}
