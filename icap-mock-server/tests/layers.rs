//! The crate's modules form layers: no file imports, directly or around a circle, a file
//! that imports it. Run alone with `cargo test -p icap-mock-server --test layers`.

use std::path::Path;

#[test]
fn no_import_cycles_in_the_library_or_the_binary() {
    icap_test_support::assert_no_import_cycles(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
}
