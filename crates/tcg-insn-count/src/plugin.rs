//! The plugin's side of QEMU's C plugin API (`qemu-plugin.h`, API version 1, as QEMU 7.2 has it):
//! the symbols QEMU looks up when it loads the library, and the calls back into QEMU.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::path::PathBuf;
use std::sync::OnceLock;

use crate::counters::{Blocks, Snapshot};

/// `qemu_plugin_id_t`.
type PluginId = u64;

/// `struct qemu_plugin_tb`: opaque, valid during the translation callback only.
#[repr(C)]
struct TranslationBlock {
    _opaque: [u8; 0],
}

/// `QEMU_PLUGIN_INLINE_ADD_U64`.
const INLINE_ADD_U64: c_int = 0;

unsafe extern "C" {
    fn qemu_plugin_register_vcpu_tb_trans_cb(
        id: PluginId,
        cb: extern "C" fn(PluginId, *mut TranslationBlock),
    );
    fn qemu_plugin_tb_n_insns(tb: *const TranslationBlock) -> usize;
    fn qemu_plugin_tb_vaddr(tb: *const TranslationBlock) -> u64;
    fn qemu_plugin_register_vcpu_tb_exec_inline(
        tb: *mut TranslationBlock,
        op: c_int,
        ptr: *mut c_void,
        imm: u64,
    );
}

/// The API version this plugin was written against; QEMU refuses a plugin it does not support.
#[unsafe(no_mangle)]
pub static qemu_plugin_version: c_int = 1;

static BLOCKS: OnceLock<Blocks> = OnceLock::new();

/// Called by QEMU when it loads the plugin; `argv` holds the `-plugin` option's `name=value` pairs.
/// Needs `dir=DIR` (where snapshots are asked for); without it the plugin refuses to load.
/// `blocks=on` adds the kernel's blocks to every snapshot.
///
/// # Safety
///
/// Called by QEMU only, with `argc` valid C strings in `argv`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qemu_plugin_install(
    id: PluginId,
    _info: *const c_void,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    let mut dir = None;
    let mut per_block = false;
    for i in 0..usize::try_from(argc).unwrap_or(0) {
        // SAFETY: `i < argc`, so the slot is within the `argv` array QEMU passes.
        let slot = unsafe { argv.add(i) };
        // SAFETY: each of the `argc` slots holds a valid pointer.
        let arg = unsafe { *slot };
        // SAFETY: each is a NUL-terminated string that lives through this call.
        let arg = unsafe { CStr::from_ptr(arg) }.to_string_lossy();
        if let Some(path) = arg.strip_prefix("dir=") {
            dir = Some(PathBuf::from(path));
        } else if arg == "blocks=on" {
            per_block = true;
        }
    }
    let Some(dir) = dir else {
        eprintln!("tcg-insn-count: needs dir=DIR");
        return -1;
    };
    let blocks = BLOCKS.get_or_init(Blocks::default);
    std::thread::spawn(move || Snapshot::serve(&dir, blocks, per_block));
    // SAFETY: `id` is the id QEMU gave this plugin; `translated` has the callback's signature.
    unsafe { qemu_plugin_register_vcpu_tb_trans_cb(id, translated) };
    0
}

/// A block was translated: give it a counter that its runs add its instruction count to.
extern "C" fn translated(_id: PluginId, tb: *mut TranslationBlock) {
    let Some(blocks) = BLOCKS.get() else {
        return;
    };
    // SAFETY: `tb` is the block QEMU is translating, valid during this callback.
    let n = unsafe { qemu_plugin_tb_n_insns(tb) };
    // SAFETY: as above.
    let vaddr = unsafe { qemu_plugin_tb_vaddr(tb) };
    let block = blocks.add(vaddr, u32::try_from(n).unwrap_or(u32::MAX));
    // SAFETY: as above; the counter is leaked, so it outlives every run of the generated code,
    // which adds to it with a plain 64-bit store (an aligned `AtomicU64` has `u64`'s layout).
    unsafe {
        qemu_plugin_register_vcpu_tb_exec_inline(
            tb,
            INLINE_ADD_U64,
            block.executed.as_ptr().cast(),
            n as u64,
        )
    };
}
