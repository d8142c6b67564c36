//! `cargo xtask kernel`: the Rust-enabled guest kernel and the out-of-tree Rust modules built against it.
//!
//! Debian's packaged 7.2 kernel (`linux-image-7.2.*+deb14-amd64`, from unstable) is built with
//! `CONFIG_RUST=y`, but its headers package ships no Rust metadata, so no out-of-tree Rust module can be
//! built against it as shipped. Rebuilding only `rust/` (`make modules_prepare`) from `linux-source-7.2`
//! with the package's own `.config`, the same rustc and the same C compiler gives crates with the same
//! hashes: every Rust symbol the packaged image exports is reproduced by name. So the packaged image
//! boots unchanged and the kernel itself is never compiled. This is checked on every build: if a
//! rebuilt export is missing from the package's `Module.symvers`, the build stops.
//!
//! Stages (each prints one line with its time):
//! 1. `chroot`: Debian unstable `debootstrap`ed under the cache, with the toolchain ([`chroot::PACKAGES`]).
//! 2. `image`: `apt-get download` of the packaged image, its modules and its headers (for `.config`,
//!    `Module.symvers` and the BTF `vmlinux`), matching the version of `linux-source-7.2`.
//! 3. `prepare`: the source unpacked, configured with the package's `.config`, `make modules_prepare`.
//! 4. `modules`: `rust_minimal` and `rnull` (from the source) and ours (`kernel/` in the workspace), `M=` builds.
//! 5. `install`: the image and its modules unpacked into the harness's layout (`boot/`, `lib/modules/`),
//!    plus `test-modules/` (plain `.ko` files to `insmod` in a test), `target/vm/kernel-rust` pointing to it.
//!
//! The cache (`/var/cache/kangrejos/kernel`, or `$KANGREJOS_KERNEL_CACHE`) lives outside the checkout so a
//! fresh clone reuses it. Stage 3 is keyed on the package versions of the source, the image and the
//! toolchain; stages 4-5 also on the files of `kernel/`. A run with everything cached only reads the keys.

mod chroot;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::cmd::workspace_root;
use chroot::Chroot;

/// Bumped when the recipe changes in a way the package versions do not show.
const RECIPE: &str = "kangrejos-kernel-recipe-1";
/// Bumped when the way the modules are built changes (flags, lints), which their sources do not show.
const MODULE_RECIPE: &str = "kangrejos-modules-recipe-2";
/// The source package; its upstream version picks the image.
const SOURCE_PACKAGE: &str = "linux-source-7.2";
/// Packages whose versions key the prepared tree.
const KEYED_PACKAGES: &[&str] = &[
    SOURCE_PACKAGE,
    "rustc",
    "rust-src",
    "bindgen",
    "libclang-dev",
    "gcc-16",
    "dwarves",
];
/// The in-tree Rust modules built out of tree: (name, source directory in the tree, files, Kbuild).
const TREE_MODULES: &[(&str, &str, &[&str], &str)] = &[
    (
        "rust_minimal",
        "samples/rust",
        &["rust_minimal.rs"],
        "obj-m := rust_minimal.o\n",
    ),
    (
        "rnull",
        "drivers/block/rnull",
        &["rnull.rs", "configfs.rs"],
        "obj-m := rnull_mod.o\nrnull_mod-y := rnull.o\n",
    ),
];
/// Our modules with a directory of their own under `kernel/` (directory and module name): `rnvme`, the
/// Rust PCI NVMe driver.
const OUR_SUBDIR_MODULES: &[&str] = &["rnvme"];
/// Packaged C modules the tests load by hand (not at boot), copied to `test-modules/` decompressed.
const PACKAGED_TEST_MODULES: &[&str] = &["configfs", "null_blk"];

#[derive(Debug, Args)]
pub struct KernelArgs {
    /// Refresh the chroot's packages from Debian's archive first (new versions give a new cache key).
    #[arg(long, conflicts_with = "no_install")]
    pub refresh: bool,
    /// Install and download nothing: use the kernel built before (an error if there is none).
    #[arg(long)]
    pub no_install: bool,
    /// Say what would be installed, downloaded and built, do none of it, and stop.
    #[arg(long)]
    pub dry_run: bool,
}

