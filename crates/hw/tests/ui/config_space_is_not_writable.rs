//! Config space writes (Bus Master, the Command register) are the device handles' own.
#![forbid(unsafe_code)]

fn main() {
    let sysfs = hw::Sysfs::default();
    let pci = sysfs.device("0000:00:02.0".parse().unwrap()).unwrap();
    pci.write_config(4, &[0x06, 0x00]).unwrap();
    pci.set_command_bits(4).unwrap();
    pci.enable_bus_master().unwrap();
}
