//! Running initialisers into every supported place, and undoing them on error or panic.

mod common;

use core::marker::PhantomPinned;
use core::pin::Pin;
use std::mem::MaybeUninit;
use std::rc::Rc;
use std::sync::Arc;

use common::{Failed, Noisy, drops, fails};
use pinit::{
    AllocError, InPlaceInit, InPlaceInitSlice, InPlaceWrite, Init, PinInit, UniqueArc, UniqueRc,
    VecExt, init, init_array_from_fn, init_by, init_scope, init_zeroed, pin_data, pin_init,
    pin_init_array_from_fn, pin_init_by, pinned_drop, stack_pin_init, stack_try_pin_init, value,
};

fn noisy(name: &'static str) -> impl Init<Noisy, Failed> {
    value(Noisy(name))
}

fn nth(i: usize) -> &'static str {
    ["0", "1", "2", "3", "4"][i]
}

#[test]
fn array_from_fn_drops_built_elements_on_error() {
    let r = Box::try_init(init_array_from_fn::<_, 5, _, _>(|i| {
        init_by(move |slot| {
            if i == 3 {
                Err(Failed("3"))
            } else {
                Ok(slot.write(Noisy(nth(i))))
            }
        })
    }));
    assert_eq!(r.err(), Some(Failed("3")));
    assert_eq!(drops(), ["0", "1", "2"]);
}

#[test]
fn pinned_array_from_fn_builds_in_order() {
    let a = Box::pin_init(pin_init_array_from_fn::<_, 3, _, _>(|i| {
        value(Noisy(nth(i)))
    }))
    .unwrap();
    assert_eq!(a.iter().map(|n| n.0).collect::<Vec<_>>(), ["0", "1", "2"]);
    drop(a);
    assert_eq!(drops(), ["0", "1", "2"]);
}

#[test]
fn slices_of_runtime_length_in_every_pointer() {
    let len = 4;
    let b: Box<[Noisy]> = Box::try_init_slice(len, |i| noisy(nth(i))).unwrap();
    let a: Arc<[Noisy]> = Arc::try_init_slice(len, |i| noisy(nth(i))).unwrap();
    let r: Pin<Rc<[Noisy]>> = Rc::try_pin_init_slice(len, |i| noisy(nth(i))).unwrap();
    assert_eq!((b.len(), a.len(), r.len()), (4, 4, 4));
    assert_eq!(a[3].0, "3");
    drop((b, a, r));
    assert_eq!(drops().len(), 12);
    let empty: Box<[Noisy]> = Box::try_init_slice(0, |i| noisy(nth(i))).unwrap();
    assert!(empty.is_empty());
}

#[test]
fn slice_error_drops_built_elements_and_frees() {
    let make = |i: usize| {
        init_by(move |slot| {
            if i == 2 {
                Err(Failed("2"))
            } else {
                Ok(slot.write(Noisy(nth(i))))
            }
        })
    };
    assert_eq!(
        Arc::<[Noisy]>::try_init_slice(4, make).err(),
        Some(Failed("2"))
    );
    assert_eq!(drops(), ["0", "1"]);
    assert_eq!(
        Box::<[Noisy]>::try_init_slice(4, make).err(),
        Some(Failed("2"))
    );
    assert_eq!(drops(), ["0", "1"]);
}

#[test]
fn impossible_sizes_are_alloc_errors_not_panics() {
    let huge = Box::<[u64]>::try_init_slice(usize::MAX / 4, |i| value::<u64, AllocError>(i as u64));
    assert_eq!(huge.err(), Some(AllocError));
    let huge = Rc::<[u64]>::try_init_slice(usize::MAX / 4, |i| value::<u64, AllocError>(i as u64));
    assert_eq!(huge.err(), Some(AllocError));
    let too_big = Box::<[u8; 1 << 46]>::init(init_zeroed());
    assert_eq!(too_big.err(), Some(AllocError));
}

#[test]
fn io_error_is_a_valid_error_type() {
    fn open(fail: bool) -> impl Init<u32, std::io::Error> {
        init_scope(move || {
            if fail {
                Err(std::io::Error::other("no device"))
            } else {
                Ok(value(3))
            }
        })
    }
    assert_eq!(*Box::try_init(open(false)).unwrap(), 3);
    let e = Box::try_init(open(true)).unwrap_err();
    assert_eq!(e.to_string(), "no device");
    let oom: std::io::Error = AllocError.into();
    assert_eq!(oom.kind(), std::io::ErrorKind::OutOfMemory);
}

