//! `cargo xtask bench <what>`: benchmarks against a peer in the same run, printing ratios.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, ValueEnum};
use guest::HostLoad;

mod ceiling;
mod kernel;
mod kernel_nvme;
mod kernel_nvme_functions;
mod kernel_nvme_instructions;
mod ninep;
mod nvme;
mod pinit;
mod ublk_null;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to benchmark.
    pub what: Bench,
    /// Extra arguments passed to the benchmark.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub rest: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Bench {
    /// pinit against pinned-init and Box::new / Box::new_zeroed.
    Pinit,
    /// ninepd against diod.
    #[value(name = "9p")]
    NineP,
    /// the userspace NVMe driver against the kernel's nvme driver.
    Nvme,
    /// the kernel's Rust null block driver (rnull) against its C twin (null_blk), in the Rust guest kernel.
    Kernel,
}

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    // The guest benchmarks install what they need (QEMU, fio, the guest kernels), as `xtask test`
    // and `xtask vm` do; the kernel benchmarks build the Rust kernel when it is missing.
    let needs_rust_kernel = matches!(args.what, Bench::Kernel);
    if !matches!(args.what, Bench::Pinit) {
        crate::install::ensure_all(true, needs_rust_kernel, crate::install::Mode::Install)?;
    }
    match args.what {
        Bench::Pinit => pinit::run(&args.rest),
        Bench::NineP => ninep::run(&args.rest),
        Bench::Nvme => nvme::run(&args.rest),
        Bench::Kernel => kernel::run(&args.rest),
    }
}

/// A guest shell line that writes the whole of block device `device` once, sequentially in 1 MiB
/// blocks, before anything is measured. The emulated controller's namespace is a sparse file on the
/// host: a hole reads faster than a written block, and writing one costs the host an allocation. Without
/// this, the first runs would see a different disk from the later ones, and whichever driver ran first
/// in a round would get the holes. fio prints no progress line (on the guest's console it would end
/// without a newline, in front of the next result line).
fn fill_once(device: &str) -> String {
    format!(
        "fio --name=fill --filename={device} --direct=1 --ioengine=io_uring --rw=write --bs=1M \
         --iodepth=8 --eta=never --output=/dev/null || {{ echo 'filling {device} failed'; exit 1; }}\n"
    )
}

/// A measured run's label in the host's CPU stamps (`guest::stamped`): its round, engine (or
/// driver) and workload, as its result line names them.
fn run_label(round: u32, engine: &str, workload: impl std::fmt::Display) -> String {
    format!("{round} {engine} {workload}")
}

/// The host's load over one run, from `guest::loads_by_label`.
fn run_load<'a>(
    loads: &'a [(String, HostLoad)],
    round: u32,
    engine: &str,
    workload: impl std::fmt::Display,
) -> Option<&'a HostLoad> {
    let label = run_label(round, engine, workload);
    loads
        .iter()
        .find(|(l, _)| *l == label)
        .map(|(_, load)| load)
}
