//! Safe code using the driver cannot reach the device's registers or DMA memory contract: each
//! case under `tests/ui` must fail to compile, with the error recorded next to it.

#[test]
fn safe_code_cannot_point_the_controller_at_memory() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