#[test]
fn vec_push_init_appends_in_place() {
    let mut v: Vec<Noisy> = Vec::new();
    v.try_push_init(noisy("a")).unwrap();
    v.try_push_init(noisy("b")).unwrap();
    assert_eq!(v.try_push_init(fails("c")).err(), Some(Failed("c")));
    assert_eq!(v.len(), 2);
    drop(v);
    assert_eq!(drops(), ["a", "b"]);
    let mut big: Vec<[u8; 1 << 20]> = Vec::new();
    big.push_init(init_zeroed()).unwrap();
    assert_eq!(big[0][1 << 19], 0);
}

#[test]
fn unique_pointers_are_mutable_until_shared() {
    let mut a = UniqueArc::try_init(noisy("a")).unwrap();
    a.0 = "a2";
    let shared: Arc<Noisy> = UniqueArc::share(a);
    let other = Arc::clone(&shared);
    assert_eq!(other.0, "a2");
    drop((shared, other));
    assert_eq!(drops(), ["a2"]);
    let mut r = UniqueRc::new(5);
    *r += 1;
    assert_eq!(*Rc::<i32>::from(r), 6);
    let p = UniqueRc::try_pin_init(noisy("p")).unwrap();
    let p: Pin<Rc<Noisy>> = UniqueRc::share_pinned(p);
    assert_eq!(p.0, "p");
}

#[test]
fn writes_into_existing_uninitialised_memory() {
    let b = Box::<Noisy>::new_uninit().write_init(noisy("b")).unwrap();
    assert_eq!(b.0, "b");
    let failed = Box::<Noisy>::new_uninit().write_init(fails("x"));
    assert_eq!(failed.err(), Some(Failed("x")));
    // A `'static` slot stays reachable from a static, as in a lazily initialised global.
    static KEPT: std::sync::OnceLock<Pin<&'static mut u64>> = std::sync::OnceLock::new();
    let leaked: &'static mut MaybeUninit<u64> = Box::leak(Box::new(MaybeUninit::uninit()));
    let pinned: Pin<&'static mut u64> = leaked.write_pin_init(value::<u64, Failed>(9)).unwrap();
    assert_eq!(*pinned, 9);
    assert!(KEPT.set(pinned).is_ok());
}

#[pin_data(PinnedDrop)]
struct Logged {
    name: &'static str,
    #[pin]
    _pin: PhantomPinned,
}

#[pinned_drop]
impl PinnedDrop for Logged {
    fn drop(self: Pin<&mut Self>) {
        drop(Noisy(self.name));
    }
}

#[test]
fn pinned_drop_runs_once_with_the_pinned_value() {
    let l = Arc::pin_init(pin_init!(Logged {
        name: "logged",
        _pin: PhantomPinned
    }))
    .unwrap();
    drop(l);
    assert_eq!(drops(), ["logged"]);
}

#[test]
fn stack_initialisation_drops_at_scope_end() {
    {
        stack_pin_init!(let l = pin_init!(Logged { name: "stack", _pin: PhantomPinned }));
        assert_eq!(l.name, "stack");
        assert!(drops().is_empty());
    }
    assert_eq!(drops(), ["stack"]);
    stack_try_pin_init!(let r: Result<Pin<&mut Noisy>, Failed> = fails("s"));
    assert_eq!(r.err(), Some(Failed("s")));
}

#[test]
fn chain_failure_drops_the_finished_value() {
    let r = Box::try_init(noisy("c").chain(|_| Err(Failed("chain"))));
    assert_eq!(r.err(), Some(Failed("chain")));
    assert_eq!(drops(), ["c"]);
    let r = Rc::try_pin_init(noisy("p").pin_chain(|_| Err(Failed("pin_chain"))));
    assert_eq!(r.err(), Some(Failed("pin_chain")));
    assert_eq!(drops(), ["p"]);
}

#[test]
fn branded_slots_choose_between_initialisers() {
    fn pick(which: u8) -> impl PinInit<Logged, Failed> {
        pin_init_by(move |slot| match which {
            0 => slot.pin_init(pin_init!(Logged { name: "zero", _pin: PhantomPinned }? Failed)),
            1 => Ok(slot.write(Logged {
                name: "one",
                _pin: PhantomPinned,
            })),
            _ => {
                let done = slot
                    .pin_init(pin_init!(Logged { name: "undone", _pin: PhantomPinned }? Failed))?;
                drop(done);
                Err(Failed("late"))
            }
        })
    }
    assert_eq!(Box::try_pin_init(pick(0)).unwrap().name, "zero");
    assert_eq!(Box::try_pin_init(pick(1)).unwrap().name, "one");
    assert_eq!(drops(), ["zero", "one"]);
    assert_eq!(Box::try_pin_init(pick(2)).err(), Some(Failed("late")));
    assert_eq!(drops(), ["undone"]);
}

