//! Field-level building blocks that `pin_init!`, `init!` and `#[pin_data]` expand to.
//!
//! Public so that macro expansions in other crates can reach them; hand-written code should prefer the
//! safe [`init_by`](crate::init_by) / [`pin_init_by`](crate::pin_init_by).
//!
//! Every item here that is `unsafe` documents the invariant the macros uphold when calling it.

use core::marker::PhantomData;
use core::pin::Pin;

use crate::traits::ClosureInit;
use crate::{Init, PinInit};

/// Implemented by `#[pin_data]`: gives `pin_init!` the per-field markers saying which fields are pinned.
///
/// # Safety
///
/// `PinData` must mark exactly the `#[pin]` fields pinned ([`PinnedField`]) and all others unpinned, and each
/// marker's type parameter must be its field's type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be built with `pin_init!`: it is not declared with `#[pin_data]`",
    label = "`{Self}` has no `#[pin_data]`",
    note = "add `#[pinit::pin_data]` to the declaration of `{Self}`, or build it with `init!` if no field needs pinning"
)]
pub unsafe trait HasPinData {
    /// The field markers.
    type PinData: PinDataOf<Datee = Self>;

    /// # Safety
    ///
    /// Only the macros of this crate call it.
    unsafe fn __pin_data() -> Self::PinData;
}

/// The field markers of one `#[pin_data]` type; makes the initialiser closure's slot type that type.
///
/// # Safety
///
/// `Datee` is the type the markers describe.
pub unsafe trait PinDataOf: Copy {
    /// The described type.
    type Datee: ?Sized;

    /// Returns `f` unchanged, fixing its slot type to `*mut Self::Datee`.
    fn make_closure<F, E>(self, f: F) -> F
    where
        F: FnOnce(*mut Self::Datee, bool) -> Result<EveryFieldInitialised, E>,
    {
        f
    }
}

/// What `init!` uses: any type can be built field by field without pinning.
#[derive(Debug)]
pub struct InitData<T: ?Sized>(PhantomData<fn(*mut T) -> *mut T>);

impl<T: ?Sized> Clone for InitData<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized> Copy for InitData<T> {}

// SAFETY: `InitData<T>` describes `T`.
unsafe impl<T: ?Sized> PinDataOf for InitData<T> {
    type Datee = T;
}

/// The pin data of the type a never-called struct-literal closure builds (so its generics are inferred).
///
/// # Safety
///
/// Only this crate's macros call it.
pub unsafe fn pin_data_of<T: HasPinData>(_witness: impl FnOnce() -> T) -> T::PinData {
    // SAFETY: forwarded from the caller.
    unsafe { T::__pin_data() }
}

/// The field markers `init!` uses for the type a never-called struct-literal closure builds.
pub fn init_data_of<T>(_witness: impl FnOnce() -> T) -> InitData<T> {
    InitData(PhantomData)
}

/// A reference to the value under construction, for compile-time checks in code that never runs (a
/// reference to a field of a `#[repr(packed)]` struct does not compile, which rejects packed structs).
///
/// # Panics
///
/// Always: the macros only call it inside closures that are never called.
pub fn never_called<'a, T: ?Sized>(slot: *mut T) -> &'a T {
    let _ = slot;
    unreachable!("pinit: a compile-time check was executed")
}

/// The field markers of `T`, for [`assert_pinned!`](crate::assert_pinned). The markers only describe the
/// fields; everything that uses them to touch memory is `unsafe`.
pub fn pin_data_for_check<T: HasPinData + ?Sized>() -> T::PinData {
    // SAFETY: the markers are inert descriptions of `T`'s fields; this crate's macros only compare their types.
    unsafe { T::__pin_data() }
}

/// What the macros' initialiser closure returns on success.
///
/// Only the macros make one (after the last field), from an [`InitToken`]: so a `return Ok(..)`
/// written by the user inside a field's expression or a `_: { .. }` block, which would skip the remaining
/// fields, does not compile.
#[derive(Debug)]
pub struct EveryFieldInitialised(());

/// Held by the field-by-field expansion of `pin_init!` / `init!`, under a name user code cannot see: arming
/// a drop guard and reporting success need it, so the macros' later steps cannot be driven by hand without
/// `unsafe`.
#[derive(Debug, Clone, Copy)]
pub struct InitToken(());

impl InitToken {
    /// # Safety
    ///
    /// Only the macros make one, for an expansion that initialises every field and arms each guard on an
    /// initialised field of the slot.
    #[doc(hidden)]
    pub unsafe fn new() -> Self {
        Self(())
    }

