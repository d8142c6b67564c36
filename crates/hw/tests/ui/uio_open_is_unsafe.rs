//! Without an IOMMU, opening a device is where the caller takes on the DMA contract.
#![forbid(unsafe_code)]

fn main() {
    let addr = "0000:00:02.0".parse().unwrap();
    let _device = hw::UioDevice::open(&hw::Sysfs::default(), addr);
}
