//! `cargo xtask bench kernel nvme --instructions --functions`: where the guest kernel's instructions
//! go, function by function, per I/O, with rnvme beside the C driver.
//!
//! The counting plugin lists, at every stamp, each kernel translation block that has run and the
//! instructions it executed. The guest prints its `/proc/kallsyms` first, so a block's address
//! names its function (the addresses are this boot's, KASLR or not). Over a run's window, a
//! function's instructions are its blocks' and its entries are the runs of the block at its first
//! address. Its block runs count too: a block ends at every jump, call and return, and each run is
//! one dispatch of translated code, whose cost under TCG (a lookup for every return and every jump
//! to another page) the instruction count does not show.

use std::collections::HashMap;
use std::fmt::Write as _;

use guest::BlockCount;

use super::kernel_nvme::{C, Driver, RUST, WORKLOADS};

/// What marks a symbol line in the guest's output.
const MARK: &str = "KSYM";

/// Guest shell lines that print the kernel's and the modules' text symbols, one `KSYM` line each
/// (`kptr_restrict` 0 shows root their addresses).
pub(super) const PRINT_SYMBOLS: &str = "echo 0 > /proc/sys/kernel/kptr_restrict\n\
     grep -i ' t ' /proc/kallsyms | sed 's/^/KSYM /'\n";

/// The entry of every device interrupt on x86 (`DEFINE_IDTENTRY_IRQ(common_interrupt)`).
const INTERRUPT_ENTRY: &str = "common_interrupt";

/// How many of the kernel's other functions each workload's table lists.
const LISTED: usize = 8;
/// How many of each driver's own functions each workload names.
const OWN_LISTED: usize = 6;

/// Text symbols by address.
#[derive(Debug, Default)]
struct Symbols {
    starts: Vec<u64>,
    /// `name` or `name [module]`, as kallsyms gives them (Rust names demangled, without their hash).
    names: Vec<String>,
}

impl Symbols {
    /// From the guest's `KSYM <address> <type> <name> [<module>]` lines.
    fn parse(stdout: &str) -> Symbols {
        let mut all: Vec<(u64, String)> = stdout
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                (fields.next()? == MARK).then_some(())?;
                let address = u64::from_str_radix(fields.next()?, 16).ok()?;
                let _kind = fields.next()?;
                let name = format!("{:#}", rustc_demangle::demangle(fields.next()?));
                let name = match fields.next() {
                    Some(module) => format!("{name} {module}"),
                    None => name,
                };
                (address != 0).then_some((address, name))
            })
            .collect();
        all.sort();
        let (starts, names) = all.into_iter().unzip();
        Symbols { starts, names }
    }

    /// The index of the function holding `address` (the last one starting at or below it).
    fn find(&self, address: u64) -> Option<usize> {
        self.starts
            .partition_point(|&s| s <= address)
            .checked_sub(1)
    }
}

/// One function's share of a window.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Usage {
    instructions: u64,
    entries: u64,
    /// Runs of its blocks.
    blocks: u64,
}

/// Each function's instructions and entries between two stamps' block lists (sorted by address).
fn window(symbols: &Symbols, start: &[BlockCount], end: &[BlockCount]) -> HashMap<usize, Usage> {
    let mut usage: HashMap<usize, Usage> = HashMap::new();
    for block in end {
        let before = start
            .binary_search_by_key(&block.vaddr, |b| b.vaddr)
            .map_or(0, |i| start[i].executed);
        let executed = block.executed.saturating_sub(before);
        if executed == 0 {
            continue;
        }
        let Some(function) = symbols.find(block.vaddr) else {
            continue;
        };
        let u = usage.entry(function).or_default();
        let runs = executed / u64::from(block.insns.max(1));
        u.instructions += executed;
        u.blocks += runs;
        if symbols.starts[function] == block.vaddr {
            u.entries += runs;
        }
    }
    usage
}

