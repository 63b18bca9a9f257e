//! Benchmarks of the foundation: written next.

fn main() {}
