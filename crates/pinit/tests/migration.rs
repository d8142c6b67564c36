//! What code written for pinned-init (and the kernel's pin-init) relies on: sub-initialiser errors
//! converted with `From`, plain values as initialisers, `#[default_error]`, `assert_pinned!`, the
//! `Zeroable` names and impls, and the stack macros' binding forms.

use core::cell::UnsafeCell;
use core::convert::Infallible;
use core::marker::PhantomPinned;
use core::pin::Pin;
use std::io;

use pinit::*;

/// A lock whose constructor cannot fail (like the kernel's `new_mutex!`).
#[pin_data]
struct Lock<T> {
    #[pin]
    value: UnsafeCell<T>,
    #[pin]
    _pin: PhantomPinned,
}

fn new_lock<T>(value: T) -> impl PinInit<Lock<T>> {
    pin_init!(Lock {
        value: UnsafeCell::new(value),
        _pin: PhantomPinned
    })
}

/// An error type with no `From<Infallible>`.
#[derive(Debug)]
struct DeviceError(&'static str);

impl From<AllocError> for DeviceError {
    fn from(_: AllocError) -> Self {
        DeviceError("no memory")
    }
}

impl From<io::Error> for DeviceError {
    fn from(_: io::Error) -> Self {
        DeviceError("io")
    }
}

#[pin_data]
struct Device {
    #[pin]
    state: Lock<u32>,
    #[pin]
    name: Lock<String>,
    irq: u32,
}

impl Device {
    /// The kernel's pattern: infallible sub-initialisers inside a fallible initialiser, unchanged.
    fn new(irq: u32) -> impl PinInit<Self, DeviceError> {
        try_pin_init!(Device {
            state <- new_lock(0),
            name <- new_lock(String::from("eth0")),
            irq: if irq < 16 { irq } else { return Err(DeviceError("irq")) },
        }? DeviceError)
    }
}

fn io_failure() -> impl PinInit<Lock<u32>, io::Error> {
    // SAFETY: it never writes the slot and reports failure, so the slot stays uninitialised.
    unsafe { pin_init_from_closure(|_| Err(io::Error::other("no device"))) }
}

#[test]
fn infallible_sub_initialisers_fit_any_error_type() {
    let d = Box::try_pin_init(Device::new(5)).unwrap();
    assert_eq!(d.irq, 5);
    assert!(matches!(
        Box::try_pin_init(Device::new(99)),
        Err(DeviceError("irq"))
    ));
}

#[test]
fn sub_initialiser_errors_convert_with_from() {
    let r = Box::try_pin_init(try_pin_init!(Device {
        state <- io_failure(),
        name <- new_lock(String::new()),
        irq: 1,
    }? DeviceError));
    assert!(matches!(r, Err(DeviceError("io"))));
}

#[test]
fn values_and_results_are_initialisers() {
    let b: Box<u32> = Box::init(7u32).unwrap();
    assert_eq!(*b, 7);
    let r: Result<Box<u32>, AllocError> = Box::try_init(Ok::<u32, AllocError>(8));
    assert_eq!(*r.unwrap(), 8);
    let e: Result<Box<u32>, AllocError> = Box::try_init(Err::<u32, AllocError>(AllocError));
    assert_eq!(e.err(), Some(AllocError));
    struct Pair {
        a: u8,
        b: String,
    }
    let p = Box::init(init!(Pair { a <- 1u8, b <- String::from("x") })).unwrap();
    assert_eq!((p.a, p.b.as_str()), (1, "x"));
}

#[derive(Debug, PartialEq)]
struct Refused;

#[test]
fn default_error_applies_without_an_explicit_one() {
    struct Port {
        number: u16,
    }
    fn port(n: u32) -> impl Init<Port, Refused> {
        init!(
            #[default_error(Refused)]
            Port {
                number: u16::try_from(n).map_err(|_| Refused)?
            }
        )
    }
    fn pinned(n: u32) -> impl PinInit<Lock<u16>, Refused> {
        pin_init!(
            #[default_error(Refused)]
            Lock {
                value: UnsafeCell::new(u16::try_from(n).map_err(|_| Refused)?),
                _pin: PhantomPinned,
            }
        )
    }
    stack_try_pin_init!(let p = port(80));
    assert_eq!(p.map(|p| p.number), Ok(80));
    stack_try_pin_init!(let q: Port = port(1 << 20));
    assert!(q.is_err());
    stack_try_pin_init!(let l = pinned(1 << 20));
    assert!(l.is_err());
    // An explicit `? Error` still wins.
    fn infallible(_: impl Init<Port, Infallible>) {}
    infallible(init!(#[default_error(Refused)] Port { number: 1 }? Infallible));
}

#[test]
fn stack_macros_bind_like_pinned_init() {
    fn parse(s: &str) -> Result<u16, std::num::ParseIntError> {
        stack_try_pin_init!(let port: u16 =? Ok::<u16, std::num::ParseIntError>(s.parse()?));
        let port: Pin<&mut u16> = port;
        Ok(*port)
    }
    assert_eq!(parse("443"), Ok(443));
    assert!(parse("x").is_err());
    stack_pin_init!(let n: u64 = 5);
    n.set(6);
    assert_eq!(*n, 6);
}

#[pin_data]
struct Waiter {
    #[pin]
    node: PhantomPinned,
    id: u32,
}
assert_pinned!(Waiter, node, PhantomPinned);

#[test]
fn zeroable_names_and_impls() {
    type Ops = Option<unsafe extern "C" fn(*mut u8, usize, u32, i64, *const u8) -> i32>;
    #[derive(Zeroable)]
    struct Table {
        open: Ops,
        close: Option<fn(u8, u8, u8) -> u8>,
        next: Option<&'static Table>,
        raw: *const [u8],
    }
    let t: Table = zeroed();
    assert!(t.open.is_none() && t.close.is_none() && t.next.is_none() && t.raw.is_null());
    let b: Box<Table> = Box::init(Table::init_zeroed()).unwrap();
    assert!(b.next.is_none());
    #[derive(MaybeZeroable)]
    struct Maybe {
        a: u32,
        b: Option<Box<u8>>,
    }
    #[derive(MaybeZeroable)]
    #[allow(dead_code)]
    struct Not {
        r: &'static u8,
    }
    let m: Maybe = Zeroable::zeroed();
    assert_eq!((m.a, m.b), (0, None));
}

#[test]
fn wrappers_and_casts() {
    let cell: Pin<Box<UnsafeCell<Lock<u8>>>> =
        Box::pin_init(UnsafeCell::pin_init(new_lock(3u8))).unwrap();
    // SAFETY: nothing else accesses the cell, so a shared reference to its contents is fine.
    let lock = unsafe { &*cell.get() };
    // SAFETY: as above, for the lock's value.
    assert_eq!(unsafe { *lock.value.get() }, 3);
    let raw: Box<core::mem::MaybeUninit<[u8; 64]>> =
        Box::init(uninit::<[u8; 64], Infallible>()).unwrap();
    drop(raw);
}

/// As in pinned-init, the closure constructors are `const fn`s, so a `static` can hold an initialiser.
const fn seven() -> impl PinInit<u32> {
    let write = |slot: *mut u32| {
        // SAFETY: the slot is valid for writes (initialiser contract).
        unsafe { slot.write(7) };
        Ok(())
    };
    // SAFETY: the closure initialises the slot and cannot fail.
    unsafe { pin_init_from_closure(write) }
}

#[test]
fn closure_initialisers_are_const() {
    let b: Pin<Box<u32>> = Box::pin_init(seven()).unwrap();
    assert_eq!(*b, 7);
}

/// The kernel's `try_pin_init!` is `pin_init!` with its `Error` as the default error type.
macro_rules! kernel_try_pin_init {
    ($($body:tt)*) => {
        pinit::pin_init!(#[default_error(DeviceError)] $($body)*)
    };
}

#[test]
fn a_kernel_style_wrapper_macro_with_a_default_error() {
    fn module() -> impl PinInit<Device, DeviceError> {
        kernel_try_pin_init!(Device {
            state <- new_lock(0),
            name <- new_lock(String::from("rust_inplace")),
            irq: 3,
        })
    }
    let d = Box::try_pin_init(module()).unwrap();
    assert_eq!(d.irq, 3);
}
