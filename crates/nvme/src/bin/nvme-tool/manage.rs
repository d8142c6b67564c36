//! The management verbs, named and printed as nvme-cli names and prints them: identify data,
//! log pages, features and the NVM commands without data (flush, write zeroes, deallocate).
//!
//! JSON field names and value types follow nvme-cli 2.3 (128-bit counters are decimal strings);
//! where nvme-cli prints no JSON (get-feature, set-feature) the text line is nvme-cli's and
//! the JSON is this tool's own.

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use nvme::command::cns;
use nvme::identify_data::{FieldValue, IdentifyController, IdentifyNamespace};
use nvme::log::{ErrorLogEntry, FirmwareLog, SmartLog};
use nvme::{ALL_NAMESPACES, Controller, Platform};
use serde_json::{Map, Value, json};

/// `-o normal|json`, as nvme-cli spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Text for people.
    Normal,
    /// One JSON object, with nvme-cli's field names.
    Json,
}

/// The output format option every printing verb takes.
#[derive(Debug, Args)]
pub struct Output {
    /// Output format.
    #[arg(
        short = 'o',
        long = "output-format",
        value_enum,
        default_value = "normal"
    )]
    pub format: OutputFormat,
}

fn json_value(v: &FieldValue) -> Value {
    match v {
        FieldValue::Int(n) => json!(n),
        FieldValue::Wide(n) => json!(n.to_string()),
        FieldValue::Text(s) => json!(s),
        FieldValue::Hex(bytes) => json!(hex(bytes)),
        FieldValue::Uuid(bytes) => json!(nvme::identify_data::Uuid(*bytes).to_string()),
    }
}

