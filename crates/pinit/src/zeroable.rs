//! `Zeroable`: types for which all-zero bytes are a valid value, and the `zeroed()` initialiser.

use core::cell::{Cell, UnsafeCell};
use core::marker::{PhantomData, PhantomPinned};
use core::mem::{ManuallyDrop, MaybeUninit};
use core::num::{NonZero, Wrapping};
use core::ptr::NonNull;

use crate::Init;
use crate::traits::ClosureInit;

/// Types whose all-zero bit pattern is a valid value.
///
/// Derive it with `#[derive(Zeroable)]` (every field must be `Zeroable`; `#[derive(MaybeZeroable)]`
/// implements it only when they are) and use it with [`init_zeroed`] or `..Zeroable::init_zeroed()` at the
/// end of [`init!`](crate::init) / [`pin_init!`](crate::pin_init).
///
/// # Safety
///
/// A value whose bytes are all zero must be a valid value of the type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not known to be valid when all its bytes are zero",
    label = "`{Self}` does not implement `Zeroable`",
    note = "add `#[derive(pinit::Zeroable)]` to `{Self}` if all of its fields are `Zeroable`"
)]
pub unsafe trait Zeroable {
    /// An initialiser that fills the slot with zero bytes without building the value anywhere else
    /// (see [`init_zeroed`]).
    fn init_zeroed() -> impl Init<Self>
    where
        Self: Sized,
    {
        init_zeroed()
    }

    /// The all-zero value, built on the stack. Prefer [`Zeroable::init_zeroed`] for large types.
    fn zeroed() -> Self
    where
        Self: Sized,
    {
        zeroed()
    }
}

/// Types `T` for which `Option<T>` is `None` when all its bytes are zero (so `Option<T>: Zeroable`).
///
/// # Safety
///
/// The all-zero bit pattern of `Option<Self>` must be `None`.
pub unsafe trait ZeroableOption {}

// SAFETY: the all-zero `Option<T>` is `None` (the contract of `ZeroableOption`).
unsafe impl<T: ZeroableOption> Zeroable for Option<T> {}

/// An initialiser that fills its slot with zero bytes.
///
/// Allocators see that it [starts zeroed](crate::PinInit::starts_zeroed) and ask the system for zeroed memory
/// instead (`alloc_zeroed`), so zeroing a 1 GiB `Box` touches no page. Its error type is `Infallible`; a
/// `field <- init_zeroed()` inside a fallible initialiser converts it with `From`.
///
/// ```
/// use pinit::{InPlaceInit, init_zeroed};
/// let big: Box<[u64; 1 << 20]> = Box::init(init_zeroed()).unwrap();
/// assert!(big.iter().all(|&x| x == 0));
/// ```
pub fn init_zeroed<T: Zeroable>() -> impl Init<T> {
    let fill = |slot: *mut T, already_zeroed: bool| {
        if !already_zeroed {
            // SAFETY: the slot is valid for writes (initialiser contract); zero bytes are a valid `T`.
            unsafe { slot.write_bytes(0, 1) };
        }
        Ok(())
    };
    ClosureInit::new(fill, true)
}

/// The all-zero value of `T`, built on the stack (use [`init_zeroed`] to zero a value in place).
///
/// ```
/// let none: Option<&u8> = pinit::zeroed();
/// assert!(none.is_none());
/// ```
pub const fn zeroed<T: Zeroable>() -> T {
    // SAFETY: the trait's contract says all-zero bytes are a valid `T`.
    unsafe { core::mem::zeroed() }
}