/// The kernel `cargo xtask vm --kernel` boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Flavor {
    /// Debian's 6.12 package.
    Debian,
    /// Debian's 7.2 package (`CONFIG_RUST=y`) with the Rust modules built against it.
    Rust,
}

/// `vm` booting the Rust kernel, with the test modules at `/lib/modules/test/` (built first if `build`).
pub fn with_rust_kernel(mut vm: guest::VmBuilder, build: bool) -> Result<guest::VmBuilder> {
    let kernel = if build { ensure(false)? } else { built()? };
    let dir = kernel.root.join("test-modules");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".ko"))
        .collect();
    names.sort();
    for name in names {
        vm = vm.file(dir.join(&name), &format!("/lib/modules/test/{name}"));
    }
    Ok(vm.kernel(guest::KernelFlavor::Rust))
}

pub fn run(args: KernelArgs) -> Result<ExitCode> {
    let kernel = match crate::install::Mode::from_flags(args.no_install, args.dry_run) {
        crate::install::Mode::DryRun => {
            println!("xtask: --dry-run: would install {}", describe_plan());
            return Ok(ExitCode::SUCCESS);
        }
        crate::install::Mode::Skip => built()?,
        crate::install::Mode::Install => ensure(args.refresh)?,
    };
    println!(
        "{} {} (boot it with `cargo xtask vm --kernel rust`)",
        kernel.version,
        kernel.root.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The kernel for a test suite: built or reused, unless the run may install nothing (`--no-install`).
pub fn for_suite() -> Result<guest::Kernel> {
    if crate::install::may_install() {
        ensure(false)
    } else {
        built()
    }
}

/// The kernel built before, for runs that may install nothing (`--no-install`). Refused when the
/// sources under `kernel/` changed since its modules were built: the run would test stale modules.
pub fn built() -> Result<guest::Kernel> {
    let kernel = guest::Kernel::find_rust().context(
        "--no-install: no Rust kernel has been built; `cargo xtask kernel --dry-run` says what building \
         it installs and downloads",
    )?;
    check_module_sources(&kernel.root, &module_sources_digest()?)?;
    Ok(kernel)
}

/// The file of an installed kernel that records the digest of the `kernel/` sources its modules were
/// built from.
const MODULE_SOURCES_STAMP: &str = "MODULE-SOURCES";

/// Fails unless the kernel installed at `root` has modules built from sources with `digest`.
fn check_module_sources(root: &Path, digest: &str) -> Result<()> {
    let recorded = std::fs::read_to_string(root.join(MODULE_SOURCES_STAMP)).unwrap_or_default();
    if recorded.trim() != digest {
        bail!(
            "--no-install: the modules at {} were not built from the sources now under kernel/ (changed \
             since, or built before they were recorded); `cargo xtask kernel` rebuilds them",
            root.display()
        );
    }
    Ok(())
}

/// What [`ensure`] would install, download and build now, for a dry run.
pub fn describe_plan() -> String {
    let cache = cache_dir();
    let mut text = String::from("the Rust guest kernel (`cargo xtask kernel`, as root):\n");
    match chroot::Chroot::plan(&cache) {
        Some(chroot) => {
            for line in chroot.lines() {
                text.push_str(&format!("  {line}\n"));
            }
        }
        None => text.push_str(&format!(
            "  the chroot under {} is complete\n",
            cache.display()
        )),
    }
    match guest::Kernel::find_rust() {
        Ok(kernel) => text.push_str(&format!(
            "  kernel {} is built; it is rebuilt only if the chroot's package versions or kernel/ changed\n",
            kernel.version
        )),
        Err(_) => text.push_str(&format!(
            "  in the chroot, `apt-get download` of the packaged 7.2 image, its modules and headers \
             (matching {SOURCE_PACKAGE}), `make modules_prepare` and the Rust modules, cached under {}\n",
            cache.display()
        )),
    }
    text
}

/// Why a non-root run cannot build the kernel, and what it can do instead.
fn not_root_message() -> String {
    format!(
        "cargo xtask kernel needs root: it creates a Debian chroot with debootstrap (about 3 GB, under {}; \
         KANGREJOS_KERNEL_CACHE moves it) and builds in it through chroot and unshare. Run it as root; \
         `cargo xtask kernel --dry-run` lists what it would install, and needs no root",
        cache_dir().display()
    )
}

/// The cache directory.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("KANGREJOS_KERNEL_CACHE").map_or_else(
        || PathBuf::from("/var/cache/kangrejos/kernel"),
        PathBuf::from,
    )
}