#[test]
fn zeroed_initialisers_ask_for_zeroed_memory() {
    let z = init_zeroed::<[u64; 8]>();
    assert!(z.starts_zeroed());
    let chained = init_zeroed::<[u64; 8]>().chain(|a| {
        a[0] = 1;
        Ok(())
    });
    assert!(PinInit::<[u64; 8]>::starts_zeroed(&chained));
    let a: Arc<[u64; 8]> = Arc::init(chained).unwrap();
    assert_eq!(a[..2], [1, 0]);
    struct Regs {
        a: u32,
        b: u32,
    }
    // SAFETY: all-zero bytes are valid for two integers.
    unsafe impl pinit::Zeroable for Regs {}
    let fast = init!(Regs {
        b: 2,
        ..Zeroable::zeroed()
    });
    assert!(fast.starts_zeroed());
    let r = Rc::init(fast).unwrap();
    assert_eq!((r.a, r.b), (0, 2));
    let slow = init!(Regs { a: 1, b: 2 });
    assert!(!slow.starts_zeroed());
}

#[test]
fn init_panic_in_box_frees_and_drops() {
    let r = std::panic::catch_unwind(|| {
        Box::try_init(init_array_from_fn::<_, 3, _, _>(|i| {
            init_by(move |slot| {
                if i == 2 {
                    panic!("element 2");
                }
                Ok::<_, Failed>(slot.write(Noisy(nth(i))))
            })
        }))
    });
    assert!(r.is_err());
    assert_eq!(drops(), ["0", "1"]);
}

/// An initialiser that starts from zero and records whether it was told the memory already is zero.
struct Probe<'a>(&'a std::cell::Cell<&'static str>);

// SAFETY: both paths fully initialise the `u64` (to zero) and never fail.
unsafe impl PinInit<u64, Failed> for Probe<'_> {
    unsafe fn __pinned_init(self, slot: *mut u64) -> Result<(), Failed> {
        self.0.set("zeroed it");
        // SAFETY: the slot is valid for writes.
        unsafe { slot.write(0) };
        Ok(())
    }
    fn starts_zeroed(&self) -> bool {
        true
    }
    unsafe fn __pinned_init_on_zeroed(self, _slot: *mut u64) -> Result<(), Failed> {
        self.0.set("skipped");
        Ok(())
    }
}

// SAFETY: as above; a `u64` needs no pinning.
unsafe impl Init<u64, Failed> for Probe<'_> {
    unsafe fn __init(self, slot: *mut u64) -> Result<(), Failed> {
        // SAFETY: forwarded.
        unsafe { self.__pinned_init(slot) }
    }
    unsafe fn __init_on_zeroed(self, slot: *mut u64) -> Result<(), Failed> {
        // SAFETY: forwarded.
        unsafe { self.__pinned_init_on_zeroed(slot) }
    }
}

#[test]
fn zeroing_field_initialisers_skip_work_on_zeroed_memory() {
    struct Small {
        n: u64,
        probe: u64,
    }
    struct Large {
        probe: u64,
        bytes: [u8; 2 << 20],
    }
    // SAFETY: all fields are integers.
    unsafe impl pinit::Zeroable for Small {}
    let seen_cell = std::cell::Cell::new("");
    let seen = &seen_cell;
    let s = Box::try_init(init!(Small { n: 1, probe <- Probe(seen) }? Failed)).unwrap();
    assert_eq!((s.n, s.probe, seen.get()), (1, 0, "zeroed it"));
    let s =
        Box::try_init(init!(Small { probe <- Probe(seen), ..Zeroable::zeroed() }? Failed)).unwrap();
    assert_eq!((s.n, s.probe, seen.get()), (0, 0, "skipped"));
    // Large allocations come zero-filled from the allocator, so the field's zeroing is skipped too.
    let l = Box::try_init(init!(Large { probe <- Probe(seen), bytes <- init_zeroed() }? Failed))
        .unwrap();
    assert_eq!((l.probe, l.bytes[1 << 20], seen.get()), (0, 0, "skipped"));
    let l =
        Arc::try_init(init!(Large { probe <- Probe(seen), bytes: [0; 2 << 20] }? Failed)).unwrap();
    assert_eq!((l.probe, seen.get()), (0, "skipped"));
}

#[test]
fn zero_sized_values_need_no_memory() {
    struct Marker;
    struct Empty {}
    let b = Box::init(init!(Empty {})).unwrap();
    let _: &Empty = &b;
    let a = Arc::init(value::<Marker, core::convert::Infallible>(Marker)).unwrap();
    let _: &Marker = &a;
    let s: Box<[Marker]> = Box::init_slice(3, |_| value(Marker)).unwrap();
    assert_eq!(s.len(), 3);
    let mut v: Vec<Marker> = Vec::new();
    v.push_init(value(Marker)).unwrap();
    assert_eq!(v.len(), 1);
}
