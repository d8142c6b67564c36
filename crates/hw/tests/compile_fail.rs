//! Safe code cannot reach raw DMA: each case under `tests/ui` must fail to compile, with the
//! error recorded next to it.

#[test]
fn safe_code_cannot_point_a_device_at_memory() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