/// Builds what is missing (nothing when the cache is warm) and returns the kernel.
pub fn ensure(refresh: bool) -> Result<guest::Kernel> {
    let started = Instant::now();
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .context("cannot run `id -u`")?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        bail!("{}", not_root_message());
    }
    let cache = cache_dir();
    std::fs::create_dir_all(cache.join("logs"))
        .with_context(|| format!("cannot create {}", cache.display()))?;
    let _lock = CacheLock::acquire(&cache)?;
    let log = |stage: &str| cache.join("logs").join(format!("{stage}.log"));

    let chroot = stage("chroot", || Chroot::ensure(&cache, refresh, &log("chroot")))?;
    let versions = Versions::read(&chroot)?;
    let tree_key = hash(&format!("{RECIPE}\n{}", versions.describe()))?;
    let sources = module_sources_digest()?;
    let module_key = hash(&format!("{tree_key}\n{MODULE_RECIPE}\n{sources}"))?;

    let debs = stage("image", || fetch_image(&chroot, &versions, &log("image")))?;
    let tree = stage("prepare", || {
        prepare_tree(&chroot, &versions, &debs, &tree_key, &log("prepare"))
    })?;
    let built = stage("modules", || {
        build_modules(&chroot, &tree, &module_key, &log("modules"))
    })?;
    let kernel = stage("install", || {
        install(&cache, &chroot, &versions, &debs, &built, &module_key)
    })?;
    // Written on every run, so a kernel installed before the stamp existed gets it too.
    std::fs::write(kernel.root.join(MODULE_SOURCES_STAMP), &sources)?;
    remove_stale(&cache, &chroot, &tree_key, &module_key);
    eprintln!(
        "xtask kernel: {} ready in {:.1} s",
        kernel.version,
        started.elapsed().as_secs_f64()
    );
    Ok(kernel)
}

/// Runs one stage and prints its name and time.
fn stage<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let t = Instant::now();
    eprintln!("xtask kernel: [{name}] ...");
    let out = f().with_context(|| format!("kernel stage `{name}` failed"))?;
    eprintln!(
        "xtask kernel: [{name}] done in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    Ok(out)
}

/// Package versions in the chroot and the packaged image that matches the source.
#[derive(Debug)]
struct Versions {
    /// `Package=Version` lines of [`KEYED_PACKAGES`].
    toolchain: String,
    /// Version of the source package, e.g. `7.2.13-1`.
    source: String,
    /// The image's kernel release, e.g. `7.2.13+deb14-amd64`.
    release: String,
}

impl Versions {
    fn read(chroot: &Chroot) -> Result<Versions> {
        let toolchain = chroot.output(&format!(
            "dpkg-query -W -f '${{Package}}=${{Version}}\\n' {}",
            KEYED_PACKAGES.join(" ")
        ))?;
        let source = toolchain
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{SOURCE_PACKAGE}=")))
            .context("linux-source-7.2 is not installed in the chroot")?
            .to_owned();
        let upstream = source.split('-').next().unwrap_or(&source);
        let names = chroot.output(&format!("apt-cache pkgnames linux-binary-{upstream}+"))?;
        let release = image_release(&names, upstream).with_context(|| {
            format!(
                "Debian's archive lists no linux-binary-{upstream}+debNN-amd64 matching \
                 {SOURCE_PACKAGE} {source}; run `cargo xtask kernel --refresh`"
            )
        })?;
        let shown = chroot.output(&format!(
            "apt-cache show --no-all-versions linux-binary-{release}"
        ))?;
        let image = field(&shown, "Version").unwrap_or_default();
        if image != source {
            bail!(
                "the packaged image linux-binary-{release} is version {image} but {SOURCE_PACKAGE} is \
                 {source}: their Rust crates would not match; run `cargo xtask kernel --refresh` \
                 once the archive has both at the same version"
            );
        }
        Ok(Versions {
            toolchain,
            source,
            release,
        })
    }

    fn describe(&self) -> String {
        format!("{}image={} {}\n", self.toolchain, self.release, self.source)
    }
}

