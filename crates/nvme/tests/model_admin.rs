//! Log pages and features against the model: decoded fields and the error status paths.

use nvme::model::{Model, ModelConfig};
use nvme::status::{sc, sct};
use nvme::{ALL_NAMESPACES, Controller, Error, Options};

fn controller() -> Controller<Model> {
    Controller::new(Model::new(ModelConfig::default()), Options::default()).unwrap()
}

fn status_of(e: Error) -> (u8, u8) {
    match e {
        Error::Command { status, .. } => (status.sct, status.sc),
        other => panic!("expected a command status, got {other:?}"),
    }
}

#[test]
fn smart_log_counts_host_commands_and_reports_a_temperature() {
    let ctrl = controller();
    let before = ctrl.smart_log(ALL_NAMESPACES).unwrap();
    let mut qp = ctrl.queue_pair().unwrap();
    qp.write(1, 0, &[7; 4096], false).unwrap();
    let mut back = [0; 4096];
    qp.read(1, 0, &mut back).unwrap();
    qp.read(1, 0, &mut back).unwrap();
    let after = ctrl.smart_log(ALL_NAMESPACES).unwrap();
    assert_eq!(after.host_write_commands - before.host_write_commands, 1);
    assert_eq!(after.host_read_commands - before.host_read_commands, 2);
    assert!(after.temperature > 273, "kelvin: {}", after.temperature);
    assert_eq!(after.avail_spare, 100);
    assert_eq!(after.critical_warning, 0);
}

#[test]
fn firmware_log_names_the_running_revision_in_the_active_slot() {
    let ctrl = controller();
    let fw = ctrl.firmware_log().unwrap();
    assert_eq!(fw.afi & 0x7, 1);
    assert_eq!(&fw.slots[0], b"1.0     ");
    assert_eq!(fw.slots[1], [0; 8]);
}

#[test]
fn error_log_records_a_failed_command() {
    let ctrl = controller();
    assert!(
        ctrl.error_log(4)
            .unwrap()
            .iter()
            .all(|e| e.error_count == 0)
    );
    let err = ctrl.get_log_page(0x7f, ALL_NAMESPACES, 512).unwrap_err();
    assert_eq!(status_of(err), (sct::COMMAND_SPECIFIC, 0x09));
    let log = ctrl.error_log(4).unwrap();
    assert_eq!(log.len(), 4);
    assert_eq!(log[0].error_count, 1);
    assert_eq!(log[0].sqid, 0);
    // Status code type and code, with Do Not Retry set.
    assert_eq!(
        log[0].status_field >> 1,
        1 << 14 | (sct::COMMAND_SPECIFIC as u16) << 8 | 0x09
    );
    assert_eq!(log[1].error_count, 0);
    assert_eq!(
        ctrl.smart_log(ALL_NAMESPACES).unwrap().num_err_log_entries,
        1
    );
}

#[test]
fn log_page_errors_are_statuses_not_panics() {
    let ctrl = controller();
    // Unknown namespace for the SMART log.
    let err = ctrl.smart_log(9).unwrap_err();
    assert_eq!(status_of(err), (sct::GENERIC, sc::INVALID_NAMESPACE));
    // Lengths the driver refuses before sending anything.
    for len in [0, 3, 4097, 1 << 20] {
        assert!(matches!(
            ctrl.get_log_page(2, ALL_NAMESPACES, len),
            Err(Error::InvalidRequest(_))
        ));
    }
    // The controller still works.
    assert_eq!(ctrl.firmware_log().unwrap().afi & 7, 1);
}

#[test]
fn features_read_back_what_was_set_and_defaults_stay() {
    let ctrl = controller();
    // Temperature threshold: a default, a new current value, the default unchanged.
    let default = ctrl.get_feature(0x04, 0, 0, 0).unwrap();
    assert_eq!(default & 0xffff, 343);
    ctrl.set_feature(0x04, 0, 350, false).unwrap();
    assert_eq!(ctrl.get_feature(0x04, 0, 0, 0).unwrap() & 0xffff, 350);
    assert_eq!(ctrl.get_feature(0x04, 1, 0, 0).unwrap() & 0xffff, 343);
    // Volatile write cache on, then off.
    assert_eq!(ctrl.get_feature(0x06, 0, 0, 0).unwrap(), 1);
    ctrl.set_feature(0x06, 0, 0, false).unwrap();
    assert_eq!(ctrl.get_feature(0x06, 0, 0, 0).unwrap(), 0);
    // Number of queues answers what was granted, and is not for tools to set.
    let n = ctrl.get_feature(0x07, 0, 0, 0).unwrap();
    assert_eq!(n & 0xffff, ctrl.queues_granted() as u32 - 1);
    assert!(matches!(
        ctrl.set_feature(0x07, 0, 0, false),
        Err(Error::InvalidRequest(_))
    ));
}

#[test]
fn unknown_features_and_selects_are_refused() {
    let ctrl = controller();
    let err = ctrl.get_feature(0x55, 0, 0, 0).unwrap_err();
    assert_eq!(status_of(err), (sct::GENERIC, sc::INVALID_FIELD));
    let err = ctrl.set_feature(0x55, 0, 1, false).unwrap_err();
    assert_eq!(status_of(err), (sct::GENERIC, sc::INVALID_FIELD));
    // Saving is not supported by the model.
    let err = ctrl.set_feature(0x04, 0, 350, true).unwrap_err();
    assert_eq!(status_of(err), (sct::COMMAND_SPECIFIC, 0x0d));
    assert!(matches!(
        ctrl.get_feature(0x04, 4, 0, 0),
        Err(Error::InvalidRequest(_))
    ));
}

