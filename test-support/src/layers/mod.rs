//! A check that the modules of a crate import one another in one direction only,
//! [`assert_no_import_cycles`].
//!
//! # How the check reads a crate
//!
//! ```text
//!  src/lib.rs, src/main.rs        each a crate root; `mod x;` lines give the module tree
//!    └─ a.rs | a/mod.rs           (x.rs or x/mod.rs beside the declaring file, or in its
//!         └─ a/b.rs                folder when it is not a root or mod.rs)
//!  per file: `crate::..`, `super::..`, `self::..` and `child::..` paths, in `use` lines
//!  (braces expanded) and in code → an edge to the deepest module the path names
//!  (an item of a module counts as that module, `crate::Item` as the root)
//!  comments, string and char literals and `#[cfg(test)] mod .. { }` blocks are skipped;
//!  a `mod x;` declaration is not an edge (every child would form a circle with it)
//!  → strongly connected components of more than one file are the circles
//! ```
//!
//! A parent that re-exports a child (`pub use child::Item;`) depends on it, so a child
//! that names `super::Item` instead of `super::sibling::Item` closes a circle: the check
//! sees circles among the modules of a directory module too.
//!
//! ```
//! # let dir = std::env::temp_dir().join(format!("icap-ts-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! # std::fs::write(dir.join("lib.rs"), "mod a;\nmod b;\n").unwrap();
//! # std::fs::write(dir.join("a.rs"), "use crate::b::B;\n").unwrap();
//! # std::fs::write(dir.join("b.rs"), "pub struct B;\n").unwrap();
//! icap_test_support::assert_no_import_cycles(&dir);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```

mod graph;
mod source;
mod tree;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use self::graph::{cycles_of, edges};
use self::tree::collect_tree;

/// Panics, naming the files of every import circle, if the modules under `src_dir` (a
/// crate's `src/`, with `lib.rs` and/or `main.rs`) import one another in a circle.
///
/// # Panics
/// On a circle, or if `src_dir` has no crate root or cannot be read.
pub fn assert_no_import_cycles(src_dir: &Path) {
    let cycles = import_cycles(src_dir)
        .unwrap_or_else(|e| panic!("cannot read the modules under {}: {e}", src_dir.display()));
    if cycles.is_empty() {
        return;
    }
    let mut msg = format!("import circles under {}:\n", src_dir.display());
    for c in &cycles {
        let _ = writeln!(msg, "  {}", describe(src_dir, c));
    }
    panic!("{msg}");
}

/// The import circles among the modules under `src_dir`: one per strongly connected group
/// of files, each a list in which every file imports the next and the last imports the
/// first (the shortest such circle through the group's first file). Empty when the
/// modules form layers.
pub fn import_cycles(src_dir: &Path) -> std::io::Result<Vec<Vec<PathBuf>>> {
    let mut modules = Vec::new();
    for root in ["lib.rs", "main.rs"] {
        let file = src_dir.join(root);
        if file.is_file() {
            collect_tree(&file, true, &[], &mut modules)?;
        }
    }
    if modules.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no lib.rs or main.rs",
        ));
    }
    let graph = edges(&modules);
    Ok(cycles_of(&modules, &graph))
}

/// `a.rs -> b.rs -> a.rs`.
fn describe(src_dir: &Path, circle: &[PathBuf]) -> String {
    let names: Vec<String> = circle.iter().map(|p| shown(src_dir, p)).collect();
    format!("{} -> {}", names.join(" -> "), names[0])
}

