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
/// Derive it with `#[derive(Zeroable)]` (every field must be `Zeroable`) and use it with [`zeroed`] or
/// `..Zeroable::zeroed()` at the end of [`init!`](crate::init) / [`pin_init!`](crate::pin_init).
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
    /// The all-zero value, built on the stack. Prefer [`zeroed`] for large types, which never copies.
    fn zeroed() -> Self
    where
        Self: Sized,
    {
        // SAFETY: the trait's contract says all-zero bytes are a valid `Self`.
        unsafe { core::mem::zeroed() }
    }
}

/// An initialiser that fills its slot with zero bytes.
///
/// Allocators see that it [starts zeroed](crate::PinInit::starts_zeroed) and ask the system for zeroed memory
/// instead (`alloc_zeroed`), so zeroing a 1 GiB `Box` touches no page.
///
/// ```
/// use pinit::{InPlaceInit, zeroed};
/// let big = Box::init(zeroed::<[u64; 1 << 20], _>()).unwrap();
/// assert!(big.iter().all(|&x| x == 0));
/// ```
pub fn zeroed<T: Zeroable, E>() -> impl Init<T, E> {
    let fill = |slot: *mut T, already_zeroed: bool| {
        if !already_zeroed {
            // SAFETY: the slot is valid for writes (initialiser contract); zero bytes are a valid `T`.
            unsafe { slot.write_bytes(0, 1) };
        }
        Ok(())
    };
    ClosureInit::new(fill, true)
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
    // Markers and wrappers with no bytes of their own or whose bytes are the inner value's.
    {T: ?Sized} PhantomData<T>; {} PhantomPinned;
    {T} MaybeUninit<T>; {T: ?Sized + Zeroable} ManuallyDrop<T>; {T: Zeroable} Wrapping<T>;
    {T: ?Sized + Zeroable} UnsafeCell<T>; {T: ?Sized + Zeroable} Cell<T>;
    // Null pointers, and `None` through the null-pointer niche.
    {T: ?Sized} *mut T; {T: ?Sized} *const T;
    {T: ?Sized} Option<NonNull<T>>; {'a, T: ?Sized} Option<&'a T>; {'a, T: ?Sized} Option<&'a mut T>;
    {} Option<NonZero<u8>>; {} Option<NonZero<u16>>; {} Option<NonZero<u32>>; {} Option<NonZero<u64>>;
    {} Option<NonZero<u128>>; {} Option<NonZero<usize>>; {} Option<NonZero<i8>>; {} Option<NonZero<i16>>;
    {} Option<NonZero<i32>>; {} Option<NonZero<i64>>; {} Option<NonZero<i128>>; {} Option<NonZero<isize>>;
    // Arrays and tuples of zeroable values.
    {T: Zeroable, const N: usize} [T; N]; {T: Zeroable} [T];
    {A: Zeroable} (A,); {A: Zeroable, B: Zeroable} (A, B); {A: Zeroable, B: Zeroable, C: Zeroable} (A, B, C);
    {A: Zeroable, B: Zeroable, C: Zeroable, D: Zeroable} (A, B, C, D);
    // `Option<fn>` is `None` when null.
    {R} Option<fn() -> R>; {A, R} Option<fn(A) -> R>; {A, B, R} Option<fn(A, B) -> R>;
    {} core::sync::atomic::AtomicBool; {} core::sync::atomic::AtomicU8;
    {} core::sync::atomic::AtomicU16; {} core::sync::atomic::AtomicU32;
    {} core::sync::atomic::AtomicU64; {} core::sync::atomic::AtomicUsize;
    {} core::sync::atomic::AtomicI32; {} core::sync::atomic::AtomicI64;
    {T} core::sync::atomic::AtomicPtr<T>;
}

#[cfg(feature = "alloc")]
zeroable! {
    // `None` through the non-null niche of owning pointers.
    {T: ?Sized} Option<alloc::boxed::Box<T>>;
}
