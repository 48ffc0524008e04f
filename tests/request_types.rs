//! Request types can gain fields without breaking callers: every request body and filter is
//! `#[non_exhaustive]`, so code outside the crate builds them with `new(…)` and `with_…`
//! (which keep compiling when an optional field is added) and cannot use struct literals or
//! `..Default::default()` (which would stop compiling, or silently miss the new field).
//! trybuild compiles the two files under `tests/request_types/` as a dependent crate would.

#[test]
fn request_types_are_built_with_constructors_not_literals() {
    let t = trybuild::TestCases::new();
    t.pass("tests/request_types/constructors.rs");
    t.compile_fail("tests/request_types/literals.rs");
}
