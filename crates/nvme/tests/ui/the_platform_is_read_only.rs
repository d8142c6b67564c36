//! A controller's registers can be read from outside, never written: ASQ, ACQ and the
//! doorbells would point the device at any memory.
use nvme::model::{Model, ModelConfig};
use nvme::{Controller, Options};

fn main() {
    let ctrl = Controller::new(Model::new(ModelConfig::default()), Options::default()).unwrap();
    let _ = ctrl.platform().read64(0x28);
    ctrl.platform().write64(0x28, 0xfee0_0000);
    ctrl.platform().write32(0x1000, 1);
}
