//! And a crate that forbids unsafe code (as the drivers do) cannot make that promise at all.
#![forbid(unsafe_code)]

struct Liar;

unsafe impl hw::DmaMemory for Liar {
    fn len(&self) -> usize {
        4096
    }
    fn bus_addr(&self, _offset: usize) -> u64 {
        0xfee0_0000
    }
    fn read(&self, _offset: usize, _out: &mut [u8]) {}
    fn write(&self, _offset: usize, _data: &[u8]) {}
    fn read_u32(&self, _offset: usize) -> u32 {
        0
    }
    fn write_u32(&self, _offset: usize, _value: u32) {}
}

fn main() {
    let _ = Liar;
}
