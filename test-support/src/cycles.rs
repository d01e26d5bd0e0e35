//! Circles in the import graph: strongly connected components (Tarjan), each reported as
//! one real circle through its first file.

use std::collections::{BTreeMap, BTreeSet};

/// For each component of more than one node, the nodes of the shortest circle through its
/// smallest node, in edge order.
pub(crate) fn cycles_of(graph: &[BTreeSet<usize>]) -> Vec<Vec<usize>> {
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
    let n = graph.len();
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
            order
        })
        .collect()
}
