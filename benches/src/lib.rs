//! Criterion benchmarks of the workspace; see `benches/`.

pub mod heads;
pub mod support;
