//! The guest kernel's v9fs client against a `ninepd` serving several exports from a
//! configuration file: two mounted at once with their own options, then a SIGHUP reload that
//! removes one while it is mounted and adds another. Run by `cargo xtask test` (suite
//! `ninep-guest`).

use std::time::Duration;

/// The value printed after `label ` in the guest's output.
fn labelled<'a>(out: &'a str, label: &str) -> Option<&'a str> {
    out.lines().find_map(|l| {
        l.strip_prefix(label)
            .and_then(|r| r.strip_prefix(' '))
            .map(str::trim)
    })
}

const SCRIPT: &str = r#"set -e
mkdir -p /srv/rw /srv/ro /srv/new /mnt/rw /mnt/ro /mnt/new /mnt/again
echo "in the read-only export" > /srv/ro/file
config() {
  cat > /etc/ninepd.toml <<EOF
sandbox_roots = ["/srv"]
[export.rw]
path = "/srv/rw"
root_squash = false
[export.$1]
path = "/srv/$1"
read_only = true
EOF
}
config ro
ninepd --check-config --config /etc/ninepd.toml
ninepd --config /etc/ninepd.toml --listen unix:/run/ninepd.sock --log-level info 2>/tmp/ninepd.log &
PID=$!
OPTS=trans=unix,version=9p2000.L
mnt() { mount -t 9p -o $OPTS,aname=$1 /run/ninepd.sock $2; }
# retry runs a command, not a shell function.
retry 100 mount -t 9p -o $OPTS,aname=rw /run/ninepd.sock /mnt/rw 2>/dev/null || { cat /tmp/ninepd.log; exit 1; }
mnt ro /mnt/ro
echo "mounts $(grep -c ' /mnt/r[ow] 9p ' /proc/mounts)"
echo written > /mnt/rw/file
echo "rw-host $(cat /srv/rw/file)"
echo "ro-read $(cat /mnt/ro/file)"
echo "ro-touch $(touch /mnt/ro/new 2>&1 || true)"
echo "ro-write $( (echo x >> /mnt/ro/file) 2>&1 || true)"
echo "ro-host-untouched $(cat /srv/ro/file) $(ls /srv/ro | tr '\n' ' ')"
# Reload: ro goes (still mounted), new comes, read-only too.
exec 3</mnt/ro/file
config new
kill -HUP $PID
retry 100 mount -t 9p -o $OPTS,aname=new /run/ninepd.sock /mnt/new 2>/dev/null || { cat /tmp/ninepd.log; exit 1; }
echo "new-touch $(touch /mnt/new/x 2>&1 || true)"
echo "removed-still-mounted $(cat /mnt/ro/file) $(cat <&3)"
exec 3<&-
if mnt ro /mnt/again 2>/dev/null; then echo "removed-mount accepted"; else echo "removed-mount refused"; fi
umount /mnt/ro /mnt/rw /mnt/new
kill $PID
wait $PID || true
cat /tmp/ninepd.log
"#;

#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_two_exports_from_a_config_mounted_at_once_and_reloaded() {
    let out = guest::Vm::builder()
        .timeout(Duration::from_secs(240))
        .static_bin("ninep-server", "ninepd")
        .run(SCRIPT)
        .expect("guest runs");
    let s = &out.stdout;
    let log = out.log_tail();
    assert!(out.success(), "{log}");
    assert_eq!(labelled(s, "mounts"), Some("2"), "{log}");
    assert_eq!(labelled(s, "rw-host"), Some("written"), "{log}");
    assert_eq!(
        labelled(s, "ro-read"),
        Some("in the read-only export"),
        "{log}"
    );
    for what in ["ro-touch", "ro-write", "new-touch"] {
        let said = labelled(s, what).unwrap_or_default();
        assert!(said.contains("Read-only file system"), "{what}: {log}");
    }
    assert_eq!(
        labelled(s, "ro-host-untouched"),
        Some("in the read-only export file"),
        "{log}"
    );
    assert_eq!(
        labelled(s, "removed-still-mounted"),
        Some("in the read-only export in the read-only export"),
        "{log}"
    );
    assert_eq!(labelled(s, "removed-mount"), Some("refused"), "{log}");
    assert!(s.contains("SIGHUP: reloaded"), "{log}");
}

/// Exports that admit vsock clients by context id: the guest's own client (CID 1, through
/// `vsock_loopback`) mounts the export that lists its CID, and is refused by one that lists another
/// CID and by one that admits TCP clients only.
#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_vsock_clients_are_admitted_by_context_id() {
    let script = r#"set -e
mkdir -p /srv/local /srv/other /srv/lan /mnt/9 /sbin
cp /bin/ninep-mount /sbin/mount.ninep
echo here > /srv/local/file
cat > /etc/ninepd.toml <<EOF
[export.local]
path = "/srv/local"
allow_cids = [1]
[export.other]
path = "/srv/other"
allow_cids = [9]
[export.lan]
path = "/srv/lan"
allow_hosts = ["127.0.0.0/8"]
EOF
ninepd --config /etc/ninepd.toml --listen vsock:5642 --log-level info 2>/tmp/ninepd.log &
retry 100 grep -q 'serving' /tmp/ninepd.log
attach() {
  if out=$(mount.ninep "vsock:1:5642:$1" /mnt/9 2>&1); then
    echo "$1 admitted $(cat /mnt/9/file 2>/dev/null)"; umount /mnt/9
  else echo "$1 refused $out"; fi
}
attach local
attach other
attach lan
cat /tmp/ninepd.log
"#;
    let out = guest::Vm::builder()
        .timeout(Duration::from_secs(240))
        .static_bin("ninep-server", "ninepd")
        .static_bin("ninep-mount", "ninep-mount")
        .run(script)
        .expect("guest runs");
    let s = &out.stdout;
    let log = out.log_tail();
    assert!(out.success(), "{log}");
    assert_eq!(labelled(s, "local"), Some("admitted here"), "{log}");
    for export in ["other", "lan"] {
        let said = labelled(s, export).unwrap_or_default();
        assert!(
            said.starts_with("refused") && said.contains("the server refused the attach"),
            "{export}: {log}"
        );
    }
}
