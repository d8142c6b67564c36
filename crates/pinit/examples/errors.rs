//! Fallible initialisation with the caller's own error type (`std::io::Error` here): a failure part-way
//! drops what was built, in reverse order, and frees the allocation.
//!
//! `cargo run -p pinit --example errors`

use std::io;
use std::pin::Pin;

use pinit::{InPlaceInit, PinInit, init, init_scope, pin_data, pin_init};

struct Buffer {
    name: &'static str,
}

impl Drop for Buffer {
    fn drop(&mut self) {
        println!("  dropped buffer {}", self.name);
    }
}

#[pin_data]
struct Device {
    rx: Buffer,
    tx: Buffer,
    #[pin]
    irq: u32,
}

/// Looks an interrupt line up; fails for unknown devices.
fn irq_of(name: &str) -> io::Result<u32> {
    match name {
        "eth0" => Ok(11),
        _ => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no interrupt for {name}"),
        )),
    }
}

fn device(name: &'static str) -> impl PinInit<Device, io::Error> {
    pin_init!(Device {
        rx: Buffer { name: "rx" },
        tx <- init_scope(|| Ok(init!(Buffer { name: "tx" }? io::Error))),
        irq: irq_of(name)?,
    }? io::Error)
}

fn demo() -> (Pin<Box<Device>>, io::Error) {
    let ok = Box::try_pin_init(device("eth0")).expect("eth0 exists");
    assert_eq!(ok.irq, 11);
    println!("eth0 failed part-way? no. wlan0:");
    let Err(err) = Box::try_pin_init(device("wlan0")) else {
        panic!("wlan0 has no interrupt");
    };
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    (ok, err)
}

fn main() {
    let (_ok, err) = demo();
    println!("error: {err}");
}

#[test]
fn a_failure_part_way_is_an_io_error() {
    demo();
}