/// One counted run: its round, driver label, workload index and I/Os.
pub(super) struct CountedRun<'a> {
    pub(super) round: u32,
    pub(super) label: &'a str,
    pub(super) workload: usize,
    pub(super) ios: u64,
}

/// A driver's usage on one workload, summed over its rounds, and its I/Os.
#[derive(Default)]
struct Total {
    usage: HashMap<usize, Usage>,
    ios: u64,
}

impl Total {
    fn per_io(&self, function: usize) -> (f64, f64) {
        let u = self.usage.get(&function).copied().unwrap_or_default();
        let ios = self.ios.max(1) as f64;
        (u.instructions as f64 / ios, u.entries as f64 / ios)
    }

    /// Instructions and block runs per I/O of the functions `mine` picks.
    fn own(&self, symbols: &Symbols, mine: impl Fn(&str) -> bool) -> (f64, f64) {
        let picked = self
            .usage
            .iter()
            .filter(|(f, _)| mine(&symbols.names[**f]))
            .map(|(_, u)| *u);
        self.sum_per_io(picked)
    }

    /// The `n` functions `mine` picks that took the most instructions, with their share per I/O.
    fn top(&self, symbols: &Symbols, mine: impl Fn(&str) -> bool, n: usize) -> String {
        let mut own: Vec<(usize, f64)> = self
            .usage
            .keys()
            .filter(|f| mine(&symbols.names[**f]))
            .map(|&f| (f, self.per_io(f).0))
            .collect();
        own.sort_by(|a, b| b.1.total_cmp(&a.1));
        own.iter()
            .take(n)
            .map(|(f, v)| format!("`{}` {v:.0}", symbols.names[*f]))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Instructions and block runs per I/O of the whole kernel.
    fn all(&self) -> (f64, f64) {
        self.sum_per_io(self.usage.values().copied())
    }

    fn sum_per_io(&self, usage: impl Iterator<Item = Usage>) -> (f64, f64) {
        let (instructions, blocks) =
            usage.fold((0, 0), |(i, b), u| (i + u.instructions, b + u.blocks));
        let ios = self.ios.max(1) as f64;
        (instructions as f64 / ios, blocks as f64 / ios)
    }
}

/// The functions that are a driver's own: its module's, and for rnvme the C helpers that 7.2's
/// Rust code calls for what C inlines (`rust_helper_*`; nothing else calls them on these paths).
fn own_code(driver: Driver) -> impl Fn(&str) -> bool {
    move |name: &str| match driver.label {
        "rnvme" => name.ends_with(" [rnvme]") || name.starts_with("rust_helper_"),
        _ => name.ends_with(" [nvme]") || name.ends_with(" [nvme_core]"),
    }
}

/// `blocks_at(label)`: the kernel blocks of the host stamp with that label (`begin ...`, `end ...`).
fn total<'a>(
    symbols: &Symbols,
    blocks_at: &impl Fn(&str) -> Option<&'a [BlockCount]>,
    runs: &[CountedRun],
    driver: Driver,
    workload: usize,
) -> Total {
    let mut t = Total::default();
    for r in runs
        .iter()
        .filter(|r| r.label == driver.label && r.workload == workload)
    {
        let label = super::run_label(r.round, r.label, r.workload);
        let (Some(start), Some(end)) = (
            blocks_at(&format!("begin {label}")),
            blocks_at(&format!("end {label}")),
        ) else {
            continue;
        };
        for (f, u) in window(symbols, start, end) {
            let sum = t.usage.entry(f).or_default();
            sum.instructions += u.instructions;
            sum.entries += u.entries;
            sum.blocks += u.blocks;
        }
        t.ios += r.ios;
    }
    t
}

