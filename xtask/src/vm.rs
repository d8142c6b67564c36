//! `cargo xtask vm`: boot the guest for a person, with a script or an interactive shell.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::install::{self, Mode};

#[derive(Debug, Args)]
pub struct VmArgs {
    /// Attach an emulated NVMe controller with a fresh sparse namespace of MIB mebibytes.
    #[arg(long, value_name = "MIB", num_args = 0..=1, default_missing_value = "1024")]
    pub nvme: Option<u64>,
    /// Keep the NVMe namespace's image in memory (`/dev/shm`) rather than in a sparse file on disk,
    /// so the host cannot page it out under a measurement (what the benchmarks do).
    #[arg(long, requires = "nvme")]
    pub nvme_in_memory: bool,
    /// Put the devices behind an emulated Intel IOMMU (needed by vfio-pci).
    #[arg(long)]
    pub iommu: bool,
    /// The guest's virtual CPUs (the tests and benchmarks use 2). Under TCG, more than the host has
    /// cores boots the kernel with `tsc=reliable` (its clocks would otherwise skew).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub cpus: u32,
    /// Attach a virtio-serial port NAME whose host end is the unix socket PATH (listening already).
    #[arg(long, value_name = "NAME=PATH")]
    pub virtio_serial: Vec<String>,
    /// Build a workspace binary statically and put it at /bin/BIN in the guest.
    #[arg(long, value_name = "PACKAGE:BIN")]
    pub static_bin: Vec<String>,
    /// Copy a dynamically linked host program (and its libraries) into the guest.
    #[arg(long, value_name = "PATH")]
    pub host_program: Vec<PathBuf>,
    /// Copy a host file into the guest, read-only.
    #[arg(long, value_name = "HOST:GUEST")]
    pub file: Vec<String>,
    /// Run this shell script in the guest (instead of an interactive shell).
    #[arg(long, value_name = "FILE", conflicts_with = "command")]
    pub script: Option<PathBuf>,
    /// Run these shell commands in the guest (instead of an interactive shell).
    #[arg(short = 'c', value_name = "COMMANDS")]
    pub command: Option<String>,
    /// Seconds the guest may go without printing a line once booted before it is killed (it may run
    /// three times as long in all).
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Stream the whole console (kernel messages included), not just the script's output.
    #[arg(long)]
    pub console: bool,
    /// The kernel to boot: Debian's 6.12, or the Rust-enabled 7.2 with our modules in
    /// /lib/modules/test/ (built by `cargo xtask kernel` when missing).
    #[arg(long, value_enum, default_value_t = crate::kernel::Flavor::Debian)]
    pub kernel: crate::kernel::Flavor,
    /// Do not install missing packages or the kernel.
    #[arg(long)]
    pub no_install: bool,
    /// List the Debian packages and the guest kernel this would install, install nothing, and stop.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: VmArgs) -> Result<ExitCode> {
    let rust = args.kernel == crate::kernel::Flavor::Rust;
    if !install::ensure_all(true, rust, Mode::from_flags(args.no_install, args.dry_run))? {
        return Ok(ExitCode::SUCCESS);
    }
    let mut vm = guest::Vm::builder()
        .name("xtask-vm")
        .iommu(args.iommu)
        .smp(args.cpus)
        // For a person: the limits as given, no calibration boot first.
        .slowdown(1.0)
        .stall_limit(Duration::from_secs(args.timeout))
        .timeout(Duration::from_secs(args.timeout));
    if args.kernel == crate::kernel::Flavor::Rust {
        vm = crate::kernel::with_rust_kernel(vm, !args.no_install)?;
    }
    if let Some(mib) = args.nvme {
        if mib == 0 {
            bail!("--nvme needs a size above 0 MiB");
        }
        let bytes = mib << 20;
        vm = vm.nvme(if args.nvme_in_memory {
            guest::Disk::memory(bytes)
        } else {
            guest::Disk::sparse(bytes)
        });
    }
    for spec in &args.virtio_serial {
        let (name, path) = split_pair(spec, '=', "--virtio-serial NAME=PATH")?;
        vm = vm.virtio_serial(name, path);
    }
    for spec in &args.static_bin {
        let (package, bin) = split_pair(spec, ':', "--static-bin PACKAGE:BIN")?;
        vm = vm.static_bin(package, bin);
    }
    for program in &args.host_program {
        vm = vm.host_program(program);
    }
    for spec in &args.file {
        let (host, guest_path) = split_pair(spec, ':', "--file HOST:GUEST")?;
        vm = vm.file(host, guest_path);
    }
    let script = match (&args.script, &args.command) {
        (Some(file), _) => Some(
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the script {}", file.display()))?,
        ),
        (None, Some(commands)) => Some(commands.clone()),
        (None, None) => None,
    };
    let Some(script) = script else {
        eprintln!("xtask: booting an interactive guest; Ctrl-A X quits QEMU, `poweroff -f` too");
        let status = vm.interactive()?;
        return Ok(if status.success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    };
    let out = vm.echo(args.console).run(&script)?;
    if !args.console {
        print!("{}", out.stdout);
    }
    eprintln!(
        "xtask: guest script exited with {} after {:.2} s from QEMU start to exit, {} boot(s) (console log {})",
        out.status,
        out.elapsed.as_secs_f64(),
        out.tries,
        out.log.display()
    );
    Ok(ExitCode::from(u8::try_from(out.status).unwrap_or(1)))
}

/// Splits `left<sep>right` with both sides non-empty.
fn split_pair<'a>(spec: &'a str, sep: char, usage: &str) -> Result<(&'a str, &'a str)> {
    match spec.split_once(sep) {
        Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a, b)),
        _ => bail!("expected {usage}, got {spec:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_split_once_and_need_both_sides() {
        assert_eq!(
            split_pair("p9=/tmp/a=b", '=', "u").unwrap(),
            ("p9", "/tmp/a=b")
        );
        assert!(split_pair("p9", '=', "u").is_err());
        assert!(split_pair("=x", '=', "u").is_err());
    }

    #[test]
    fn an_image_in_memory_needs_a_controller() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            vm: VmArgs,
        }
        let parsed = Cli::try_parse_from(["vm", "--nvme", "64", "--nvme-in-memory"]).unwrap();
        assert!(parsed.vm.nvme_in_memory && parsed.vm.nvme == Some(64));
        assert!(Cli::try_parse_from(["vm", "--nvme-in-memory"]).is_err());
    }

    #[test]
    fn the_guest_has_two_cpus_unless_asked_for_another_count() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            vm: VmArgs,
        }
        assert_eq!(Cli::try_parse_from(["vm"]).unwrap().vm.cpus, 2);
        assert_eq!(
            Cli::try_parse_from(["vm", "--cpus", "4"]).unwrap().vm.cpus,
            4
        );
        assert!(Cli::try_parse_from(["vm", "--cpus", "0"]).is_err());
    }
}