/// The kernel release of the generic amd64 image in `apt-cache pkgnames` output.
fn image_release(names: &str, upstream: &str) -> Option<String> {
    let prefix = format!("linux-binary-{upstream}+deb");
    names
        .lines()
        .map(str::trim)
        .filter_map(|name| name.strip_prefix(&prefix))
        .find(|rest| {
            rest.strip_suffix("-amd64")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|rest| format!("{upstream}+deb{rest}"))
}

/// The value of `name: value` in a Debian control paragraph.
fn field<'a>(paragraph: &'a str, name: &str) -> Option<&'a str> {
    paragraph
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// The image, modules and headers packages, downloaded and unpacked under `/build/debs-<release>/`.
fn fetch_image(chroot: &Chroot, versions: &Versions, log: &Path) -> Result<String> {
    let dir = format!("/build/debs-{}-{}", versions.release, versions.source);
    let host = chroot.host_path(&dir);
    if host.join(".complete").exists() {
        return Ok(dir);
    }
    let r = &versions.release;
    chroot.run(
        "download",
        &format!(
            "rm -rf {dir} && mkdir -p {dir}/x && cd {dir} && apt-get download \
             linux-binary-{r} linux-modules-{r} linux-headers-{r} && \
             for d in *.deb; do dpkg-deb -x \"$d\" x; done && touch .complete"
        ),
        log,
    )?;
    Ok(dir)
}

/// The prepared source tree (inside the chroot), made once per `key`.
fn prepare_tree(
    chroot: &Chroot,
    versions: &Versions,
    debs: &str,
    key: &str,
    log: &Path,
) -> Result<String> {
    let dir = format!("/build/tree-{key}");
    let tree = format!("{dir}/linux");
    if chroot.host_path(&dir).join(".complete").exists() {
        return Ok(tree);
    }
    let headers = format!("{debs}/x/usr/src/linux-headers-{}", versions.release);
    let config = std::fs::read_to_string(chroot.host_path(&format!("{headers}/.config")))
        .context("the headers package has no .config")?;
    let cc = config_value(&config, "CONFIG_CC_VERSION_TEXT")
        .and_then(|v| v.split_whitespace().next().map(str::to_owned))
        .context("the packaged .config has no CONFIG_CC_VERSION_TEXT")?;
    let _ = std::fs::remove_file(log);
    chroot.run(
        "unpack",
        &format!(
            "rm -rf {dir} && mkdir -p {dir} && tar -C {dir} -xf /usr/src/{SOURCE_PACKAGE}.tar.xz && \
             mv {dir}/{SOURCE_PACKAGE} {tree} && cp {headers}/.config {tree}/.config && \
             make -C {tree} CC={cc} olddefconfig"
        ),
        log,
    )?;
    let ours = std::fs::read_to_string(chroot.host_path(&format!("{tree}/.config")))?;
    let differences = config_differences(&config, &ours);
    if !differences.is_empty() {
        eprintln!(
            "xtask kernel: note: olddefconfig changed {} option(s) of the packaged config: {}",
            differences.len(),
            differences.join(", ")
        );
    }
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    chroot.run(
        "modules_prepare",
        &format!(
            "make -C {tree} CC={cc} KERNELRELEASE={} -j{jobs} modules_prepare && \
             cp {headers}/Module.symvers {headers}/vmlinux {tree}/",
            versions.release
        ),
        log,
    )?;
    check_exports(&chroot.host_path(&tree))?;
    std::fs::write(chroot.host_path(&dir).join(".complete"), &cc)?;
    Ok(tree)
}

/// The value of `NAME=value` in a `.config`, without quotes.
fn config_value(config: &str, name: &str) -> Option<String> {
    config
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
        .map(|v| v.trim_matches('"').to_owned())
}

/// Options set differently (or only on one side) in two `.config` texts.
fn config_differences(a: &str, b: &str) -> Vec<String> {
    let set = |text: &str| -> std::collections::BTreeSet<String> {
        text.lines()
            .filter(|l| l.starts_with("CONFIG_"))
            .map(str::to_owned)
            .collect()
    };
    let (a, b) = (set(a), set(b));
    let mut names: Vec<String> = a
        .symmetric_difference(&b)
        .filter_map(|l| l.split('=').next().map(str::to_owned))
        .collect();
    names.dedup();
    names
}