    /// Reports that every field of the slot is initialised.
    pub fn finish(self) -> EveryFieldInitialised {
        EveryFieldInitialised(())
    }
}

/// Turns the macros' closure into a pinned initialiser.
///
/// # Safety
///
/// `f(slot, already_zeroed)` keeps the [`PinInit`] contract; if `zero_first`, it starts by zeroing the slot
/// unless `already_zeroed`.
pub unsafe fn pin_init_from_macro<T: ?Sized, E>(
    f: impl FnOnce(*mut T, bool) -> Result<EveryFieldInitialised, E>,
    zero_first: bool,
) -> impl PinInit<T, E> {
    ClosureInit::new(move |slot, zeroed| f(slot, zeroed).map(drop), zero_first)
}

/// Turns the macros' closure into an unpinned initialiser.
///
/// # Safety
///
/// As for [`pin_init_from_macro`], and the value needs no pinning.
pub unsafe fn init_from_macro<T: ?Sized, E>(
    f: impl FnOnce(*mut T, bool) -> Result<EveryFieldInitialised, E>,
    zero_first: bool,
) -> impl Init<T, E> {
    ClosureInit::new(move |slot, zeroed| f(slot, zeroed).map(drop), zero_first)
}

/// Marks a `#[pin]` field: it takes pinned initialisers and is seen as `Pin<&mut T>` afterwards.
pub struct PinnedField<T: ?Sized>(PhantomData<fn(*mut T) -> *mut T>);

/// Marks a field without `#[pin]`: it takes only unpinned initialisers and is seen as `&mut T` afterwards.
pub struct UnpinnedField<T: ?Sized>(PhantomData<fn(*mut T) -> *mut T>);

macro_rules! marker_basics {
    ($m:ident) => {
        impl<T: ?Sized> Clone for $m<T> {
            fn clone(&self) -> Self {
                *self
            }
        }
        impl<T: ?Sized> Copy for $m<T> {}
        impl<T: ?Sized> core::fmt::Debug for $m<T> {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(stringify!($m))
            }
        }
        impl<T: ?Sized> $m<T> {
            /// # Safety
            ///
            /// Only `#[pin_data]` makes markers, matching the field's declaration.
            pub const unsafe fn new() -> Self {
                Self(PhantomData)
            }
        }
    };
}
marker_basics!(PinnedField);
marker_basics!(UnpinnedField);

impl<T: ?Sized> PinnedField<T> {
    /// The field's place inside `slot`; `at` is the macros' `|s| &raw mut (*s).field`.
    ///
    /// # Safety
    ///
    /// `slot` points to a value under initialisation (so `at` may project into it).
    pub unsafe fn field_ptr<S>(self, slot: *mut S, at: impl FnOnce(*mut S) -> *mut T) -> *mut T {
        at(slot)
    }
}

impl<T: ?Sized> UnpinnedField<T> {
    /// As [`PinnedField::field_ptr`].
    ///
    /// # Safety
    ///
    /// As for [`PinnedField::field_ptr`].
    pub unsafe fn field_ptr<S>(self, slot: *mut S, at: impl FnOnce(*mut S) -> *mut T) -> *mut T {
        at(slot)
    }
}

