//! Shared pieces of the storage benchmark binaries (`quota_bench`,
//! `usage_bench`): latency histograms and how they are printed.

pub mod bench_stats;