/// Every Rust symbol the rebuilt `rust/` exports must be exported by the packaged image too: then the
/// crate hashes match and modules built here link against the image.
fn check_exports(tree: &Path) -> Result<()> {
    let symvers = std::fs::read_to_string(tree.join("Module.symvers"))?;
    let packaged: std::collections::BTreeSet<&str> = symvers
        .lines()
        .filter_map(|l| l.split('\t').nth(1))
        .filter(|s| s.starts_with("_R"))
        .collect();
    let mut ours = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(tree.join("rust"))? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with("exports_") && name.ends_with("_generated.h") {
            for line in std::fs::read_to_string(&path)?.lines() {
                if let Some(sym) = exported_symbol(line) {
                    ours.insert(sym.to_owned());
                }
            }
        }
    }
    let missing: Vec<&String> = ours
        .iter()
        .filter(|s| !packaged.contains(s.as_str()))
        .collect();
    if ours.is_empty() || !missing.is_empty() {
        bail!(
            "the rebuilt rust/ does not match the packaged image: {} of {} exported Rust symbols are \
             not in its Module.symvers (first: {:?}); the toolchain differs from the one Debian used",
            missing.len(),
            ours.len(),
            missing.first()
        );
    }
    eprintln!(
        "xtask kernel: all {} Rust symbols of the rebuilt rust/ are exported by the packaged image",
        ours.len()
    );
    Ok(())
}

/// The symbol of an `EXPORT_SYMBOL_RUST_GPL(sym);` line.
fn exported_symbol(line: &str) -> Option<&str> {
    let rest = line.trim().strip_prefix("EXPORT_SYMBOL_RUST_GPL(")?;
    rest.split(')').next().filter(|s| s.starts_with("_R"))
}

/// Digest of the files of the workspace's `kernel/` directory (our module's sources and Kbuild), by
/// their names inside it, so that every checkout of the same sources shares one cache entry.
fn module_sources_digest() -> Result<String> {
    let dir = workspace_root().join("kernel");
    let mut text = String::new();
    let mut files = module_source_files(&dir)?;
    for name in OUR_SUBDIR_MODULES {
        files.extend(module_source_files(&dir.join(name))?);
    }
    for path in files {
        text.push_str(&format!(
            "{}\n{}\n",
            path.strip_prefix(&dir).unwrap_or(&path).display(),
            std::fs::read_to_string(&path)?
        ));
    }
    hash(&text)
}

/// The files our module is built from: `Kbuild` and the `.rs` files of `kernel/`.
fn module_source_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().is_some_and(|n| n == "Kbuild") || p.extension().is_some_and(|e| e == "rs")
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Builds the modules under `/build/mods-<key>/<name>/` and returns that directory.
fn build_modules(chroot: &Chroot, tree: &str, key: &str, log: &Path) -> Result<String> {
    let dir = format!("/build/mods-{key}");
    let host = chroot.host_path(&dir);
    if host.join(".complete").exists() {
        return Ok(dir);
    }
    let _ = std::fs::remove_file(log);
    if host.exists() {
        std::fs::remove_dir_all(&host)?;
    }
    let cc = std::fs::read_to_string(chroot.host_path(tree).with_file_name(".complete"))?;
    let mut script = String::new();
    for (name, src, files, kbuild) in TREE_MODULES {
        let to = host.join(name);
        std::fs::create_dir_all(&to)?;
        for file in *files {
            std::fs::copy(
                chroot.host_path(&format!("{tree}/{src}/{file}")),
                to.join(file),
            )?;
        }
        std::fs::write(to.join("Kbuild"), kbuild)?;
        script.push_str(&format!("make -C {tree} CC={cc} M={dir}/{name} modules\n"));
    }
    let ours = host.join("kangrejos");
    std::fs::create_dir_all(&ours)?;
    for file in module_source_files(&workspace_root().join("kernel"))? {
        std::fs::copy(&file, ours.join(file.file_name().unwrap_or_default()))?;
    }
    // Our module must build without a warning, clippy's (with the kernel's lint settings) included.
    script.push_str(&format!(
        "make -C {tree} CC={cc} M={dir}/kangrejos CLIPPY=1 KRUSTFLAGS=-Dwarnings modules\n"
    ));
    for name in OUR_SUBDIR_MODULES {
        let to = host.join(name);
        std::fs::create_dir_all(&to)?;
        for file in module_source_files(&workspace_root().join("kernel").join(name))? {
            std::fs::copy(&file, to.join(file.file_name().unwrap_or_default()))?;
        }
        // Checked by the kernel's clippy too (`CLIPPY=1`), warnings as errors.
        script.push_str(&format!(
            "make -C {tree} CC={cc} M={dir}/{name} CLIPPY=1 KRUSTFLAGS=-Dwarnings modules\n"
        ));
    }
    chroot.run("make M=", &script, log)?;
    std::fs::write(host.join(".complete"), "")?;
    Ok(dir)
}

