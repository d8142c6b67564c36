//! `admin-passthru` and `io-passthru`: one raw command, with nvme-cli's options and output (the
//! result line on standard error, the data read as nvme-cli's hex dump or raw on standard output).

use anyhow::{Context, Result};
use clap::Args;
use nvme::{Controller, Platform};

use crate::manage::{parse_u8, parse_u32};

/// What `admin-passthru` and `io-passthru` take: nvme-cli's options and letters (`-o` is the
/// opcode, as in nvme-cli 2; `-O` is accepted too).
#[derive(Debug, Args)]
pub struct PassthruArgs {
    /// Opcode.
    #[arg(short = 'o', short_alias = 'O', long = "opcode", value_parser = parse_u8)]
    pub opcode: u8,
    #[command(flatten)]
    pub command: PassthruCommand,
    #[command(flatten)]
    pub show: ShowOptions,
}

/// The options `admin-passthru` and `io-passthru` share, with nvme-cli's letters: the
/// command's namespace, dwords and data.
#[derive(Debug, Args)]
pub struct PassthruCommand {
    /// Namespace ID.
    #[arg(short = 'n', long = "namespace-id", default_value = "0", value_parser = parse_u32)]
    pub namespace_id: u32,
    /// Data length in bytes (admin commands: up to 4096; I/O commands: up to the controller's
    /// transfer limit).
    #[arg(short = 'l', long = "data-len", default_value_t = 0)]
    pub data_len: usize,
    #[arg(short = '4', long = "cdw10", default_value = "0", value_parser = parse_u32)]
    pub cdw10: u32,
    #[arg(short = '5', long = "cdw11", default_value = "0", value_parser = parse_u32)]
    pub cdw11: u32,
    #[arg(short = '6', long = "cdw12", default_value = "0", value_parser = parse_u32)]
    pub cdw12: u32,
    #[arg(short = '7', long = "cdw13", default_value = "0", value_parser = parse_u32)]
    pub cdw13: u32,
    #[arg(short = '8', long = "cdw14", default_value = "0", value_parser = parse_u32)]
    pub cdw14: u32,
    #[arg(short = '9', long = "cdw15", default_value = "0", value_parser = parse_u32)]
    pub cdw15: u32,
    /// The data goes to the controller, from --input-file.
    #[arg(
        short = 'w',
        long = "write",
        requires = "input_file",
        conflicts_with = "read"
    )]
    pub write: bool,
    /// The data comes from the controller (the default when --data-len is given).
    #[arg(short = 'r', long = "read")]
    pub read: bool,
    /// Data to send with --write; with --read, where the data read goes instead
    /// (written from its start, the file created if missing and not truncated, as nvme-cli does).
    #[arg(short = 'i', long = "input-file")]
    pub input_file: Option<std::path::PathBuf>,
    /// Write the data read to standard output raw instead of as hex.
    #[arg(short = 'b', long = "raw-binary")]
    pub raw_binary: bool,
}

impl PassthruCommand {
    /// Command dwords 10 to 15.
    pub fn cdw(&self) -> [u32; 6] {
        [
            self.cdw10, self.cdw11, self.cdw12, self.cdw13, self.cdw14, self.cdw15,
        ]
    }
}

/// What to print besides the result (nvme-cli's letters).
#[derive(Debug, Args)]
pub struct ShowOptions {
    /// Print the command before sending it.
    #[arg(short = 's', long = "show-command")]
    pub show_command: bool,
    /// Print the command and do not send it.
    #[arg(short = 'd', long = "dry-run")]
    pub dry_run: bool,
    /// Print how long the command took.
    #[arg(short = 'T', long = "latency")]
    pub latency: bool,
}

/// The command as nvme-cli's `--show-command` prints it. The fields this tool never sets are zero,
/// and `addr` is 0: the data's bus address exists only once the driver maps it.
fn show_command(
    opcode: u8,
    a: &PassthruCommand,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    writeln!(out, "opcode       : {opcode:02x}")?;
    writeln!(out, "flags        : 00")?;
    writeln!(out, "rsvd1        : 0000")?;
    writeln!(out, "nsid         : {:08x}", a.namespace_id)?;
    writeln!(out, "cdw2         : 00000000")?;
    writeln!(out, "cdw3         : 00000000")?;
    writeln!(out, "data_len     : {:08x}", a.data_len)?;
    writeln!(out, "metadata_len : 00000000")?;
    writeln!(out, "addr         : 0")?;
    writeln!(out, "metadata     : 0")?;
    for (i, value) in a.cdw().iter().enumerate() {
        writeln!(out, "cdw{}        : {value:08x}", 10 + i)?;
    }
    writeln!(out, "timeout_ms   : 00000000")
}