fn text_value(v: &FieldValue) -> String {
    match v {
        FieldValue::Int(n) => format!("{n:#x}"),
        FieldValue::Wide(n) => n.to_string(),
        FieldValue::Text(s) => s.clone(),
        FieldValue::Hex(bytes) => hex(bytes),
        FieldValue::Uuid(bytes) => nvme::identify_data::Uuid(*bytes).to_string(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn object(fields: &[(&'static str, FieldValue)]) -> Map<String, Value> {
    fields
        .iter()
        .map(|(name, v)| (name.to_string(), json_value(v)))
        .collect()
}

fn print_fields(fields: &[(&'static str, FieldValue)]) {
    for (name, v) in fields {
        println!("{name:<10}: {}", text_value(v));
    }
}

fn print_json(v: &Value) {
    println!("{v:#}");
}

/// `id-ctrl`.
pub fn id_ctrl<P: Platform>(ctrl: &Controller<P>, out: &Output) -> Result<()> {
    let id = IdentifyController::parse(&ctrl.identify_raw(cns::CONTROLLER, 0)?);
    let mut fields = id.fields.fields();
    // nvme-cli leaves out an empty subsystem NQN.
    fields.retain(|(name, v)| !(*name == "subnqn" && *v == FieldValue::Text(String::new())));
    if out.format == OutputFormat::Normal {
        println!("NVME Identify Controller:");
        print_fields(&fields);
        for (i, ps) in id.power_states.iter().enumerate() {
            println!(
                "ps {i:>4} : mp:{:.2}W flags:{:#x} enlat:{} exlat:{} rrt:{} rrl:{} rwt:{} rwl:{}",
                f64::from(ps.mp) / 100.0,
                ps.flags,
                ps.enlat,
                ps.exlat,
                ps.rrt,
                ps.rrl,
                ps.rwt,
                ps.rwl
            );
        }
        return Ok(());
    }
    let mut root = object(&fields);
    let psds: Vec<Value> = id
        .power_states
        .iter()
        .map(|ps| {
            json!({
                "max_power": ps.mp, "flags": ps.flags, "entry_lat": ps.enlat,
                "exit_lat": ps.exlat, "read_tput": ps.rrt, "read_lat": ps.rrl,
                "write_tput": ps.rwt, "write_lat": ps.rwl, "idle_power": ps.idlp,
                "idle_scale": ps.ips >> 6 & 0x3, "active_power": ps.actp,
                "active_power_work": ps.apws & 0x7, "active_scale": ps.apws >> 6 & 0x3,
            })
        })
        .collect();
    root.insert("psds".into(), Value::Array(psds));
    print_json(&Value::Object(root));
    Ok(())
}

/// `id-ns`.
pub fn id_ns<P: Platform>(ctrl: &Controller<P>, nsid: u32, out: &Output) -> Result<()> {
    if nsid == 0 || nsid == ALL_NAMESPACES {
        bail!("--namespace-id must name one namespace");
    }
    let id = IdentifyNamespace::parse(&ctrl.identify_raw(cns::NAMESPACE, nsid)?);
    let mut fields = id.fields.fields();
    // nvme-cli prints the preferred write granularity fields only when NSFEAT says they are valid.
    if id.fields.nsfeat & 0x10 == 0 {
        fields.retain(|(name, _)| !matches!(*name, "npwg" | "npwa" | "npdg" | "npda" | "nows"));
    }
    let current = id.current_format();
    if out.format == OutputFormat::Normal {
        println!("NVME Identify Namespace {nsid}:");
        print_fields(&fields);
        for (i, f) in id.lba_formats.iter().enumerate() {
            let in_use = if i == current { " (in use)" } else { "" };
            println!(
                "lbaf {i:>2} : ms:{:<3} lbads:{:<2} rp:{:#x}{in_use}",
                f.ms, f.ds, f.rp
            );
        }
        return Ok(());
    }
    let mut root = object(&fields);
    let lbafs: Vec<Value> = id
        .lba_formats
        .iter()
        .map(|f| json!({"ms": f.ms, "ds": f.ds, "rp": f.rp}))
        .collect();
    root.insert("lbafs".into(), Value::Array(lbafs));
    print_json(&Value::Object(root));
    Ok(())
}

/// `list`: one entry per active namespace of the controller, with nvme-cli's fields
/// (`DevicePath` is the `--device` given; text fields without their trailing padding).
pub fn list<P: Platform>(ctrl: &Controller<P>, device: &str, out: &Output) -> Result<()> {
    let id = IdentifyController::parse(&ctrl.identify_raw(cns::CONTROLLER, 0)?);
    let trim = |t: &str| t.trim_end().to_string();
    let (sn, mn, fr) = (
        trim(&id.fields.sn.0),
        trim(&id.fields.mn.0),
        trim(&id.fields.fr.0),
    );
    let mut devices = Vec::new();
    for ns in ctrl.namespaces() {
        let idns = IdentifyNamespace::parse(&ctrl.identify_raw(cns::NAMESPACE, ns.id)?);
        let format = &idns.lba_formats[idns.current_format()];
        let lba = 1u64 << format.ds.min(63);
        devices.push(json!({
            "NameSpace": ns.id, "DevicePath": device, "Firmware": fr, "ModelNumber": mn,
            "SerialNumber": sn, "UsedBytes": idns.fields.nuse.saturating_mul(lba),
            "MaximumLBA": idns.fields.nsze,
            "PhysicalSize": idns.fields.nsze.saturating_mul(lba), "SectorSize": lba,
            "MetadataSize": format.ms,
        }));
    }
    if out.format == OutputFormat::Json {
        print_json(&json!({ "Devices": devices }));
        return Ok(());
    }
    println!(
        "{:<21} {:<20} {:<40} {:<9} {:<26} {:<16} {:<8}",
        "Node", "SN", "Model", "Namespace", "Usage", "Format", "FW Rev"
    );
    println!(
        "{:-<21} {:-<20} {:-<40} {:-<9} {:-<26} {:-<16} {:-<8}",
        "", "", "", "", "", "", ""
    );
    for d in &devices {
        let bytes = |k: &str| d[k].as_u64().unwrap_or(0) as f64 / 1e9;
        println!(
            "{:<21} {:<20} {:<40} {:<9} {:<26} {:<16} {:<8}",
            device,
            sn,
            mn,
            d["NameSpace"],
            format!(
                "{:6.2}  GB / {:6.2}  GB",
                bytes("UsedBytes"),
                bytes("PhysicalSize")
            ),
            format!("{} B + {} B", d["SectorSize"], d["MetadataSize"]),
            fr
        );
    }
    Ok(())
}

/// `list-ns`: the active namespace IDs.
pub fn list_ns<P: Platform>(ctrl: &Controller<P>, out: &Output) -> Result<()> {
    let page = ctrl.identify_raw(cns::ACTIVE_NAMESPACES, 0)?;
    let ids: Vec<u32> = page
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .take_while(|&id| id != 0)
        .collect();
    match out.format {
        OutputFormat::Json => {
            let list: Vec<Value> = ids.iter().map(|id| json!({ "nsid": id })).collect();
            print_json(&json!({ "nsid_list": list }));
        }
        OutputFormat::Normal => {
            for (i, id) in ids.iter().enumerate() {
                println!("[{i:>4}]:{id:#x}");
            }
        }
    }
    Ok(())
}

/// `smart-log`.
pub fn smart_log<P: Platform>(ctrl: &Controller<P>, nsid: u32, out: &Output) -> Result<()> {
    let log: SmartLog = ctrl.smart_log(nsid)?;
    let mut root = Map::new();
    let mut put = |k: &str, v: Value| {
        root.insert(k.to_string(), v);
    };
    put("critical_warning", json!(log.critical_warning));
    put("temperature", json!(log.temperature));
    put("avail_spare", json!(log.avail_spare));
    put("spare_thresh", json!(log.spare_thresh));
    put("percent_used", json!(log.percent_used));
    put(
        "endurance_grp_critical_warning_summary",
        json!(log.endurance_grp_critical_warning_summary),
    );
    for (k, v) in [
        ("data_units_read", log.data_units_read),
        ("data_units_written", log.data_units_written),
        ("host_read_commands", log.host_read_commands),
        ("host_write_commands", log.host_write_commands),
        ("controller_busy_time", log.controller_busy_time),
        ("power_cycles", log.power_cycles),
        ("power_on_hours", log.power_on_hours),
        ("unsafe_shutdowns", log.unsafe_shutdowns),
        ("media_errors", log.media_errors),
        ("num_err_log_entries", log.num_err_log_entries),
    ] {
        put(k, json!(v.to_string()));
    }
    put("warning_temp_time", json!(log.warning_temp_time));
    put("critical_comp_time", json!(log.critical_comp_time));
    for (i, t) in log.temperature_sensors.iter().enumerate() {
        if *t != 0 {
            put(&format!("temperature_sensor_{}", i + 1), json!(t));
        }
    }
    put("thm_temp1_trans_count", json!(log.thm_temp_trans_count[0]));
    put("thm_temp2_trans_count", json!(log.thm_temp_trans_count[1]));
    put("thm_temp1_total_time", json!(log.thm_temp_total_time[0]));
    put("thm_temp2_total_time", json!(log.thm_temp_total_time[1]));
    match out.format {
        OutputFormat::Json => print_json(&Value::Object(root)),
        OutputFormat::Normal => {
            println!("Smart Log for NVME device namespace-id {nsid:x}");
            for (k, v) in &root {
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                if k == "temperature" {
                    let celsius = i32::from(log.temperature) - 273;
                    println!("{k:<40}: {celsius} C ({v} K)");
                } else {
                    println!("{k:<40}: {v}");
                }
            }
        }
    }
    Ok(())
}

/// `error-log`: at most `entries`, and at most what the controller keeps (ELPE + 1).
pub fn error_log<P: Platform>(ctrl: &Controller<P>, entries: u32, out: &Output) -> Result<()> {
    if entries == 0 {
        bail!("--log-entries must be at least 1");
    }
    let id = IdentifyController::parse(&ctrl.identify_raw(cns::CONTROLLER, 0)?);
    let entries = entries.min(u32::from(id.fields.elpe) + 1) as usize;
    let log: Vec<ErrorLogEntry> = ctrl.error_log(entries)?;
    let errors: Vec<Value> = log
        .iter()
        .map(|e| {
            json!({
                "error_count": e.error_count, "sqid": e.sqid, "cmdid": e.cmdid,
                "status_field": e.status_field >> 1, "phase_tag": e.status_field & 1,
                "parm_error_location": e.parm_error_location, "lba": e.lba, "nsid": e.nsid,
                "vs": e.vs, "trtype": e.trtype, "cs": e.cs,
                "trtype_spec_info": e.trtype_spec_info,
            })
        })
        .collect();
    match out.format {
        OutputFormat::Json => print_json(&json!({ "errors": errors })),
        OutputFormat::Normal => {
            println!("Error Log Entries for device: entries:{entries}");
            for (i, e) in log.iter().enumerate() {
                println!(
                    " Entry[{i:>2}]: error_count:{} sqid:{} cmdid:{:#x} status_field:{:#x} \
                     parm_err_loc:{:#x} lba:{:#x} nsid:{:#x}",
                    e.error_count,
                    e.sqid,
                    e.cmdid,
                    e.status_field >> 1,
                    e.parm_error_location,
                    e.lba,
                    e.nsid
                );
            }
        }
    }
    Ok(())
}

/// `fw-log`: nvme-cli keys the object by the device name; here it is the `--device` given.
pub fn fw_log<P: Platform>(ctrl: &Controller<P>, device: &str, out: &Output) -> Result<()> {
    let log: FirmwareLog = ctrl.firmware_log()?;
    let mut slots = Map::new();
    slots.insert("Active Firmware Slot (afi)".into(), json!(log.afi));
    for (i, slot) in log.slots.iter().enumerate() {
        if slot[0] != 0 {
            // As nvme-cli shows it: anything but visible ASCII (spaces too) as '.'.
            let text: String = slot
                .iter()
                .map(|&b| if b.is_ascii_graphic() { b as char } else { '.' })
                .collect();
            slots.insert(
                format!("Firmware Rev Slot {}", i + 1),
                json!(format!("{} ({text})", u64::from_le_bytes(*slot))),
            );
        }
    }
    match out.format {
        OutputFormat::Json => print_json(&json!({ device: slots })),
        OutputFormat::Normal => {
            println!("Firmware Log for device:{device}");
            println!("afi  : {:#x}", log.afi);
            for (i, slot) in log.slots.iter().enumerate() {
                if slot[0] != 0 {
                    let text = String::from_utf8_lossy(slot);
                    println!(
                        "frs{} : {:#018x} ({text})",
                        i + 1,
                        u64::from_le_bytes(*slot)
                    );
                }
            }
        }
    }
    Ok(())
}

/// nvme-cli's names of the features.
pub fn feature_name(fid: u8) -> &'static str {
    match fid {
        0x01 => "Arbitration",
        0x02 => "Power Management",
        0x03 => "LBA Range Type",
        0x04 => "Temperature Threshold",
        0x05 => "Error Recovery",
        0x06 => "Volatile Write Cache",
        0x07 => "Number of Queues",
        0x08 => "Interrupt Coalescing",
        0x09 => "Interrupt Vector Configuration",
        0x0a => "Write Atomicity Normal",
        0x0b => "Async Event Configuration",
        0x0c => "Autonomous Power State Transition",
        0x0d => "Host Memory Buffer",
        0x0e => "Timestamp",
        0x0f => "Keep Alive Timer",
        0x10 => "Host Controlled Thermal Management",
        0x11 => "Non-Operational Power State Config",
        0x80 => "Software Progress",
        0x81 => "Host Identifier",
        0x82 => "Reservation Notification Mask",
        0x83 => "Reservation Persistence",
        0x84 => "Namespace Write Protect",
        _ => "Unknown",
    }
}

fn select_name(sel: u8) -> &'static str {
    match sel {
        0 => "Current",
        1 => "Default",
        2 => "Saved",
        3 => "Supported capabilities",
        _ => "Reserved",
    }
}

/// C's `%#0*x`: no `0x` before a zero.
fn c_hex(value: u32, width: usize) -> String {
    if value == 0 {
        format!("{:0width$x}", 0, width = width)
    } else {
        format!("{value:#0width$x}")
    }
}

/// What `get-feature` takes.
#[derive(Debug, Args)]
pub struct GetFeatureArgs {
    /// Feature identifier.
    #[arg(short = 'f', long = "feature-id", value_parser = parse_u8)]
    pub feature_id: u8,
    /// Namespace (0 for the controller).
    #[arg(short = 'n', long = "namespace-id", default_value_t = 0)]
    pub namespace_id: u32,
    /// 0 current, 1 default, 2 saved, 3 supported capabilities.
    #[arg(short = 's', long = "sel", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=3))]
    pub sel: u8,
    /// Command dword 11 (selects e.g. the temperature sensor).
    #[arg(short = 'c', long = "cdw11", default_value = "0", value_parser = parse_u32)]
    pub cdw11: u32,
    #[command(flatten)]
    pub output: Output,
}

/// `get-feature`.
pub fn get_feature<P: Platform>(ctrl: &Controller<P>, a: &GetFeatureArgs) -> Result<()> {
    let value = ctrl.get_feature(a.feature_id, a.sel, a.namespace_id, a.cdw11)?;
    match a.output.format {
        OutputFormat::Json => print_json(&json!({
            "feature_id": a.feature_id, "feature": feature_name(a.feature_id),
            "sel": a.sel, "value": value,
        })),
        OutputFormat::Normal => {
            println!(
                "get-feature:{} ({}), {} value:{}",
                c_hex(a.feature_id.into(), if a.feature_id != 0 { 4 } else { 2 }),
                feature_name(a.feature_id),
                select_name(a.sel),
                c_hex(value, if value != 0 { 10 } else { 8 })
            );
            if a.sel == 3 {
                for (bit, what) in [(1, "saveable"), (2, "per-namespace"), (4, "changeable")] {
                    if value & bit != 0 {
                        println!("  Feature is {what}");
                    }
                }
            }
        }
    }
    Ok(())
}

/// What `set-feature` takes.
#[derive(Debug, Args)]
pub struct SetFeatureArgs {
    /// Feature identifier.
    #[arg(short = 'f', long = "feature-id", value_parser = parse_u8)]
    pub feature_id: u8,
    /// Namespace (0 for the controller).
    #[arg(short = 'n', long = "namespace-id", default_value_t = 0)]
    pub namespace_id: u32,
    /// The new value (command dword 11).
    #[arg(short = 'v', long = "value", value_parser = parse_u32)]
    pub value: u32,
    /// Keep the value across resets (if the controller can save it).
    #[arg(short = 's', long = "save")]
    pub save: bool,
}

/// `set-feature`.
pub fn set_feature<P: Platform>(ctrl: &Controller<P>, a: &SetFeatureArgs) -> Result<()> {
    let dw0 = ctrl.set_feature(a.feature_id, a.namespace_id, a.value, a.save)?;
    println!(
        "set-feature:{} ({}), value:{}, cdw12:{}, save:{}",
        c_hex(a.feature_id.into(), 4),
        feature_name(a.feature_id),
        c_hex(a.value, if a.value != 0 { 10 } else { 8 }),
        c_hex(0, 8),
        c_hex(a.save.into(), 1)
    );
    if dw0 != 0 {
        println!("result: {dw0:#x}");
    }
    Ok(())
}

/// What `get-log` takes.
#[derive(Debug, Args)]
pub struct GetLogArgs {
    /// Log page identifier.
    #[arg(short = 'i', long = "log-id", value_parser = parse_u8)]
    pub log_id: u8,
    /// Bytes to read (4 to 4096, a multiple of 4).
    #[arg(short = 'l', long = "log-len", value_parser = parse_u32)]
    pub log_len: u32,
    /// Namespace.
    #[arg(short = 'n', long = "namespace-id", default_value_t = ALL_NAMESPACES, value_parser = parse_u32)]
    pub namespace_id: u32,
    /// Write the raw bytes to standard output instead of a hex dump.
    #[arg(short = 'b', long = "raw-binary")]
    pub raw_binary: bool,
}

/// `get-log`: any log page, raw.
pub fn get_log<P: Platform>(ctrl: &Controller<P>, device: &str, a: &GetLogArgs) -> Result<()> {
    let data = ctrl.get_log_page(a.log_id, a.namespace_id, a.log_len as usize)?;
    if a.raw_binary {
        use std::io::Write as _;
        std::io::stdout().lock().write_all(&data)?;
        return Ok(());
    }
    println!(
        "Device:{device} log-id:{} namespace-id:{:#x}",
        a.log_id, a.namespace_id
    );
    crate::hexdump(&data)
}

/// NVM commands without data: flush, write zeroes, deallocate.
pub fn flush<P: Platform>(ctrl: &Controller<P>, nsid: u32) -> Result<()> {
    ctrl.queue_pair()?.flush_cache(nsid)?;
    println!("NVMe Flush: success");
    Ok(())
}

/// `write-zeroes`: `blocks_0based` + 1 blocks from `start`, as nvme-cli counts them.
pub fn write_zeroes<P: Platform>(
    ctrl: &Controller<P>,
    nsid: u32,
    start: u64,
    blocks_0based: u16,
) -> Result<()> {
    if !ctrl.info().supports_write_zeroes() {
        bail!("the controller does not support Write Zeroes (ONCS bit 3)");
    }
    ctrl.queue_pair()?
        .write_zeroes(nsid, start, u64::from(blocks_0based) + 1)?;
    println!("NVME Write Zeroes Success");
    Ok(())
}

/// `dsm --ad`: deallocates each range of `--slbs` and `--blocks` (comma-separated lists).
pub fn deallocate<P: Platform>(
    ctrl: &Controller<P>,
    nsid: u32,
    starts: &[u64],
    blocks: &[u64],
) -> Result<()> {
    if !ctrl.info().supports_deallocate() {
        bail!("the controller does not support Dataset Management (ONCS bit 2)");
    }
    if starts.len() != blocks.len() || starts.is_empty() {
        bail!("give as many --slbs as --blocks (one range each)");
    }
    let mut qp = ctrl.queue_pair()?;
    for (&lba, &n) in starts.iter().zip(blocks) {
        qp.deallocate(nsid, lba, n)
            .with_context(|| format!("deallocating {n} blocks at {lba}"))?;
    }
    println!("NVMe DSM: success");
    Ok(())
}

/// What `format` takes.
#[derive(Debug, Args)]
pub struct FormatArgs {
    /// Namespace to format (0xffffffff: all).
    #[arg(short = 'n', long = "namespace-id", default_value_t = 1, value_parser = parse_u32)]
    pub namespace_id: u32,
    /// LBA format index (see `id-ns`).
    #[arg(short = 'l', long = "lbaf", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=63))]
    pub lbaf: u8,
    /// Secure erase: 0 none, 1 user data erase, 2 cryptographic erase.
    #[arg(short = 's', long = "ses", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub ses: u8,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub force: bool,
}

/// `format`: every block of the namespace is lost, so it asks first (on a terminal) unless
/// `--force`; with no terminal to ask on and no `--force` it refuses.
pub fn format<P: Platform>(ctrl: Controller<P>, a: &FormatArgs) -> Result<()> {
    use std::io::IsTerminal as _;
    if !a.force {
        if !std::io::stdin().is_terminal() {
            bail!(
                "format erases namespace {:#x}: give --force to confirm",
                a.namespace_id
            );
        }
        eprint!(
            "format erases every block of namespace {:#x}; type yes to go on: ",
            a.namespace_id
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            bail!("not formatted");
        }
    }
    ctrl.format_nvm(a.namespace_id, a.lbaf, a.ses)?;
    println!("Success formatting namespace:{:x}", a.namespace_id);
    Ok(())
}

/// A number in decimal or 0x hex.
pub fn parse_u32(text: &str) -> Result<u32, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| format!("{text:?} is not a 32-bit number (decimal or 0x hex)"))
}

/// A byte in decimal or 0x hex.
pub fn parse_u8(text: &str) -> Result<u8, String> {
    let n = parse_u32(text)?;
    u8::try_from(n).map_err(|_| format!("{text:?} is more than 255"))
}
