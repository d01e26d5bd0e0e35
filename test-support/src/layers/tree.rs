//! The module tree: crate roots, `mod` declarations, and each file's code with comments,
//! literals and test blocks blanked.

use std::path::{Path, PathBuf};

use super::source::{blank_comments_and_literals, without_tests};

/// One module file: which crate root it belongs to, its path below that root, its
/// declared child modules and its code with comments, literals and test blocks blanked.
pub(super) struct Module {
    pub(super) root: usize,
    pub(super) path: Vec<String>,
    pub(super) file: PathBuf,
    pub(super) children: Vec<String>,
    pub(super) code: String,
}

pub(super) fn collect_tree(
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
pub(super) fn declared_modules(code: &str) -> Vec<String> {
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

pub(super) fn declared_with_semicolon(code: &str, name: &str) -> bool {
    let pat = format!("mod {name}");
    code.match_indices(&pat).any(|(i, _)| {
        code[i + pat.len()..]
            .chars()
            .find(|c| !c.is_whitespace())
            .is_some_and(|c| c == ';')
    })
}

pub(super) fn is_visibility_or_attr(w: &str) -> bool {
    w == "pub"
        || w.starts_with("pub(")
        || w.starts_with("#[")
        || w.ends_with(']')
        || w.ends_with(')')
}

pub(super) fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}