/// Generates the markers of the fields of an enum's tuple variant. Such a variant is built through its
/// layout struct, whose field 0 is the tag, so the user's field `i` is the layout's field `i + 1`: the marker
/// carries that projection (made by `#[pin_data]`) and ignores the macros' `(*s).i`.
macro_rules! variant_marker {
    ($name:ident, $field:ident, $writer:ident, $projected:ty) => {
        #[doc = concat!("A field of an enum's tuple variant, like [`", stringify!($field), "`].")]
        pub struct $name<T: ?Sized, L> {
            field: $field<T>,
            at: fn(*mut L) -> *mut T,
        }

        impl<T: ?Sized, L> Clone for $name<T, L> {
            fn clone(&self) -> Self {
                *self
            }
        }

        impl<T: ?Sized, L> Copy for $name<T, L> {}

        impl<T: ?Sized, L> core::fmt::Debug for $name<T, L> {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(stringify!($name))
            }
        }

        impl<T: ?Sized, L> $name<T, L> {
            /// # Safety
            ///
            /// Only `#[pin_data]` makes markers, matching the field's declaration; `at` maps a pointer to
            /// the variant's layout to this field, and is called only with pointers to such a layout.
            pub const unsafe fn new(at: fn(*mut L) -> *mut T) -> Self {
                Self {
                    // SAFETY: forwarded from the caller.
                    field: unsafe { $field::new() },
                    at,
                }
            }

            /// The field's place inside the variant's layout at `slot`.
            ///
            /// # Safety
            ///
            /// `slot` points to the variant's layout inside a slot under initialisation.
            pub unsafe fn field_ptr<X: ?Sized>(
                self,
                slot: *mut L,
                _at: impl FnOnce(*mut L) -> *mut X,
            ) -> *mut T {
                (self.at)(slot)
            }

            /// As for the plain field marker.
            ///
            /// # Safety
            ///
            /// As for the plain field marker.
            pub unsafe fn writer<'a>(self, slot: *mut T, zeroed: bool) -> $writer<'a, T> {
                // SAFETY: forwarded from the caller.
                unsafe { self.field.writer(slot, zeroed) }
            }

            /// As for the plain field marker.
            ///
            /// # Safety
            ///
            /// As for the plain field marker.
            #[allow(clippy::mut_from_ref)] // `anchor` only bounds the lifetime.
            pub unsafe fn project<'a, A: ?Sized>(self, anchor: &'a A, slot: *mut T) -> $projected {
                // SAFETY: forwarded from the caller.
                unsafe { self.field.project(anchor, slot) }
            }
        }
    };
}
variant_marker!(
    PinnedVariantField,
    PinnedField,
    PinnedFieldWriter,
    Pin<&'a mut T>
);
variant_marker!(
    UnpinnedVariantField,
    UnpinnedField,
    UnpinnedFieldWriter,
    &'a mut T
);

impl<T: ?Sized> PinnedField<T> {
    /// Binds the marker to the field's memory, for one initialisation.
    ///
    /// # Safety
    ///
    /// `slot` points to this uninitialised field inside a slot under initialisation; if `zeroed`, its bytes
    /// are all zero. `'a` does not outlive the slot.
    pub unsafe fn writer<'a>(self, slot: *mut T, zeroed: bool) -> PinnedFieldWriter<'a, T> {
        PinnedFieldWriter {
            slot,
            zeroed,
            _field: PhantomData,
        }
    }

    /// Sees the initialised field pinned, for as long as `anchor` (a local of the initialiser) is borrowed,
    /// so the reference cannot outlive the initialiser (for example by being stored in a `static`).
    ///
    /// # Safety
    ///
    /// `slot` points to this initialised field of a value that stays pinned and outlives `anchor`.
    #[allow(clippy::mut_from_ref, clippy::needless_lifetimes)] // `anchor` only bounds the lifetime.
    pub unsafe fn project<'a, A: ?Sized>(self, anchor: &'a A, slot: *mut T) -> Pin<&'a mut T> {
        let _ = anchor;
        // SAFETY: forwarded from the caller.
        let field = unsafe { &mut *slot };
        // SAFETY: the enclosing value is pinned, and so is this `#[pin]` field.
        unsafe { Pin::new_unchecked(field) }
    }
}

impl<T: ?Sized> UnpinnedField<T> {
    /// Binds the marker to the field's memory, for one initialisation.
    ///
    /// # Safety
    ///
    /// As for [`PinnedField::writer`].
    pub unsafe fn writer<'a>(self, slot: *mut T, zeroed: bool) -> UnpinnedFieldWriter<'a, T> {
        UnpinnedFieldWriter {
            slot,
            zeroed,
            _field: PhantomData,
        }
    }

    /// Sees the initialised field, for as long as `anchor` is borrowed (see [`PinnedField::project`]).
    ///
    /// # Safety
    ///
    /// `slot` points to this initialised field, which outlives `anchor`.
    #[allow(clippy::mut_from_ref, clippy::needless_lifetimes)] // `anchor` only bounds the lifetime.
    pub unsafe fn project<'a, A: ?Sized>(self, anchor: &'a A, slot: *mut T) -> &'a mut T {
        let _ = anchor;
        // SAFETY: forwarded from the caller.
        unsafe { &mut *slot }
    }
}

/// Sees an initialised field (`init!`) for as long as `anchor` is borrowed (see [`PinnedField::project`]).
///
/// # Safety
///
/// `slot` points to an initialised field, which outlives `anchor`.
#[allow(clippy::mut_from_ref, clippy::needless_lifetimes)] // `anchor` only bounds the lifetime.
pub unsafe fn project_field<'a, T: ?Sized, A: ?Sized>(anchor: &'a A, slot: *mut T) -> &'a mut T {
    let _ = anchor;
    // SAFETY: forwarded from the caller.
    unsafe { &mut *slot }
}

