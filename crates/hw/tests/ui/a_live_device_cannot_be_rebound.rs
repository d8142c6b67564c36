//! Handing a function the process still drives to another driver takes `unsafe`.
#![forbid(unsafe_code)]

fn rebind(device: &hw::VfioDevice) {
    device.pci().bind("nvme").unwrap();
    device.pci().unbind().unwrap();
}

fn main() {
    let device = hw::VfioDevice::open(&hw::Sysfs::default(), "0000:00:02.0".parse().unwrap());
    rebind(&device.unwrap());
}
