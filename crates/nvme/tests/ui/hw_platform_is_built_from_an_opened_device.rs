//! The hardware platform's device is private: no wrapping a device safe code did not open,
//! no reaching the handle (and its BAR) through the platform.
use nvme::hw_platform::HwPlatform;

fn bar(platform: &HwPlatform) {
    if let HwPlatform::Uio(device) = platform {
        device.bar0().write64(0x28, 0).unwrap();
    }
    let _ = &platform.0;
}

fn main() {
    let _ = bar;
}
