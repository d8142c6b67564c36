//! `DmaMemory` is an unsafe trait (implemented in the audited `hw` crate only), so code that
//! forbids unsafe, as the driver does, cannot hand the controller a lying buffer.
#![forbid(unsafe_code)]

struct Liar;

unsafe impl nvme::DmaMemory for Liar {
    fn len(&self) -> usize {
        4096
    }
    fn bus_addr(&self, _offset: usize) -> u64 {
        0
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
