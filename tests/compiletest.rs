//! What `#[differentiable]` rejects, and the messages it gives: one file
//! per case in `tests/ui/`, with the expected compiler output beside it.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
