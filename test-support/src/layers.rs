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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

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

/// One module file: which crate root it belongs to, its path below that root, its
/// declared child modules and its code with comments, literals and test blocks blanked.
struct Module {
    root: usize,
    path: Vec<String>,
    file: PathBuf,
    children: Vec<String>,
    code: String,
}

fn collect_tree(
    file: &Path,
    is_root: bool,
    path: &[String],
    out: &mut Vec<Module>,
) -> std::io::Result<()> {
    let root = if is_root {
        out.iter().map(|m| m.root + 1).max().unwrap_or(0)
    } else {
        out.last().map_or(0, |m| m.root)
    };
    let code = without_tests(&blank_comments_and_literals(&std::fs::read_to_string(
        file,
    )?));
    let children = declared_modules(&code);
    let is_mod_rs = file.file_name().is_some_and(|n| n == "mod.rs");
    let dir = if is_root || is_mod_rs {
        file.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        file.with_extension("")
    };
    out.push(Module {
        root,
        path: path.to_vec(),
        file: file.to_path_buf(),
        children: children.clone(),
        code,
    });
    for c in children {
        let flat = dir.join(format!("{c}.rs"));
        let nested = dir.join(&c).join("mod.rs");
        let child_file = if flat.is_file() {
            flat
        } else if nested.is_file() {
            nested
        } else {
            // `#[path]` or generated modules: nothing to read.
            continue;
        };
        let mut p = path.to_vec();
        p.push(c);
        collect_tree(&child_file, false, &p, out)?;
    }
    Ok(())
}

/// `mod name;` declarations (any visibility, any attributes before them).
fn declared_modules(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for stmt in code.split([';', '{', '}']) {
        let words: Vec<&str> = stmt.split_whitespace().collect();
        let Some(i) = words.iter().position(|w| *w == "mod") else {
            continue;
        };
        // `mod x;` ends the statement right after the name; an inline `mod x {` was split
        // at its brace and is recognised by the text that follows, so check the separator.
        if i + 2 == words.len() && words[..i].iter().all(|w| is_visibility_or_attr(w)) {
            let name = words[i + 1];
            if is_ident(name) {
                out.push(name.to_owned());
            }
        }
    }
    // Keep only declarations ended by `;`: inline modules have their code in this file.
    out.retain(|n| declared_with_semicolon(code, n));
    out
}

fn declared_with_semicolon(code: &str, name: &str) -> bool {
    let pat = format!("mod {name}");
    code.match_indices(&pat).any(|(i, _)| {
        code[i + pat.len()..]
            .chars()
            .find(|c| !c.is_whitespace())
            .is_some_and(|c| c == ';')
    })
}

fn is_visibility_or_attr(w: &str) -> bool {
    w == "pub"
        || w.starts_with("pub(")
        || w.starts_with("#[")
        || w.ends_with(']')
        || w.ends_with(')')
}

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// The module each file's paths name, per file index.
fn edges(modules: &[Module]) -> Vec<BTreeSet<usize>> {
    let index: BTreeMap<(usize, &[String]), usize> = modules
        .iter()
        .enumerate()
        .map(|(i, m)| ((m.root, m.path.as_slice()), i))
        .collect();
    modules
        .iter()
        .enumerate()
        .map(|(me, m)| {
            let mut to = BTreeSet::new();
            for p in paths(&m.code) {
                if let Some(target) = resolve(m, &p, &index)
                    && target != me
                {
                    to.insert(target);
                }
            }
            to
        })
        .collect()
}

/// The deepest known module a path names, seen from module `m`.
fn resolve(m: &Module, p: &[String], index: &BTreeMap<(usize, &[String]), usize>) -> Option<usize> {
    let first = p.first()?;
    let mut abs: Vec<String> = match first.as_str() {
        "crate" => Vec::new(),
        "self" => m.path.clone(),
        "super" => {
            let mut base = m.path.clone();
            let mut rest = p;
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
            base.extend(rest.iter().cloned());
            return deepest(m.root, &base, index);
        }
        name if m.children.iter().any(|c| c == name) => {
            let mut base = m.path.clone();
            base.push(name.to_owned());
            base
        }
        _ => return None,
    };
    abs.extend(p[1..].iter().cloned());
    deepest(m.root, &abs, index)
}

fn deepest(
    root: usize,
    abs: &[String],
    index: &BTreeMap<(usize, &[String]), usize>,
) -> Option<usize> {
    let abs: Vec<String> = abs.iter().filter(|s| *s != "self").cloned().collect();
    (0..=abs.len())
        .rev()
        .find_map(|n| index.get(&(root, &abs[..n])).copied())
}

/// Every path in the code that starts with an identifier followed by `::`, `use`
/// groups expanded (`use a::{b, c::d}` gives `a::b` and `a::c::d`).
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for stmt in use_statements(code) {
        expand(&stmt, &[], &mut out);
    }
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts_ident = (bytes[i].is_ascii_alphabetic() || bytes[i] == b'_')
            && (i == 0
                || !(bytes[i - 1].is_ascii_alphanumeric()
                    || bytes[i - 1] == b'_'
                    || bytes[i - 1] == b':'));
        if !starts_ident {
            i += 1;
            continue;
        }
        let mut segs = Vec::new();
        let mut j = i;
        loop {
            let s = j;
            while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                j += 1;
            }
            if s == j {
                break;
            }
            segs.push(code[s..j].to_owned());
            if code[j..].starts_with("::") {
                j += 2;
            } else {
                break;
            }
        }
        if segs.len() > 1 {
            out.push(segs);
        }
        i = j.max(i + 1);
    }
    out
}