/// nvme-cli's hex dump: a header of column numbers, then 16 bytes a line after a `%04x:` offset,
/// each line ending with its bytes as text in quotes (`!` to `~` as themselves, the rest as `.`).
fn nvme_cli_dump(data: &[u8], out: &mut impl std::io::Write) -> std::io::Result<()> {
    write!(out, "     ")?;
    for column in 0..16 {
        write!(out, "{column:3x}")?;
    }
    for (line, chunk) in data.chunks(16).enumerate() {
        write!(out, "\n{:04x}:", line * 16)?;
        for byte in chunk {
            write!(out, " {byte:02x}")?;
        }
        let text: String = chunk
            .iter()
            .map(|&b| {
                if (b'!'..=b'~').contains(&b) {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        // A short last line keeps its text in the same column.
        write!(
            out,
            "{:width$} \"{text}\"",
            "",
            width = 3 * (16 - chunk.len())
        )?;
    }
    writeln!(out)
}

/// An I/O command's name as nvme-cli 2.3 prints it in its result line (`Vendor Specific` when
/// the NVM command set does not name it).
fn io_opcode_name(opcode: u8) -> &'static str {
    match opcode {
        0x00 => "Flush",
        0x01 => "Write",
        0x02 => "Read",
        0x04 => "Write Uncorrectable",
        0x05 => "Compare",
        0x08 => "Write Zeroes",
        0x09 => "Dataset Management",
        0x0c => "Verify",
        0x0d => "Reservation Register",
        0x0e => "Reservation Report",
        0x11 => "Reservation Acquire",
        0x15 => "Reservation Release",
        0x19 => "Copy",
        0x79 => "Zone Management Send",
        0x7a => "Zone Management Receive",
        0x7d => "Zone Append",
        _ => "Vendor Specific",
    }
}

/// An admin command's name as nvme-cli 2.3 prints it in its result line.
fn admin_opcode_name(opcode: u8) -> &'static str {
    match opcode {
        0x00 => "Delete I/O Submission Queue",
        0x01 => "Create I/O Submission Queue",
        0x02 => "Get Log Page",
        0x04 => "Delete I/O Completion Queue",
        0x05 => "Create I/O Completion Queue",
        0x06 => "Identify",
        0x08 => "Abort",
        0x09 => "Set Features",
        0x0a => "Get Features",
        0x0c => "Asynchronous Event Request",
        0x0d => "Namespace Management",
        0x10 => "Firmware Commit",
        0x11 => "Firmware Image Download",
        0x14 => "Device Self-test",
        0x15 => "Namespace Attachment",
        0x18 => "Keep Alive",
        0x19 => "Directive Send",
        0x1a => "Directive Receive",
        0x1c => "Virtualization Management",
        0x1d => "NVMe-MI Send",
        0x1e => "NVMe-MI Receive",
        0x7c => "Doorbell Buffer Config",
        0x80 => "Format NVM",
        0x81 => "Security Send",
        0x82 => "Security Receive",
        0x84 => "Sanitize",
        0x86 => "Get LBA Status",
        _ => "Vendor Specific",
    }
}

/// `admin-passthru`: one raw admin command (not the ones the driver manages itself).
pub fn admin_passthru<P: Platform>(ctrl: &Controller<P>, args: &PassthruArgs) -> Result<()> {
    let a = &args.command;
    run(
        "Admin",
        admin_opcode_name(args.opcode),
        args.opcode,
        a,
        &args.show,
        |data| {
            let cmd = nvme::AdminPassthru {
                opcode: args.opcode,
                nsid: a.namespace_id,
                cdw: a.cdw(),
                data_len: a.data_len,
                to_device: a.write,
            };
            Ok(ctrl.admin_passthru(&cmd, data)?)
        },
    )
}

/// `io-passthru`: one raw I/O command, on a queue pair of its own.
pub fn io_passthru<P: Platform>(ctrl: &Controller<P>, args: &PassthruArgs) -> Result<()> {
    let a = &args.command;
    run(
        "IO",
        io_opcode_name(args.opcode),
        args.opcode,
        a,
        &args.show,
        |data| {
            let cmd = nvme::IoPassthru {
                opcode: args.opcode,
                nsid: a.namespace_id,
                cdw: a.cdw(),
                data_len: a.data_len,
                to_device: a.write,
            };
            let mut qp = ctrl.queue_pair()?;
            Ok(qp.io_passthru(&cmd, data)?)
        },
    )
}

/// What both commands do around sending: read the data to send, open where the data read goes
/// (before sending, so that a bad path sends nothing), send, and print what nvme-cli 2.3 prints.
/// `kind` and `name` make its result line, `Admin Command Identify is Success and result: ...`.
fn run(
    kind: &str,
    name: &str,
    opcode: u8,
    a: &PassthruCommand,
    show: &ShowOptions,
    send: impl FnOnce(&[u8]) -> Result<(u32, Vec<u8>)>,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if show.show_command || show.dry_run {
        show_command(opcode, a, &mut out)?;
        if show.dry_run {
            return Ok(());
        }
    }
    let data = match &a.input_file {
        Some(path) if a.write => {
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
        }
        _ => Vec::new(),
    };
    let read_into = match &a.input_file {
        Some(path) if !a.write => Some(
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?,
        ),
        _ => None,
    };
    let started = std::time::Instant::now();
    let (dw0, read) = send(&data)?;
    let took = started.elapsed();
    if show.latency {
        eprintln!("{kind} Command {name} latency: {} us", took.as_micros());
    }
    eprintln!("{kind} Command {name} is Success and result: 0x{dw0:08x}");
    if let Some(mut file) = read_into {
        std::io::Write::write_all(&mut file, &read)?;
    } else if a.raw_binary {
        std::io::Write::write_all(&mut out, &read)?;
    } else if !read.is_empty() {
        nvme_cli_dump(&read, &mut out)?;
    }
    Ok(())
}
