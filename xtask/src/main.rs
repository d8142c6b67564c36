//! `cargo xtask`: the project's developer commands.
//!
//! * `cargo xtask test` installs what the suite needs (Debian packages, the guest kernel) and runs every
//!   suite, printing one summary line per suite and a total.
//! * `cargo xtask vm` boots the QEMU guest for a person, optionally with devices attached.
//! * `cargo xtask bench <what>` runs a benchmark against its peer and prints the ratios.
//! * `cargo xtask kernel` builds (or reuses) the Rust-enabled guest kernel and our Rust kernel modules.

#![forbid(unsafe_code)]

mod bench;
mod cmd;
mod failures;
mod install;
mod kernel;
mod load;
mod suites;
mod test;
mod vm;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "Kangrejos developer commands")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install what is missing, then run every test suite (or the named ones).
    Test(test::TestArgs),
    /// Boot the QEMU guest and run a script in it (or an interactive shell).
    Vm(vm::VmArgs),
    /// Run a benchmark against its peer in the same run.
    Bench(bench::BenchArgs),
    /// Build (or reuse) the Rust-enabled guest kernel and the Rust kernel modules (cached).
    Kernel(kernel::KernelArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Test(args) => test::run(args),
        Command::Vm(args) => vm::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Kernel(args) => kernel::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
