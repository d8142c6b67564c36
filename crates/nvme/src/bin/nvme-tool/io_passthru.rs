//! `io-passthru`: one raw I/O command, with nvme-cli's options and output.

use anyhow::{Context, Result};
use clap::Args;
use nvme::{Controller, Platform};

use crate::manage::{PassthruCommand, parse_u8};

/// What `io-passthru` takes: nvme-cli's options and letters (`-o` is the opcode, as in nvme-cli;
/// `-O` is accepted too, as `admin-passthru` spells it).
#[derive(Debug, Args)]
pub struct IoPassthruArgs {
    /// Opcode.
    #[arg(short = 'o', short_alias = 'O', long = "opcode", value_parser = parse_u8)]
    pub opcode: u8,
    #[command(flatten)]
    pub command: PassthruCommand,
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
fn show_command(args: &IoPassthruArgs, out: &mut impl std::io::Write) -> std::io::Result<()> {
    let a = &args.command;
    writeln!(out, "opcode       : {:02x}", args.opcode)?;
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

/// The command's name as nvme-cli 2.3 prints it in its result line (`Vendor Specific` when the NVM
/// command set does not name it).
fn opcode_name(opcode: u8) -> &'static str {
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

/// Sends the command on a queue pair of its own and prints what nvme-cli 2.3 prints: the result
/// line on standard error, the data read as its hex dump (or raw) on standard output.
pub fn io_passthru<P: Platform>(ctrl: &Controller<P>, args: &IoPassthruArgs) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if args.show_command || args.dry_run {
        show_command(args, &mut out)?;
        if args.dry_run {
            return Ok(());
        }
    }
    let a = &args.command;
    let data = match &a.input_file {
        Some(path) if a.write => {
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
        }
        _ => Vec::new(),
    };
    // Where the data read goes, opened before the command runs so that a bad path sends nothing.
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
    let cmd = nvme::IoPassthru {
        opcode: args.opcode,
        nsid: a.namespace_id,
        cdw: a.cdw(),
        data_len: a.data_len,
        to_device: a.write,
    };
    let mut qp = ctrl.queue_pair()?;
    let started = std::time::Instant::now();
    let (dw0, read) = qp.io_passthru(&cmd, &data)?;
    let took = started.elapsed();
    let name = opcode_name(args.opcode);
    if args.latency {
        eprintln!("IO Command {name} latency: {} us", took.as_micros());
    }
    eprintln!("IO Command {name} is Success and result: 0x{dw0:08x}");
    if let Some(mut file) = read_into {
        std::io::Write::write_all(&mut file, &read)?;
    } else if a.raw_binary {
        std::io::Write::write_all(&mut out, &read)?;
    } else if !read.is_empty() {
        nvme_cli_dump(&read, &mut out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dump_is_nvme_clis() {
        // nvme-cli 2.3's dump of the same bytes (`nvme io-passthru ... -l 512 -r`), first lines.
        let mut data = b"hello passthru data 0123456789abcdef".to_vec();
        data.resize(64, 0);
        let mut out = Vec::new();
        nvme_cli_dump(&data, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "       0  1  2  3  4  5  6  7  8  9  a  b  c  d  e  f\n\
             0000: 68 65 6c 6c 6f 20 70 61 73 73 74 68 72 75 20 64 \"hello.passthru.d\"\n\
             0010: 61 74 61 20 30 31 32 33 34 35 36 37 38 39 61 62 \"ata.0123456789ab\"\n\
             0020: 63 64 65 66 00 00 00 00 00 00 00 00 00 00 00 00 \"cdef............\"\n\
             0030: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 \"................\"\n"
        );
    }

    #[test]
    fn the_command_is_shown_as_nvme_cli_shows_it() {
        let args = IoPassthruArgs {
            opcode: 2,
            command: PassthruCommand {
                namespace_id: 1,
                data_len: 512,
                cdw10: 0,
                cdw11: 0,
                cdw12: 0,
                cdw13: 0,
                cdw14: 0,
                cdw15: 0,
                write: false,
                read: true,
                input_file: None,
                raw_binary: false,
            },
            show_command: true,
            dry_run: false,
            latency: false,
        };
        let mut out = Vec::new();
        show_command(&args, &mut out).unwrap();
        // nvme-cli 2.3's `--show-command` for the same Read, but its `addr`, a pointer of its own.
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "opcode       : 02\nflags        : 00\nrsvd1        : 0000\nnsid         : 00000001\n\
             cdw2         : 00000000\ncdw3         : 00000000\ndata_len     : 00000200\n\
             metadata_len : 00000000\naddr         : 0\nmetadata     : 0\n\
             cdw10        : 00000000\ncdw11        : 00000000\ncdw12        : 00000000\n\
             cdw13        : 00000000\ncdw14        : 00000000\ncdw15        : 00000000\n\
             timeout_ms   : 00000000\n"
        );
    }

    #[test]
    fn commands_are_named_as_nvme_cli_names_them() {
        assert_eq!(opcode_name(0x02), "Read");
        assert_eq!(opcode_name(0x00), "Flush");
        assert_eq!(opcode_name(0x81), "Vendor Specific");
    }
}