/// The report: per workload, each driver's own instructions per I/O and its costliest functions,
/// interrupts per I/O, the whole kernel's instructions per I/O, and the kernel's other functions
/// whose share differs most between the two drivers. `blocks_at` as for [`total`].
pub(super) fn report<'a>(
    stdout: &str,
    blocks_at: impl Fn(&str) -> Option<&'a [BlockCount]>,
    runs: &[CountedRun],
) -> String {
    let symbols = Symbols::parse(stdout);
    let mut s = String::new();
    if symbols.starts.is_empty() {
        s.push_str("No kernel symbols came from the guest: no functions to report.\n");
        return s;
    }
    let interrupt = symbols.names.iter().position(|n| n == INTERRUPT_ENTRY);
    s.push_str(
        "Guest kernel instructions per I/O by function, rnvme against the C driver, over the same \
         counted windows (summed over the rounds). Own code: rnvme's module and the `rust_helper_*` \
         calls 7.2's Rust code makes where C inlines; the C driver's `nvme` and `nvme_core`.\n",
    );
    for (i, w) in WORKLOADS.iter().enumerate() {
        let (rust, c) = (
            total(&symbols, &blocks_at, runs, RUST, i),
            total(&symbols, &blocks_at, runs, C, i),
        );
        if rust.ios == 0 || c.ios == 0 {
            continue;
        }
        let interrupts = |t: &Total| interrupt.map_or(f64::NAN, |f| t.per_io(f).1);
        let (rust_own, c_own) = (
            rust.own(&symbols, own_code(RUST)),
            c.own(&symbols, own_code(C)),
        );
        let (rust_all, c_all) = (rust.all(), c.all());
        let _ = writeln!(
            s,
            "\n{}: own code {:.0} (rnvme) and {:.0} (nvme) instructions per I/O; device interrupts \
             per I/O {:.3} and {:.3}; the whole kernel {:.0} and {:.0}; translation blocks run per \
             I/O, own code {:.1} and {:.1}, the whole kernel {:.1} and {:.1}\n",
            w.name,
            rust_own.0,
            c_own.0,
            interrupts(&rust),
            interrupts(&c),
            rust_all.0,
            c_all.0,
            rust_own.1,
            c_own.1,
            rust_all.1,
            c_all.1,
        );
        let _ = writeln!(
            s,
            "- rnvme's own: {}\n- nvme's own: {}\n",
            rust.top(&symbols, own_code(RUST), OWN_LISTED),
            c.top(&symbols, own_code(C), OWN_LISTED),
        );
        s.push_str(
            "| the kernel's other functions | rnvme | nvme | rnvme - nvme |\n|---|---:|---:|---:|\n",
        );
        let shared = |f: &usize| {
            let name = &symbols.names[*f];
            !own_code(RUST)(name) && !own_code(C)(name)
        };
        let mut functions: Vec<usize> = rust
            .usage
            .keys()
            .chain(c.usage.keys())
            .copied()
            .filter(shared)
            .collect();
        functions.sort_unstable();
        functions.dedup();
        let difference = |f: usize| rust.per_io(f).0 - c.per_io(f).0;
        functions.sort_by(|a, b| difference(*b).abs().total_cmp(&difference(*a).abs()));
        for f in functions.into_iter().take(LISTED) {
            let _ = writeln!(
                s,
                "| `{}` | {:.1} | {:.1} | {:+.1} |",
                symbols.names[f],
                rust.per_io(f).0,
                c.per_io(f).0,
                difference(f)
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "booting\n\
        KSYM ffffffff81000000 T _stext\n\
        KSYM ffffffff81000100 T common_interrupt\n\
        KSYM ffffffff81000200 t blk_mq_end_request\n\
        KSYM ffffffffc0001000 t nvme_queue_rq\t[nvme]\n\
        KSYM ffffffffc0002000 t _RNvCs1234_5rnvme8queue_rq\t[rnvme]\n\
        KSYM 0000000000000000 t hidden\n\
        INSN-RESULT 1 rnvme 0 10\n";

    fn block(vaddr: u64, insns: u32, executed: u64) -> BlockCount {
        BlockCount {
            vaddr,
            insns,
            executed,
        }
    }

    #[test]
    fn symbols_come_from_the_marked_lines_in_address_order_with_their_module() {
        let s = Symbols::parse(OUT);
        assert_eq!(s.names.len(), 5, "{:?}", s.names);
        assert_eq!(s.names[3], "nvme_queue_rq [nvme]");
        assert_eq!(s.names[4], "rnvme::queue_rq [rnvme]");
        assert_eq!(s.find(0xffff_ffff_8100_0150), Some(1));
        assert_eq!(s.find(0xffff_ffff_8100_0100), Some(1));
        assert_eq!(s.find(0xffff_ffff_c000_2fff), Some(4));
        assert_eq!(s.find(0xffff_ffff_80ff_ffff), None);
    }

    #[test]
    fn a_window_charges_each_function_its_blocks_and_counts_entries_at_its_start() {
        let s = Symbols::parse(OUT);
        let start = [block(0xffff_ffff_8100_0100, 4, 40)];
        let end = [
            // common_interrupt: entered 5 more times, and a later block of it ran 3 times.
            block(0xffff_ffff_8100_0100, 4, 60),
            block(0xffff_ffff_8100_0120, 2, 6),
            // rnvme's queue_rq, new in this window.
            block(0xffff_ffff_c000_2000, 10, 100),
            // Below every symbol: not charged.
            block(0xffff_ffff_80ff_0000, 1, 7),
        ];
        let w = window(&s, &start, &end);
        assert_eq!(
            w.get(&1),
            Some(&Usage {
                instructions: 26,
                entries: 5,
                blocks: 8,
            })
        );
        assert_eq!(
            w.get(&4),
            Some(&Usage {
                instructions: 100,
                entries: 10,
                blocks: 10,
            })
        );
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn the_report_sets_each_driver_own_code_and_interrupts_per_io_side_by_side() {
        let counted = |rust: u64, c: u64| {
            vec![
                block(0xffff_ffff_8100_0100, 10, rust),
                block(0xffff_ffff_8100_0200, 3, 30 + rust),
                block(0xffff_ffff_c000_1000, 5, c),
                block(0xffff_ffff_c000_2000, 7, rust * 7),
            ]
        };
        let stamps = HashMap::from([
            ("begin 1 rnvme 1", Vec::new()),
            ("end 1 rnvme 1", counted(50, 0)),
            ("begin 1 nvme 1", Vec::new()),
            ("end 1 nvme 1", counted(0, 500)),
        ]);
        let runs = [
            CountedRun {
                round: 1,
                label: "rnvme",
                workload: 1,
                ios: 10,
            },
            CountedRun {
                round: 1,
                label: "nvme",
                workload: 1,
                ios: 10,
            },
        ];
        let r = report(
            OUT,
            |label: &str| stamps.get(label).map(Vec::as_slice),
            &runs,
        );
        let name = WORKLOADS[1].name;
        assert!(
            r.contains(&format!(
                "{name}: own code 35 (rnvme) and 50 (nvme) instructions per I/O; device interrupts \
                 per I/O 0.500 and 0.000; the whole kernel 48 and 53; translation blocks run per \
                 I/O, own code 5.0 and 10.0, the whole kernel 8.1 and 11.0"
            )),
            "{r}"
        );
        assert!(
            r.contains("- rnvme's own: `rnvme::queue_rq [rnvme]` 35\n"),
            "{r}"
        );
        assert!(
            r.contains("- nvme's own: `nvme_queue_rq [nvme]` 50\n"),
            "{r}"
        );
        // The rest of the kernel, side by side; the drivers' own functions are not in the table.
        assert!(
            r.contains("| `blk_mq_end_request` | 8.0 | 3.0 | +5.0 |"),
            "{r}"
        );
        assert!(
            r.contains("| `common_interrupt` | 5.0 | 0.0 | +5.0 |"),
            "{r}"
        );
        assert!(!r.contains("| `rnvme::queue_rq"), "{r}");
        // The other workloads had no runs.
        assert!(!r.contains(WORKLOADS[0].name), "{r}");
    }
}
