//! Uses `pinit` from a `no_std` crate with `alloc`: pinned and unpinned initialisers, `Box`/`Arc`, zeroing,
//! errors converted with `From`, and a hand-written branded initialiser.

#![no_std]
#![deny(warnings)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::marker::PhantomPinned;
use core::pin::Pin;

use pinit::{
    AllocError, InPlaceInit, PinInit, Zeroable, init, init_zeroed, pin_data, pin_init, pin_init_by,
};

/// A pinned waiter.
#[pin_data]
pub struct Waiter {
    /// Its identifier.
    pub id: u32,
    #[pin]
    _pin: PhantomPinned,
}

/// A zeroable page.
#[derive(Zeroable)]
pub struct Page {
    /// How many bytes are used.
    pub used: usize,
    /// The bytes.
    pub bytes: [u8; 4096],
}

/// Failure of [`make`].
#[derive(Debug)]
pub enum Error {
    /// No memory.
    NoMemory,
    /// A zero identifier.
    ZeroId,
}

impl From<AllocError> for Error {
    fn from(_: AllocError) -> Self {
        Error::NoMemory
    }
}

/// A waiter in a `Box`, a page in an `Arc`.
pub fn make(id: u32) -> Result<(Pin<Box<Waiter>>, Arc<Page>), Error> {
    let waiter = Box::try_pin_init(pin_init!(Waiter {
        id: if id == 0 { return Err(Error::ZeroId) } else { id },
        _pin: PhantomPinned,
    }? Error))?;
    let page = Arc::init(init!(Page { used: 1, bytes <- init_zeroed() }))?;
    Ok((waiter, page))
}

/// A branded hand-written initialiser.
pub fn waiter(id: u32) -> impl PinInit<Waiter, Error> {
    pin_init_by(move |slot| {
        let done = slot.pin_init(pin_init!(Waiter { id, _pin: PhantomPinned }? Error))?;
        Ok(done)
    })
}
