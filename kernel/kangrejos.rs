// SPDX-License-Identifier: GPL-2.0

//! `kangrejos`: a note board in the kernel, built the way the project builds things in user space.
//!
//! * `/dev/kangrejos` (a miscdevice) is the control interface: each `write(2)` posts one note of
//!   1 to [`board::MAX_NOTE`] bytes (one trailing newline is dropped); `read(2)` returns one line
//!   per processed note, `<seq> <fnv1a-64 of the text in hex> <text>`, after waiting for the notes
//!   posted before it to be processed.
//! * The state is one [`board::Board`] built in place with `pin_init!` (its mutex, condition
//!   variable and work item must not move), holding two intrusive lists of notes under a mutex.
//! * Posted notes are processed on the system workqueue (checksummed and moved to the done list).
//! * Unloading drops the module: the device goes away first, then the pending work is flushed,
//!   then the board and every note are freed by `Drop`. An open file holds a module reference, so
//!   `rmmod` while the device is in use fails (`delete_module` answers `EWOULDBLOCK`: in use)
//!   instead of unloading the code under it.

mod board;

use board::Board;
use kernel::{
    fs::{File, Kiocb},
    iov::{IovIterDest, IovIterSource},
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
    sync::Arc,
};

module! {
    type: Kangrejos,
    name: "kangrejos",
    authors: ["Kangrejos developers"],
    description: "A note board behind a miscdevice: pin-init state, intrusive lists, a workqueue",
    license: "GPL",
}

/// The module: the device registration and the board it serves.
///
/// Fields drop in order: the device is deregistered before the board goes.
#[pin_data(PinnedDrop)]
struct Kangrejos {
    #[pin]
    device: MiscDeviceRegistration<Handle>,
    board: Arc<Board>,
}

impl kernel::InPlaceModule for Kangrejos {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            board: Board::new()?,
            device <- MiscDeviceRegistration::register(MiscDeviceOptions {
                name: c"kangrejos",
            }),
        })
        .pin_chain(|_| {
            pr_info!("ready: /dev/kangrejos\n");
            Ok(())
        })
    }
}

#[pinned_drop]
impl PinnedDrop for Kangrejos {
    fn drop(self: Pin<&mut Self>) {
        // No file is open (each holds a module reference), so nothing posts anymore; a note posted
        // last may still be on the workqueue, running this module's code: wait for it.
        self.board.flush();
        pr_info!("unloading\n");
    }
}

/// One open file of `/dev/kangrejos`: a reference to the board and one to the module.
struct Handle {
    board: Arc<Board>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: `open` took this reference with `try_module_get` on this module; each handle
        // gives it back exactly once, here.
        unsafe { kernel::bindings::module_put(THIS_MODULE.as_ptr()) };
    }
}

#[vtable]
impl MiscDevice for Handle {
    type Ptr = KBox<Handle>;

    fn open(_file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<KBox<Handle>> {
        // The miscdevice's file operations name no owning module, so nothing stops an unload while
        // a file is open: hold a reference on the module for as long as the file is.
        // SAFETY: `THIS_MODULE` is this module, which is live while its code runs.
        if !unsafe { kernel::bindings::try_module_get(THIS_MODULE.as_ptr()) } {
            return Err(ENODEV);
        }
        // SAFETY: every `MiscDeviceRegistration<Handle>` is the `device` field of the module's
        // `Kangrejos` (the type is private and only `init` registers one), which outlives the
        // registration, so the containing struct is valid for the duration of this call.
        let module =
            unsafe { &*kernel::container_of!(core::ptr::from_ref(misc), Kangrejos, device) };
        let board = module.board.clone();
        // On error the handle drops, giving the module reference back.
        Ok(KBox::new(Handle { board }, GFP_KERNEL)?)
    }

    fn read_iter(mut kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterDest<'_>) -> Result<usize> {
        let text = kiocb.file().board.render()?;
        iov.simple_read_from_buffer(kiocb.ki_pos_mut(), &text)
    }

    fn write_iter(kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterSource<'_>) -> Result<usize> {
        let len = iov.len();
        if len == 0 {
            return Ok(0);
        }
        if len > board::MAX_NOTE {
            return Err(EMSGSIZE);
        }
        let mut text = KVec::with_capacity(len, GFP_KERNEL)?;
        let copied = iov.copy_from_iter_vec(&mut text, GFP_KERNEL)?;
        if copied != len {
            // A fault part-way: post nothing rather than a truncated note.
            return Err(EFAULT);
        }
        // One note per line written with `echo`: the line's end is the record's end, not text.
        if text.last() == Some(&b'\n') {
            text.pop();
        }
        kiocb.file().board.post(text)?;
        Ok(copied)
    }
}
