//! What the guest suites of `ninepd` share: the content-checked shell workload run on a v9fs
//! mount, its checks, the guest builder with the tools the workload needs, and MUNGE keys and
//! daemons.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Tools the workload needs beyond busybox, copied from the host with their libraries.
pub const HOST_TOOLS: &[&str] = &["/usr/bin/setfattr", "/usr/bin/getfattr", "/usr/bin/flock"];
/// Entries of the large directory listed through the mount.
pub const MANY: usize = 10_000;

/// A shell workload on the mount at `$M`: every line it prints that matters is `label value`.
pub const WORKLOAD: &str = r#"
cp /share/random $M/random
echo "time start $(cut -d' ' -f1 /proc/uptime)"
echo "written $(sha256sum $M/random | cut -d' ' -f1)"
echo 3 > /proc/sys/vm/drop_caches
echo "readback $(sha256sum $M/random | cut -d' ' -f1)"
mkdir $M/dir
mv $M/random $M/dir/moved
ln $M/dir/moved $M/hard
ln -s dir/moved $M/soft
echo "nlink $(stat -c %h $M/hard)"
echo "viasoft $(sha256sum $M/soft | cut -d' ' -f1)"
echo "readlink $(readlink $M/soft)"
printf 'hello ' > $M/small; printf 'world' >> $M/small
echo "small $(cat $M/small)"
setfattr -n user.colour -v blue $M/small
echo "xattr $(getfattr --only-values -n user.colour $M/small)"
flock $M/small -c 'echo locked yes'
echo "time before-readdir $(cut -d' ' -f1 /proc/uptime)"
set -- $M/many/*
echo "entries $#"
eval echo "lastentry \$(basename \${$#})"
echo "time after-readdir $(cut -d' ' -f1 /proc/uptime)"
rm $M/hard
echo "unlinked $(stat -c %h $M/dir/moved)"
rm -r $M/dir $M/soft
echo "leftover $(ls $M | sort | tr '\n' ' ')"
echo "time end $(cut -d' ' -f1 /proc/uptime)"
"#;

pub fn random_file(path: &Path, len: usize) {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(path, data).unwrap();
}

pub fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// The value printed after `label ` in the guest's output.
pub fn labelled<'a>(out: &'a str, label: &str) -> Option<&'a str> {
    out.lines().find_map(|l| {
        l.strip_prefix(label)
            .and_then(|r| r.strip_prefix(' '))
            .map(str::trim)
    })
}

pub fn check_workload(out: &guest::Output, random: &Path) {
    let want = sha256(random);
    let s = &out.stdout;
    let log = out.log_tail();
    assert_eq!(labelled(s, "written"), Some(want.as_str()), "{log}");
    assert_eq!(labelled(s, "readback"), Some(want.as_str()), "{log}");
    assert_eq!(labelled(s, "viasoft"), Some(want.as_str()), "{log}");
    assert_eq!(labelled(s, "nlink"), Some("2"), "{log}");
    assert_eq!(labelled(s, "readlink"), Some("dir/moved"), "{log}");
    assert_eq!(labelled(s, "small"), Some("hello world"), "{log}");
    assert_eq!(labelled(s, "xattr"), Some("blue"), "{log}");
    assert_eq!(labelled(s, "locked"), Some("yes"), "{log}");
    assert_eq!(
        labelled(s, "entries"),
        Some(MANY.to_string().as_str()),
        "{log}"
    );
    assert_eq!(
        labelled(s, "lastentry"),
        Some(format!("f{:04}", MANY - 1).as_str()),
        "{log}"
    );
    assert_eq!(labelled(s, "unlinked"), Some("1"), "{log}");
    let leftover = labelled(s, "leftover").unwrap_or_default();
    assert!(leftover.ends_with("many small"), "{log}");
}

pub fn builder() -> guest::VmBuilder {
    let mut b = guest::Vm::builder().timeout(Duration::from_secs(240));
    for tool in HOST_TOOLS {
        b = b.host_program(tool);
    }
    b
}

/// Shell function `start_mungeds OTHER`: the guest's own `munged` on the default socket with
/// `/share/good.key` (the key a server's munged shares), and another on `/m/OTHER/sock` with
/// `/share/OTHER.key`; returns once both listen.
pub const START_MUNGEDS: &str = r#"
start_mungeds() {
  mkdir -p /run/munge "/m/$1"
  chmod 755 /run/munge /m "/m/$1"
  cp /share/good.key /run/munge/key; cp "/share/$1.key" "/m/$1/key"
  chmod 600 /run/munge/key "/m/$1/key"
  munged --force --key-file=/run/munge/key --pid-file=/run/munge/pid --seed-file=/run/munge/seed --log-file=/run/munge/log
  munged --force --socket="/m/$1/sock" --key-file="/m/$1/key" --pid-file="/m/$1/pid" --seed-file="/m/$1/seed" --log-file="/m/$1/log"
  retry 100 test -S /run/munge/munge.socket.2
  retry 100 test -S "/m/$1/sock"
}
"#;

/// A fresh MUNGE key per name, made by Debian's `mungekey` under `dir`.
pub fn munge_keys(dir: &Path, names: &[&str]) -> Vec<std::path::PathBuf> {
    names
        .iter()
        .map(|name| {
            let key = dir.join(name);
            let made = std::process::Command::new("mungekey")
                .arg("--create")
                .arg(format!("--keyfile={}", key.display()))
                .status()
                .expect("mungekey runs (apt-get install munge)");
            assert!(made.success());
            key
        })
        .collect()
}
