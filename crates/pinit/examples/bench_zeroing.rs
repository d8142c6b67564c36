//! The measurements behind `cargo xtask bench pinit` (run by it, once per case and profile).
//!
//! * `bench_zeroing measure <case>` builds a zeroed 1 GiB struct in a `Box` and prints
//!   `<nanoseconds> <peak RSS growth in KiB>`.
//! * `bench_zeroing stack <case> <bytes>` builds a 16 MiB struct in a `Box` on a thread with that much
//!   stack; the process dies of a stack overflow if it does not fit.
//!
//! Cases compare `pinit`, `pinned-init` 0.0.10 (stable, `std` feature) and the standard library.

use std::hint::black_box;
use std::time::Instant;

const GIB: usize = 1 << 30;
const MIB16: usize = 16 << 20;

/// The structs built by `pinit` (each library needs its own `Zeroable` derive).
mod ours {
    use pinit::{InPlaceInit, Zeroable, init, init_zeroed};

    #[derive(Zeroable)]
    pub struct Big<const N: usize> {
        pub header: u64,
        pub data: [u8; N],
    }

    pub fn zeroed_rest<const N: usize>() -> Box<Big<N>> {
        Box::init(init!(Big::<N> {
            header: 7,
            ..Zeroable::zeroed()
        }))
        .expect("allocation")
    }

    pub fn repeat<const N: usize>() -> Box<Big<N>> {
        Box::init(init!(Big::<N> {
            header: 7,
            data: [0; N]
        }))
        .expect("allocation")
    }

    pub fn initialiser<const N: usize>() -> Box<Big<N>> {
        Box::init(init!(Big::<N> { header: 7, data <- init_zeroed() })).expect("allocation")
    }
}

/// The same structs built by `pinned-init` (its `Zeroable` derive rejects const generics, so one
/// struct per size).
mod peer {
    macro_rules! sized {
        ($module:ident, $n:expr) => {
            pub mod $module {
                use pinned_init::{InPlaceInit, Zeroable, init};

                #[derive(Zeroable)]
                pub struct Big {
                    pub header: u64,
                    pub data: [u8; $n],
                }

                pub fn zeroed_rest() -> Box<Big> {
                    match Box::init(init!(Big {
                        header: 7,
                        ..Zeroable::init_zeroed()
                    })) {
                        Ok(b) => b,
                        Err(never) => match never {},
                    }
                }

                pub fn repeat() -> Box<Big> {
                    match Box::init(init!(Big {
                        header: 7,
                        data: [0; $n]
                    })) {
                        Ok(b) => b,
                        Err(never) => match never {},
                    }
                }
            }
        };
    }
    sized!(gib, crate::GIB);
    sized!(mib16, crate::MIB16);
}

/// The standard library's ways.
mod std_box {
    pub use super::ours::Big;

    #[inline(never)]
    pub fn new<const N: usize>() -> Box<Big<N>> {
        Box::new(Big {
            header: 7,
            data: [0; N],
        })
    }

    pub fn new_zeroed<const N: usize>() -> Box<Big<N>> {
        // SAFETY: `Big` is `Zeroable`: all-zero bytes are a valid value.
        let mut b = unsafe { Box::<Big<N>>::new_zeroed().assume_init() };
        b.header = 7;
        b
    }
}

/// Builds the named case with an `N`-byte array and returns (header, one data byte) to keep it alive.
fn build<const N: usize>(case: &str) -> (u64, u8) {
    macro_rules! keep {
        ($b:expr) => {{
            let b = black_box($b);
            (b.header, b.data[N / 2])
        }};
    }
    match case {
        "pinit-zeroed" => keep!(ours::zeroed_rest::<N>()),
        "pinit-repeat" => keep!(ours::repeat::<N>()),
        "pinit-initialiser" => keep!(ours::initialiser::<N>()),
        "pinned-init-zeroed" if N == GIB => keep!(peer::gib::zeroed_rest()),
        "pinned-init-repeat" if N == GIB => keep!(peer::gib::repeat()),
        "pinned-init-zeroed" => keep!(peer::mib16::zeroed_rest()),
        "pinned-init-repeat" => keep!(peer::mib16::repeat()),
        "box-new" => keep!(std_box::new::<N>()),
        "box-new-zeroed" => keep!(std_box::new_zeroed::<N>()),
        other => {
            eprintln!("unknown case {other}");
            std::process::exit(2)
        }
    }
}

/// Peak resident set size so far, in KiB (`VmHWM`).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn on_thread<R: Send + 'static>(stack: usize, f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::Builder::new()
        .stack_size(stack)
        .spawn(f)
        .expect("spawn the measuring thread")
        .join()
        .expect("the case succeeds")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["measure", case] => {
            let case = case.to_string();
            // `Box::new` of 1 GiB builds the value on the stack first (more than once in debug builds): give
            // every case the same 4 GiB stack reservation (untouched stack pages cost no memory).
            let before = peak_rss_kib();
            let (nanos, kept) = on_thread(4 * GIB, move || {
                let start = Instant::now();
                let kept = build::<GIB>(&case);
                (start.elapsed().as_nanos(), kept)
            });
            assert_eq!(kept, (7, 0));
            println!("{nanos} {}", peak_rss_kib().saturating_sub(before));
        }
        ["stack", case, bytes] => {
            let case = case.to_string();
            let bytes: usize = bytes.parse().expect("stack size in bytes");
            let kept = on_thread(bytes, move || build::<MIB16>(&case));
            assert_eq!(kept, (7, 0));
        }
        _ => {
            eprintln!("usage: bench_zeroing measure <case> | stack <case> <bytes>");
            std::process::exit(2)
        }
    }
}