/// Drops one initialised field again if initialisation stops early (error or panic).
#[derive(Debug)]
pub struct DropGuard<T: ?Sized>(*mut T);

impl<T: ?Sized> DropGuard<T> {
    /// # Safety
    ///
    /// `slot` holds an initialised value that nothing else will drop until the guard is forgotten.
    pub unsafe fn new(token: InitToken, slot: *mut T) -> Self {
        let _ = token;
        Self(slot)
    }
}

impl<T: ?Sized> Drop for DropGuard<T> {
    fn drop(&mut self) {
        // SAFETY: the constructor's contract: the field is initialised and this guard is its only dropper.
        unsafe { core::ptr::drop_in_place(self.0) }
    }
}

/// Makes the slot pointer non-null for `&this in` (slots always are).
///
/// # Safety
///
/// `slot` is non-null.
pub unsafe fn this_ptr<T: ?Sized>(slot: *mut T) -> core::ptr::NonNull<T> {
    // SAFETY: forwarded from the caller.
    unsafe { core::ptr::NonNull::new_unchecked(slot) }
}

/// One `#[pin]` field, ready to be initialised exactly once (consumed by it).
#[derive(Debug)]
pub struct PinnedFieldWriter<'a, T: ?Sized> {
    slot: *mut T,
    zeroed: bool,
    _field: PhantomData<&'a mut T>,
}

/// One field without `#[pin]`, ready to be initialised exactly once (consumed by it).
#[derive(Debug)]
pub struct UnpinnedFieldWriter<'a, T: ?Sized> {
    slot: *mut T,
    zeroed: bool,
    _field: PhantomData<&'a mut T>,
}

impl<T: ?Sized> PinnedFieldWriter<'_, T> {
    /// Runs a pinned initialiser into the field.
    pub fn init<E>(self, init: impl PinInit<T, E>) -> Result<(), E> {
        if self.zeroed && init.starts_zeroed() {
            // SAFETY: `writer`'s contract: the field is writable, uninitialised and (here) all zero.
            unsafe { init.__pinned_init_on_zeroed(self.slot) }
        } else {
            // SAFETY: `writer`'s contract: the field is writable and uninitialised.
            unsafe { init.__pinned_init(self.slot) }
        }
    }
}

impl<T: ?Sized> UnpinnedFieldWriter<'_, T> {
    /// Runs an unpinned initialiser into the field.
    pub fn init<E>(self, init: impl Init<T, E>) -> Result<(), E> {
        if self.zeroed && init.starts_zeroed() {
            // SAFETY: `writer`'s contract: the field is writable, uninitialised and (here) all zero.
            unsafe { init.__init_on_zeroed(self.slot) }
        } else {
            // SAFETY: `writer`'s contract: the field is writable and uninitialised.
            unsafe { init.__init(self.slot) }
        }
    }
}

/// `field <- initialiser` in the macros: runs `Self` into the field `W` writes, as a pinned initialiser
/// into a `#[pin]` field and as an unpinned one into any other.
///
/// A trait rather than a bound on the writers' methods, so that a wrong initialiser is reported on the
/// user's expression alone, with no note pointing at the bound inside this crate.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot initialise this field with error type `{E}`",
    label = "not an initialiser of this field's type",
    note = "a pinned initialiser (`PinInit`) only fits a `#[pin]` field of a `#[pin_data]` type built with `pin_init!`",
    note = "to move a plain value in, write `field: value` or use `pinit::value(..)`",
    note = "a `field <- initialiser` converts the initialiser's error into the enclosing error type with `From`"
)]
pub trait InitField<W, E> {
    /// Runs the initialiser into the field.
    fn init_field(self, field: W) -> Result<(), E>;
}

#[diagnostic::do_not_recommend]
impl<'a, T: ?Sized, E, I: PinInit<T, E>> InitField<PinnedFieldWriter<'a, T>, E> for I {
    fn init_field(self, field: PinnedFieldWriter<'a, T>) -> Result<(), E> {
        field.init(self)
    }
}

#[diagnostic::do_not_recommend]
impl<'a, T: ?Sized, E, I: Init<T, E>> InitField<UnpinnedFieldWriter<'a, T>, E> for I {
    fn init_field(self, field: UnpinnedFieldWriter<'a, T>) -> Result<(), E> {
        field.init(self)
    }
}

/// A field's value as the macros pass it: a struct literal is a coercion site whose field is checked
/// against the field's type, so a value of the wrong type is reported on the user's expression alone.
#[derive(Debug)]
pub struct FieldValue<T> {
    /// The value.
    pub value: T,
}