/// Unpacks the image into `out-<key>/` in the harness's layout and points `target/vm/kernel-rust` at it.
fn install(
    cache: &Path,
    chroot: &Chroot,
    versions: &Versions,
    debs: &str,
    built: &str,
    key: &str,
) -> Result<guest::Kernel> {
    let out = cache.join(format!("out-{key}"));
    let release = &versions.release;
    if !out.join(".installed").exists() {
        let partial = cache.join(format!("out-{key}.partial"));
        if partial.exists() {
            std::fs::remove_dir_all(&partial)?;
        }
        let unpacked = chroot.host_path(&format!("{debs}/x"));
        let modules = unpacked.join("usr/lib/modules").join(release);
        std::fs::create_dir_all(partial.join("boot"))?;
        std::fs::create_dir_all(partial.join("lib/modules"))?;
        std::fs::copy(
            modules.join("vmlinuz"),
            partial.join("boot").join(format!("vmlinuz-{release}")),
        )?;
        let to = partial.join("lib/modules").join(release);
        checked(Command::new("cp").arg("-a").arg(&modules).arg(&to))?;
        for link in ["build", "source", "vmlinuz"] {
            let _ = std::fs::remove_file(to.join(link));
        }
        // The packages carry neither list; depmod warns without them.
        for list in [
            "modules.order",
            "modules.builtin",
            "modules.builtin.modinfo",
        ] {
            std::fs::File::create(to.join(list))?;
        }
        // `cargo xtask kernel` alone installs no guest tools: a fresh host may lack kmod.
        chroot::ensure_host_tool("depmod", "kmod")?;
        checked(Command::new("depmod").arg("-b").arg(&partial).arg(release))?;

        let tests = partial.join("test-modules");
        std::fs::create_dir_all(&tests)?;
        let mods = chroot.host_path(built);
        for (from, name) in [
            ("rust_minimal", "rust_minimal.ko"),
            ("rnull", "rnull_mod.ko"),
            ("kangrejos", "kangrejos.ko"),
            ("rnvme", "rnvme.ko"),
        ] {
            std::fs::copy(mods.join(from).join(name), tests.join(name))
                .with_context(|| format!("{name} was not built"))?;
        }
        for name in PACKAGED_TEST_MODULES {
            let shown = Command::new("modprobe")
                .arg("-d")
                .arg(&partial)
                .args(["-S", release, "--show-depends", name])
                .output()
                .context("cannot run modprobe")?;
            let shown = String::from_utf8_lossy(&shown.stdout);
            let path = shown
                .lines()
                .filter_map(|l| l.strip_prefix("insmod "))
                .filter_map(|l| l.split_whitespace().next())
                .next_back()
                .with_context(|| format!("{name} is not a module of the packaged image"))?;
            let plain = std::fs::File::create(tests.join(format!("{name}.ko")))?;
            checked(Command::new("xz").arg("-dc").arg(path).stdout(plain))?;
        }
        std::fs::write(partial.join("BUILD-INFO"), versions.describe())?;
        std::fs::write(partial.join(".installed"), release)?;
        std::fs::rename(&partial, &out)?;
    }
    let link = guest::rust_kernel_link();
    if let Some(parent) = link.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&out, &link)
        .with_context(|| format!("cannot link {} to {}", link.display(), out.display()))?;
    Ok(guest::Kernel {
        root: out,
        version: release.clone(),
    })
}

/// Removes trees, module builds and installs of other keys (each tree is about 2 GB).
/// Entries of each kind kept besides the current one: other checkouts (another branch, a CI clone)
/// may be using theirs, so only the least recently built go.
const KEEP_OTHERS: [(&str, usize); 3] = [("tree-", 1), ("mods-", 3), ("out-", 3)];

