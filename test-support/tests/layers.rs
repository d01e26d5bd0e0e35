//! The checker's own modules form layers too.

use std::path::Path;

#[test]
fn no_import_cycles_in_test_support() {
    icap_test_support::assert_no_import_cycles(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
}