// Written out twice rather than by a local macro, so that a wrong field value's error note names no macro.
impl<T> PinnedFieldWriter<'_, T> {
    /// Moves a value into the field.
    pub fn write(self, value: FieldValue<T>) {
        // SAFETY: `writer`'s contract: the field is writable and uninitialised.
        unsafe { self.slot.write(value.value) }
    }
}

impl<T: Copy, const N: usize> PinnedFieldWriter<'_, [T; N]> {
    /// Fills an array field element by element (`field: [value; N]`), so the array never exists on
    /// the stack. `len` carries the `N` written by the user, which must be the field's length.
    pub fn fill(self, value: FieldValue<T>, len: [(); N]) {
        let (value, _) = (value.value, len);
        // SAFETY: `writer`'s contract: the field is writable; `MaybeUninit` elements need no prior
        // initialisation.
        let elements = unsafe { &mut *self.slot.cast::<[core::mem::MaybeUninit<T>; N]>() };
        elements.fill(core::mem::MaybeUninit::new(value));
    }
}

impl<T> UnpinnedFieldWriter<'_, T> {
    /// Moves a value into the field.
    pub fn write(self, value: FieldValue<T>) {
        // SAFETY: `writer`'s contract: the field is writable and uninitialised.
        unsafe { self.slot.write(value.value) }
    }
}

impl<T: Copy, const N: usize> UnpinnedFieldWriter<'_, [T; N]> {
    /// Fills an array field element by element (`field: [value; N]`), so the array never exists on
    /// the stack. `len` carries the `N` written by the user, which must be the field's length.
    pub fn fill(self, value: FieldValue<T>, len: [(); N]) {
        let (value, _) = (value.value, len);
        // SAFETY: `writer`'s contract: the field is writable; `MaybeUninit` elements need no prior
        // initialisation.
        let elements = unsafe { &mut *self.slot.cast::<[core::mem::MaybeUninit<T>; N]>() };
        elements.fill(core::mem::MaybeUninit::new(value));
    }
}

/// Implemented by `#[pin_data]` for its type without `PinnedDrop`; also implemented for every `Drop` type, so
/// a `Drop` impl on a `#[pin_data]` type (which could move pinned fields) conflicts with it.
#[doc(hidden)]
pub trait ImplementPinnedDropInsteadOfDrop {}

#[allow(drop_bounds)]
impl<T: Drop + ?Sized> ImplementPinnedDropInsteadOfDrop for T {}

/// Like [`ImplementPinnedDropInsteadOfDrop`] for `PinnedDrop`: a `#[pinned_drop]` impl needs
/// `#[pin_data(PinnedDrop)]`.
#[doc(hidden)]
pub trait PinnedDropNeedsPinDataPinnedDrop {}

impl<T: crate::PinnedDrop + ?Sized> PinnedDropNeedsPinDataPinnedDrop for T {}

/// The result of a sub-initialiser inside `pin_init!`/`init!`, converted into the enclosing error type.
///
/// An error `E` converts with `From` (as `?` does); an `Infallible` one converts into any error type, so an
/// infallible initialiser fits any `pin_init!(.. ? Error)` even when `Error` has no `From<Infallible>` (such
/// as `std::io::Error`). The `Infallible` case is an inherent method, which method resolution prefers.
#[derive(Debug)]
pub struct InitResult<E>(pub Result<(), E>);

impl InitResult<core::convert::Infallible> {
    /// No error can occur.
    pub fn into_error<E2>(self) -> Result<(), E2> {
        match self.0 {
            Ok(()) => Ok(()),
            Err(never) => match never {},
        }
    }
}

/// The other errors of [`InitResult`]: returned as they are, for the macros' `?` to convert with `From` (so
/// a missing conversion is reported by `?` itself).
pub trait ConvertInitError<E> {
    /// The result, unchanged (`E2` is the enclosing error type, which `?` converts into).
    fn into_error<E2>(self) -> Result<(), E>;
}

impl<E> ConvertInitError<E> for InitResult<E> {
    fn into_error<E2>(self) -> Result<(), E> {
        self.0
    }
}

/// Implemented by every type: `Path::names_a_type_not_a_variant` compiles only if `Path` names a type (a
/// struct), not an enum variant, so `init!` rejects `init!(Enum::Variant { .. })`.
pub trait NamesAType: Sized {
    /// Does nothing; ties the type to the never-called struct-literal closure.
    fn names_a_type_not_a_variant(witness: impl FnOnce() -> Self) {
        let _ = witness;
    }
}

impl<T> NamesAType for T {}