macro_rules! zeroable {
    ($($(#[$why:meta])* {$($g:tt)*} $t:ty;)*) => {$(
        $(#[$why])*
        // SAFETY: all-zero bytes are a valid value of this type (see each group's comment).
        unsafe impl<$($g)*> Zeroable for $t {}
    )*};
}

zeroable! {
    // Integers, floats, `bool` (false), `char` ('\0') and the unit type.
    {} u8; {} u16; {} u32; {} u64; {} u128; {} usize;
    {} i8; {} i16; {} i32; {} i64; {} i128; {} isize;
    {} f32; {} f64; {} bool; {} char; {} ();
    // Inhabited zero-sized markers (never an uninhabited type such as `Infallible`).
    {T: ?Sized} PhantomData<T>; {} PhantomPinned;
    // Any bytes are a valid `MaybeUninit`; the others are `repr(transparent)` over a zeroable value.
    {T} MaybeUninit<T>; {T: ?Sized + Zeroable} ManuallyDrop<T>; {T: Zeroable} Wrapping<T>;
    {T: ?Sized + Zeroable} UnsafeCell<T>; {T: ?Sized + Zeroable} Cell<T>;
    // Null thin pointers. Not `T: ?Sized`: the metadata of a pointer to a trait object (its vtable
    // pointer) must not be null. A slice or `str` pointer's metadata is its length, which may be zero.
    {T} *mut T; {T} *const T;
    {T} *mut [T]; {T} *const [T]; {} *mut str; {} *const str;
    // Arrays and slices of zeroable values.
    {T: Zeroable, const N: usize} [T; N]; {T: Zeroable} [T];
    // Atomics have the in-memory representation of the integer (or pointer) they hold.
    {} core::sync::atomic::AtomicBool;
    {} core::sync::atomic::AtomicU8; {} core::sync::atomic::AtomicU16; {} core::sync::atomic::AtomicU32;
    {} core::sync::atomic::AtomicU64; {} core::sync::atomic::AtomicUsize;
    {} core::sync::atomic::AtomicI8; {} core::sync::atomic::AtomicI16; {} core::sync::atomic::AtomicI32;
    {} core::sync::atomic::AtomicI64; {} core::sync::atomic::AtomicIsize;
    {T} core::sync::atomic::AtomicPtr<T>;
}

macro_rules! zeroable_option {
    ($($(#[$why:meta])* {$($g:tt)*} $t:ty;)*) => {$(
        $(#[$why])*
        // SAFETY: std's documented `Option` representation guarantees that `None` is all zero bytes for
        // `&T`, `&mut T`, `NonNull<T>`, `Box<T>` (each with `T: Sized`), `NonZero<_>` and function pointers.
        unsafe impl<$($g)*> ZeroableOption for $t {}
    )*};
}

zeroable_option! {
    {'a, T} &'a T; {'a, T} &'a mut T; {T} NonNull<T>;
    {} NonZero<u8>; {} NonZero<u16>; {} NonZero<u32>; {} NonZero<u64>; {} NonZero<u128>; {} NonZero<usize>;
    {} NonZero<i8>; {} NonZero<i16>; {} NonZero<i32>; {} NonZero<i64>; {} NonZero<i128>; {} NonZero<isize>;
}

#[cfg(feature = "alloc")]
zeroable_option! {
    {T} alloc::boxed::Box<T>;
}

/// Tuples of zeroable values (padding may be anything, so zero too).
macro_rules! zeroable_tuples {
    ($first:ident $(, $rest:ident)*) => {
        // SAFETY: every element is zeroable and padding bytes carry no validity requirement.
        unsafe impl<$first: Zeroable $(, $rest: Zeroable)*> Zeroable for ($first, $($rest,)*) {}
        zeroable_tuples!($($rest),*);
    };
    () => {};
}

zeroable_tuples!(A, B, C, D, E, F, G, H, I, J, K, L);

/// `Option` of a function pointer of any of these ABIs, safe or `unsafe`, with up to 20 arguments.
macro_rules! zeroable_fn_options {
    ($abi:literal; $ret:ident; $($arg:ident),*) => {
        zeroable_fn_options!(@arity $abi; $ret; $($arg),*);
    };
    (@arity $abi:literal; $ret:ident; $first:ident $(, $rest:ident)*) => {
        zeroable_fn_options!(@one $abi; $ret; $first $(, $rest)*);
        zeroable_fn_options!(@arity $abi; $ret; $($rest),*);
    };
    (@arity $abi:literal; $ret:ident; ) => {
        zeroable_fn_options!(@one $abi; $ret; );
    };
    (@one $abi:literal; $ret:ident; $($arg:ident),*) => {
        // SAFETY: std guarantees that `Option` of a function pointer is `None` when null.
        unsafe impl<$ret, $($arg),*> ZeroableOption for extern $abi fn($($arg),*) -> $ret {}
        // SAFETY: as above.
        unsafe impl<$ret, $($arg),*> ZeroableOption for unsafe extern $abi fn($($arg),*) -> $ret {}
    };
}

zeroable_fn_options!("Rust"; R; A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13, A14, A15, A16, A17, A18, A19, A20);
zeroable_fn_options!("C"; R; A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13, A14, A15, A16, A17, A18, A19, A20);
