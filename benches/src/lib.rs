//! Benchmarks of the workspace: criterion micro-benchmarks under `benches/`
//! (`cargo bench -p benches`), comparison scripts beside them.