fn namespace_format(ctrl: &Controller<Model>) -> (usize, u8) {
    let id = nvme::identify_data::IdentifyNamespace::parse(
        &ctrl.identify_raw(nvme::command::cns::NAMESPACE, 1).unwrap(),
    );
    let current = id.current_format();
    (current, id.lba_formats[current].ds)
}

#[test]
fn format_changes_the_block_size_and_erases() {
    let model = Model::new(ModelConfig::default());
    let ctrl = Controller::new(model.clone(), Options::default()).unwrap();
    assert_eq!(namespace_format(&ctrl), (0, 9));
    let bytes = ctrl.namespaces()[0].capacity();
    let mut qp = ctrl.queue_pair().unwrap();
    qp.write(1, 0, &[9; 4096], false).unwrap();
    drop(qp);
    ctrl.format_nvm(1, 1, 1).unwrap();
    // Opened again, the controller reports 4 KiB blocks over the same bytes, all zero.
    let ctrl = Controller::new(model, Options::default()).unwrap();
    assert_eq!(namespace_format(&ctrl), (1, 12));
    let ns = ctrl.namespaces()[0];
    assert_eq!((ns.block_size(), ns.capacity()), (4096, bytes));
    let mut back = [1; 4096];
    let mut qp = ctrl.queue_pair().unwrap();
    qp.read(1, 0, &mut back).unwrap();
    assert_eq!(back, [0; 4096]);
    qp.write(1, 1, &[5; 4096], false).unwrap();
    qp.read(1, 1, &mut back).unwrap();
    assert_eq!(back, [5; 4096]);
}

#[test]
fn format_is_refused_while_a_queue_pair_is_open() {
    let ctrl = controller();
    let qp = ctrl.queue_pair().unwrap();
    let result = ctrl.format_nvm(1, 1, 0);
    assert!(
        matches!(result, Err(Error::InvalidRequest(_))),
        "{result:?}"
    );
    drop(qp);
}

#[test]
fn format_errors_are_statuses() {
    let model = Model::new(ModelConfig::default());
    let open = || Controller::new(model.clone(), Options::default()).unwrap();
    // No such LBA format.
    let err = open().format_nvm(1, 5, 0).unwrap_err();
    assert_eq!(status_of(err), (sct::COMMAND_SPECIFIC, 0x0a));
    // No such namespace.
    let err = open().format_nvm(7, 0, 0).unwrap_err();
    assert_eq!(status_of(err), (sct::GENERIC, sc::INVALID_NAMESPACE));
    // Cryptographic erase is not supported.
    let err = open().format_nvm(1, 0, 2).unwrap_err();
    assert_eq!(status_of(err), (sct::GENERIC, sc::INVALID_FIELD));
    // Refused by the driver before sending.
    assert!(matches!(
        open().format_nvm(1, 64, 0),
        Err(Error::InvalidRequest(_))
    ));
    assert_eq!(namespace_format(&open()), (0, 9));
}

#[test]
fn admin_passthru_runs_raw_commands_and_refuses_the_drivers_own() {
    use nvme::AdminPassthru;
    let ctrl = controller();
    // Identify Controller by hand: the vendor ID in its first bytes.
    let identify = AdminPassthru {
        opcode: 0x06,
        cdw: [1, 0, 0, 0, 0, 0],
        data_len: 4096,
        ..AdminPassthru::default()
    };
    let (_, data) = ctrl.admin_passthru(&identify, &[]).unwrap();
    assert_eq!(data.len(), 4096);
    assert_eq!(&data[0..2], &0x1b36u16.to_le_bytes());
    // Get Features, temperature threshold: the value comes back in dword 0.
    let get = AdminPassthru {
        opcode: 0x0a,
        cdw: [4, 0, 0, 0, 0, 0],
        ..AdminPassthru::default()
    };
    assert_eq!(ctrl.admin_passthru(&get, &[]).unwrap().0, 343);
    // An opcode the controller does not know is its status, not a panic.
    let unknown = AdminPassthru {
        opcode: 0xc1,
        ..AdminPassthru::default()
    };
    let err = ctrl.admin_passthru(&unknown, &[]).unwrap_err();
    assert_eq!(status_of(err), (sct::GENERIC, sc::INVALID_OPCODE));
    for opcode in nvme::RESERVED_ADMIN_OPCODES {
        let cmd = AdminPassthru {
            opcode,
            ..AdminPassthru::default()
        };
        assert!(matches!(
            ctrl.admin_passthru(&cmd, &[]),
            Err(Error::InvalidRequest(_))
        ));
    }
    let too_long = AdminPassthru {
        opcode: 0x06,
        data_len: 8192,
        ..AdminPassthru::default()
    };
    assert!(matches!(
        ctrl.admin_passthru(&too_long, &[]),
        Err(Error::InvalidRequest(_))
    ));
    // The driver's queues still work.
    ctrl.queue_pair()
        .unwrap()
        .write(1, 0, &[1; 512], false)
        .unwrap();
}