fn remove_stale(cache: &Path, chroot: &Chroot, tree_key: &str, module_key: &str) {
    let current = [
        format!("tree-{tree_key}"),
        format!("mods-{module_key}"),
        format!("out-{module_key}"),
    ];
    for dir in [cache.to_path_buf(), chroot.host_path("/build")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let entries: Vec<(String, PathBuf, std::time::SystemTime)> = entries
            .flatten()
            .map(|e| {
                let modified = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.path(),
                    modified,
                )
            })
            .collect();
        for (prefix, keep) in KEEP_OTHERS {
            let mut others: Vec<&(String, PathBuf, std::time::SystemTime)> = entries
                .iter()
                .filter(|(name, ..)| name.starts_with(prefix) && !current.contains(name))
                .collect();
            others.sort_by_key(|(.., modified)| std::cmp::Reverse(*modified));
            for (_, path, _) in others.into_iter().skip(keep) {
                let _ = std::fs::remove_dir_all(path);
            }
        }
    }
}

/// SHA-256 of `text` (hex, first 16 characters), by `sha256sum`.
fn hash(text: &str) -> Result<String> {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run sha256sum")?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    let hex = String::from_utf8_lossy(&out.stdout);
    Ok(hex.chars().take(16).collect())
}

fn checked(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// An exclusive lock on the cache, so two builds never write it at once.
struct CacheLock {
    _file: std::fs::File,
}

impl CacheLock {
    fn acquire(cache: &Path) -> Result<CacheLock> {
        let path = cache.join(".lock");
        let file = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            eprintln!(
                "xtask kernel: waiting for another build holding {}",
                path.display()
            );
            rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
                .with_context(|| format!("cannot lock {}", path.display()))?;
        }
        Ok(CacheLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_is_reused_only_with_modules_built_from_the_current_sources() {
        let root = std::env::temp_dir().join(format!("xtask-module-stamp-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        let refused = check_module_sources(&root, "abc").unwrap_err().to_string();
        assert!(
            refused.contains("`cargo xtask kernel` rebuilds them"),
            "{refused}"
        );
        std::fs::write(root.join(MODULE_SOURCES_STAMP), "abc").unwrap();
        assert!(check_module_sources(&root, "abc").is_ok());
        let refused = check_module_sources(&root, "abd").unwrap_err().to_string();
        assert!(refused.contains(&root.display().to_string()), "{refused}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_generic_image_is_picked_among_its_flavours() {
        let names = "linux-binary-7.2.13+deb14-cloud-amd64\nlinux-binary-7.2.13+deb14-rt-amd64\n\
                     linux-binary-7.2.13+deb14-amd64\n";
        assert_eq!(
            image_release(names, "7.2.13").as_deref(),
            Some("7.2.13+deb14-amd64")
        );
        assert_eq!(
            image_release("linux-binary-7.2.13+deb14-rt-amd64\n", "7.2.13"),
            None
        );
        assert_eq!(image_release("", "7.2.13"), None);
    }

    #[test]
    fn export_lines_and_config_values_are_parsed() {
        assert_eq!(
            exported_symbol("EXPORT_SYMBOL_RUST_GPL(_RNvCs1_6kernel3foo);"),
            Some("_RNvCs1_6kernel3foo")
        );
        assert_eq!(exported_symbol("EXPORT_SYMBOL_GPL(memcpy);"), None);
        let config =
            "# c\nCONFIG_CC_VERSION_TEXT=\"x86_64-linux-gnu-gcc-16 (Debian 16.2.0-4) 16.2.0\"\n";
        assert_eq!(
            config_value(config, "CONFIG_CC_VERSION_TEXT").as_deref(),
            Some("x86_64-linux-gnu-gcc-16 (Debian 16.2.0-4) 16.2.0")
        );
        assert_eq!(
            config_differences(
                "CONFIG_A=y\nCONFIG_B=m\n",
                "CONFIG_A=y\nCONFIG_B=y\nCONFIG_C=y\n"
            ),
            ["CONFIG_B", "CONFIG_C"]
        );
        assert_eq!(
            field("Package: x\nVersion: 7.2.13-1\n", "Version"),
            Some("7.2.13-1")
        );
    }
}
