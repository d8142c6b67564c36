//! `Vec::push_init`: build the new element directly in the vector's spare capacity.

use alloc::vec::Vec;

use crate::{AllocError, Init};

/// In-place pushes for `Vec` (unpinned initialisers only: a `Vec` moves its elements when it grows).
///
/// ```
/// use pinit::{VecExt, init, init_zeroed};
/// struct Frame { seq: u32, payload: [u8; 1 << 20] }
/// let mut frames: Vec<Frame> = Vec::new();
/// frames.push_init(init!(Frame { seq: 1, payload <- init_zeroed() })).unwrap();
/// assert_eq!((frames.len(), frames[0].seq), (1, 1));
/// ```
pub trait VecExt<T> {
    /// Reserves room (failing with `AllocError` converted into `E`) and initialises the new last element.
    fn try_push_init<E: From<AllocError>>(&mut self, init: impl Init<T, E>) -> Result<(), E>;

    /// [`VecExt::try_push_init`] for infallible initialisers.
    fn push_init(&mut self, init: impl Init<T>) -> Result<(), AllocError>;
}

impl<T> VecExt<T> for Vec<T> {
    fn try_push_init<E: From<AllocError>>(&mut self, init: impl Init<T, E>) -> Result<(), E> {
        self.try_reserve(1).map_err(|_| AllocError)?;
        let len = self.len();
        let spare = self.spare_capacity_mut();
        let Some(slot) = spare.first_mut() else {
            return Err(AllocError.into());
        };
        // SAFETY: the spare slot is writable, uninitialised memory for one `T`.
        unsafe { init.__init(slot.as_mut_ptr())? };
        // SAFETY: the element at `len` is now initialised and within capacity.
        unsafe { self.set_len(len + 1) };
        Ok(())
    }

    fn push_init(&mut self, init: impl Init<T>) -> Result<(), AllocError> {
        self.try_push_init(init.map_err(AllocError::from))
    }
}