/// The text of each `use ...;` statement, without `use` and `;`.
fn use_statements(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let before_ok = i == 0
            || !rest[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let after = &rest[i + 4..];
        if before_ok && let Some(end) = after.find(';') {
            out.push(
                after[..end]
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            );
            rest = &after[end..];
        } else {
            rest = after;
        }
    }
    out
}

/// Expands a use tree (`a::{b, c::{d, e as f}}`) into paths; `as` renames and `*` are
/// dropped, `self` is kept for [`deepest`] to ignore.
fn expand(tree: &str, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let tree = tree.trim().trim_start_matches("::");
    let mut p = prefix.to_vec();
    if let Some(open) = tree.find('{') {
        let close = tree.rfind('}').filter(|&c| c > open).unwrap_or(tree.len());
        p.extend(segments(&tree[..open]));
        for part in split_top_level(&tree[open + 1..close]) {
            expand(part, &p, out);
        }
    } else {
        let path = tree.split(" as ").next().unwrap_or(tree);
        p.extend(segments(path).filter(|s| s != "*"));
        if !p.is_empty() {
            out.push(p);
        }
    }
}

fn segments(path: &str) -> impl Iterator<Item = String> + '_ {
    path.split("::")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// The code with comments, string literals and char literals replaced by spaces (line
/// breaks kept), so that a path in a doc comment or a message is not an import.
fn blank_comments_and_literals(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0usize;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !prev_is_ident(&b, i) {
            let mut hashes = 0;
            let mut j = i + 1;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            while j < b.len() {
                if b[j] == '"' && (1..=hashes).all(|k| b.get(j + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            for &ch in &b[i..j.min(b.len())] {
                out.push(blank(ch));
            }
            i = j;
        } else if c == '"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != '"' {
                j += if b[j] == '\\' { 2 } else { 1 };
            }
            for &ch in &b[i..(j + 1).min(b.len())] {
                out.push(blank(ch));
            }
            i = j + 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}'), or a lifetime ('a), which stays.
            let end = if next == Some('\\') {
                (i + 2..b.len().min(i + 12)).find(|&k| b[k] == '\'')
            } else if b.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            if let Some(e) = end {
                for _ in i..=e {
                    out.push(' ');
                }
                i = e + 1;
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn prev_is_ident(b: &[char], i: usize) -> bool {
    i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_')
}

/// The code without `#[cfg(test)]` items that are blocks (`mod tests { .. }`): test code
/// reaches into its module (`use super::*`) without being a layer of it.
fn without_tests(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(i) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let brace = after.find('{');
        let semi = after.find(';');
        match (brace, semi) {
            (Some(b), s) if s.is_none_or(|s| b < s) => {
                let mut depth = 0usize;
                let mut end = after.len();
                for (k, c) in after[b..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = b + k + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                out.extend(
                    after[..end]
                        .chars()
                        .map(|c| if c == '\n' { '\n' } else { ' ' }),
                );
                rest = &after[end..];
            }
            _ => {
                out.push_str("#[cfg(test)]");
                rest = &after["#[cfg(test)]".len()..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Strongly connected components with more than one module (Tarjan), each in an order
/// that follows its edges where it can, as files.
fn cycles_of(modules: &[Module], graph: &[BTreeSet<usize>]) -> Vec<Vec<PathBuf>> {
    struct State<'g> {
        graph: &'g [BTreeSet<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State<'_>, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for &w in &s.graph[v] {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                comp.push(w);
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                s.out.push(comp);
            }
        }
    }
    let n = modules.len();
    let mut s = State {
        graph,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.out
        .into_iter()
        .map(|comp| {
            // A real circle through the first file: the shortest way back to it inside
            // the component (breadth first). Breaking it shows the next, if any.
            let set: BTreeSet<usize> = comp.iter().copied().collect();
            let start = *comp.iter().min().expect("a component is not empty");
            let mut came_from: BTreeMap<usize, usize> = BTreeMap::new();
            let mut queue = std::collections::VecDeque::from([start]);
            let mut last = None;
            while let Some(v) = queue.pop_front() {
                if graph[v].contains(&start) {
                    last = Some(v);
                    break;
                }
                for &w in graph[v].iter().filter(|w| set.contains(w)) {
                    if w != start && !came_from.contains_key(&w) {
                        came_from.insert(w, v);
                        queue.push_back(w);
                    }
                }
            }
            let mut order = Vec::new();
            let mut cur = last.unwrap_or(start);
            while cur != start {
                order.push(cur);
                cur = came_from[&cur];
            }
            order.push(start);
            order.reverse();
            order.into_iter().map(|i| modules[i].file.clone()).collect()
        })
        .collect()
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
                ("c/y.rs", "pub struct Y;\nfn f() -> super::X { todo!() }\n"),
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
