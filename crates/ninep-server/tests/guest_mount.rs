//! `ninepd --listen vsock:PORT` and `mount.ninep` (crates/ninep-mount) in the QEMU guest of
//! `crates/guest`: util-linux's mount(8) runs `/sbin/mount.ninep` for `mount -t ninep`, which
//! connects over vsock (the guest's own CID 1, through `vsock_loopback`), TCP or a unix socket,
//! authenticates with MUNGE when the server asks, and hands the connection to the kernel's
//! v9fs. Run by `cargo xtask test` (suite `ninep-guest`).

mod guest_workload;
use guest_workload::{
    MANY, START_MUNGEDS, WORKLOAD, builder, check_workload, labelled, munge_keys, random_file,
    sha256,
};

/// Runs a command that must fail, and prints `err-NAME EXIT MESSAGE`.
const EXPECT_FAILURE: &str = r#"
fails() {
  name=$1; shift
  if out=$("$@" 2>&1); then echo "err-$name 0 $out"; umount /mnt/9 2>/dev/null || true
  else echo "err-$name $? $out"; fi
}
"#;

#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_mount_ninep_over_vsock_tcp_and_unix() {
    let dir = tempfile::tempdir().unwrap();
    let random = dir.path().join("random");
    random_file(&random, 4 << 20);
    let keys = munge_keys(dir.path(), &["good", "other"]);
    let script = format!(
        r#"set -e
{EXPECT_FAILURE}
{START_MUNGEDS}
echo 'tests:x:1001:1001:tests:/:/bin/sh' >> /etc/passwd
echo 'tests:x:1001:' >> /etc/group
mkdir -p /export /mnt/9 /sbin
cp /bin/ninep-mount /sbin/mount.ninep
mount -t tmpfs -o size=256m tmpfs /export
mkdir /export/many
cd /export/many && seq -w 0 {last} | sed 's/^/f/' | xargs touch && cd /
# A vsock peer is as unknown as a TCP one: it acts as the squash identity, nobody.
chown -R 65534:65534 /export
ninepd /export --listen vsock:5640 --log-level info 2>/tmp/vsock.log &
ninepd /export --listen tcp:127.0.0.1:5640 --log-level info 2>/tmp/tcp.log &
ninepd /export --listen unix:/tmp/9p.sock --log-level info 2>/tmp/unix.log &
retry 100 test -S /tmp/9p.sock
retry 100 grep -q 'serving' /tmp/vsock.log
retry 100 grep -q 'serving' /tmp/tcp.log

# The whole workload over vsock, mounted by mount(8) through /sbin/mount.ninep.
/usr/bin/mount -t ninep -o msize=1048576,access=user vsock:1:5640 /mnt/9 || {{ cat /tmp/vsock.log; exit 1; }}
echo "mounted $(grep ' /mnt/9 ' /proc/mounts)"
M=/mnt/9
touch $M/squashed
echo "squashed-owner $(stat -c %u:%g /export/squashed)"
rm $M/squashed
{WORKLOAD}
umount /mnt/9

# TCP and a unix socket: a file written and read back through each.
for source in tcp:127.0.0.1:5640 unix:/tmp/9p.sock; do
  kind=${{source%%:*}}
  /usr/bin/mount -t ninep -o msize=262144 $source /mnt/9
  cp /share/random /mnt/9/via-$kind
  echo 3 > /proc/sys/vm/drop_caches
  echo "$kind-written $(sha256sum /export/via-$kind | cut -d' ' -f1)"
  echo "$kind-read $(sha256sum /mnt/9/via-$kind | cut -d' ' -f1)"
  echo "$kind-mount $(grep -c "^$source /mnt/9 9p .*trans=fd" /proc/mounts)"
  rm /mnt/9/via-$kind
  umount /mnt/9
done

# The aname after the address: the mount's root is that directory.
/usr/bin/mount -t ninep vsock:1:5640:many /mnt/9
set -- /mnt/9/*
echo "aname-entries $#"
umount /mnt/9

# Failures: each gives its reason and a non-zero exit (mount(8) passes the helper's on).
fails down mount.ninep vsock:1:5999 /mnt/9
fails tcp-down /usr/bin/mount -t ninep tcp:127.0.0.1:5999 /mnt/9
fails kind mount.ninep nfs:server:/x /mnt/9
fails option /usr/bin/mount -t ninep -o msize=65536,bogus vsock:1:5640 /mnt/9
fails reserved mount.ninep -o trans=tcp vsock:1:5640 /mnt/9
fails attach mount.ninep vsock:1:5640:no-such-dir /mnt/9
fails outside mount.ninep tcp:127.0.0.1:5640:/etc /mnt/9

# MUNGE over vsock: the server's munged and the guest's share a key; another munged has its own.
start_mungeds other
mkdir /export/auth && chmod 777 /export/auth
# This one also busy-polls its vsock connections.
ninepd /export/auth --listen vsock:5641 --auth munge --multi-user --busy-poll 20 --log-level info 2>/tmp/auth.log &
retry 100 grep -q 'serving' /tmp/auth.log
# Authenticated as root: each user acts as itself (root is squashed).
/usr/bin/mount -t ninep -o access=user vsock:1:5641 /mnt/9
su tests -s /bin/sh -c 'echo hello > /mnt/9/by-tests'
echo hello > /mnt/9/by-root
echo "munge-owners $(stat -c %u /export/auth/by-tests) $(stat -c %u /export/auth/by-root)"
umount /mnt/9
fails wrongkey mount.ninep -o munge_socket=/m/other/sock vsock:1:5641 /mnt/9
fails nomunged mount.ninep -o munge_socket=/m/none vsock:1:5641 /mnt/9
echo "--- ninepd logs"
cat /tmp/vsock.log /tmp/auth.log
"#,
        last = MANY - 1
    );
    let out = builder()
        .static_bin("ninep-server", "ninepd")
        .static_bin("ninep-mount", "ninep-mount")
        .host_program("/usr/bin/mount")
        .host_program("/usr/sbin/munged")
        .file(&random, "/share/random")
        .file(&keys[0], "/share/good.key")
        .file(&keys[1], "/share/other.key")
        .run(&script)
        .expect("guest runs");
    let s = &out.stdout;
    let log = out.log_tail();
    assert!(out.success(), "{log}");
    assert!(
        s.contains("msize=1048576") && s.contains("trans=fd"),
        "{log}"
    );
    check_workload(&out, &random);
    assert_eq!(labelled(s, "squashed-owner"), Some("65534:65534"), "{log}");
    assert!(s.contains("serving /export on vsock:5640"), "{log}");

    let hash = sha256(&random);
    for kind in ["tcp", "unix"] {
        assert_eq!(
            labelled(s, &format!("{kind}-written")),
            Some(hash.as_str()),
            "{log}"
        );
        assert_eq!(
            labelled(s, &format!("{kind}-read")),
            Some(hash.as_str()),
            "{log}"
        );
        assert_eq!(labelled(s, &format!("{kind}-mount")), Some("1"), "{log}");
    }
    assert_eq!(
        labelled(s, "aname-entries"),
        Some(MANY.to_string().as_str()),
        "{log}"
    );

    // Each failure: mount's exit code and mount.ninep's reason.
    let failure = |name: &str, code: &str, reason: &str| {
        let line = labelled(s, &format!("err-{name}")).unwrap_or_default();
        assert!(
            line.starts_with(&format!("{code} ")) && line.contains(reason),
            "{name}: want exit {code} and `{reason}`, got `{line}`\n{log}"
        );
    };
    failure("down", "32", "cannot connect to vsock:1:5999");
    failure("tcp-down", "32", "Connection refused");
    failure("kind", "1", "is not tcp:HOST[:PORT][:ANAME]");
    failure("option", "1", "unknown option `bogus`");
    failure("reserved", "1", "option `trans` is set by mount.ninep");
    failure(
        "attach",
        "32",
        "the server refused the attach to `no-such-dir`: No such file or directory",
    );
    failure("outside", "32", "the server refused the attach to `/etc`");
    assert_eq!(labelled(s, "munge-owners"), Some("1001 65534"), "{log}");
    failure("wrongkey", "32", "the server refused the attach");
    failure("nomunged", "32", "cannot talk to munged at /m/none");
    assert!(s.contains("authenticated with MUNGE"), "{log}");
}
