//! The guest's v9fs client against diod: inside the guest over 127.0.0.1, and on the host over
//! virtio-serial through `vport-relay` and `trans=fd`.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{assert_labelled, assert_mounted_with, random_file, sha256};

const DIOD: &str = "/usr/sbin/diod";
const OPTS: &str = "version=9p2000.L,uname=root,access=user";

#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_9p_tcp_to_diod_inside_the_guest() {
    let dir = tempfile::tempdir().unwrap();
    let random = dir.path().join("random");
    random_file(&random, 4 << 20);
    let script = format!(
        r#"set -e
mkdir -p /export /mnt/9
mount -t tmpfs -o size=64m tmpfs /export
{DIOD} -f -n -l 127.0.0.1:564 -e /export -L /tmp/diod.log &
mnt() {{ retry 100 mount -t 9p -o trans=tcp,port=564,aname=/export,{OPTS} 127.0.0.1 /mnt/9 2>/dev/null; }}
mnt || {{ cat /tmp/diod.log; exit 1; }}
echo "mounted $(grep ' /mnt/9 ' /proc/mounts)"
cp /share/random /mnt/9/random
umount /mnt/9
mnt
echo "readback $(sha256sum /mnt/9/random)"
echo "export $(sha256sum /export/random)"
umount /mnt/9
"#
    );
    let out = guest::Vm::builder()
        .host_program(DIOD)
        .file(&random, "/share/random")
        .run(&script)
        .expect("guest runs");
    assert!(out.success(), "{}", out.log_tail());
    assert_mounted_with(&out, "trans=tcp");
    let want = sha256(&random);
    assert_labelled(&out, "readback", &want);
    assert_labelled(&out, "export", &want);
}

/// diod on the host, killed when the test ends.
struct HostDiod(Child);

impl Drop for HostDiod {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_host_diod(socket: &Path, export: &Path, log: &Path) -> HostDiod {
    let child = Command::new(DIOD)
        .args(["-f", "-n", "-l"])
        .arg(socket)
        .arg("-e")
        .arg(export)
        .arg("-L")
        .arg(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("diod starts");
    let diod = HostDiod(child);
    // diod creates the socket once it listens; QEMU must find it at start.
    for _ in 0..200 {
        if socket.exists() {
            return diod;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!(
        "diod never listened on {}: {}",
        socket.display(),
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_9p_fd_over_virtio_serial_to_host_diod() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    std::fs::create_dir(&export).unwrap();
    let from_host = export.join("from-host");
    random_file(&from_host, 1 << 20);
    let random = dir.path().join("random");
    random_file(&random, 4 << 20);
    let socket = dir.path().join("diod.sock");
    let log = dir.path().join("diod.log");
    let _diod = start_host_diod(&socket, &export, &log);

    let script = format!(
        r#"set -e
mkdir -p /mnt/9
vport-relay p9 3 mount -t 9p -o trans=fd,rfdno=3,wfdno=3,aname={export},{OPTS} none /mnt/9
echo "mounted $(grep ' /mnt/9 ' /proc/mounts)"
cp /share/random /mnt/9/from-guest
sync
echo 3 > /proc/sys/vm/drop_caches
echo "readback $(sha256sum /mnt/9/from-guest)"
echo "host-file $(sha256sum /mnt/9/from-host)"
umount /mnt/9
"#,
        export = export.display()
    );
    let out = guest::Vm::builder()
        .virtio_serial("p9", &socket)
        .file(&random, "/share/random")
        .run(&script)
        .expect("guest runs");
    let diod_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        out.success(),
        "{}\n--- diod ---\n{diod_log}",
        out.log_tail()
    );
    assert_mounted_with(&out, "trans=fd");
    let want = sha256(&random);
    assert_labelled(&out, "readback", &want);
    assert_labelled(&out, "host-file", &sha256(&from_host));
    assert_eq!(
        sha256(&export.join("from-guest")),
        want,
        "the guest's file on the host"
    );
}
