//! The paths a module's code names: every `a::b` path in code, and `use` trees expanded.

/// Every path in the code that starts with an identifier followed by `::`, `use`
/// groups expanded (`use a::{b, c::d}` gives `a::b` and `a::c::d`).
pub(crate) fn paths(code: &str) -> Vec<Vec<String>> {
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
/// dropped, `self` is kept for the resolver in `lib.rs` to ignore.
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
