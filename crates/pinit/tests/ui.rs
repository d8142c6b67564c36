//! Compile-fail cases: misuse of every macro must be rejected with messages in the user's terms.

/// Names of implementation details that must never appear in an error message.
const INTERNAL_NAMES: &[&str] = &[
    "__internal",
    "macro_support",
    "__pinit",
    "ClosureInit",
    "DropGuard",
    "PinDataOf",
    "InitData",
    "make_closure",
    "pin_data_of",
    "init_data_of",
    "__pin_data",
    "this_ptr",
    "pin_init_from_macro",
    "init_from_macro",
    "same_type",
    "same_error",
    // Helper macros and the items `#[pin_data]` generates per type.
    "pinit_",
    "PinnedFields",
    "PinFields",
    "VariantLayout",
    "VariantFields",
    "__pin",
    "__phantom",
    "__field",
    "__tag",
    // Combinators and writers that do not belong in a "these types implement" list.
    "assert_zeroable",
    "writer_values",
    "variant_marker",
    "marker_basics",
    "ChainInit",
    "ChainPinInit",
    "MapErr",
];

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/fail/*.rs");
    cases.pass("tests/ui/pass/*.rs");
}

#[test]
fn error_messages_do_not_name_internals() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/fail");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("ui directory") {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|e| e == "stderr") {
            let text = std::fs::read_to_string(&path).expect("stderr file");
            for name in INTERNAL_NAMES {
                assert!(!text.contains(name), "{} mentions {name}", path.display());
            }
            // `src/field.rs` holds what the macros expand to: a note may point at a public signature
            // (as std's do), never there.
            assert!(
                !text.contains("--> src/field.rs"),
                "{} points into the macros' support code",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} compile-fail cases");
}