fn shown(src_dir: &Path, p: &Path) -> String {
    p.strip_prefix(src_dir).unwrap_or(p).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake `src/` under the system temp folder, removed on drop.
    struct Tree(PathBuf);

    impl Tree {
        fn new(name: &str, files: &[(&str, &str)]) -> Tree {
            let dir = std::env::temp_dir()
                .join(format!("icap-test-support-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            for (path, text) in files {
                let f = dir.join(path);
                std::fs::create_dir_all(f.parent().expect("a file has a folder")).expect("mkdir");
                std::fs::write(f, text).expect("write");
            }
            Tree(dir)
        }
        fn cycles(&self) -> Vec<Vec<String>> {
            import_cycles(&self.0)
                .expect("readable")
                .into_iter()
                .map(|c| c.iter().map(|p| shown(&self.0, p)).collect())
                .collect()
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_circle_between_two_files_is_found() {
        let t = Tree::new(
            "two",
            &[
                ("lib.rs", "mod a;\nmod b;\nmod c;\n"),
                ("a.rs", "use crate::b::B;\npub struct A;\n"),
                ("b.rs", "use crate::{c::C, a::A};\npub struct B;\n"),
                ("c.rs", "pub struct C;\n"),
            ],
        );
        assert_eq!(t.cycles(), [["a.rs", "b.rs"]]);
        let e = std::panic::catch_unwind(|| assert_no_import_cycles(&t.0)).expect_err("a circle");
        let msg = e.downcast_ref::<String>().expect("a formatted message");
        assert!(msg.contains("a.rs -> b.rs -> a.rs"), "{msg}");
    }

    #[test]
    fn layers_pass() {
        let t = Tree::new(
            "layers",
            &[
                (
                    "lib.rs",
                    "mod a;\npub mod b;\npub use a::A;\npub use b::B;\n",
                ),
                ("a.rs", "use crate::b::B;\npub struct A(B);\n"),
                ("b.rs", "pub struct B;\n"),
            ],
        );
        assert!(t.cycles().is_empty());
        assert_no_import_cycles(&t.0);
    }

    #[test]
    fn a_child_naming_its_parents_reexport_closes_a_circle() {
        let t = Tree::new(
            "dirmod",
            &[
                ("lib.rs", "mod c;\npub use c::X;\n"),
                ("c/mod.rs", "mod x;\nmod y;\npub use x::X;\n"),
                ("c/x.rs", "use super::y::Y;\npub struct X(Y);\n"),
                (
                    "c/y.rs",
                    "pub struct Y;\nfn f(x: super::X) -> super::X { x }\n",
                ),
            ],
        );
        assert_eq!(t.cycles(), [["c/mod.rs", "c/x.rs", "c/y.rs"]]);
    }

    #[test]
    fn siblings_in_a_directory_module() {
        let ok = Tree::new(
            "siblings-ok",
            &[
                ("lib.rs", "mod c;\n"),
                ("c.rs", "mod x;\nmod y;\npub use self::y::Y;\n"),
                ("c/x.rs", "pub struct X;\n"),
                ("c/y.rs", "pub struct Y(super::x::X);\n"),
            ],
        );
        assert!(ok.cycles().is_empty(), "{:?}", ok.cycles());
        let bad = Tree::new(
            "siblings-bad",
            &[
                ("lib.rs", "mod c;\n"),
                ("c.rs", "mod x;\nmod y;\n"),
                ("c/x.rs", "pub struct X;\nfn f(_: &super::y::Y) {}\n"),
                ("c/y.rs", "pub struct Y(super::x::X);\n"),
            ],
        );
        assert_eq!(bad.cycles(), [["c/x.rs", "c/y.rs"]]);
    }

    #[test]
    fn comments_literals_and_tests_are_not_imports() {
        let t = Tree::new(
            "noise",
            &[
                ("lib.rs", "mod a;\nmod b;\n"),
                ("a.rs", "use crate::b::B;\n"),
                (
                    "b.rs",
                    "//! See [`crate::a`].\n/// crate::a::x\npub struct B;\n\
                     /* crate::a::y /* nested */ */\n\
                     const S: &str = \"crate::a::z\";\nconst R: &str = r#\"crate::a\"#;\n\
                     const C: char = '\"'; fn g<'x>(_: &'x str) {}\n\
                     #[cfg(test)]\nmod tests {\n    use super::*;\n    use crate::a::*;\n}\n",
                ),
            ],
        );
        assert!(t.cycles().is_empty(), "{:?}", t.cycles());
    }

    #[test]
    fn a_binary_root_is_its_own_crate() {
        let t = Tree::new(
            "bin",
            &[
                ("lib.rs", "pub mod a;\n"),
                ("a.rs", "pub struct A;\n"),
                ("main.rs", "mod cli;\nfn main() { cli::run(); }\n"),
                (
                    "cli/mod.rs",
                    "mod args;\npub fn run() { let _ = args::Args; }\n",
                ),
                // `crate::` in the binary is main.rs, not lib.rs.
                (
                    "cli/args.rs",
                    "pub struct Args;\nfn f() { crate::helper(); }\n",
                ),
            ],
        );
        assert_eq!(t.cycles(), [["main.rs", "cli/mod.rs", "cli/args.rs"]]);
    }

    #[test]
    fn a_crate_root_item_counts_as_the_root() {
        let t = Tree::new(
            "rootitem",
            &[
                ("lib.rs", "mod a;\npub use a::A;\npub struct R;\n"),
                ("a.rs", "use crate::R;\npub struct A;\n"),
            ],
        );
        assert_eq!(t.cycles(), [["lib.rs", "a.rs"]]);
    }
}
