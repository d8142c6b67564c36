//! QEMU guest harness: boots a Debian kernel with a busybox initramfs and runs scripts against real kernel clients.

#![forbid(unsafe_code)]
