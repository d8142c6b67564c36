//! `io-passthru`: one raw I/O command, with nvme-cli's options and output.

use anyhow::{Context, Result};
use clap::Args;
use nvme::{Controller, Platform};

use crate::manage::{parse_u8, parse_u32};

/// What `io-passthru` takes: nvme-cli's options and letters (`-o` is the opcode, as in nvme-cli;
/// `-O` is accepted too, as `admin-passthru` spells it).
#[derive(Debug, Args)]
pub struct IoPassthruArgs {
    /// Opcode.
    #[arg(short = 'o', short_alias = 'O', long = "opcode", value_parser = parse_u8)]
    pub opcode: u8,
    /// Namespace ID.
    #[arg(short = 'n', long = "namespace-id", default_value = "0", value_parser = parse_u32)]
    pub namespace_id: u32,
    /// Data length in bytes (up to the controller's transfer limit).
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
    /// Data to send with --write.
    #[arg(short = 'i', long = "input-file")]
    pub input_file: Option<std::path::PathBuf>,
    /// Write the data read to standard output raw instead of as hex.
    #[arg(short = 'b', long = "raw-binary")]
    pub raw_binary: bool,
}

/// Sends the command on a queue pair of its own and prints nvme-cli's result line and hex dump.
pub fn io_passthru<P: Platform>(ctrl: &Controller<P>, a: &IoPassthruArgs) -> Result<()> {
    let data = match &a.input_file {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => Vec::new(),
    };
    let cmd = nvme::IoPassthru {
        opcode: a.opcode,
        nsid: a.namespace_id,
        cdw: [a.cdw10, a.cdw11, a.cdw12, a.cdw13, a.cdw14, a.cdw15],
        data_len: a.data_len,
        to_device: a.write,
    };
    let (dw0, read) = ctrl.queue_pair()?.io_passthru(&cmd, &data)?;
    if a.raw_binary {
        use std::io::Write as _;
        std::io::stdout().lock().write_all(&read)?;
        return Ok(());
    }
    println!("NVMe command result:{dw0:08x}");
    if !read.is_empty() {
        crate::hexdump(&read)?;
    }
    Ok(())
}
