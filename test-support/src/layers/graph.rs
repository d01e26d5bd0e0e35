//! Files as a graph: an edge from each file to every module file it names, and the
//! circles (strongly connected groups of more than one file).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::source::paths;
use super::tree::Module;

/// The module each file's paths name, per file index.
pub(super) fn edges(modules: &[Module]) -> Vec<BTreeSet<usize>> {
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
pub(super) fn resolve(
    m: &Module,
    p: &[String],
    index: &BTreeMap<(usize, &[String]), usize>,
) -> Option<usize> {
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

pub(super) fn deepest(
    root: usize,
    abs: &[String],
    index: &BTreeMap<(usize, &[String]), usize>,
) -> Option<usize> {
    let abs: Vec<String> = abs.iter().filter(|s| *s != "self").cloned().collect();
    (0..=abs.len())
        .rev()
        .find_map(|n| index.get(&(root, &abs[..n])).copied())
}

/// Strongly connected components with more than one module (Tarjan), each in an order
/// that follows its edges where it can, as files.
pub(super) fn cycles_of(modules: &[Module], graph: &[BTreeSet<usize>]) -> Vec<Vec<PathBuf>> {
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
