//! `pin_init!`, `init!` and the stack macros.
//!
//! The field list is munched one field at a time into statements; each initialised field gets a drop guard
//! (kept in a nested tuple, newest first, so an early exit drops fields in reverse order) and a binding that
//! later fields may read. A never-called closure builds the struct literal with every field, so the compiler
//! itself reports missing, duplicate or unknown fields in the user's terms.

/// Builds a pinned initialiser for a `#[pin_data]` struct, field by field, in place.
///
/// Field forms: `field: value` moves a value in, `field <- initialiser` runs an initialiser in place (a
/// `#[pin]` field takes any [`PinInit`](crate::PinInit), others an [`Init`](crate::Init)), `field` is
/// `field: field`, `field: [x; N]` fills the array in place, `_: { code }` runs code between fields.
/// Initialised fields can be read by later ones under their own names (`&mut T`, or `Pin<&mut T>` for
/// `#[pin]` fields). `&this in Struct { .. }` binds `this: NonNull<Struct>` for self-references; a trailing
/// `..Zeroable::zeroed()` zeroes the rest; `? Error` sets the error type (default `Infallible`).
///
/// ```
/// use core::pin::Pin;
/// use core::marker::PhantomPinned;
/// use pinit::{InPlaceInit, pin_data, pin_init};
///
/// #[pin_data]
/// struct SelfRef {
///     value: u32,
///     double: u32,
///     me: *const SelfRef,
///     #[pin]
///     _pin: PhantomPinned,
/// }
///
/// let s = Box::pin_init(pin_init!(&this in SelfRef {
///     value: 21,
///     double: *value * 2,
///     me: this.as_ptr(),
///     _pin: PhantomPinned,
/// }))
/// .unwrap();
/// assert_eq!(s.double, 42);
/// assert!(core::ptr::eq(s.me, &*s));
/// ```
#[macro_export]
macro_rules! pin_init {
    // Internal steps (`@...`): kept in this macro so that compiler notes name only `pin_init`.
    (@build $mode:ident, ($($this:ident)?), ($($t:tt)*), (), ($default:ty), ($($fields:tt)*)) => {
        $crate::pin_init!(@build $mode, ($($this)?), ($($t)*), ($default), ($default), ($($fields)*))
    };
    (@build $mode:ident, ($($this:ident)?), ($($t:tt)*), ($err:ty), ($default:ty), ($($fields:tt)*)) => {{
        // The steps below need this token to arm drop guards and to report success; user code (and a
        // hand-written call of a later step) cannot name it, so skipping the field checks takes `unsafe`.
        // SAFETY: the token goes only to the field-by-field expansion started here.
        let token = unsafe { $crate::field::InitToken::new() };
        $crate::pin_init!(@fields
            @mode($mode) @this($($this)?) @ty($($t)*) @err($err)
            @names(slot, guards, data, zeroed, whole, token)
            @stmts() @check() @zero() @attrs()
            @rest($($fields)*)
        )
    }};
    // All fields done: emit the initialiser.
    (@fields @mode($mode:ident) @this($($this:ident)?) @ty(($($t:tt)*) $($variant:ident)?) @err($err:ty)
     @names($slot:ident, $guards:ident, $data:ident, $zeroed:ident, $whole:ident, $token:ident)
     @stmts($($stmts:tt)*) @check($($check:tt)*) @zero($($zero:ident)?) @attrs()
     @rest()) => {{
        // Never called: the struct literal makes the compiler check the field list (missing, unknown or
        // duplicate fields are reported in the user's terms) and names the type being built.
        #[allow(unreachable_code, clippy::diverging_sub_expression, clippy::redundant_field_names)]
        let witness = || $($t)* $(:: $variant)? { $($check)* $(..$crate::pin_init!(@zero_rest zeroed_value $zero))? };
        $crate::pin_init!(@struct_only ($($t)*) ($($variant)?) witness);
        let $data = $crate::pin_init!(@op data $mode, witness);
        let init = $crate::field::PinDataOf::make_closure::<_, $err>(
            $data,
            move |$whole, $zeroed| {
                $(
                    // SAFETY: slots handed to initialisers are never null.
                    let $this = unsafe { $crate::field::this_ptr($whole) };
                )?
                $(
                    let _: $crate::pin_init!(@zero_rest $zero);
                    if !$zeroed {
                        // SAFETY: the slot is valid for writes; `zeroed()` fills it with a valid all-zero value.
                        match unsafe { $crate::PinInit::__pinned_init($crate::init_zeroed(), $whole) } {
                            ::core::result::Result::Ok(()) => {}
                            ::core::result::Result::Err(never) => match never {},
                        }
                    }
                )?
                // Whether the slot's memory is all zero (a zeroing allocator or `..Zeroable::zeroed()`): then
                // field initialisers that start by zeroing can skip it.
                let $zeroed = $zeroed $(|| { let _ = stringify!($zero); true })?;
                // An enum variant is built through its layout struct; a struct through its own slot.
                let $data = $data $(.$variant)?;
                let $slot = $whole;
                $( let $slot = $data.cast($slot); let _ = stringify!($variant); )?
                let $guards = ();
                $($stmts)*
                $(
                    let _ = stringify!($variant);
                    // SAFETY: every field of the variant is initialised; the tag makes the slot that variant.
                    unsafe { $data.write_tag($slot) };
                )?
                ::core::mem::forget($guards);
                // Every field is initialised (the struct literal above lists each one).
                ::core::result::Result::Ok($token.finish())
            },
        );
        $crate::pin_init!(@op finish $mode, init, $($zero)?)
    }};
    // `..Zeroable::init_zeroed()` (or `..Zeroable::zeroed()`) at the end.
    (@fields @mode($mode:ident) @this($($this:ident)?) @ty($($t:tt)*) @err($err:ty) @names($($n:ident),*)
     @stmts($($stmts:tt)*) @check($($check:tt)*) @zero() @attrs()
     @rest(.. Zeroable :: init_zeroed () $(,)?)) => {
        $crate::pin_init!(@fields @mode($mode) @this($($this)?) @ty($($t)*) @err($err) @names($($n),*)
            @stmts($($stmts)*) @check($($check)*) @zero(yes) @attrs() @rest())
    };
    (@fields @mode($mode:ident) @this($($this:ident)?) @ty($($t:tt)*) @err($err:ty) @names($($n:ident),*)
     @stmts($($stmts:tt)*) @check($($check:tt)*) @zero() @attrs()
     @rest(.. Zeroable :: zeroed () $(,)?)) => {
        $crate::pin_init!(@fields @mode($mode) @this($($this)?) @ty($($t)*) @err($err) @names($($n),*)
            @stmts($($stmts)*) @check($($check)*) @zero(yes) @attrs() @rest())
    };
    // Any other struct-update form.
    (@fields @mode($mode:ident) @this($($this:ident)?) @ty($($t:tt)*) @err($err:ty) @names($($n:ident),*)
     @stmts($($stmts:tt)*) @check($($check:tt)*) @zero($($zero:ident)?) @attrs($($attrs:tt)*)
     @rest(.. $($other:tt)*)) => {
        ::core::compile_error!(::core::concat!(
            "`..", ::core::stringify!($($other)*), "` is not supported in an initialiser: the only struct update is ",
            "`..Zeroable::init_zeroed()` as the last item (it zeroes the fields not listed, in place; the type must ",
            "be `Zeroable`). Other forms such as `..Default::default()` would build a whole value on the stack and ",
            "move it: list every field instead."
        ))
    };
    // An attribute (normally `#[cfg(...)]`) on the next field.
    (@fields @mode($mode:ident) @this($($this:ident)?) @ty($($t:tt)*) @err($err:ty) @names($($n:ident),*)
     @stmts($($stmts:tt)*) @check($($check:tt)*) @zero() @attrs($($attrs:tt)*)
     @rest(# [$($attr:tt)*] $($rest:tt)*)) => {
        $crate::pin_init!(@fields @mode($mode) @this($($this)?) @ty($($t)*) @err($err) @names($($n),*)
            @stmts($($stmts)*) @check($($check)*) @zero() @attrs($($attrs)* #[$($attr)*]) @rest($($rest)*))
    };
    // `_: { code }` between fields.
    (@fields @mode($mode:ident) @this($($this:ident)?) @ty($($t:tt)*) @err($err:ty) @names($($n:ident),*)
     @stmts($($stmts:tt)*) @check($($check:tt)*) @zero() @attrs($($attrs:tt)*)
     @rest(_ : { $($code:tt)* } $(, $($rest:tt)*)?)) => {
        $crate::pin_init!(@fields @mode($mode) @this($($this)?) @ty($($t)*) @err($err) @names($($n),*)
            @stmts($($stmts)* $($attrs)* { $($code)* };) @check($($check)*) @zero() @attrs()
            @rest($($($rest)*)?))
    };
    // `field <- initialiser`.
    (@fields @mode($mode:ident) @this($($this:ident)?) @ty($($t:tt)*) @err($err:ty)
     @names($slot:ident, $guards:ident, $data:ident, $zeroed:ident, $whole:ident, $token:ident)
     @stmts($($stmts:tt)*) @check($($check:tt)*) @zero() @attrs($($attrs:tt)*)
     @rest($f:tt <- $init:expr $(, $($rest:tt)*)?)) => {
        $crate::pin_init!(@fields @mode($mode) @this($($this)?) @ty($($t)*) @err($err)
            @names($slot, $guards, $data, $zeroed, $whole, $token)
            @stmts($($stmts)*
                $($attrs)*
                {
                    // SAFETY: `$slot` is the slot under initialisation and this field is not yet initialised.
                    let field = unsafe { $crate::pin_init!(@op writer $mode, $data, $slot, $f, $zeroed) };
                    #[allow(unused_imports)]
                    use $crate::field::ConvertInitError as _;
                    $crate::field::InitResult($crate::field::InitField::init_field($init, field)).into_error::<$err>()?;
                }
                $crate::pin_init!(@fields @field_done $mode, $slot, $guards, $data, $whole, $token, $f, ($($attrs)*));
            )
            @check($($check)* $($attrs)* $f: ::core::panic!(),) @zero() @attrs()
            @rest($($($rest)*)?))
    };
    // `field: [value; N]`: filled in place.
    (@fields @mode($mode:ident) @this($($this:ident)?) @ty($($t:tt)*) @err($err:ty)
     @names($slot:ident, $guards:ident, $data:ident, $zeroed:ident, $whole:ident, $token:ident)
     @stmts($($stmts:tt)*) @check($($check:tt)*) @zero() @attrs($($attrs:tt)*)
     @rest($f:tt : [$value:expr ; $len:expr] $(, $($rest:tt)*)?)) => {
        $crate::pin_init!(@fields @mode($mode) @this($($this)?) @ty($($t)*) @err($err)
            @names($slot, $guards, $data, $zeroed, $whole, $token)
            @stmts($($stmts)*
                $($attrs)*
                {
                    // SAFETY: `$slot` is the slot under initialisation and this field is not yet initialised.
                    let field = unsafe { $crate::pin_init!(@op writer $mode, $data, $slot, $f, $zeroed) };
                    field.fill($crate::field::FieldValue { value: $value }, [(); $len]);
                }
                $crate::pin_init!(@fields @field_done $mode, $slot, $guards, $data, $whole, $token, $f, ($($attrs)*));
            )
            @check($($check)* $($attrs)* $f: ::core::panic!(),) @zero() @attrs()
            @rest($($($rest)*)?))
    };
    // `field: value`.
    (@fields @mode($mode:ident) @this($($this:ident)?) @ty($($t:tt)*) @err($err:ty)
     @names($slot:ident, $guards:ident, $data:ident, $zeroed:ident, $whole:ident, $token:ident)
     @stmts($($stmts:tt)*) @check($($check:tt)*) @zero() @attrs($($attrs:tt)*)
     @rest($f:tt : $value:expr $(, $($rest:tt)*)?)) => {
        $crate::pin_init!(@fields @mode($mode) @this($($this)?) @ty($($t)*) @err($err)
            @names($slot, $guards, $data, $zeroed, $whole, $token)
            @stmts($($stmts)*
                $($attrs)*
                {
                    // SAFETY: `$slot` is the slot under initialisation and this field is not yet initialised.
                    let field = unsafe { $crate::pin_init!(@op writer $mode, $data, $slot, $f, $zeroed) };
                    field.write($crate::field::FieldValue { value: $value });
                }
                $crate::pin_init!(@fields @field_done $mode, $slot, $guards, $data, $whole, $token, $f, ($($attrs)*));
            )
            @check($($check)* $($attrs)* $f: ::core::panic!(),) @zero() @attrs()
            @rest($($($rest)*)?))
    };
    // `field` (shorthand for `field: field`).
    (@fields @mode($mode:ident) @this($($this:ident)?) @ty($($t:tt)*) @err($err:ty) @names($($n:ident),*)
     @stmts($($stmts:tt)*) @check($($check:tt)*) @zero() @attrs($($attrs:tt)*)
     @rest($f:ident $(, $($rest:tt)*)?)) => {
        $crate::pin_init!(@fields @mode($mode) @this($($this)?) @ty($($t)*) @err($err) @names($($n),*)
            @stmts($($stmts)*) @check($($check)*) @zero() @attrs($($attrs)*)
            @rest($f: $f $(, $($rest)*)?))
    };
    // Anything else in the field list.
    (@fields @mode($mode:ident) @this($($this:ident)?) @ty($($t:tt)*) @err($err:ty) @names($($n:ident),*)
     @stmts($($stmts:tt)*) @check($($check:tt)*) @zero($($zero:ident)?) @attrs($($attrs:tt)*)
     @rest($($bad:tt)+)) => {
        ::core::compile_error!(::core::concat!(
            "expected `field: value`, `field <- initialiser`, `field`, `_: { code }` or a final ",
            "`..Zeroable::init_zeroed()`, separated by commas; found `", ::core::stringify!($($bad)+), "`"
        ))
    };
    // After a field is initialised: arm its drop guard and bind its name for later fields.
    (@fields @field_done $mode:ident, $slot:ident, $guards:ident, $data:ident, $whole:ident, $token:ident, $f:tt, ($($attrs:tt)*)) => {
        $($attrs)*
        $crate::pin_init!(@op packed_check $mode, $slot, $f);
        $($attrs)*
        let $guards = (
            // SAFETY: the field was just initialised; the guard is forgotten once the whole value is.
            unsafe { $crate::field::DropGuard::new($token, $crate::pin_init!(@op ptr $mode, $data, $slot, $f)) },
            $guards,
        );
        $crate::pin_init!(@bind $f, ($($attrs)*),
            // SAFETY: the field is initialised and outlives the initialiser's borrow of `$whole` (its own
            // argument), to which the reference is bound; pinned fields stay pinned.
            unsafe { $crate::pin_init!(@op project $mode, $data, $slot, $whole, $f) });
    };
    // `Type<Args> { .. }`: an expression needs the turbofish.
    (@path $mode:ident, ($default:ty), ($($this:ident)?), [$($seg:ident)::+ < $($args:tt)*], { $($fields:tt)* } $(? $err:ty)?) => {
        ::core::compile_error!(::core::concat!(
            "generic arguments in an initialiser are written with a turbofish, as in an expression: `",
            ::core::stringify!($($seg)::+), "::<", ::core::stringify!($($args)*), " { .. }`"
        ))
    };
    (@path $mode:ident, ($default:ty), ($($this:ident)?), [$($path:tt)+], { $($fields:tt)* } $(? $err:ty)?) => {
        $crate::pin_init!(@build $mode, ($($this)?), (($($path)+)), ($($err)?), ($default), ($($fields)*))
    };
    (@path $mode:ident, ($default:ty), ($($this:ident)?), [$($path:tt)*], $next:tt $($rest:tt)*) => {
        $crate::pin_init!(@path $mode, ($default), ($($this)?), [$($path)* $next], $($rest)*)
    };
    (@path $mode:ident, ($default:ty), ($($this:ident)?), [$($path:tt)*], ) => {
        ::core::compile_error!(::core::concat!(
            "expected `Type { field: value, .. }` (optionally followed by `? Error`) after `",
            ::core::stringify!($($path)*),
            "`"
        ))
    };
    // Only structs can be built field by field through their slot: the path must name a type, which an enum
    // variant (whose fields the slot's type could otherwise reach through `DerefMut`) is not.
    (@struct_only ($($t:tt)*) () $witness:ident) => {
        let _ = || {
            use $crate::field::NamesAType as _;
            $($t)*::names_a_type_not_a_variant($witness)
        };
    };
    (@struct_only ($($t:tt)*) ($variant:ident) $witness:ident) => {};
    (@op data pin, $witness:ident) => {
        // SAFETY: only this crate's macros ask for a type's pin data.
        unsafe { $crate::field::pin_data_of($witness) }
    };
    (@op data plain, $witness:ident) => {
        $crate::field::init_data_of($witness)
    };
    (@op ptr pin, $data:ident, $slot:ident, $f:tt) => {
        $data.$f.field_ptr($slot, |s| &raw mut (*s).$f)
    };
    (@op ptr plain, $data:ident, $slot:ident, $f:tt) => {
        &raw mut (*$slot).$f
    };
    (@op writer pin, $data:ident, $slot:ident, $f:tt, $zeroed:ident) => {
        $data.$f.writer($crate::pin_init!(@op ptr pin, $data, $slot, $f), $zeroed)
    };
    (@op writer plain, $data:ident, $slot:ident, $f:tt, $zeroed:ident) => {
        $crate::UnpinnedField::new().writer(&raw mut (*$slot).$f, $zeroed)
    };
    (@op project pin, $data:ident, $slot:ident, $whole:ident, $f:tt) => {
        $data.$f.project(&$whole, $crate::pin_init!(@op ptr pin, $data, $slot, $f))
    };
    (@op project plain, $data:ident, $slot:ident, $whole:ident, $f:tt) => {
        $crate::field::project_field(&$whole, &raw mut (*$slot).$f)
    };
    (@op finish pin, $init:ident, $($zero:ident)?) => {
        // SAFETY: the closure initialises every field (checked by the struct literal), drops the initialised
        // ones on early exit, and gives out `#[pin]` fields only pinned.
        unsafe { $crate::field::pin_init_from_macro($init, $crate::pin_init!(@op zero $($zero)?)) }
    };
    (@op finish plain, $init:ident, $($zero:ident)?) => {
        // SAFETY: as for `pin`; `init!` never pins a field, so the value may move.
        unsafe { $crate::field::init_from_macro($init, $crate::pin_init!(@op zero $($zero)?)) }
    };
    // `init!` takes any struct: a reference to a field of a `#[repr(packed)]` one does not compile (in this
    // never-called closure), so packed structs, whose fields may be misaligned, are rejected. (`#[pin_data]`
    // rejects them itself.)
    (@op packed_check plain, $slot:ident, $f:tt) => {
        #[allow(clippy::needless_borrow)]
        let _ = || &$crate::field::never_called($slot).$f;
    };
    (@op packed_check pin, $slot:ident, $f:tt) => {};
    (@op zero yes) => { true };
    (@op zero) => { false };
    (@zero_rest yes) => {
        ()
    };
    (@zero_rest zeroed_value yes) => {
        $crate::Zeroable::zeroed()
    };
    (@bind $f:ident, ($($attrs:tt)*), $value:expr) => {
        $($attrs)*
        #[allow(unused_variables, unused_mut, non_snake_case, clippy::let_unit_value)]
        let $f = $value;
    };
    (@bind $f:tt, ($($attrs:tt)*), $value:expr) => {};
    // The user-facing forms (`init!` shares them, with `plain` for `pin`).
    (@user $mode:ident, ($default:ty), $(&$this:ident in)? $($seg:ident)::+ $(::<$($g:ty),* $(,)?>)? { $($fields:tt)* } $(? $err:ty)?) => {
        $crate::pin_init!(@build $mode, ($($this)?), (($($seg)::+ $(::<$($g),*>)?)), ($($err)?), ($default), ($($fields)*))
    };
    (@user pin, ($default:ty), $(&$this:ident in)? enum $enum:ident $(::<$($g:ty),* $(,)?>)? :: $variant:ident { $($fields:tt)* } $(? $err:ty)?) => {
        $crate::pin_init!(@build pin, ($($this)?), (($enum $(::<$($g),*>)?) $variant), ($($err)?), ($default), ($($fields)*))
    };
    // Any other path (for example with const generic arguments): collect it up to the field list.
    (@user $mode:ident, ($default:ty), &$this:ident in $($rest:tt)+) => {
        $crate::pin_init!(@path $mode, ($default), ($this), [], $($rest)+)
    };
    (@user $mode:ident, ($default:ty), $($rest:tt)+) => {
        $crate::pin_init!(@path $mode, ($default), (), [], $($rest)+)
    };
    // `#[default_error(E)]`: the error type when no `? Error` follows the field list.
    (#[default_error($default:ty)] $($rest:tt)+) => {
        $crate::pin_init!(@user pin, ($default), $($rest)+)
    };
    ($($rest:tt)+) => {
        $crate::pin_init!(@user pin, (::core::convert::Infallible), $($rest)+)
    };
}

/// Builds an unpinned initialiser for any struct (no `#[pin_data]` needed), field by field, in place.
///
/// Accepts the same syntax as [`pin_init!`]; every `<-` initialiser must be an [`Init`](crate::Init).
///
/// ```
/// use pinit::{InPlaceInit, Zeroable, init, init_zeroed};
///
/// struct Buffer { len: usize, data: [u8; 1 << 16], spare: [u64; 512] }
///
/// let b = Box::init(init!(Buffer { len: 3, data: [7; 1 << 16], spare <- init_zeroed() })).unwrap();
/// assert_eq!((b.len, b.data[65535], b.spare[511]), (3, 7, 0));
///
/// #[derive(Zeroable)]
/// struct Header { magic: u32, flags: u32, reserved: [u8; 56] }
/// let h = Box::init(init!(Header { magic: 0xfeed, ..Zeroable::zeroed() })).unwrap();
/// assert_eq!((h.magic, h.flags), (0xfeed, 0));
/// ```
#[macro_export]
macro_rules! init {
    (#[default_error($default:ty)] $($rest:tt)+) => {
        $crate::pin_init!(@user plain, ($default), $($rest)+)
    };
    ($($rest:tt)+) => {
        $crate::pin_init!(@user plain, (::core::convert::Infallible), $($rest)+)
    };
}

/// [`pin_init!`] under the kernel library's name for fallible initialisers (written with `? Error`).
///
/// ```
/// use pinit::{InPlaceInit, pin_data, try_pin_init};
/// #[pin_data]
/// struct Port { number: u16 }
/// let p = Box::try_pin_init(try_pin_init!(Port { number: "80".parse().map_err(std::io::Error::other)? }? std::io::Error));
/// assert_eq!(p.unwrap().number, 80);
/// ```
#[macro_export]
macro_rules! try_pin_init {
    ($($body:tt)*) => {
        $crate::pin_init!($($body)*)
    };
}

/// [`init!`] under the kernel library's name for fallible initialisers (written with `? Error`).
///
/// ```
/// use pinit::{InPlaceInit, try_init};
/// struct Port { number: u16 }
/// let p = Box::try_init(try_init!(Port { number: "x".parse().map_err(std::io::Error::other)? }? std::io::Error));
/// assert!(p.is_err());
/// ```
#[macro_export]
macro_rules! try_init {
    ($($body:tt)*) => {
        $crate::init!($($body)*)
    };
}

/// Pins a value on the stack and initialises it in place with an infallible initialiser.
///
/// `let name: T = init` (the type is the value's, optional) binds `name: Pin<&mut T>`, as in pinned-init.
///
/// ```
/// use core::pin::Pin;
/// use pinit::{pin_data, pin_init, stack_pin_init};
/// #[pin_data]
/// struct Counter { #[pin] hits: u32 }
/// stack_pin_init!(let c: Counter = pin_init!(Counter { hits: 3 }));
/// let c: Pin<&mut Counter> = c;
/// assert_eq!(c.hits, 3);
/// ```
#[macro_export]
macro_rules! stack_pin_init {
    (let $var:ident $(: $t:ty)? = $init:expr) => {
        let init = $init;
        let $var = ::core::pin::pin!($crate::StackInit$(::<$t>)?::uninit());
        #[allow(unused_mut)]
        let mut $var = $crate::StackInit::init($var, init);
    };
}

/// Pins a value on the stack and runs a fallible initialiser: `let x: T = init` binds
/// `x: Result<Pin<&mut T>, E>`, and `let x: T =? init` propagates the error with `?` (the type is optional).
///
/// ```
/// use pinit::{pin_data, pin_init, stack_try_pin_init};
/// #[pin_data]
/// struct Port { number: u16 }
/// fn open(n: u32) -> Result<u16, core::num::TryFromIntError> {
///     stack_try_pin_init!(let p =? pin_init!(Port { number: u16::try_from(n)? }? core::num::TryFromIntError));
///     Ok(p.number)
/// }
/// assert_eq!(open(80), Ok(80));
/// assert!(open(70_000).is_err());
/// ```
#[macro_export]
macro_rules! stack_try_pin_init {
    (let $var:ident $(: $t:ty)? =? $init:expr) => {
        let init = $init;
        let $var = ::core::pin::pin!($crate::StackInit$(::<$t>)?::uninit());
        #[allow(unused_mut)]
        let mut $var = $crate::StackInit::try_init($var, init)?;
    };
    (let $var:ident $(: $t:ty)? = $init:expr) => {
        let init = $init;
        let $var = ::core::pin::pin!($crate::StackInit$(::<$t>)?::uninit());
        #[allow(unused_mut)]
        let mut $var = $crate::StackInit::try_init($var, init);
    };
}

/// Asserts at compile time that a field of a `#[pin_data]` struct is structurally pinned (`#[pin]`).
///
/// ```
/// use pinit::{assert_pinned, pin_data};
/// #[pin_data]
/// struct Waiter { #[pin] node: u64, id: u32 }
/// assert_pinned!(Waiter, node, u64);
/// ```
///
/// ```compile_fail
/// use pinit::{assert_pinned, pin_data};
/// #[pin_data]
/// struct Waiter { #[pin] node: u64, id: u32 }
/// assert_pinned!(Waiter, id, u32);
/// ```
///
/// Inside a generic function, where a `const` item cannot use the function's parameters, add `inline`:
/// `assert_pinned!(Foo<T>, elem, T, inline);`.
#[macro_export]
macro_rules! assert_pinned {
    ($ty:ty, $field:ident, $field_ty:ty, inline) => {
        let _ = || {
            // Never called: the field's marker must be the pinned one.
            let data = $crate::field::pin_data_for_check::<$ty>();
            let _: $crate::field::PinnedField<$field_ty> = data.$field;
        };
    };
    ($ty:ty, $field:ident, $field_ty:ty) => {
        const _: () = {
            $crate::assert_pinned!($ty, $field, $field_ty, inline);
        };
    };
}
